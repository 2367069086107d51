//! The yuv family's GPU check: a 1080p I420 and an NV12 frame, each in one allocation as
//! GStreamer's CUDA memory holds it, through the three launchers of [`super`] and through the
//! host build on the same bytes, compared bit for bit.

use cudarc::driver::{CudaSlice, CudaViewMut};

use super::{
    DevicePlane, DeviceYuv, FAMILY, input, to_rgb_window, writeback_chroma, writeback_luma,
};
use crate::image::yuv::{Plane, YuvColour, YuvMatrix, chroma_aligned};
use crate::image::{ImageError, Rect};
use crate::kernels::GpuKernels;
use crate::kernels::check::{self, CheckRng, FACE, FRAME, StepCheck};
use crate::kernels::device::GpuError;
use crate::kernels::host::yuv::{self as host, YuvPlanes};

/// Where the face crop ([`FACE`]) sits in the frame.
const FACE_AT: (usize, usize) = (671, 312);
/// How far past the face rect the paste's feathered edge reaches: the window grows by it.
const REACH: usize = 8;
/// Row padding of `before` only, so a swapped `rgb_pitch` / `before_pitch` cannot pass.
const BEFORE_PAD: usize = 24;

/// The converted window: the face rect grown by [`REACH`], chroma-aligned.
fn case_window() -> Rect {
    let grown = Rect::new(
        FACE_AT.0 - REACH,
        FACE_AT.1 - REACH,
        FACE.0 + 2 * REACH,
        FACE.1 + 2 * REACH,
    );
    chroma_aligned(grown, FRAME.0, FRAME.1)
}

/// (RGB pitch, `before` pitch) of a window: packed, and packed plus [`BEFORE_PAD`].
fn pitches(window: Rect) -> (usize, usize) {
    (3 * window.width, 3 * window.width + BEFORE_PAD)
}

/// A [`FRAME`] in one allocation, as GStreamer's CUDA memory lays it out: the planes one after
/// another at pitched strides. I420's V stride differs from U's so swapped strides cannot pass.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Layout {
    nv12: bool,
    y_stride: usize,
    /// Offsets of U and V (NV12: of UV, and one past it).
    c_off: [usize; 2],
    c_stride: [usize; 2],
    len: usize,
}

impl Layout {
    fn new(nv12: bool) -> Layout {
        let (w, h) = FRAME;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let y_stride = w.next_multiple_of(512);
        let c0 = y_stride * h;
        if nv12 {
            let s = (2 * cw).next_multiple_of(512);
            let (c_off, c_stride) = ([c0, c0 + 1], [s, s]);
            let len = c0 + s * ch;
            Layout {
                nv12,
                y_stride,
                c_off,
                c_stride,
                len,
            }
        } else {
            let (us, vs) = (cw.next_multiple_of(512), cw.next_multiple_of(512) + 64);
            let c1 = c0 + us * ch;
            let (c_off, c_stride) = ([c0, c1], [us, vs]);
            Layout {
                nv12,
                y_stride,
                c_off,
                c_stride,
                len: c1 + vs * ch,
            }
        }
    }

    /// The host build's view of `buf` (`len` bytes) in this layout.
    fn host<'a>(&self, buf: &'a mut [u8]) -> Result<YuvPlanes<'a>, ImageError> {
        let (w, h) = FRAME;
        let (y, chroma) = buf.split_at_mut(self.c_off[0]);
        let y = Plane {
            data: y,
            stride: self.y_stride,
        };
        if self.nv12 {
            let uv = Plane {
                data: chroma,
                stride: self.c_stride[0],
            };
            YuvPlanes::nv12(w, h, y, uv)
        } else {
            let (u, v) = chroma.split_at_mut(self.c_off[1] - self.c_off[0]);
            let u = Plane {
                data: u,
                stride: self.c_stride[0],
            };
            let v = Plane {
                data: v,
                stride: self.c_stride[1],
            };
            YuvPlanes::i420(w, h, y, u, v)
        }
    }
}

