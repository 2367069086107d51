//! MediaPipe's custom TFLite operators, written with standard ONNX operators.
//!
//! Semantics follow `mediapipe/util/tflite/operations/` (github.com/google-ai-edge/mediapipe):
//! * `Landmarks2TransformMatrix` v2 (`landmarks_to_transform_matrix.cc`, `LandmarksToTransformMatrixV2`):
//!   rotation from two landmarks, rotated bounding box of a landmark subset, 4×4 matrix mapping
//!   output-crop pixels to landmark space;
//! * `TransformTensorBilinear` v1/v2 (`transform_tensor_bilinear.cc`): affine bilinear crop of a
//!   feature map, zero outside `[0, W-1] × [0, H-1]`; v2 samples at pixel centres;
//! * `TransformLandmarks` v2 (`transform_landmarks.cc`, `TransformLandmarksV2`): x, y through the
//!   matrix's first two rows, z unchanged.
//!
//! The rotation uses `cos/sin(target − atan2(dy, dx))` expanded with `cos θ = dx / |d|`,
//! `sin θ = dy / |d|`, so no `Atan2` operator is needed (ONNX has none).

use std::collections::BTreeMap;

use super::{ConvertError, Converter};
use crate::face::tflite::Operator;
use crate::face::tflite::flexbuf::{FlexValue, parse_map};
use crate::graph::onnx::{Attr, Value};

pub(super) fn convert(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    match o.custom_name.as_str() {
        "Landmarks2TransformMatrix" => landmarks_to_matrix(c, o),
        "TransformTensorBilinear" => transform_tensor(c, o),
        "TransformLandmarks" => transform_landmarks(c, o),
        other => Err(c.unsupported(format!("custom operator `{other}`"))),
    }
}

fn attrs(
    c: &Converter<'_, '_>,
    o: &Operator<'_>,
) -> Result<BTreeMap<String, FlexValue>, ConvertError> {
    if o.custom_options.is_empty() {
        return Ok(BTreeMap::new());
    }
    parse_map(o.custom_options).map_err(|e| c.unsupported(e.to_string()))
}

fn num(
    c: &Converter<'_, '_>,
    a: &BTreeMap<String, FlexValue>,
    key: &str,
) -> Result<f64, ConvertError> {
    a.get(key)
        .and_then(FlexValue::as_f64)
        .ok_or_else(|| c.unsupported(format!("attribute `{key}` missing or not a number")))
}

fn scalar_mul(c: &mut Converter<'_, '_>, x: &Value, k: f32) -> Result<Value, ConvertError> {
    let s = c.g.scalar_f32("k", k);
    Ok(c.g.mul(x, &s)?)
}

/// `a·x + b·y` for `[1,1]` values.
fn lin2(
    c: &mut Converter<'_, '_>,
    a: &Value,
    x: &Value,
    b: &Value,
    y: &Value,
) -> Result<Value, ConvertError> {
    let ax = c.g.mul(a, x)?;
    let by = c.g.mul(b, y)?;
    Ok(c.g.add(&ax, &by)?)
}

