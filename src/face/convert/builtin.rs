//! Builtin TFLite operators → ONNX (semantics: `tensorflow/lite/kernels/*.cc`, schema.fbs options).

use super::{ConvertError, Converter, NHWC_TO_NCHW_AXIS, Slot};
use crate::face::tflite::{Operator, builtin as op};
use crate::graph::onnx::{Attr, Value};

/// `Padding` enum of schema.fbs.
const PADDING_SAME: u8 = 0;

/// `fused_activation_function` values of schema.fbs.
const ACT_NONE: u8 = 0;
const ACT_RELU: u8 = 1;
const ACT_RELU_N1_TO_1: u8 = 2;
const ACT_RELU6: u8 = 3;

/// Explicit `(before, after)` padding of TF's SAME scheme for one spatial axis.
pub(super) fn same_padding(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> (usize, usize) {
    let eff = (kernel.max(1) - 1) * dilation.max(1) + 1;
    let stride = stride.max(1);
    let out = input.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + eff).saturating_sub(input);
    (total / 2, total - total / 2)
}

pub(super) fn convert(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    match o.code {
        op::DEQUANTIZE => dequantize(c, o),
        op::CONV_2D => conv(c, o, false),
        op::DEPTHWISE_CONV_2D => conv(c, o, true),
        op::ADD => binary(c, o, "Add"),
        op::MUL => binary(c, o, "Mul"),
        op::PRELU => prelu(c, o),
        op::RELU => unary_act(c, o, ACT_RELU),
        op::RELU6 => unary_act(c, o, ACT_RELU6),
        op::MAX_POOL_2D => max_pool(c, o),
        op::PAD => pad(c, o),
        op::RESHAPE => reshape(c, o),
        op::CONCATENATION => concat(c, o),
        op::STRIDED_SLICE => strided_slice(c, o),
        other => Err(c.unsupported(format!("builtin operator code {other} is not handled"))),
    }
}

fn opt_u8(o: &Operator<'_>, id: usize, default: u8) -> Result<u8, ConvertError> {
    match &o.options {
        Some(t) => Ok(t.u8(id, default)?),
        None => Ok(default),
    }
}

fn opt_i32(o: &Operator<'_>, id: usize, default: i32) -> Result<i32, ConvertError> {
    match &o.options {
        Some(t) => Ok(t.i32(id, default)?),
        None => Ok(default),
    }
}

fn positive(c: &Converter<'_, '_>, v: i32, what: &str) -> Result<usize, ConvertError> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0 && v < 4096)
        .ok_or_else(|| c.unsupported(format!("{what} = {v}")))
}

/// Applies a fused activation.
fn activation(c: &mut Converter<'_, '_>, v: Value, act: u8) -> Result<Value, ConvertError> {
    Ok(match act {
        ACT_NONE => v,
        ACT_RELU => c.g.relu(&v)?,
        ACT_RELU6 | ACT_RELU_N1_TO_1 => {
            let (lo, hi) = if act == ACT_RELU6 {
                (0.0, 6.0)
            } else {
                (-1.0, 1.0)
            };
            let lo = c.g.scalar_f32("clip_min", lo);
            let hi = c.g.scalar_f32("clip_max", hi);
            c.g.node("Clip", &[&v, &lo, &hi], &[])?
        }
        other => return Err(c.unsupported(format!("fused activation {other}"))),
    })
}

fn dequantize(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (i, out) = (c.inp(o, 0)?, c.out(o, 0)?);
    match c.slot(i)? {
        Slot::ConstF32(d) => {
            let d = d.clone();
            c.slots[out] = Some(Slot::ConstF32(d));
            Ok(())
        }
        _ => Err(c.unsupported("DEQUANTIZE of a non-constant or non-float16 tensor")),
    }
}