/// The renderer's stand-in: a feathered elliptical "face" of textured skin tones blended into the
/// RGB window (opaque inside, a ramp over the outer quarter of the radius, untouched outside), so
/// the write-back meets changed pixels, unchanged ones and 2 × 2 blocks holding both.
fn blend(rgb: &mut [u8], pitch: usize, window: Rect) {
    let (rx, ry) = (FACE.0 as f32 / 2.0, FACE.1 as f32 / 2.0);
    let (cx, cy) = (FACE_AT.0 as f32 + rx, FACE_AT.1 as f32 + ry);
    for j in 0..window.height {
        for i in 0..window.width {
            let (x, y) = (window.x + i, window.y + j);
            let dx = (x as f32 + 0.5 - cx) / rx;
            let dy = (y as f32 + 0.5 - cy) / ry;
            let a = (((1.0 - (dx * dx + dy * dy).sqrt()) * 4.0).clamp(0.0, 1.0) * 255.0).round();
            let a = a as u32;
            if a == 0 {
                continue;
            }
            let face = [
                150 + (x * 7 + y * 3) % 90,
                100 + (x * 5 + y * 11) % 80,
                70 + (x * 13 + y * 2) % 70,
            ];
            let px = &mut rgb[j * pitch + 3 * i..][..3];
            for (c, f) in px.iter_mut().zip(face) {
                *c = ((*c as u32 * (255 - a) + f as u32 * a + 127) / 255) as u8;
            }
        }
    }
}

/// One frame format of the check.
struct Case {
    name: &'static str,
    layout: Layout,
    colour: YuvColour,
    seed: u64,
}

fn cases() -> [Case; 2] {
    [
        Case {
            name: "I420 BT.709",
            layout: Layout::new(false),
            colour: YuvColour::new(YuvMatrix::Bt709, false),
            seed: 0x1420_0709,
        },
        Case {
            name: "NV12 BT.601 full",
            layout: Layout::new(true),
            colour: YuvColour::new(YuvMatrix::Bt601, true),
            seed: 0x0012_0601,
        },
    ]
}

impl Case {
    /// The frame's bytes, padding included (the write-back must leave it alone).
    fn frame(&self) -> Vec<u8> {
        let mut bytes = vec![0u8; self.layout.len];
        CheckRng::new(self.seed).fill_bytes(&mut bytes);
        bytes
    }
}

/// The host build's run of a case: the window as converted, the blended RGB, the frame after
/// the write-back and the luma count.
struct HostRun {
    rgb: Vec<u8>,
    before: Vec<u8>,
    blended: Vec<u8>,
    frame: Vec<u8>,
    written: usize,
}

fn host_run(case: &Case, window: Rect) -> Result<HostRun, ImageError> {
    let (rp, bp) = pitches(window);
    let mut frame = case.frame();
    let mut rgb = vec![0u8; rp * window.height];
    let mut before = vec![0u8; bp * window.height];
    let mut planes = case.layout.host(&mut frame)?;
    let c = &case.colour;
    host::to_rgb_window(
        &planes,
        c,
        window,
        (&mut rgb[..], rp),
        Some((&mut before[..], bp)),
    )?;
    let mut blended = rgb.clone();
    blend(&mut blended, rp, window);
    let written = host::writeback_luma(&mut planes, c, window, (&blended, rp), (&before, bp))?;
    host::writeback_chroma(&mut planes, c, window, (&blended, rp), (&before, bp))?;
    Ok(HostRun {
        rgb,
        before,
        blended,
        frame,
        written,
    })
}

/// The device's run of a case: the window as converted, the luma count, the two steps' times.
struct DeviceRun {
    rgb: Vec<u8>,
    before: Vec<u8>,
    written: u32,
    to_rgb_ms: f64,
    writeback_ms: f64,
}

/// Both write-backs, the count zeroed first, as the engine runs them once per frame.
fn writeback_step(
    kernels: &GpuKernels,
    frame: &mut DeviceYuv<CudaViewMut<'_, u8>>,
    colour: &YuvColour,
    window: Rect,
    (rgb, before): (&CudaSlice<u8>, &CudaSlice<u8>),
    written: &mut CudaSlice<u32>,
) -> Result<(), GpuError> {
    let (rp, bp) = pitches(window);
    kernels
        .stream()
        .memset_zeros(written)
        .map_err(GpuError::cuda("zeroing the luma count"))?;
    let count = Some(&mut written.as_view_mut());
    writeback_luma(
        kernels,
        frame,
        colour,
        window,
        (rgb, rp),
        (before, bp),
        count,
    )?;
    writeback_chroma(kernels, frame, colour, window, (rgb, rp), (before, bp))
}