fn landmarks_to_matrix(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (xi, out) = (c.inp(o, 0)?, c.out(o, 0)?);
    let shape = c.shape(xi);
    if o.version != 2 || shape.len() != 3 || shape[2] != 3 {
        return Err(c.unsupported("only version 2 with [1, N, 3] landmarks is supported"));
    }
    let n = shape[1] as i64;
    let a = attrs(c, o)?;
    let idx = |c: &Converter<'_, '_>, key: &str| -> Result<i64, ConvertError> {
        let v = num(c, &a, key)? as i64;
        if v < 0 || v >= n {
            return Err(c.unsupported(format!("`{key}` = {v} outside the {n} landmarks")));
        }
        Ok(v)
    };
    let left = idx(c, "left_rotation_idx")?;
    let right = idx(c, "right_rotation_idx")?;
    let (ow, oh) = (
        num(c, &a, "output_width")? as f32,
        num(c, &a, "output_height")? as f32,
    );
    let (scale_x, scale_y) = (num(c, &a, "scale_x")? as f32, num(c, &a, "scale_y")? as f32);
    let target = a
        .get("target_rotation_radians")
        .and_then(FlexValue::as_f64)
        .unwrap_or(0.0) as f32;
    let subset: Vec<i64> = match a.get("subset_idxs") {
        Some(FlexValue::Numbers(v)) => v.iter().map(|&x| x as i64).collect(),
        _ => return Err(c.unsupported("attribute `subset_idxs` missing")),
    };
    // The upstream parser pairs consecutive entries and pairs an odd last entry with itself; only
    // the set of points matters for the bounding box, so the flat list is used as it is.
    if subset.is_empty() || subset.iter().any(|&i| i < 0 || i >= n) {
        return Err(c.unsupported("`subset_idxs` must be indices inside the landmarks"));
    }
    if ow <= 0.0 || oh <= 0.0 || scale_x <= 0.0 || scale_y <= 0.0 {
        return Err(c.unsupported("output size and scales must be positive"));
    }

    let x = c.tflite_layout(xi)?;
    let g = &mut c.g;
    let lm = g.reshape(&x, &[-1, 3])?;
    let xy = g.slice(&lm, &[1], &[0], &[2])?; // [N, 2]
    let l = g.gather(&xy, &[left], 0)?; // [1, 2]
    let r = g.gather(&xy, &[right], 0)?;
    let d = g.sub(&r, &l)?;
    let dx = g.slice(&d, &[1], &[0], &[1])?; // [1, 1]
    let dy = g.slice(&d, &[1], &[1], &[2])?;
    let dx2 = g.mul(&dx, &dx)?;
    let dy2 = g.mul(&dy, &dy)?;
    let hyp2 = g.add(&dx2, &dy2)?;
    let hyp = g.sqrt(&hyp2)?;
    let cos_t = g.div(&dx, &hyp)?;
    let sin_t = g.div(&dy, &hyp)?;
    // rotation r = target − θ: cos r = cos T cos θ + sin T sin θ, sin r = sin T cos θ − cos T sin θ.
    let (ct, st) = (target.cos(), target.sin());
    let ct_v = g.scalar_f32("cos_target", ct);
    let st_v = g.scalar_f32("sin_target", st);
    let cr = lin2(c, &ct_v, &cos_t, &st_v, &sin_t)?;
    let neg_ct = c.g.scalar_f32("neg_cos_target", -ct);
    let sr = lin2(c, &st_v, &cos_t, &neg_ct, &sin_t)?;
    let neg_sr = scalar_mul(c, &sr, -1.0)?;

    // Subset rotated by r: x' = cos r·x − sin r·y, y' = sin r·x + cos r·y.
    let p = c.g.gather(&xy, &subset, 0)?; // [2K, 2]
    let px = c.g.slice(&p, &[1], &[0], &[1])?;
    let py = c.g.slice(&p, &[1], &[1], &[2])?;
    let rx = lin2(c, &cr, &px, &neg_sr, &py)?;
    let ry = lin2(c, &sr, &px, &cr, &py)?;
    let reduce = |c: &mut Converter<'_, '_>, op: &str, v: &Value| -> Result<Value, ConvertError> {
        Ok(c.g.node(op, &[v], &[("keepdims", Attr::Int(1))])?)
    };
    let (max_x, min_x) = (reduce(c, "ReduceMax", &rx)?, reduce(c, "ReduceMin", &rx)?);
    let (max_y, min_y) = (reduce(c, "ReduceMax", &ry)?, reduce(c, "ReduceMin", &ry)?);
    let w = c.g.sub(&max_x, &min_x)?;
    let h = c.g.sub(&max_y, &min_y)?;
    let sum_x = c.g.add(&min_x, &max_x)?;
    let sum_y = c.g.add(&min_y, &max_y)?;
    let mx = scalar_mul(c, &sum_x, 0.5)?;
    let my = scalar_mul(c, &sum_y, 0.5)?;
    // Centre rotated back by −r.
    let cx = lin2(c, &cr, &mx, &sr, &my)?;
    let cy = lin2(c, &neg_sr, &mx, &cr, &my)?;
    // T = shift(c) · rot(−r) · scale(s) · shift(−out/2).
    let sx = scalar_mul(c, &w, scale_x / ow)?;
    let sy = scalar_mul(c, &h, scale_y / oh)?;
    let m00 = c.g.mul(&cr, &sx)?;
    let m01 = c.g.mul(&sr, &sy)?;
    let m10 = c.g.mul(&neg_sr, &sx)?;
    let m11 = c.g.mul(&cr, &sy)?;
    let half_w = c.g.scalar_f32("neg_half_w", -ow / 2.0);
    let half_h = c.g.scalar_f32("neg_half_h", -oh / 2.0);
    let t0 = lin2(c, &m00, &half_w, &m01, &half_h)?;
    let m03 = c.g.add(&t0, &cx)?;
    let t1 = lin2(c, &m10, &half_w, &m11, &half_h)?;
    let m13 = c.g.add(&t1, &cy)?;
    let zero = c.g.initializer_f32("zero", &[1, 1], &[0.0])?;
    let one = c.g.initializer_f32("one", &[1, 1], &[1.0])?;
    let entries = [
        &m00, &m01, &zero, &m03, &m10, &m11, &zero, &m13, &zero, &zero, &one, &zero, &zero, &zero,
        &zero, &one,
    ];
    let flat = c.g.concat(&entries, 1)?;
    let m = c.g.reshape(&flat, &[1, 4, 4])?;
    c.set(out, m, false);
    Ok(())
}

