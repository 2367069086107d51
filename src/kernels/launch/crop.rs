//! Device launchers for `kernels/crop.cu`: the renderer's face tensor (and optionally the 128 × 128
//! BGR crop) straight from a frame on the device in its native layout — packed RGB in any channel
//! order, I420 or NV12 — the GPU twin of [`host::crop_face`].
//!
//! A frame is a [`DeviceFrame`]: up to three plane views with their row strides. GStreamer's CUDA
//! memory holds a frame in one pitched allocation with per-plane offsets; take one view per plane
//! at those offsets (`CudaSlice::slice(offset..offset + len)`), as [`check`] does. Every argument
//! goes through the host build's own validation ([`crop_args`]) on the views' lengths before a
//! launch, since the kernel trusts its parameters: a wrong size is an `Err`, never an
//! out-of-bounds read on the device.

use cudarc::driver::{CudaStream, CudaView, CudaViewMut, DeviceSlice, LaunchConfig, PushKernelArg};

use crate::image::yuv::{YuvColour, YuvMatrix};
use crate::image::{ChannelOrder, ImageError, Rect};
use crate::kernels::GpuKernels;
use crate::kernels::check::{self, CheckRng, FACE, FRAME, StepCheck};
use crate::kernels::device::GpuError;
use crate::kernels::host::crop::{
    self as host, BGR_LEN, CHW_LEN, CropArgs, CropFormat, CropFrame, PlaneRef, crop_args,
};
use crate::sizes::FACE_SIZE;

const FAMILY: &str = "crop";
const ENTRY: &str = "iplap_crop_face";
/// The documented block (kernels/crop.cu): one thread per output pixel, 256 threads a block.
const BLOCK: (u32, u32, u32) = (32, 8, 1);
/// What the kernel receives for an absent pointer (an unused plane, or no `out_bgr`): a null
/// device address, as wide as the `const u8*` / `u8*` parameter it stands for.
const NULL: u64 = 0;

fn input(e: ImageError) -> GpuError {
    GpuError::Input(format!("crop: {e}"))
}

/// Block (32, 8, 1), grid (4, 16, 1): covers the 128 × 128 output; the kernel idles the threads
/// outside it, so rounding up would be safe for any block shape.
fn launch_config() -> LaunchConfig {
    let blocks = |n: u32| (FACE_SIZE as u32).div_ceil(n);
    LaunchConfig {
        grid_dim: (blocks(BLOCK.0), blocks(BLOCK.1), 1),
        block_dim: BLOCK,
        shared_mem_bytes: 0,
    }
}

/// One plane of a frame on the device: `data` starts at the plane's first sample, rows `stride`
/// bytes apart (the last row need not be padded).
#[derive(Debug)]
pub struct DevicePlane<'a> {
    pub data: CudaView<'a, u8>,
    pub stride: usize,
}

/// A read-only frame on the device, as the crop kernel takes it: packed `[pixels, -, -]`, I420
/// `[Y, U, V]`, NV12 `[Y, UV, -]` (the device twin of [`CropFrame`]'s planes).
#[derive(Debug)]
pub struct DeviceFrame<'a> {
    pub planes: [Option<DevicePlane<'a>>; 3],
}

impl<'a> DeviceFrame<'a> {
    pub fn packed(pixels: DevicePlane<'a>) -> Self {
        DeviceFrame {
            planes: [Some(pixels), None, None],
        }
    }

    pub fn i420(y: DevicePlane<'a>, u: DevicePlane<'a>, v: DevicePlane<'a>) -> Self {
        DeviceFrame {
            planes: [Some(y), Some(u), Some(v)],
        }
    }

    pub fn nv12(y: DevicePlane<'a>, uv: DevicePlane<'a>) -> Self {
        DeviceFrame {
            planes: [Some(y), Some(uv), None],
        }
    }