fn device_run(
    kernels: &GpuKernels,
    iterations: usize,
    frame: &mut DeviceYuv<CudaViewMut<'_, u8>>,
    colour: &YuvColour,
    window: Rect,
    host_run: &HostRun,
) -> Result<DeviceRun, GpuError> {
    let (rp, bp) = pitches(window);
    let stream = kernels.stream();
    let alloc = GpuError::cuda;
    let mut rgb = stream
        .alloc_zeros::<u8>(rp * window.height)
        .map_err(alloc("RGB alloc"))?;
    let mut before = stream
        .alloc_zeros::<u8>(bp * window.height)
        .map_err(alloc("before alloc"))?;
    let mut written = stream.alloc_zeros::<u32>(1).map_err(alloc("count alloc"))?;

    // Conversion: once for the comparison, then timed. It only reads the frame (unchanged until
    // the write-back below) and rewrites both RGB buffers whole, so every iteration is the same.
    to_rgb_window(
        kernels,
        frame,
        colour,
        window,
        (&mut rgb, rp),
        Some((&mut before, bp)),
    )?;
    let dev_rgb = stream
        .clone_dtoh(&rgb)
        .map_err(GpuError::cuda("RGB download"))?;
    let dev_before = stream
        .clone_dtoh(&before)
        .map_err(GpuError::cuda("before download"))?;
    let to_rgb_ms = check::median_gpu_ms(kernels, iterations, || {
        to_rgb_window(
            kernels,
            frame,
            colour,
            window,
            (&mut rgb, rp),
            Some((&mut before, bp)),
        )
    })?;

    // The blend: the host's blended window and `before` go up, so the write-back runs on exactly
    // the host's inputs (a conversion difference is the step above's to report, not twice).
    stream
        .memcpy_htod(&host_run.blended, &mut rgb)
        .map_err(GpuError::cuda("blended RGB upload"))?;
    stream
        .memcpy_htod(&host_run.before, &mut before)
        .map_err(GpuError::cuda("before upload"))?;

    // Write-back: once for the comparison, then timed (count zeroing included). Idempotent: the
    // samples written depend only on the two RGB buffers, which stay as uploaded.
    writeback_step(
        kernels,
        frame,
        colour,
        window,
        (&rgb, &before),
        &mut written,
    )?;
    let count = stream
        .clone_dtoh(&written)
        .map_err(GpuError::cuda("count download"))?;
    let writeback_ms = check::median_gpu_ms(kernels, iterations, || {
        writeback_step(
            kernels,
            frame,
            colour,
            window,
            (&rgb, &before),
            &mut written,
        )
    })?;
    stream.synchronize().map_err(GpuError::cuda("write-back"))?;
    Ok(DeviceRun {
        rgb: dev_rgb,
        before: dev_before,
        written: count[0],
        to_rgb_ms,
        writeback_ms,
    })
}

fn check_case(
    kernels: &GpuKernels,
    iterations: usize,
    case: &Case,
) -> Result<[StepCheck; 2], GpuError> {
    let window = case_window();
    let host_run = host_run(case, window).map_err(input)?;
    let (w, h) = FRAME;
    let l = &case.layout;
    let stream = kernels.stream();
    let mut frame_buf = stream
        .clone_htod(&case.frame())
        .map_err(GpuError::cuda("frame upload"))?;
    // The frame's planes as disjoint views into its one allocation.
    let dev = {
        let (y, mut chroma) = frame_buf.split_at_mut(l.c_off[0]);
        let y = DevicePlane {
            data: y,
            stride: l.y_stride,
        };
        let mut frame = if l.nv12 {
            let uv = DevicePlane {
                data: chroma,
                stride: l.c_stride[0],
            };
            DeviceYuv::nv12(w, h, y, uv)?
        } else {
            let (u, v) = chroma.split_at_mut(l.c_off[1] - l.c_off[0]);
            let u = DevicePlane {
                data: u,
                stride: l.c_stride[0],
            };
            let v = DevicePlane {
                data: v,
                stride: l.c_stride[1],
            };
            DeviceYuv::i420(w, h, y, u, v)?
        };
        device_run(
            kernels,
            iterations,
            &mut frame,
            &case.colour,
            window,
            &host_run,
        )?
    };
    let frame_after = stream
        .clone_dtoh(&frame_buf)
        .map_err(GpuError::cuda("frame download"))?;

    let (rgb_max, rgb_diff) = check::compare_u8(&dev.rgb, &host_run.rgb);
    let (before_max, before_diff) = check::compare_u8(&dev.before, &host_run.before);
    let to_rgb = StepCheck {
        family: FAMILY,
        step: format!("to_rgb_window {}", case.name),
        max_abs_diff: rgb_max.max(before_max),
        differing: rgb_diff + before_diff,
        compared: host_run.rgb.len() + host_run.before.len(),
        limit: 0.0,
        gpu_ms: dev.to_rgb_ms,
    };
    // The whole allocation (every plane, padding included) and the luma count, one more output.
    let (frame_max, frame_diff) = check::compare_u8(&frame_after, &host_run.frame);
    let count_diff = (dev.written as usize).abs_diff(host_run.written);
    let writeback = StepCheck {
        family: FAMILY,
        step: format!("writeback luma + chroma {}", case.name),
        max_abs_diff: frame_max.max(count_diff as f64),
        differing: frame_diff + usize::from(count_diff != 0),
        compared: host_run.frame.len() + 1,
        limit: 0.0,
        gpu_ms: dev.writeback_ms,
    };
    Ok([to_rgb, writeback])
}

