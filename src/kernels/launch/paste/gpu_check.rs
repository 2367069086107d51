//! The paste family's GPU check: a frame-sized case through [`DevicePaste`] against the host
//! build ([`HostPaste`]) on identical inputs, with the device launches timed.

use cudarc::driver::CudaView;

use super::{DevicePaste, FAMILY, input, launch_face_to_u8};
use crate::image::{ChannelOrder, Rect};
use crate::kernels::GpuKernels;
use crate::kernels::check::{self, CheckRng, FACE, FRAME, StepCheck};
use crate::kernels::device::GpuError;
use crate::kernels::host::paste::{self as host, FACE_LEN, FrameTarget, HostPaste, Packed};
use crate::sizes::FACE_SIZE;

/// The check's inputs: a padded 1080p BGRx frame, a generated face, the crop and its contour.
struct Case {
    layout: Packed,
    frame: Vec<u8>,
    face: Vec<f32>,
    rect: Rect,
    polygon: Vec<(i64, i64)>,
}

/// The crop rect of the timed case: FACE at (671, 312).
const CASE_RECT: Rect = Rect {
    x: 671,
    y: 312,
    width: FACE.0,
    height: FACE.1,
};

/// A face-contour-like convex polygon for `rect`: the two upper corners of the face, then the
/// lower half of an ellipse (jaw and chin) from left to right. The chin dips a few pixels below
/// the rect, so the blurred window holds pixels outside the crop (the blend's "no face" path) as
/// well as the feathered edge inside it.
fn face_polygon(rect: Rect) -> Vec<(i64, i64)> {
    const JAW: usize = 25;
    let (w, h) = (rect.width as f64, rect.height as f64);
    let (cx, cy) = (rect.x as f64 + 0.5 * w, rect.y as f64 + 0.40 * h);
    let (a, b) = (0.46 * w, 0.62 * h);
    let top = (rect.y as f64 + 0.08 * h).round() as i64;
    let mut poly = vec![((cx - a).round() as i64, top)];
    for i in 0..JAW {
        let t = std::f64::consts::PI * (1.0 - i as f64 / (JAW - 1) as f64);
        poly.push((
            (cx + a * t.cos()).round() as i64,
            (cy + b * t.sin()).round() as i64,
        ));
    }
    poly.push(((cx + a).round() as i64, top));
    poly
}

impl Case {
    fn new(seed: u64) -> Self {
        let mut rng = CheckRng::new(seed);
        // 64 bytes of row padding: the kernels must honour the stride and never write padding
        // (the whole buffer, padding and x bytes included, is compared).
        let layout = Packed {
            width: FRAME.0,
            height: FRAME.1,
            stride: FRAME.0 * 4 + 64,
            order: ChannelOrder::Bgrx,
        };
        let mut frame = vec![0; layout.stride * layout.height];
        rng.fill_bytes(&mut frame);
        // [0, 1] with both ends reachable: 24 random bits over 2^24 - 1.
        let face = (0..FACE_LEN)
            .map(|_| (rng.next_u64() >> 40) as f32 / 16_777_215.0)
            .collect();
        Case {
            layout,
            frame,
            face,
            rect: CASE_RECT,
            polygon: face_polygon(CASE_RECT),
        }
    }
}

/// Combines per-output comparisons (largest difference, differing count).
fn merge(parts: &[(f64, usize)]) -> (f64, usize) {
    parts
        .iter()
        .fold((0.0, 0), |(m, d), &(pm, pd)| (m.max(pm), d + pd))
}