    /// (length, stride) of each plane that is there.
    fn layout(&self) -> [Option<(usize, usize)>; 3] {
        self.planes
            .each_ref()
            .map(|p| p.as_ref().map(|p| (p.data.len(), p.stride)))
    }
}

/// Planes the kernel reads for `format` (the first ones of [`DeviceFrame::planes`]).
fn planes_used(format: CropFormat) -> usize {
    match format {
        CropFormat::Packed(_) => 1,
        CropFormat::I420(_) => 3,
        CropFormat::Nv12(_) => 2,
    }
}

/// Every check of a launch that needs no GPU: the planes the format reads are present, the frame
/// and rectangle pass [`crop_args`] on the planes' (length, stride), and the outputs have exactly
/// the host build's lengths. Returns the kernel's scalar parameters.
fn validate(
    format: CropFormat,
    width: usize,
    height: usize,
    planes: [Option<(usize, usize)>; 3],
    rect: Rect,
    chw_len: usize,
    bgr_len: Option<usize>,
) -> Result<CropArgs, GpuError> {
    // A missing plane would be checked as length 0 and refused by `crop_args` anyway (a valid
    // rectangle makes the frame non-empty), but say so plainly rather than "plane too small".
    if let Some(i) = (0..planes_used(format)).find(|&i| planes[i].is_none()) {
        return Err(GpuError::Input(format!(
            "crop: a {format:?} frame needs plane {i}"
        )));
    }
    let lens = planes.map(|p| p.map_or(0, |p| p.0));
    let strides = planes.map(|p| p.map_or(0, |p| p.1));
    let args = crop_args(format, width, height, strides, lens, rect).map_err(input)?;
    for (got, expected) in [(Some(chw_len), CHW_LEN), (bgr_len, BGR_LEN)] {
        match got {
            Some(got) if got != expected => {
                return Err(input(ImageError::BadLength { expected, got }));
            }
            _ => {}
        }
    }
    Ok(args)
}

/// A buffer of another CUDA context has no meaning in this one: refuse it before a launch.
fn same_context(kernels: &GpuKernels, stream: &CudaStream, what: &str) -> Result<(), GpuError> {
    if stream.context().cu_ctx() == kernels.context().cu_ctx() {
        Ok(())
    } else {
        Err(GpuError::Input(format!(
            "crop: {what} belongs to another CUDA context"
        )))
    }
}