/// The family's GPU check: for a 1080p I420 and an NV12 frame (one allocation each, pitched), the
/// face window to RGB, a feathered blend, then the luma and chroma write-back — against the host
/// build, bit-exact — timing the conversion and the write-back (luma + chroma) as two steps.
pub(super) fn check(kernels: &GpuKernels, iterations: usize) -> Result<Vec<StepCheck>, GpuError> {
    let mut steps = Vec::new();
    for case in cases() {
        steps.extend(check_case(kernels, iterations, &case)?);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::super::{check_i420, check_nv12, window_args};
    use super::*;

    #[test]
    fn the_layouts_hold_a_frame() {
        let (fw, fh) = FRAME;
        for l in [Layout::new(false), Layout::new(true)] {
            let y = (l.c_off[0], l.y_stride);
            let ok = if l.nv12 {
                check_nv12(fw, fh, y, (l.len - l.c_off[0], l.c_stride[0]))
            } else {
                let u = (l.c_off[1] - l.c_off[0], l.c_stride[0]);
                check_i420(fw, fh, y, u, (l.len - l.c_off[1], l.c_stride[1]))
            };
            assert!(ok.is_ok(), "{l:?}");
            assert!(l.host(&mut vec![0u8; l.len]).is_ok(), "{l:?}");
        }
        let i420 = Layout::new(false);
        assert_ne!(i420.c_stride[0], i420.c_stride[1]);
    }

    #[test]
    fn the_window_holds_the_face_and_its_reach() {
        let win = case_window();
        assert!(window_args(FRAME.0, FRAME.1, win).is_ok());
        let (fx, fy) = FACE_AT;
        assert!(win.x + REACH <= fx && win.y + REACH <= fy);
        assert!(win.x + win.width >= fx + FACE.0 + REACH);
        assert!(win.y + win.height >= fy + FACE.1 + REACH);
        assert!(win.fits_in(FRAME.0, FRAME.1));
    }

    #[test]
    fn generator_is_deterministic() {
        let mut a = vec![0u8; 21];
        let mut b = vec![0u8; 21];
        CheckRng::new(7).fill_bytes(&mut a);
        CheckRng::new(7).fill_bytes(&mut b);
        assert_eq!(a, b);
        CheckRng::new(8).fill_bytes(&mut b);
        assert_ne!(a, b);
        assert!(a.iter().any(|&v| v != a[0]));
        let [i420, nv12] = cases();
        assert_eq!(i420.frame(), i420.frame());
        assert_ne!(i420.frame()[..1000], nv12.frame()[..1000]);
    }

    /// The host half of the check on its own: the blend must change some pixels but not all, so
    /// both write-back paths run, and the frame may change only inside the window.
    #[test]
    fn the_case_writes_back_part_of_the_window() {
        let win = case_window();
        let (rp, _) = pitches(win);
        for case in cases() {
            let run = host_run(&case, win).unwrap();
            let pixels = win.width * win.height;
            let changed = (0..pixels)
                .filter(|p| run.blended[3 * p..3 * p + 3] != run.rgb[3 * p..3 * p + 3])
                .count();
            assert!(
                changed > pixels / 2 && changed < pixels,
                "{changed} of {pixels}"
            );
            // `before` is the converted RGB, so every blended pixel that differs is written.
            assert_eq!(run.written, changed);
            assert_eq!(run.rgb.len(), rp * win.height);
            let original = case.frame();
            let l = &case.layout;
            let y_rows = |buf: &[u8], rows: std::ops::Range<usize>| {
                buf[rows.start * l.y_stride..rows.end * l.y_stride].to_vec()
            };
            assert_eq!(y_rows(&run.frame, 0..win.y), y_rows(&original, 0..win.y));
            let below = win.y + win.height..FRAME.1;
            assert_eq!(y_rows(&run.frame, below.clone()), y_rows(&original, below));
            assert_ne!(run.frame, original);
        }
    }
}
