//! Device launchers for `kernels/yuv.cu`: the GPU twin of
//! [`RgbWindow::run`](crate::image::yuv::RgbWindow::run) for I420 / NV12 frames already on the
//! device — the window to packed RGB ([`to_rgb_window`]), then, after the renderer blended the
//! face into that RGB, the write-back of the changed pixels' luma ([`writeback_luma`]) and of the
//! changed 2 × 2 blocks' chroma ([`writeback_chroma`]).
//!
//! A frame is a [`DeviceYuv`]: its planes as device buffers with strides. GStreamer's CUDA memory
//! holds a frame in one allocation with plane offsets; split it into disjoint views at those
//! offsets (`CudaSlice::split_at_mut`, then `CudaViewMut::split_at_mut` for I420's V), as
//! [`check`] does (submodule `case`). Every argument is checked by the host build's own validation
//! ([`crate::kernels::host::yuv`]) before a launch, so a wrong size is an `Err`, never an
//! out-of-bounds access on the device.

mod case;

use cudarc::driver::{
    CudaStream, CudaViewMut, DevicePtr, DevicePtrMut, DeviceSlice, LaunchConfig, PushKernelArg,
    SyncOnDrop,
};

use crate::image::yuv::{YuvColour, chroma_aligned};
use crate::image::{ImageError, Rect};
use crate::kernels::GpuKernels;
use crate::kernels::check::StepCheck;
use crate::kernels::device::GpuError;
use crate::kernels::host::yuv::{self as host, YuvPlanes};

const FAMILY: &str = "yuv";
/// 16 × 16 threads: any 2D block is valid (kernels/yuv.cu); 256 threads keeps rows of a window
/// in few blocks and occupancy high on every GPU we target.
const BLOCK: u32 = 16;
/// The host build's messages, so the device path fails with the same words.
const PLANE_SHORT: &str = "plane too small for the frame size and stride, or stride exceeds i32";
const RGB_SHORT: &str =
    "RGB window buffer too small for the window and pitch, or pitch exceeds i32";

fn input(e: ImageError) -> GpuError {
    GpuError::Input(e.to_string())
}

/// One plane of a frame on the device: `data` starts at the plane's first sample (a view at the
/// plane's offset for a frame in one allocation), rows `stride` bytes apart.
#[derive(Debug)]
pub struct DevicePlane<P> {
    pub data: P,
    pub stride: usize,
}

#[derive(Debug)]
enum DeviceChroma<P> {
    Planar(DevicePlane<P>, DevicePlane<P>),
    Interleaved(DevicePlane<P>),
}

/// An 8-bit 4:2:0 frame on the device, checked like [`YuvPlanes`]. `P` is a device buffer: a
/// `CudaView` is enough for [`to_rgb_window`], the write-backs need a `CudaSlice` or `CudaViewMut`.
#[derive(Debug)]
pub struct DeviceYuv<P> {
    width: usize,
    height: usize,
    y: DevicePlane<P>,
    chroma: DeviceChroma<P>,
}

/// The I420 layout checks of [`YuvPlanes::i420`], on buffer lengths: (len, stride) per plane.
fn check_i420(
    width: usize,
    height: usize,
    y: (usize, usize),
    u: (usize, usize),
    v: (usize, usize),
) -> Result<(), ImageError> {
    let (cw, ch) = YuvPlanes::check_size(width, height)?;
    host::check_rows(y.0, y.1, width, height, PLANE_SHORT)?;
    host::check_rows(u.0, u.1, cw, ch, PLANE_SHORT)?;
    host::check_rows(v.0, v.1, cw, ch, PLANE_SHORT)
}

/// The NV12 layout checks of [`YuvPlanes::nv12`], on buffer lengths.
fn check_nv12(
    width: usize,
    height: usize,
    y: (usize, usize),
    uv: (usize, usize),
) -> Result<(), ImageError> {
    let (cw, ch) = YuvPlanes::check_size(width, height)?;
    host::check_rows(y.0, y.1, width, height, PLANE_SHORT)?;
    host::check_rows(uv.0, uv.1, 2 * cw, ch, PLANE_SHORT)
}

/// `window` as the kernels' `(x0, y0, win_w, win_h)`, refused unless chroma-aligned (inside the
/// frame, which implies the `i32` casts are lossless: the frame size was checked to fit).
fn window_args(width: usize, height: usize, window: Rect) -> Result<[i32; 4], ImageError> {
    if chroma_aligned(window, width, height) != window {
        return Err(ImageError::BadRegion {
            rect: window,
            width,
            height,
        });
    }
    Ok([window.x, window.y, window.width, window.height].map(|v| v as i32))
}