/// Enqueues `iplap_crop_face` on the kernels' stream: `rect` of the `width` × `height` `frame`
/// (stored as `format`) resized to 128 × 128 into `out_chw` (3 × 128 × 128, planes B, G, R of
/// `v / 255`, [`CHW_LEN`] values) and, when given, into `out_bgr` (packed BGR bytes,
/// [`BGR_LEN`]). Same bits as [`host::crop_face`] on the same bytes. Nothing is synchronised:
/// the outputs are ready in stream order.
#[allow(clippy::too_many_arguments)] // the kernel's own list; a struct would only rename it
pub fn crop_face(
    kernels: &GpuKernels,
    frame: &DeviceFrame<'_>,
    format: CropFormat,
    width: usize,
    height: usize,
    rect: Rect,
    out_chw: &mut CudaViewMut<'_, f32>,
    out_bgr: Option<&mut CudaViewMut<'_, u8>>,
) -> Result<(), GpuError> {
    let a = validate(
        format,
        width,
        height,
        frame.layout(),
        rect,
        out_chw.len(),
        out_bgr.as_ref().map(|b| b.len()),
    )?;
    for (i, p) in frame.planes.iter().enumerate() {
        if let Some(p) = p {
            same_context(kernels, p.data.stream(), &format!("frame plane {i}"))?;
        }
    }
    same_context(kernels, out_chw.stream(), "out_chw")?;
    if let Some(b) = &out_bgr {
        same_context(kernels, b.stream(), "out_bgr")?;
    }
    let func = kernels.function(FAMILY, ENTRY)?;
    let stream = kernels.stream();
    let mut b = stream.launch_builder(&func);
    // Parameters in the order of kernels/crop.cu; every scalar has the C type's width (i64
    // strides, i32 codes and rectangle, the 76-byte coefficients struct by value).
    for (plane, stride) in frame.planes.iter().zip(&a.strides) {
        match plane {
            // Pushing the view (not its raw address) lets cudarc order the launch after pending
            // writes to the frame when it manages multi-stream synchronisation.
            Some(p) => b.arg(&p.data),
            // Unused by the format: never dereferenced, and its stride is 0 (`crop_args`).
            None => b.arg(&NULL),
        };
        b.arg(stride);
    }
    b.arg(&a.format);
    b.arg(&a.bpp);
    for off in &a.offsets {
        b.arg(off);
    }
    b.arg(&a.coeffs);
    for r in &a.rect {
        b.arg(r);
    }
    b.arg(out_chw);
    match out_bgr {
        Some(o) => b.arg(o),
        None => b.arg(&NULL),
    };
    // SAFETY: the argument list matches the kernel's C signature in order and width (above).
    // `validate` ran `crop_args` on the views' lengths, so every plane the format reads holds the
    // whole frame at its stride and the rectangle lies inside the frame: every tap the kernel
    // takes (clamped to the rectangle) is inside a view; unused planes are null and never read.
    // The outputs have exactly the lengths the kernel writes, and are `&mut` views, so nothing
    // else reachable aliases them during the launch.
    unsafe { b.launch(launch_config()) }.map_err(GpuError::cuda("launching iplap_crop_face"))?;
    Ok(())
}

/// Triangle wave of `t` with `period`, 0..=255: smooth gradients that also reach both ends.
fn tri(t: usize, period: usize) -> i32 {
    let (p, half) = (t % period, period / 2);
    let up = if p < half { p } else { period - p };
    (up * 255 / half).min(255) as i32
}

/// Fills `rows` rows of a plane (`stride` bytes each, padding included) with smooth content:
/// two slanted triangle waves per byte channel (`channels` bytes per pixel, phase-shifted by
/// channel and `phase`), plus a little noise — camera-like, so the bilinear taps see both
/// gradients and texture, and the clamps at 0 and 255 are exercised.
fn fill_plane(
    buf: &mut [u8],
    stride: usize,
    rows: usize,
    channels: usize,
    phase: usize,
    rng: &mut CheckRng,
) {
    for (y, row) in buf.chunks_mut(stride).take(rows).enumerate() {
        for (i, v) in row.iter_mut().enumerate() {
            let (x, c) = (i / channels, i % channels + phase);
            let a = tri(3 * x + y + 97 * c, 701);
            let b = tri(2 * y + x / 2 + 53 * c, 443);
            *v = ((5 * a + 3 * b) / 8 + rng.below(13) as i32 - 6).clamp(0, 255) as u8;
        }
    }
}

/// Rows padded to GStreamer CUDA memory's pitch alignment, so the strides differ from the widths.
fn pitch(row: usize) -> usize {
    row.next_multiple_of(512)
}

/// One frame of the check in one allocation, as GStreamer CUDA memory holds it.
struct TestFrame {
    name: &'static str,
    format: CropFormat,
    width: usize,
    height: usize,
    bytes: Vec<u8>,
    /// (offset, length, stride) of each plane in `bytes`.
    planes: [Option<(usize, usize, usize)>; 3],
}

impl TestFrame {
    /// Planes laid out back to back; each `(stride, rows, channels)`, filled by [`fill_plane`].
    fn new(
        name: &'static str,
        format: CropFormat,
        (width, height): (usize, usize),
        planes: &[(usize, usize, usize)],
        seed: u64,
    ) -> Self {
        let mut rng = CheckRng::new(seed);
        let mut bytes = Vec::new();
        let mut layout = [None; 3];
        for (i, &(stride, rows, channels)) in planes.iter().enumerate() {
            let off = bytes.len();
            bytes.resize(off + stride * rows, 0);
            fill_plane(&mut bytes[off..], stride, rows, channels, 2 * i, &mut rng);
            layout[i] = Some((off, stride * rows, stride));
        }
        TestFrame {
            name,
            format,
            width,
            height,
            bytes,
            planes: layout,
        }
    }