/// The paste GPU check: the 1080p BGRx case (stride 1920 × 4 + 64) through [`DevicePaste::blend`]
/// against [`HostPaste::blend`] on an identical host copy, all exact (limit 0).
///
/// Rows: the whole paste-back (timed: plan + vertex upload + the 7 launches; the frame is compared
/// after the first, untimed run), then the stages alone on the same prepared plan (timed: their
/// launches only): face_to_u8 + resize (face and resized scratch compared), spans + mask (mask),
/// blur_h + blur_v (blurred mask), blend (the frame, from the first run). The stage outputs are
/// downloaded after their timings, so they are also the results of many repeated launches.
/// The timed blends run on the already-blended device frame rather than restoring it each time:
/// the work is the same (window, mask and face are unchanged; the kernels' only data-dependent
/// branch is on the mask), and a frame copy inside the timed region would be timed with it.
/// Uploads and downloads are outside every timed region except the vertex upload of the first row.
pub fn check(kernels: &GpuKernels, iterations: usize) -> Result<Vec<StepCheck>, GpuError> {
    let case = Case::new(0x5EED_9A57_E000_0001);
    let target = FrameTarget::whole(case.layout);
    let rect = case.rect;
    let face_layout = Packed::tight(FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr);

    let mut host_paste = HostPaste::new();
    let mut want_frame = case.frame.clone();
    host_paste
        .blend(&mut want_frame, &target, &case.face, rect, &case.polygon)
        .map_err(input)?;
    let mut want_face = vec![0u8; FACE_LEN];
    host::face_to_u8(&case.face, &mut want_face).map_err(input)?;
    let resized_layout = Packed::tight(rect.width, rect.height, ChannelOrder::Bgr);
    let mut want_resized = vec![0u8; rect.width * rect.height * 3];
    let whole = Rect::new(0, 0, rect.width, rect.height);
    host::resize(
        &want_face,
        &face_layout,
        &mut want_resized,
        &resized_layout,
        whole,
    )
    .map_err(input)?;
    let window = host_paste.window();
    if window.is_empty() {
        return Err(GpuError::Input("the paste case has no mask window".into()));
    }

    let stream = kernels.stream();
    let face = stream
        .clone_htod(&case.face)
        .map_err(GpuError::cuda("uploading the paste case"))?;
    let mut frame = stream
        .clone_htod(&case.frame)
        .map_err(GpuError::cuda("uploading the paste case"))?;
    let mut paste = DevicePaste::new(kernels)?;
    let polygon = case.polygon.as_slice();

    paste.blend(
        kernels,
        &face.as_view(),
        &mut frame.as_view_mut(),
        &target,
        rect,
        polygon,
    )?;
    let got_frame = stream
        .clone_dtoh(&frame)
        .map_err(GpuError::cuda("downloading the pasted frame"))?;
    stream.synchronize().map_err(GpuError::cuda("paste-back"))?;
    let frame_cmp = check::compare_u8(&got_frame, &want_frame);
    let wrong_window = paste.window() != window;

    let whole_ms = check::median_gpu_ms(kernels, iterations, || {
        paste.blend(
            kernels,
            &face.as_view(),
            &mut frame.as_view_mut(),
            &target,
            rect,
            polygon,
        )
    })?;

    // The stages alone, on one prepared plan (vertices uploaded once, outside the timings).
    let p = paste
        .scratch
        .prepare(stream, &target, frame.len(), rect, polygon)?
        .ok_or_else(|| GpuError::Input("the paste case has no mask window".into()))?;
    let f = &paste.functions;
    let face_ms = check::median_gpu_ms(kernels, iterations, || {
        launch_face_to_u8(
            stream,
            &f.face_to_u8,
            &face.as_view(),
            &mut paste.face.as_view_mut(),
        )?;
        paste
            .scratch
            .resize_face(f, stream, &p, &paste.face.as_view(), &face_layout)
    })?;
    let mask_ms = check::median_gpu_ms(kernels, iterations, || paste.scratch.mask(f, stream, &p))?;
    let blur_ms = check::median_gpu_ms(kernels, iterations, || paste.scratch.blur(f, stream, &p))?;
    let blend_ms = check::median_gpu_ms(kernels, iterations, || {
        paste
            .scratch
            .blend_into(f, stream, &p, &mut frame.as_view_mut())
    })?;

    let down = |v: &CudaView<'_, u8>| {
        stream
            .clone_dtoh(v)
            .map_err(GpuError::cuda("downloading the paste scratch"))
    };
    let got_face = down(&paste.face.as_view())?;
    let got_resized = down(&paste.scratch.resized.slice(..want_resized.len()))?;
    let no_window = || GpuError::Input("the device paste has no mask window".into());
    let got_mask = down(&paste.mask().ok_or_else(no_window)?)?;
    let got_blurred = down(&paste.blurred().ok_or_else(no_window)?)?;
    stream.synchronize().map_err(GpuError::cuda("paste-back"))?;
    let face_cmp = merge(&[
        check::compare_u8(&got_face, &want_face),
        check::compare_u8(&got_resized, &want_resized),
    ]);
    let mut mask_cmp = check::compare_u8(&got_mask, host_paste.mask());
    if wrong_window {
        // Same-sized but misplaced windows would compare equal byte for byte: count it.
        mask_cmp = (mask_cmp.0.max(255.0), mask_cmp.1 + 1);
    }
    let blur_cmp = check::compare_u8(&got_blurred, host_paste.blurred());

    let (ww, wh) = (window.width, window.height);
    let (rw, rh) = (rect.width, rect.height);
    let row = |step: String, (max_abs_diff, differing): (f64, usize), compared: usize, gpu_ms| {
        StepCheck {
            family: FAMILY,
            step,
            max_abs_diff,
            differing,
            compared,
            limit: 0.0,
            gpu_ms,
        }
    };
    let frame_bytes = got_frame.len();
    Ok(vec![
        row(
            format!(
                "paste-back {}x{} BGRx (upload + 7 kernels)",
                FRAME.0, FRAME.1
            ),
            frame_cmp,
            frame_bytes,
            whole_ms,
        ),
        row(
            format!("face_to_u8 + resize {rw}x{rh}"),
            face_cmp,
            got_face.len() + got_resized.len(),
            face_ms,
        ),
        row(
            format!("spans + mask {ww}x{wh}"),
            mask_cmp,
            got_mask.len(),
            mask_ms,
        ),
        row(
            format!("blur {ww}x{wh}"),
            blur_cmp,
            got_blurred.len(),
            blur_ms,
        ),
        row(
            format!("blend {ww}x{wh} (frame)"),
            frame_cmp,
            frame_bytes,
            blend_ms,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::scratch_lens;
    use super::*;
    use crate::kernels::host::paste::plan;

    #[test]
    fn case_is_deterministic_and_realistic() {
        let (a, b) = (Case::new(7), Case::new(7));
        assert_eq!(
            (&a.frame, &a.face, &a.polygon),
            (&b.frame, &b.face, &b.polygon)
        );
        assert_ne!(a.frame, Case::new(8).frame);
        assert!(a.face.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(a.frame.len(), (1920 * 4 + 64) * 1080);

        // Convex (every turn the same way, collinear allowed) and the window in the frame.
        let p = &a.polygon;
        let turns: Vec<i64> = (0..p.len())
            .map(|i| {
                let (o, q, r) = (p[i], p[(i + 1) % p.len()], p[(i + 2) % p.len()]);
                (q.0 - o.0) * (r.1 - q.1) - (q.1 - o.1) * (r.0 - q.0)
            })
            .collect();
        assert!(turns.iter().all(|&t| t >= 0) || turns.iter().all(|&t| t <= 0));
        let target = FrameTarget::whole(a.layout);
        let plan = plan(&target, a.frame.len(), a.rect, p).unwrap();
        let [wx, wy, ww, wh] = plan.window.unwrap();
        let r = a.rect;
        // The window pokes out below the rect (the no-face path) and stays inside the frame.
        assert!((wy + wh) as usize > r.y + r.height && (wy + wh) as usize <= FRAME.1);
        assert!(wx >= 0 && (wx + ww) as usize <= FRAME.0);
    }

    #[test]
    fn the_host_blend_of_the_case_changes_only_colour_bytes_near_the_polygon() {
        let a = Case::new(3);
        let target = FrameTarget::whole(a.layout);
        let mut out = a.frame.clone();
        let mut host = HostPaste::new();
        host.blend(&mut out, &target, &a.face, a.rect, &a.polygon)
            .unwrap();
        let w = host.window();
        let changed: Vec<usize> = (0..out.len()).filter(|&i| out[i] != a.frame[i]).collect();
        assert!(changed.len() > 100_000, "{}", changed.len());
        for i in changed {
            let (y, x) = (i / a.layout.stride, (i % a.layout.stride) / 4);
            assert!(i % a.layout.stride < FRAME.0 * 4 && i % 4 != 3, "byte {i}");
            assert!(x >= w.x && x < w.x + w.width && y >= w.y && y < w.y + w.height);
        }
    }

    #[test]
    fn scratch_sizes_follow_the_plan() {
        let a = Case::new(1);
        let target = FrameTarget::whole(a.layout);
        let plan = plan(&target, a.frame.len(), a.rect, &a.polygon).unwrap();
        let window = plan.window.unwrap();
        let [_, _, ww, wh] = window.map(|v| v as usize);
        assert_eq!(
            scratch_lens(&plan, window),
            [2 * a.polygon.len(), 2 * wh, ww * wh, 577 * 455 * 3]
        );
    }

    #[test]
    fn bad_blends_are_input_errors_before_any_launch() {
        let a = Case::new(2);
        let target = FrameTarget::whole(a.layout);
        // What `Scratch::prepare` and `paste_face` map: a buffer one byte short of its last row
        // (the last row's padding is optional), a rect off the frame.
        let need = (FRAME.1 - 1) * a.layout.stride + FRAME.0 * 4;
        assert!(plan(&target, need, a.rect, &a.polygon).is_ok());
        let short = plan(&target, need - 1, a.rect, &a.polygon).map_err(input);
        assert!(matches!(short, Err(GpuError::Input(_))));
        let off = Rect::new(1900, 0, 577, 455);
        assert!(matches!(
            plan(&target, a.frame.len(), off, &a.polygon).map_err(input),
            Err(GpuError::Input(_))
        ));
        // A polygon off the frame: a plan without a window, so nothing is launched.
        let far: Vec<(i64, i64)> = a.polygon.iter().map(|&(x, y)| (x + 5000, y)).collect();
        assert_eq!(
            plan(&target, a.frame.len(), a.rect, &far).unwrap().window,
            None
        );
    }
}