/// A launch over `cols` × `rows` threads in [`BLOCK`]² blocks (`cols`, `rows` > 0, ≤ `i32::MAX`).
fn grid(cols: i32, rows: i32) -> LaunchConfig {
    let blocks = |n: i32| (n as u32).div_ceil(BLOCK);
    LaunchConfig {
        grid_dim: (blocks(cols), blocks(rows), 1),
        block_dim: (BLOCK, BLOCK, 1),
        shared_mem_bytes: 0,
    }
}

/// One thread per chroma block: `ceil(win_w / 2)` × `ceil(win_h / 2)` (kernels/yuv.cu).
fn chroma_grid(win_w: i32, win_h: i32) -> LaunchConfig {
    // ceil without `+ 1`, which could overflow for a frame i32::MAX wide.
    grid(win_w / 2 + win_w % 2, win_h / 2 + win_h % 2)
}

/// The chroma planes as the kernels take them: device pointers, strides and the sample step.
struct ChromaArgs {
    u: u64,
    u_stride: i32,
    v: u64,
    v_stride: i32,
    step: i32,
}

/// Keeps the buffers' stream-order events until the launch is enqueued (cudarc's `SyncOnDrop`).
type Guards<'a> = [Option<SyncOnDrop<'a>>; 2];

impl<P: DeviceSlice<u8>> DeviceYuv<P> {
    /// An I420 frame from its Y, U and V planes (`ceil(width / 2)` × `ceil(height / 2)` chroma).
    pub fn i420(
        width: usize,
        height: usize,
        y: DevicePlane<P>,
        u: DevicePlane<P>,
        v: DevicePlane<P>,
    ) -> Result<Self, GpuError> {
        let len = |p: &DevicePlane<P>| (p.data.len(), p.stride);
        check_i420(width, height, len(&y), len(&u), len(&v)).map_err(input)?;
        Ok(DeviceYuv {
            width,
            height,
            y,
            chroma: DeviceChroma::Planar(u, v),
        })
    }