/// `CONV_2D` (weights `[O, KH, KW, I]`) and `DEPTHWISE_CONV_2D` (weights `[1, KH, KW, C·M]`).
fn conv(c: &mut Converter<'_, '_>, o: &Operator<'_>, depthwise: bool) -> Result<(), ConvertError> {
    let (xi, wi, out) = (c.inp(o, 0)?, c.inp(o, 1)?, c.out(o, 0)?);
    let xs = c.shape(xi);
    let ws = c.shape(wi);
    if xs.len() != 4 || ws.len() != 4 {
        return Err(c.unsupported("convolution needs rank-4 input and weights"));
    }
    let w = c.const_f32(wi)?;
    let padding = opt_u8(o, 0, 0)?;
    let stride_w = positive(c, opt_i32(o, 1, 1)?, "stride_w")?;
    let stride_h = positive(c, opt_i32(o, 2, 1)?, "stride_h")?;
    let (act_id, dil_w_id, dil_h_id) = if depthwise { (4, 5, 6) } else { (3, 4, 5) };
    let act = opt_u8(o, act_id, 0)?;
    let dil_w = positive(c, opt_i32(o, dil_w_id, 1)?, "dilation_w")?;
    let dil_h = positive(c, opt_i32(o, dil_h_id, 1)?, "dilation_h")?;
    let (kh, kw) = (ws[1], ws[2]);
    // Weights to ONNX [O, I/group, KH, KW].
    let (o_ch, i_ch, group) = if depthwise {
        let cin = xs[3];
        if ws[0] != 1 || cin == 0 || !ws[3].is_multiple_of(cin) {
            return Err(c.unsupported("depthwise weights do not fit the input channels"));
        }
        (ws[3], 1, cin)
    } else {
        if ws[3] != xs[3] {
            return Err(c.unsupported("convolution weights do not fit the input channels"));
        }
        (ws[0], ws[3], 1)
    };
    let mut wt = vec![0f32; w.len()];
    for oc in 0..o_ch {
        for ic in 0..i_ch {
            for y in 0..kh {
                for x in 0..kw {
                    let src = if depthwise {
                        (y * kw + x) * o_ch + oc
                    } else {
                        ((oc * kh + y) * kw + x) * i_ch + ic
                    };
                    wt[((oc * i_ch + ic) * kh + y) * kw + x] = w[src];
                }
            }
        }
    }
    let (pt, pb, pl, pr) = if padding == PADDING_SAME {
        let (t, b) = same_padding(xs[1], kh, stride_h, dil_h);
        let (l, r) = same_padding(xs[2], kw, stride_w, dil_w);
        (t, b, l, r)
    } else {
        (0, 0, 0, 0)
    };
    let x = c.nchw(xi)?;
    let wname = format!("{}_oihw", c.model.tensors[wi].name);
    let wv = c.g.initializer_f32(&wname, &[o_ch, i_ch, kh, kw], &wt)?;
    let mut inputs = vec![x, wv];
    if let Some(&bi) = o.inputs.get(2).filter(|&&b| b >= 0) {
        let bi = bi as usize;
        let b = c.const_f32(bi)?;
        if b.len() != o_ch {
            return Err(c.unsupported("bias length differs from the output channels"));
        }
        let bname = c.model.tensors[bi].name.clone();
        inputs.push(c.g.initializer_f32(&bname, &[o_ch], &b)?);
    }
    let refs: Vec<&Value> = inputs.iter().collect();
    let y = c.g.node(
        "Conv",
        &refs,
        &[
            ("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64])),
            (
                "strides",
                Attr::Ints(vec![stride_h as i64, stride_w as i64]),
            ),
            ("dilations", Attr::Ints(vec![dil_h as i64, dil_w as i64])),
            (
                "pads",
                Attr::Ints(vec![pt as i64, pl as i64, pb as i64, pr as i64]),
            ),
            ("group", Attr::Int(group as i64)),
        ],
    )?;
    let y = activation(c, y, act)?;
    c.set(out, y, true);
    Ok(())
}

/// An operand of a binary operator, aligned to the layout the operator runs in.
fn operand(c: &mut Converter<'_, '_>, i: usize, nchw: bool) -> Result<Value, ConvertError> {
    if !nchw {
        return c.tflite_layout(i);
    }
    let shape = c.shape(i);
    if c.is_const(i) {
        let d = c.const_f32(i)?;
        let hint = format!("{}_nchw", c.model.tensors[i].name);
        return c.const_as_nchw(&hint, &shape, &d);
    }
    if shape.len() == 4 {
        return c.nchw(i);
    }
    Err(c.unsupported("a rank < 4 value combined with an image tensor"))
}

/// `ADD` / `MUL` with numpy broadcasting and a fused activation.
fn binary(c: &mut Converter<'_, '_>, o: &Operator<'_>, onnx_op: &str) -> Result<(), ConvertError> {
    let (a, b, out) = (c.inp(o, 0)?, c.inp(o, 1)?, c.out(o, 0)?);
    let stored_nchw = |c: &Converter<'_, '_>, i: usize| {
        matches!(c.slots[i], Some(Slot::Value { nchw: true, .. }))
    };
    let nchw = c.shape(out).len() == 4 && (stored_nchw(c, a) || stored_nchw(c, b));
    let va = operand(c, a, nchw)?;
    let vb = operand(c, b, nchw)?;
    let y = c.g.node(onnx_op, &[&va, &vb], &[])?;
    let act = opt_u8(o, 0, 0)?;
    let y = activation(c, y, act)?;
    c.set(out, y, nchw);
    Ok(())
}

/// `PRELU` with a constant slope broadcast over the channel axis.
///
/// A rank-4 input with a per-channel slope `a` is written as
/// `Relu(x) + DepthwiseConv1x1(Relu(DepthwiseConv1x1(x, −1)), −a)`, which is exactly
/// `x` for `x ≥ 0` and `a·x` otherwise (`−1·x` and `Relu` are exact; one product, one exact add of
/// zero). ONNX Runtime keeps Conv/Relu/Add in its blocked NCHWc layout, while a `PRelu` node
/// (no NCHWc kernel) forces a reorder to NCHW and back around each activation; with that, the
/// mesh ran about 1.8× slower. Other slopes keep a plain `PRelu`.
fn prelu(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (xi, ai, out) = (c.inp(o, 0)?, c.inp(o, 1)?, c.out(o, 0)?);
    let nchw = c.shape(xi).len() == 4;
    let x = if nchw {
        c.nchw(xi)?
    } else {
        c.tflite_layout(xi)?
    };
    if nchw
        && c.is_const(ai)
        && let Some(slope) = per_channel(&c.shape(ai), &c.const_f32(ai)?, c.shape(xi)[3])
    {
        let y = prelu_as_convs(c, &x, &slope)?;
        c.set(out, y, true);
        return Ok(());
    }
    let slope = operand(c, ai, nchw)?;
    let y = c.g.node("PRelu", &[&x, &slope], &[])?;
    c.set(out, y, nchw);
    Ok(())
}

/// The `channels` per-channel values of a constant of TFLite shape `shape` broadcast against an
/// NHWC tensor, or `None` when the constant also varies over another axis.
fn per_channel(shape: &[usize], data: &[f32], channels: usize) -> Option<Vec<f32>> {
    let leading: usize = shape.iter().rev().skip(1).product();
    let last = shape.last().copied().unwrap_or(1);
    if leading != 1 || data.len() != last || !(last == channels || last == 1) {
        return None;
    }
    Some(if last == 1 {
        vec![data[0]; channels]
    } else {
        data.to_vec()
    })
}

/// A 1×1 depthwise `Conv` (per-channel scale, no bias) of an NCHW value.
fn channel_scale(
    c: &mut Converter<'_, '_>,
    x: &Value,
    scale: &[f32],
    hint: &str,
) -> Result<Value, ConvertError> {
    let ch = scale.len();
    let w = c.g.initializer_f32(hint, &[ch, 1, 1, 1], scale)?;
    Ok(c.g.node(
        "Conv",
        &[x, &w],
        &[
            ("kernel_shape", Attr::Ints(vec![1, 1])),
            ("group", Attr::Int(ch as i64)),
        ],
    )?)
}

/// PReLU with per-channel `slope` on an NCHW value, with NCHWc-friendly operators only.
fn prelu_as_convs(
    c: &mut Converter<'_, '_>,
    x: &Value,
    slope: &[f32],
) -> Result<Value, ConvertError> {
    let pos = c.g.relu(x)?;
    let minus_one = vec![-1.0f32; slope.len()];
    let neg = channel_scale(c, x, &minus_one, "prelu_minus_one")?;
    let neg = c.g.relu(&neg)?; // −min(x, 0)
    let minus_slope: Vec<f32> = slope.iter().map(|a| -a).collect();
    let scaled = channel_scale(c, &neg, &minus_slope, "prelu_minus_slope")?;
    Ok(c.g.add(&scaled, &pos)?)
}

fn unary_act(c: &mut Converter<'_, '_>, o: &Operator<'_>, act: u8) -> Result<(), ConvertError> {
    let (xi, out) = (c.inp(o, 0)?, c.out(o, 0)?);
    let (x, nchw) = c.value(xi)?;
    let y = activation(c, x, act)?;
    c.set(out, y, nchw);
    Ok(())
}

fn max_pool(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (xi, out) = (c.inp(o, 0)?, c.out(o, 0)?);
    let xs = c.shape(xi);
    if xs.len() != 4 {
        return Err(c.unsupported("pooling needs a rank-4 input"));
    }
    let padding = opt_u8(o, 0, 0)?;
    let sw = positive(c, opt_i32(o, 1, 1)?, "stride_w")?;
    let sh = positive(c, opt_i32(o, 2, 1)?, "stride_h")?;
    let kw = positive(c, opt_i32(o, 3, 1)?, "filter_width")?;
    let kh = positive(c, opt_i32(o, 4, 1)?, "filter_height")?;
    let act = opt_u8(o, 5, 0)?;
    let (pt, pb, pl, pr) = if padding == PADDING_SAME {
        let (t, b) = same_padding(xs[1], kh, sh, 1);
        let (l, r) = same_padding(xs[2], kw, sw, 1);
        (t, b, l, r)
    } else {
        (0, 0, 0, 0)
    };
    let x = c.nchw(xi)?;
    let y = c.g.node(
        "MaxPool",
        &[&x],
        &[
            ("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64])),
            ("strides", Attr::Ints(vec![sh as i64, sw as i64])),
            (
                "pads",
                Attr::Ints(vec![pt as i64, pl as i64, pb as i64, pr as i64]),
            ),
        ],
    )?;
    let y = activation(c, y, act)?;
    c.set(out, y, true);
    Ok(())
}

/// `PAD` with constant paddings `[rank, 2]` (zeros).
fn pad(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (xi, pi, out) = (c.inp(o, 0)?, c.inp(o, 1)?, c.out(o, 0)?);
    let rank = c.shape(xi).len();
    let p = c.const_int(pi)?;
    if p.len() != 2 * rank || p.iter().any(|&v| v < 0) {
        return Err(c.unsupported("paddings must be a non-negative [rank, 2] constant"));
    }
    let (x, nchw) = if rank == 4 {
        (c.nchw(xi)?, true)
    } else {
        (c.tflite_layout(xi)?, false)
    };
    if nchw && p[..6].iter().all(|&v| v == 0) && p[6..].iter().any(|&v| v > 0) {
        let channels = c.shape(xi)[3];
        let (before, after) = (p[6] as usize, p[7] as usize);
        let weights =
            (channels.saturating_add(before).saturating_add(after)).saturating_mul(channels);
        if weights <= MAX_PAD_WEIGHTS {
            let y = channel_pad(c, &x, channels, before, after)?;
            c.set(out, y, true);
            return Ok(());
        }
    }
    let mut pads = vec![0i64; 2 * rank];
    for axis in 0..rank {
        let dst = if nchw { NHWC_TO_NCHW_AXIS[axis] } else { axis };
        pads[dst] = p[2 * axis];
        pads[rank + dst] = p[2 * axis + 1];
    }
    let pv = c.g.const_i64("pads", &pads);
    let y =
        c.g.node("Pad", &[&x, &pv], &[("mode", Attr::Str("constant".into()))])?;
    c.set(out, y, nchw);
    Ok(())
}

/// Largest weight tensor [`channel_pad`] may create (larger pads stay `Pad` nodes).
const MAX_PAD_WEIGHTS: usize = 1 << 20;

/// Zero channels added before and after an NCHW value, as a 1×1 `Conv` with 0/1 weights (exact).
/// A channel `Pad` has no NCHWc kernel in ONNX Runtime; the blocks before and after it (the
/// residual branches of the mesh) would otherwise be reordered to NCHW and back.
fn channel_pad(
    c: &mut Converter<'_, '_>,
    x: &Value,
    channels: usize,
    before: usize,
    after: usize,
) -> Result<Value, ConvertError> {
    let out = before + channels + after;
    let mut w = vec![0f32; out * channels];
    for i in 0..channels {
        w[(before + i) * channels + i] = 1.0;
    }
    let wv =
        c.g.initializer_f32("channel_pad", &[out, channels, 1, 1], &w)?;
    Ok(c.g.node(
        "Conv",
        &[x, &wv],
        &[("kernel_shape", Attr::Ints(vec![1, 1]))],
    )?)
}

/// `RESHAPE` to the output tensor's static shape (in TFLite layout).
fn reshape(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (xi, out) = (c.inp(o, 0)?, c.out(o, 0)?);
    let x = c.tflite_layout(xi)?;
    let shape: Vec<i64> = c.shape(out).iter().map(|&d| d as i64).collect();
    if c.shape(xi).iter().product::<usize>() != c.shape(out).iter().product::<usize>() {
        return Err(c.unsupported("reshape changes the number of elements"));
    }
    let y = c.g.reshape(&x, &shape)?;
    c.set(out, y, false);
    Ok(())
}

fn concat(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let out = c.out(o, 0)?;
    let rank = c.shape(out).len();
    let mut axis = opt_i32(o, 0, 0)? as i64;
    if axis < 0 {
        axis += rank as i64;
    }
    if axis < 0 || axis >= rank as i64 {
        return Err(c.unsupported(format!("concatenation axis {axis}")));
    }
    let nchw = rank == 4;
    let mut vals = Vec::new();
    for k in 0..o.inputs.len() {
        let i = c.inp(o, k)?;
        vals.push(if nchw {
            c.nchw(i)?
        } else {
            c.tflite_layout(i)?
        });
    }
    if nchw {
        axis = NHWC_TO_NCHW_AXIS[axis as usize] as i64;
    }
    let refs: Vec<&Value> = vals.iter().collect();
    let y = c.g.concat(&refs, axis)?;
    let act = opt_u8(o, 1, 0)?;
    let y = activation(c, y, act)?;
    c.set(out, y, nchw);
    Ok(())
}

/// `STRIDED_SLICE` with constant bounds and positive strides (no ellipsis / new-axis / shrink masks).
fn strided_slice(c: &mut Converter<'_, '_>, o: &Operator<'_>) -> Result<(), ConvertError> {
    let (xi, bi, ei, si, out) = (
        c.inp(o, 0)?,
        c.inp(o, 1)?,
        c.inp(o, 2)?,
        c.inp(o, 3)?,
        c.out(o, 0)?,
    );
    let rank = c.shape(xi).len();
    let (begin, end, strides) = (c.const_int(bi)?, c.const_int(ei)?, c.const_int(si)?);
    let begin_mask = opt_i32(o, 0, 0)?;
    let end_mask = opt_i32(o, 1, 0)?;
    if opt_i32(o, 2, 0)? != 0 || opt_i32(o, 3, 0)? != 0 || opt_i32(o, 4, 0)? != 0 {
        return Err(c.unsupported("ellipsis, new-axis and shrink-axis masks"));
    }
    if begin.len() != rank
        || end.len() != rank
        || strides.len() != rank
        || strides.iter().any(|&s| s <= 0)
    {
        return Err(c.unsupported("slice bounds must cover every axis with positive strides"));
    }
    let nchw = rank == 4;
    let x = if nchw {
        c.nchw(xi)?
    } else {
        c.tflite_layout(xi)?
    };
    let mut starts = vec![0i64; rank];
    let mut ends = vec![0i64; rank];
    let mut steps = vec![1i64; rank];
    for a in 0..rank {
        let dst = if nchw { NHWC_TO_NCHW_AXIS[a] } else { a };
        starts[dst] = if begin_mask >> a & 1 == 1 {
            0
        } else {
            begin[a]
        };
        ends[dst] = if end_mask >> a & 1 == 1 {
            i64::MAX
        } else {
            end[a]
        };
        steps[dst] = strides[a];
    }
    let axes: Vec<i64> = (0..rank as i64).collect();
    let s = c.g.const_i64("starts", &starts);
    let e = c.g.const_i64("ends", &ends);
    let ax = c.g.const_i64("axes", &axes);
    let st = c.g.const_i64("steps", &steps);
    let y = c.g.node("Slice", &[&x, &s, &e, &ax, &st], &[])?;
    c.set(out, y, nchw);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{per_channel, same_padding};

    #[test]
    fn per_channel_slopes() {
        assert_eq!(
            per_channel(&[1, 1, 3], &[1., 2., 3.], 3),
            Some(vec![1., 2., 3.])
        );
        assert_eq!(per_channel(&[3], &[1., 2., 3.], 3), Some(vec![1., 2., 3.]));
        assert_eq!(per_channel(&[1], &[0.5], 2), Some(vec![0.5, 0.5]));
        // A slope that also varies over width (or has the wrong length) is not per-channel.
        assert_eq!(per_channel(&[2, 3], &[0.; 6], 3), None);
        assert_eq!(per_channel(&[4], &[0.; 4], 3), None);
    }

    #[test]
    fn tf_same_padding() {
        // 128 → 64 with a 5x5 stride-2 kernel: total 3, split 1 / 2 (TF puts the extra at the end).
        assert_eq!(same_padding(128, 5, 2, 1), (1, 2));
        assert_eq!(same_padding(64, 3, 1, 1), (1, 1));
        assert_eq!(same_padding(64, 2, 2, 1), (0, 0));
        assert_eq!(same_padding(3, 3, 2, 1), (1, 1));
    }
}