/// Scalar entries `idx` of a `[1, 4, 4]` matrix value, each as shape `[1]`.
fn entries(c: &mut Converter<'_, '_>, m: &Value, idx: &[i64]) -> Result<Vec<Value>, ConvertError> {
    let flat = c.g.reshape(m, &[16])?;
    idx.iter()
        .map(|&i| Ok(c.g.gather(&flat, &[i], 0)?))
        .collect()
}

fn transform_tensor(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (fi, mi, out) = (c.inp(o, 0)?, c.inp(o, 1)?, c.out(o, 0)?);
    let (fs, os) = (c.shape(fi), c.shape(out));
    if fs.len() != 4
        || os.len() != 4
        || fs[1] < 2
        || fs[2] < 2
        || c.shape(mi).iter().product::<usize>() != 16
    {
        return Err(c.unsupported("expects a [1, H, W, C] feature map (H, W ≥ 2) and a 4×4 matrix"));
    }
    let half_pixel = match o.version {
        1 => false,
        2 => true,
        v => return Err(c.unsupported(format!("version {v}"))),
    };
    let (ih, iw, oh, ow) = (fs[1], fs[2], os[1], os[2]);
    let f = c.tflite_layout(fi)?;
    let m = c.tflite_layout(mi)?;
    let e = entries(c, &m, &[0, 1, 3, 4, 5, 7])?;
    let (mut bx, mut by) = (e[2].clone(), e[5].clone());
    if half_pixel {
        // x_transform[3] += x_transform[0]·0.5 + x_transform[1]·0.5 − 0.5 (same for y).
        for (b, a0, a1) in [(&mut bx, &e[0], &e[1]), (&mut by, &e[3], &e[4])] {
            let s = c.g.add(a0, a1)?;
            let s = scalar_mul(c, &s, 0.5)?;
            let h = c.g.scalar_f32("minus_half", -0.5);
            let s = c.g.add(&s, &h)?;
            *b = c.g.add(b, &s)?;
        }
    }
    let gx: Vec<f32> = (0..oh * ow).map(|k| (k % ow) as f32).collect();
    let gy: Vec<f32> = (0..oh * ow).map(|k| (k / ow) as f32).collect();
    let ox = c.g.initializer_f32("out_x", &[1, oh, ow], &gx)?;
    let oy = c.g.initializer_f32("out_y", &[1, oh, ow], &gy)?;
    let tx = lin2(c, &e[0], &ox, &e[1], &oy)?;
    let tx = c.g.add(&tx, &bx)?;
    let ty = lin2(c, &e[3], &ox, &e[4], &oy)?;
    let ty = c.g.add(&ty, &by)?;
    let y = bilinear_gather(c, &f, [ih, iw], [oh, ow], &tx, &ty)?;
    c.set(out, y, false);
    Ok(())
}