    /// An NV12 frame from its Y and interleaved UV planes.
    pub fn nv12(
        width: usize,
        height: usize,
        y: DevicePlane<P>,
        uv: DevicePlane<P>,
    ) -> Result<Self, GpuError> {
        check_nv12(
            width,
            height,
            (y.data.len(), y.stride),
            (uv.data.len(), uv.stride),
        )
        .map_err(input)?;
        Ok(DeviceYuv {
            width,
            height,
            y,
            chroma: DeviceChroma::Interleaved(uv),
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    fn window(&self, window: Rect) -> Result<[i32; 4], GpuError> {
        window_args(self.width, self.height, window).map_err(input)
    }
}

impl<P> DeviceYuv<P> {
    /// (U stride, V stride, step) as the kernels address the chroma: I420's two planes with step
    /// 1; NV12's one plane for both, step 2. Strides fit `i32` (checked by the constructors).
    fn chroma_layout(&self) -> (i32, i32, i32) {
        match &self.chroma {
            DeviceChroma::Planar(u, v) => (u.stride as i32, v.stride as i32, 1),
            DeviceChroma::Interleaved(uv) => (uv.stride as i32, uv.stride as i32, 2),
        }
    }

    /// The chroma for reading. Only called for a non-empty window, so an NV12 plane holds at least
    /// 2 bytes and V's pointer, one past U's, is inside it.
    fn chroma_read<'a>(&'a self, stream: &'a CudaStream) -> (ChromaArgs, Guards<'a>)
    where
        P: DevicePtr<u8>,
    {
        let (u_stride, v_stride, step) = self.chroma_layout();
        let (u, gu, v, gv) = match &self.chroma {
            DeviceChroma::Planar(u, v) => {
                let (u, gu) = u.data.device_ptr(stream);
                let (v, gv) = v.data.device_ptr(stream);
                (u, gu, v, Some(gv))
            }
            DeviceChroma::Interleaved(uv) => {
                let (u, gu) = uv.data.device_ptr(stream);
                (u, gu, u + 1, None)
            }
        };
        let args = ChromaArgs {
            u,
            u_stride,
            v,
            v_stride,
            step,
        };
        (args, [Some(gu), gv])
    }

    /// The chroma for writing, as [`Self::chroma_read`]. I420's U and V are distinct `&mut`
    /// borrows and NV12's U and V come from one, so the kernel's writes alias nothing the caller
    /// can reach meanwhile.
    fn chroma_write<'a>(&'a mut self, stream: &'a CudaStream) -> (ChromaArgs, Guards<'a>)
    where
        P: DevicePtrMut<u8>,
    {
        let (u_stride, v_stride, step) = self.chroma_layout();
        let (u, gu, v, gv) = match &mut self.chroma {
            DeviceChroma::Planar(u, v) => {
                let (u, gu) = u.data.device_ptr_mut(stream);
                let (v, gv) = v.data.device_ptr_mut(stream);
                (u, gu, v, Some(gv))
            }
            DeviceChroma::Interleaved(uv) => {
                let (u, gu) = uv.data.device_ptr_mut(stream);
                (u, gu, u + 1, None)
            }
        };
        let args = ChromaArgs {
            u,
            u_stride,
            v,
            v_stride,
            step,
        };
        (args, [Some(gu), gv])
    }
}

/// A window's RGB buffer, checked as the host build checks it; its pitch as the kernels' `i32`
/// (`check_rows` refused pitches past `i32::MAX`).
fn rgb_pitch(len: usize, pitch: usize, window: Rect) -> Result<i32, GpuError> {
    host::check_rgb(len, pitch, window, RGB_SHORT).map_err(input)?;
    Ok(pitch as i32)
}

/// Enqueues the conversion of `window` (chroma-aligned, [`chroma_aligned`]) of `frame` to packed
/// RGB in `rgb` (`(buffer, pitch)`: pixel (i, j) of the window at `j * pitch + 3 * i`) and, when
/// given, in `before`, the reference the write-backs compare the rendered RGB with. Each pixel
/// takes its 2 × 2 block's chroma sample, as `RgbWindow::run` does; row padding is left alone.
pub fn to_rgb_window<P: DevicePtr<u8>, R: DevicePtrMut<u8>>(
    kernels: &GpuKernels,
    frame: &DeviceYuv<P>,
    colour: &YuvColour,
    window: Rect,
    rgb: (&mut R, usize),
    before: Option<(&mut R, usize)>,
) -> Result<(), GpuError> {
    let [x0, y0, win_w, win_h] = frame.window(window)?;
    let rgb_pitch_i = rgb_pitch(rgb.0.len(), rgb.1, window)?;
    let before_pitch = match &before {
        Some((b, pitch)) => rgb_pitch(b.len(), *pitch, window)?,
        None => 0,
    };
    if window.is_empty() {
        return Ok(());
    }
    let func = kernels.function(FAMILY, "iplap_yuv_to_rgb_window")?;
    let stream = kernels.stream();
    let c = colour.coefficients();
    let y_stride = frame.y.stride as i32;
    let (y, _y_sync) = frame.y.data.device_ptr(stream);
    let (ch, _c_sync) = frame.chroma_read(stream);
    let (rgb, _rgb_sync) = rgb.0.device_ptr_mut(stream);
    // A null `before` makes the kernel write only `rgb`.
    let (before, _before_sync) = match before {
        Some((b, _)) => {
            let (p, sync) = b.device_ptr_mut(stream);
            (p, Some(sync))
        }
        None => (0u64, None),
    };
    let mut launch = stream.launch_builder(&func);
    launch
        .arg(&c)
        .arg(&y)
        .arg(&y_stride)
        .arg(&ch.u)
        .arg(&ch.u_stride)
        .arg(&ch.v)
        .arg(&ch.v_stride)
        .arg(&ch.step)
        .arg(&x0)
        .arg(&y0)
        .arg(&win_w)
        .arg(&win_h)
        .arg(&rgb)
        .arg(&rgb_pitch_i)
        .arg(&before)
        .arg(&before_pitch);
    // SAFETY: the arguments follow the entry point's C signature in order and type (the
    // coefficients by value through their `#[repr(C)]` twin, pointers as 64-bit device addresses,
    // everything else `i32`). The planes cover the frame and the window lies inside it (the
    // constructors, `window`), so every sample read is inside a plane; both RGB buffers hold the
    // window at their pitches (`rgb_pitch`) and are distinct `&mut` borrows. The grid covers the
    // window's pixels, and threads past its edge return. The sync guards outlive the enqueue.
    unsafe { launch.launch(grid(win_w, win_h)) }
        .map_err(GpuError::cuda("launching iplap_yuv_to_rgb_window"))?;
    Ok(())
}

/// Enqueues Y = `colour.luma(rgb)` for every pixel of `window` whose RGB differs from `before`
/// (both laid out as in [`to_rgb_window`]); every other luma sample keeps its bytes. When
/// `written` is given, the number of samples written is added to `written[0]`: zero it first
/// (the count `RgbWindow::run` returns).
pub fn writeback_luma<P: DevicePtrMut<u8>, R: DevicePtr<u8>, B: DevicePtr<u8>>(
    kernels: &GpuKernels,
    frame: &mut DeviceYuv<P>,
    colour: &YuvColour,
    window: Rect,
    rgb: (&R, usize),
    before: (&B, usize),
    written: Option<&mut CudaViewMut<'_, u32>>,
) -> Result<(), GpuError> {
    let [x0, y0, win_w, win_h] = frame.window(window)?;
    let rgb_pitch_i = rgb_pitch(rgb.0.len(), rgb.1, window)?;
    let before_pitch = rgb_pitch(before.0.len(), before.1, window)?;
    if written.as_ref().is_some_and(|w| w.is_empty()) {
        return Err(GpuError::Input("the luma count buffer is empty".into()));
    }
    if window.is_empty() {
        return Ok(());
    }
    let func = kernels.function(FAMILY, "iplap_yuv_writeback_luma")?;
    let stream = kernels.stream();
    let c = colour.coefficients();
    let y_stride = frame.y.stride as i32;
    let (rgb, _rgb_sync) = rgb.0.device_ptr(stream);
    let (before, _before_sync) = before.0.device_ptr(stream);
    let (y, _y_sync) = frame.y.data.device_ptr_mut(stream);
    // A null `written` makes the kernel skip the count.
    let (written, _written_sync) = match written {
        Some(w) => {
            let (p, sync) = w.device_ptr_mut(stream);
            (p, Some(sync))
        }
        None => (0u64, None),
    };
    let mut launch = stream.launch_builder(&func);
    launch
        .arg(&c)
        .arg(&rgb)
        .arg(&rgb_pitch_i)
        .arg(&before)
        .arg(&before_pitch)
        .arg(&x0)
        .arg(&y0)
        .arg(&win_w)
        .arg(&win_h)
        .arg(&y)
        .arg(&y_stride)
        .arg(&written);
    // SAFETY: as in `to_rgb_window`; the kernel writes only Y samples of the window (inside the
    // Y plane, a `&mut` borrow) and, atomically, `written[0]` (non-empty, `&mut`).
    unsafe { launch.launch(grid(win_w, win_h)) }
        .map_err(GpuError::cuda("launching iplap_yuv_writeback_luma"))?;
    Ok(())
}

/// Enqueues U, V = `colour.chroma` of the summed RGB of each 2 × 2 block of `window` (fewer
/// pixels where the frame edge cuts it) that holds a pixel whose RGB differs from `before`; every
/// other chroma sample keeps its bytes. Touches other planes than [`writeback_luma`], so the two
/// may be enqueued in either order.
pub fn writeback_chroma<P: DevicePtrMut<u8>, R: DevicePtr<u8>, B: DevicePtr<u8>>(
    kernels: &GpuKernels,
    frame: &mut DeviceYuv<P>,
    colour: &YuvColour,
    window: Rect,
    rgb: (&R, usize),
    before: (&B, usize),
) -> Result<(), GpuError> {
    let [x0, y0, win_w, win_h] = frame.window(window)?;
    let rgb_pitch_i = rgb_pitch(rgb.0.len(), rgb.1, window)?;
    let before_pitch = rgb_pitch(before.0.len(), before.1, window)?;
    if window.is_empty() {
        return Ok(());
    }
    let func = kernels.function(FAMILY, "iplap_yuv_writeback_chroma")?;
    let stream = kernels.stream();
    let c = colour.coefficients();
    let (rgb, _rgb_sync) = rgb.0.device_ptr(stream);
    let (before, _before_sync) = before.0.device_ptr(stream);
    let (ch, _c_sync) = frame.chroma_write(stream);
    let mut launch = stream.launch_builder(&func);
    launch
        .arg(&c)
        .arg(&rgb)
        .arg(&rgb_pitch_i)
        .arg(&before)
        .arg(&before_pitch)
        .arg(&x0)
        .arg(&y0)
        .arg(&win_w)
        .arg(&win_h)
        .arg(&ch.u)
        .arg(&ch.u_stride)
        .arg(&ch.v)
        .arg(&ch.v_stride)
        .arg(&ch.step);
    // SAFETY: as in `to_rgb_window`; the window is chroma-aligned, so each block's sample
    // (x0 / 2 + bi, y0 / 2 + bj) is a sample of the frame's chroma, inside the planes. The grid
    // covers the window's blocks, and threads past them return.
    unsafe { launch.launch(chroma_grid(win_w, win_h)) }
        .map_err(GpuError::cuda("launching iplap_yuv_writeback_chroma"))?;
    Ok(())
}

/// The family's GPU check (submodule `case`): the face window of a 1080p I420 and an NV12 frame
/// to RGB, a blend, then the luma and chroma write-back, against the host build; the conversion
/// and the write-back (luma + chroma) timed as two steps.
pub fn check(kernels: &GpuKernels, iterations: usize) -> Result<Vec<StepCheck>, GpuError> {
    case::check(kernels, iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_cover_odd_windows() {
        let g = grid(577, 455);
        assert_eq!((g.grid_dim, g.block_dim), ((37, 29, 1), (16, 16, 1)));
        assert_eq!(grid(1, 1).grid_dim, (1, 1, 1));
        assert_eq!(grid(16, 32).grid_dim, (1, 2, 1));
        assert_eq!(grid(17, 33).grid_dim, (2, 3, 1));
        // One thread per 2 × 2 block, the last one cut: ceil(577 / 2) = 289 -> 19 blocks.
        assert_eq!(chroma_grid(577, 455).grid_dim, (19, 15, 1));
        assert_eq!(chroma_grid(1, 1).grid_dim, (1, 1, 1));
        assert_eq!(chroma_grid(32, 33).grid_dim, (1, 2, 1));
        assert_eq!(chroma_grid(33, 32).grid_dim, (2, 1, 1));
    }

    #[test]
    fn layouts_are_validated_like_the_host_build() {
        let (w, h) = (5, 3);
        let (cw, ch) = (3, 2);
        assert!(check_i420(w, h, (w * h, w), (cw * ch, cw), (cw * ch, cw)).is_ok());
        // The last row may be unpadded; one byte fewer is not a frame.
        assert!(check_i420(w, h, (2 * 8 + w, 8), (cw + cw, cw), (cw * ch, cw)).is_ok());
        assert!(check_i420(w, h, (w * h - 1, w), (cw * ch, cw), (cw * ch, cw)).is_err());
        assert!(check_i420(w, h, (w * h, w), (cw * ch, cw), (cw * ch - 1, cw)).is_err());
        assert!(check_i420(w, h, (w * h, w - 1), (cw * ch, cw), (cw * ch, cw)).is_err());
        assert!(check_nv12(w, h, (w * h, w), (2 * cw * ch, 2 * cw)).is_ok());
        assert!(check_nv12(w, h, (w * h, w), (2 * cw * ch - 1, 2 * cw)).is_err());
        assert!(check_nv12(w, h, (w * h, w), (2 * cw * ch, 2 * cw - 1)).is_err());
        // Strides the kernels' i32 cannot take.
        let big = i32::MAX as usize + 1;
        assert!(check_nv12(1, 1, (big, big), (2, 2)).is_err());
    }

    #[test]
    fn windows_must_be_chroma_aligned() {
        let (w, h) = (9, 7);
        assert_eq!(
            window_args(w, h, Rect::new(2, 2, 4, 4)).unwrap(),
            [2, 2, 4, 4]
        );
        // An odd end is allowed only at the frame edge.
        assert!(window_args(w, h, Rect::new(2, 2, 7, 5)).is_ok());
        assert!(window_args(w, h, Rect::new(1, 2, 4, 4)).is_err());
        assert!(window_args(w, h, Rect::new(2, 2, 3, 4)).is_err());
        assert!(window_args(w, h, Rect::new(2, 2, 8, 4)).is_err());
        assert!(window_args(w, h, Rect::new(0, 0, 0, 0)).is_ok());
    }

    #[test]
    fn rgb_buffers_need_the_window_at_their_pitch() {
        let win = Rect::new(0, 0, 4, 3);
        assert_eq!(rgb_pitch(2 * 12 + 12, 12, win).unwrap(), 12);
        assert_eq!(rgb_pitch(2 * 20 + 12, 20, win).unwrap(), 20);
        assert!(rgb_pitch(2 * 12 + 11, 12, win).is_err());
        assert!(rgb_pitch(100, 11, win).is_err());
    }
}