    /// The check's frames: BGRx with padded rows, I420 (BT.709, limited range) and NV12 (BT.601,
    /// limited range), each `size` with chroma `ceil(size / 2)`.
    fn cases(size: (usize, usize)) -> [TestFrame; 3] {
        let (w, h) = size;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let bgrx = CropFormat::Packed(ChannelOrder::Bgrx);
        let i420 = CropFormat::I420(YuvColour::new(YuvMatrix::Bt709, false));
        let nv12 = CropFormat::Nv12(YuvColour::new(YuvMatrix::Bt601, false));
        [
            // 128 bytes of row padding: a mapped system-memory frame's pitch need not be aligned.
            TestFrame::new("BGRx", bgrx, size, &[(4 * w + 128, h, 4)], 1),
            TestFrame::new(
                "I420",
                i420,
                size,
                &[(pitch(w), h, 1), (pitch(cw), ch, 1), (pitch(cw), ch, 1)],
                2,
            ),
            TestFrame::new(
                "NV12",
                nv12,
                size,
                &[(pitch(w), h, 1), (pitch(2 * cw), ch, 2)],
                3,
            ),
        ]
    }

    #[cfg(test)]
    fn layout(&self) -> [Option<(usize, usize)>; 3] {
        self.planes.map(|p| p.map(|(_, len, stride)| (len, stride)))
    }

    fn host(&self) -> CropFrame<'_> {
        let plane = |p: Option<(usize, usize, usize)>| match p {
            Some((off, len, stride)) => PlaneRef {
                data: &self.bytes[off..off + len],
                stride,
            },
            None => PlaneRef {
                data: &[],
                stride: 0,
            },
        };
        CropFrame {
            format: self.format,
            width: self.width,
            height: self.height,
            planes: self.planes.map(plane),
        }
    }
}

/// The check's face: 577 × 455 at (671, 312) in the 1080p frame (an odd x, so the YUV paths
/// start mid chroma block).
fn face_rect() -> Rect {
    Rect::new(671, 312, FACE.0, FACE.1)
}

/// The crop's GPU check: for each frame format (1080p BGRx, I420, NV12) the frame is uploaded
/// once, cropped on the device with and without `out_bgr` into NaN / 0xA5-filled outputs (so an
/// unwritten value fails), and compared bit for bit with the host build. `gpu_ms` times only the
/// crop launch with both outputs (the kernel overwrites them, so repeats are idempotent).
pub fn check(kernels: &GpuKernels, iterations: usize) -> Result<Vec<StepCheck>, GpuError> {
    TestFrame::cases(FRAME)
        .iter()
        .map(|frame| check_frame(kernels, iterations, frame, face_rect()))
        .collect()
}