/// Bilinear samples (NHWC `[1, oh, ow, C]`) of the NHWC feature map `f_nhwc` (`[1, ih, iw, C]`)
/// at pixel coordinates `tx`, `ty` (`[1, oh, ow]`), as `TransformTensorBilinear`'s loop: the four
/// taps around `(floor x, floor y)` weighted by the fractional parts, and 0 where the point leaves
/// `[0, iw − 1] × [0, ih − 1]`.
///
/// Written as one `Gather` of the four taps, a multiply and a sum: ONNX Runtime's `GridSample`
/// took about twice as long on these small crops. Points outside are first moved to (0, 0), so
/// every gathered index is valid (NaN coordinates included); the lower tap is kept at most
/// `size − 2`, which at `x = size − 1` gives weight 1 to the last column: the same value as
/// upstream's weight 0 on a zero read past the edge.
fn bilinear_gather(
    c: &mut Converter<'_, '_>,
    f_nhwc: &Value,
    [ih, iw]: [usize; 2],
    [oh, ow]: [usize; 2],
    tx: &Value,
    ty: &Value,
) -> Result<Value, ConvertError> {
    let zero = c.g.scalar_f32("zero", 0.0);
    let wmax = c.g.scalar_f32("w_max", (iw - 1) as f32);
    let hmax = c.g.scalar_f32("h_max", (ih - 1) as f32);
    let conds = [
        c.g.node("GreaterOrEqual", &[tx, &zero], &[])?,
        c.g.node("LessOrEqual", &[tx, &wmax], &[])?,
        c.g.node("GreaterOrEqual", &[ty, &zero], &[])?,
        c.g.node("LessOrEqual", &[ty, &hmax], &[])?,
    ];
    let a = c.g.node("And", &[&conds[0], &conds[1]], &[])?;
    let b = c.g.node("And", &[&conds[2], &conds[3]], &[])?;
    let inside = c.g.node("And", &[&a, &b], &[])?;
    let mask = c.g.node("Cast", &[&inside], &[("to", Attr::Int(1))])?;
    let points = (oh * ow) as i64;
    let tx = c.g.node("Where", &[&inside, tx, &zero], &[])?;
    let ty = c.g.node("Where", &[&inside, ty, &zero], &[])?;
    let mut lower = Vec::new();
    let mut frac = Vec::new();
    for (t, size) in [(&tx, iw), (&ty, ih)] {
        let fl = c.g.node("Floor", &[t], &[])?;
        let top = c.g.scalar_f32("last_lower_tap", (size - 2) as f32);
        let fl = c.g.node("Min", &[&fl, &top], &[])?;
        frac.push(c.g.sub(t, &fl)?);
        lower.push(fl);
    }
    // Flat index of the upper-left tap, then the four taps as rows of a [4, P] index tensor.
    let width = c.g.scalar_f32("width", iw as f32);
    let row = c.g.mul(&lower[1], &width)?;
    let base = c.g.add(&row, &lower[0])?;
    let base = c.g.reshape(&base, &[1, points])?;
    let offsets = [0.0, 1.0, iw as f32, iw as f32 + 1.0];
    let offsets = c.g.initializer_f32("tap_offsets", &[4, 1], &offsets)?;
    let idx = c.g.add(&base, &offsets)?;
    let idx = c.g.node("Cast", &[&idx], &[("to", Attr::Int(7))])?;
    let idx = c.g.reshape(&idx, &[4 * points])?;
    // Weights [4, P]: (1−fx)(1−fy), fx(1−fy), (1−fx)fy, fx·fy, times the in-bounds mask.
    let one = c.g.scalar_f32("one", 1.0);
    let (fx, fy) = (
        c.g.reshape(&frac[0], &[1, points])?,
        c.g.reshape(&frac[1], &[1, points])?,
    );
    let gx = c.g.sub(&one, &fx)?;
    let gy = c.g.sub(&one, &fy)?;
    let m = c.g.reshape(&mask, &[1, points])?;
    let gy = c.g.mul(&gy, &m)?;
    let fy = c.g.mul(&fy, &m)?;
    let w = [
        c.g.mul(&gx, &gy)?,
        c.g.mul(&fx, &gy)?,
        c.g.mul(&gx, &fy)?,
        c.g.mul(&fx, &fy)?,
    ];
    let w = c.g.concat(&[&w[0], &w[1], &w[2], &w[3]], 0)?;
    let w = c.g.unsqueeze(&w, &[2])?; // [4, P, 1]
    // Rows of the NHWC map: a Gather along axis 0 copies whole channel vectors (along another
    // axis ONNX Runtime copies element by element, slower than GridSample).
    let rows = c.g.reshape(f_nhwc, &[(ih * iw) as i64, -1])?;
    let taps =
        c.g.node("Gather", &[&rows, &idx], &[("axis", Attr::Int(0))])?;
    let taps = c.g.reshape(&taps, &[4, points, -1])?;
    let weighted = c.g.mul(&taps, &w)?;
    let sum = c.g.reduce_sum(&weighted, &[0], false)?;
    Ok(c.g.reshape(&sum, &[1, oh as i64, ow as i64, -1])?)
}

fn transform_landmarks(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (li, mi, out) = (c.inp(o, 0)?, c.inp(o, 1)?, c.out(o, 0)?);
    let ls = c.shape(li);
    if ls.len() != 3 || !(ls[2] == 2 || ls[2] == 3) || c.shape(mi).iter().product::<usize>() != 16 {
        return Err(c.unsupported("only version 2 with [1, K, 2|3] landmarks is supported"));
    }
    let lm = c.tflite_layout(li)?;
    let m = c.tflite_layout(mi)?;
    let flat = c.g.reshape(&m, &[16])?;
    let a = c.g.gather(&flat, &[0, 1, 4, 5], 0)?;
    let a = c.g.reshape(&a, &[2, 2])?;
    let at = c.g.transpose(&a, &[1, 0])?;
    let t = c.g.gather(&flat, &[3, 7], 0)?;
    let xy = c.g.slice(&lm, &[2], &[0], &[2])?;
    let p = c.g.matmul(&xy, &at)?;
    let mut y = c.g.add(&p, &t)?;
    if ls[2] == 3 {
        let z = c.g.slice(&lm, &[2], &[2], &[3])?;
        y = c.g.concat(&[&y, &z], 2)?;
    }
    c.set(out, y, false);
    Ok(())
}