fn check_frame(
    kernels: &GpuKernels,
    iterations: usize,
    frame: &TestFrame,
    rect: Rect,
) -> Result<StepCheck, GpuError> {
    let stream = kernels.stream();
    let upload = GpuError::cuda(format!("uploading the {} crop case", frame.name));
    let bytes = stream.clone_htod(&frame.bytes).map_err(upload)?;
    let mut chw = stream
        .clone_htod(&vec![f32::NAN; CHW_LEN])
        .map_err(GpuError::cuda("allocating out_chw"))?;
    let mut chw_only = stream
        .clone_htod(&vec![f32::NAN; CHW_LEN])
        .map_err(GpuError::cuda("allocating out_chw"))?;
    let mut bgr = stream
        .clone_htod(&vec![0xA5u8; BGR_LEN])
        .map_err(GpuError::cuda("allocating out_bgr"))?;
    let planes = frame.planes.map(|p| {
        p.map(|(off, len, stride)| DevicePlane {
            data: bytes.slice(off..off + len),
            stride,
        })
    });
    let device = DeviceFrame { planes };
    let (fmt, w, h) = (frame.format, frame.width, frame.height);
    let launch = |chw: &mut CudaViewMut<'_, f32>, bgr: Option<&mut CudaViewMut<'_, u8>>| {
        crop_face(kernels, &device, fmt, w, h, rect, chw, bgr)
    };
    launch(&mut chw.as_view_mut(), Some(&mut bgr.as_view_mut()))?;
    launch(&mut chw_only.as_view_mut(), None)?;
    let download = || GpuError::cuda("downloading the crop");
    let got_chw = stream.clone_dtoh(&chw).map_err(download())?;
    let got_chw_only = stream.clone_dtoh(&chw_only).map_err(download())?;
    let got_bgr = stream.clone_dtoh(&bgr).map_err(download())?;
    stream
        .synchronize()
        .map_err(GpuError::cuda("running the crop"))?;

    let mut want_chw = vec![0.0f32; CHW_LEN];
    let mut want_bgr = vec![0u8; BGR_LEN];
    host::crop_face(&frame.host(), rect, &mut want_chw, Some(&mut want_bgr)).map_err(input)?;
    let diffs = [
        check::compare_f32(&got_chw, &want_chw),
        check::compare_f32(&got_chw_only, &want_chw),
        check::compare_u8(&got_bgr, &want_bgr),
    ];
    let max_abs_diff = diffs.iter().map(|d| d.0).fold(0.0, f64::max);
    let differing = diffs.iter().map(|d| d.1).sum();

    // Timed: the crop launch alone (frame already resident, outputs fully overwritten each time).
    let gpu_ms = check::median_gpu_ms(kernels, iterations, || {
        launch(&mut chw.as_view_mut(), Some(&mut bgr.as_view_mut()))
    })?;
    Ok(StepCheck {
        family: FAMILY,
        step: format!("crop {}", frame.name),
        max_abs_diff,
        differing,
        compared: 2 * CHW_LEN + BGR_LEN,
        limit: 0.0,
        gpu_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECT: Rect = Rect::new(671, 312, 577, 455);

    fn check_validate(
        frame: &TestFrame,
        rect: Rect,
        bgr: Option<usize>,
    ) -> Result<CropArgs, GpuError> {
        let (w, h) = (frame.width, frame.height);
        validate(frame.format, w, h, frame.layout(), rect, CHW_LEN, bgr)
    }

    #[test]
    fn launch_covers_the_face_with_the_documented_geometry() {
        let c = launch_config();
        assert_eq!(
            (c.block_dim, c.grid_dim, c.shared_mem_bytes),
            ((32, 8, 1), (4, 16, 1), 0)
        );
        assert!(c.grid_dim.0 * c.block_dim.0 >= FACE_SIZE as u32);
        assert!(c.grid_dim.1 * c.block_dim.1 >= FACE_SIZE as u32);
    }

    #[test]
    fn check_frames_are_valid_launches() {
        let [bgrx, i420, nv12] = TestFrame::cases(FRAME);
        let a = check_validate(&bgrx, RECT, Some(BGR_LEN)).unwrap();
        assert_eq!(
            (a.format, a.bpp, a.offsets),
            (host::FORMAT_PACKED, 4, [0, 1, 2])
        );
        assert_eq!(a.strides, [4 * 1920 + 128, 0, 0]);
        assert_eq!(a.rect, [671, 312, 577, 455]);
        let a = check_validate(&i420, RECT, None).unwrap();
        assert_eq!(
            (a.format, a.strides),
            (host::FORMAT_I420, [2048, 1024, 1024])
        );
        let a = check_validate(&nv12, RECT, Some(BGR_LEN)).unwrap();
        assert_eq!((a.format, a.strides), (host::FORMAT_NV12, [2048, 2048, 0]));
        // The planes are disjoint and back to back in one allocation.
        for f in [&bgrx, &i420, &nv12] {
            let mut end = 0;
            for (off, len, _) in f.planes.iter().flatten() {
                assert_eq!(*off, end, "{}", f.name);
                end += len;
            }
            assert_eq!(end, f.bytes.len(), "{}", f.name);
        }
    }

    #[test]
    fn invalid_launches_are_input_errors() {
        let [bgrx, i420, nv12] = TestFrame::cases((33, 17));
        let rect = Rect::new(3, 1, 29, 15);
        let is_input = |r: Result<CropArgs, GpuError>| matches!(r, Err(GpuError::Input(_)));
        assert!(check_validate(&bgrx, rect, None).is_ok());
        // Outside the frame, empty.
        assert!(is_input(check_validate(
            &i420,
            Rect::new(5, 0, 29, 17),
            None
        )));
        assert!(is_input(check_validate(&nv12, Rect::new(0, 0, 0, 4), None)));
        // Output lengths must be exact.
        assert!(is_input(check_validate(&bgrx, rect, Some(BGR_LEN - 1))));
        let l = bgrx.layout();
        assert!(is_input(validate(
            bgrx.format,
            33,
            17,
            l,
            rect,
            CHW_LEN + 1,
            None
        )));
        // A missing plane, or one a byte short of the frame.
        let mut l = i420.layout();
        l[2] = None;
        assert!(is_input(validate(
            i420.format,
            33,
            17,
            l,
            rect,
            CHW_LEN,
            None
        )));
        // NV12's UV plane: 9 rows of 2 × 17 bytes; the last row need not be padded, but must be
        // whole.
        let mut l = nv12.layout();
        l[1] = l[1].map(|(_, stride)| (8 * stride + 34, stride));
        assert!(validate(nv12.format, 33, 17, l, rect, CHW_LEN, None).is_ok());
        l[1] = l[1].map(|(len, stride)| (len - 1, stride));
        assert!(is_input(validate(
            nv12.format,
            33,
            17,
            l,
            rect,
            CHW_LEN,
            None
        )));
        // A grey frame cannot be cropped to BGR.
        let grey = CropFormat::Packed(ChannelOrder::Gray);
        assert!(is_input(validate(
            grey,
            33,
            17,
            bgrx.layout(),
            rect,
            CHW_LEN,
            None
        )));
    }

    #[test]
    fn content_is_deterministic_smooth_and_spans_the_range() {
        let a = TestFrame::cases((64, 48));
        let b = TestFrame::cases((64, 48));
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.bytes, b.bytes, "{}", a.name);
        }
        assert_ne!(
            a[1].bytes[..64],
            a[2].bytes[..64],
            "seeds differ per format"
        );
        // Neighbouring Y samples differ by a few levels on average, unlike white noise (~85).
        let y = &a[1].bytes[..64];
        let mean_step = y
            .windows(2)
            .map(|p| p[0].abs_diff(p[1]) as f64)
            .sum::<f64>()
            / 63.0;
        assert!(mean_step < 16.0, "{mean_step}");
        let big = TestFrame::cases(FRAME);
        let (lo, hi) = (big[0].bytes.iter().min(), big[0].bytes.iter().max());
        assert!(lo < Some(&16) && hi > Some(&240), "{lo:?}..{hi:?}");
    }

    #[test]
    fn host_half_of_the_check_runs() {
        for f in TestFrame::cases(FRAME) {
            let mut chw = vec![f32::NAN; CHW_LEN];
            host::crop_face(&f.host(), face_rect(), &mut chw, None).unwrap();
            assert!(chw.iter().all(|v| (0.0..=1.0).contains(v)), "{}", f.name);
        }
    }
}
