//! Host build of `kernels/yuv.cuh`: the GPU twin of [`RgbWindow::run`] for I420 / NV12 frames,
//! as the three steps the device runs — YUV window → packed RGB ([`to_rgb_window`]), then, after
//! the renderer changed that RGB, the write-back of the luma ([`writeback_luma`]) and the chroma
//! ([`writeback_chroma`]) of only the pixels / 2 × 2 blocks whose RGB changed.
//!
//! The colour tables cross as [`YuvCoefficients`] (`IplapYuvCoeffs` in C), so the matrix keeps
//! its one definition in [`YuvColour`]. Every wrapper checks the frame's planes, the window and
//! the RGB buffers before calling across: the C side indexes raw pointers, so a wrong size must be
//! an `Err` here, never an out-of-bounds access there.
//!
//! [`RgbWindow::run`]: crate::image::yuv::RgbWindow::run

use crate::image::yuv::{
    self, Chroma, Plane, Yuv420Mut, YuvCoefficients, YuvColour, chroma_aligned,
};
use crate::image::{ImageError, Rect};

unsafe extern "C" {
    fn iplap_host_yuv_to_rgb_window(
        c: *const YuvCoefficients,
        y: *const u8,
        y_stride: i32,
        u: *const u8,
        u_stride: i32,
        v: *const u8,
        v_stride: i32,
        c_step: i32,
        x0: i32,
        y0: i32,
        win_w: i32,
        win_h: i32,
        rgb: *mut u8,
        rgb_pitch: i32,
        before: *mut u8,
        before_pitch: i32,
    );
    fn iplap_host_yuv_writeback_luma(
        c: *const YuvCoefficients,
        rgb: *const u8,
        rgb_pitch: i32,
        before: *const u8,
        before_pitch: i32,
        x0: i32,
        y0: i32,
        win_w: i32,
        win_h: i32,
        y: *mut u8,
        y_stride: i32,
    ) -> u32;
    fn iplap_host_yuv_writeback_chroma(
        c: *const YuvCoefficients,
        rgb: *const u8,
        rgb_pitch: i32,
        before: *const u8,
        before_pitch: i32,
        x0: i32,
        y0: i32,
        win_w: i32,
        win_h: i32,
        u: *mut u8,
        u_stride: i32,
        v: *mut u8,
        v_stride: i32,
        c_step: i32,
    );
}

/// The kernels take sizes and strides as `i32` (what a GPU launch passes); larger values would
/// wrap on the C side, so they are refused here.
pub(crate) fn to_i32(v: usize, what: &'static str) -> Result<i32, ImageError> {
    i32::try_from(v).map_err(|_| ImageError::Layout(what))
}

/// The error of a plane that is too small for the frame or whose stride exceeds `i32`.
const PLANE_SHORT: &str = "plane too small for the frame size and stride, or stride exceeds i32";

/// The engine's row check ([`yuv::check_rows`]: `len` bytes hold `rows` rows of `row` bytes
/// `pitch` apart, the last row unpadded) plus the kernels' `i32` limit on `pitch`.
pub(crate) fn check_rows(
    len: usize,
    pitch: usize,
    row: usize,
    rows: usize,
    what: &'static str,
) -> Result<(), ImageError> {
    to_i32(pitch, what)?;
    yuv::check_rows(len, pitch, row, rows, what)
}

/// A writable 8-bit 4:2:0 frame for the host kernels: a [`Yuv420Mut`], checked by its
/// constructors, whose size and strides also fit the kernels' `i32` parameters.
#[derive(Debug)]
pub struct YuvPlanes<'a> {
    yuv: Yuv420Mut<'a>,
}

/// The chroma planes as the kernels address them: sample (cx, cy) of U at
/// `u[cy * u_stride + cx * step]`, likewise V.
struct ChromaPtrs {
    u: *mut u8,
    u_stride: i32,
    v: *mut u8,
    v_stride: i32,
    step: i32,
}

impl<'a> YuvPlanes<'a> {
    /// The kernels' `i32` limits on the frame size; returns the chroma size. Shared with the
    /// device launchers, which check device buffers the same way.
    pub(crate) fn check_size(width: usize, height: usize) -> Result<(usize, usize), ImageError> {
        to_i32(width, "frame width exceeds i32")?;
        to_i32(height, "frame height exceeds i32")?;
        Ok(yuv::chroma_size(width, height))
    }

    /// The frame `check` builds (the engine's plane checks), once every stride fits `i32`. Any
    /// failure reads as the one [`PLANE_SHORT`] error, as the device launchers report it, rather
    /// than the engine's per-plane messages.
    fn new(
        strides: &[usize],
        check: impl FnOnce() -> Result<Yuv420Mut<'a>, ImageError>,
    ) -> Result<Self, ImageError> {
        for &stride in strides {
            to_i32(stride, PLANE_SHORT)?;
        }
        let yuv = check().map_err(|_| ImageError::Layout(PLANE_SHORT))?;
        Ok(YuvPlanes { yuv })
    }

    /// An I420 frame from its Y, U and V planes (`ceil(width / 2)` × `ceil(height / 2)` chroma).
    pub fn i420(
        width: usize,
        height: usize,
        y: Plane<'a>,
        u: Plane<'a>,
        v: Plane<'a>,
    ) -> Result<Self, ImageError> {
        Self::check_size(width, height)?;
        Self::new(&[y.stride, u.stride, v.stride], || {
            Yuv420Mut::i420(width, height, y, u, v)
        })
    }

    /// An NV12 frame from its Y and interleaved UV planes.
    pub fn nv12(
        width: usize,
        height: usize,
        y: Plane<'a>,
        uv: Plane<'a>,
    ) -> Result<Self, ImageError> {
        Self::check_size(width, height)?;
        Self::new(&[y.stride, uv.stride], || {
            Yuv420Mut::nv12(width, height, y, uv)
        })
    }

    /// The chroma planes as (plane, stride, step) for U and V. NV12's V pointer is one past U's in
    /// the same buffer; both come from one `&mut` borrow, so writing through either is sound.
    /// Strides were checked to fit `i32` at construction.
    fn chroma_ptrs(&mut self) -> ChromaPtrs {
        match &mut self.yuv.chroma {
            Chroma::Planar(u, v) => ChromaPtrs {
                u: u.data.as_mut_ptr(),
                u_stride: u.stride as i32,
                v: v.data.as_mut_ptr(),
                v_stride: v.stride as i32,
                step: 1,
            },
            Chroma::Interleaved(uv) => {
                let p = uv.data.as_mut_ptr();
                ChromaPtrs {
                    u: p,
                    u_stride: uv.stride as i32,
                    // Never dereferenced for an empty frame (no window to visit), hence wrapping.
                    v: p.wrapping_add(1),
                    v_stride: uv.stride as i32,
                    step: 2,
                }
            }
        }
    }

    /// The chroma planes for reading: (U, U stride, V, V stride, step), as [`Self::chroma_ptrs`].
    fn chroma_read(&self) -> (*const u8, i32, *const u8, i32, i32) {
        match &self.yuv.chroma {
            Chroma::Planar(u, v) => (
                u.data.as_ptr(),
                u.stride as i32,
                v.data.as_ptr(),
                v.stride as i32,
                1,
            ),
            Chroma::Interleaved(uv) => {
                let p = uv.data.as_ptr();
                let s = uv.stride as i32;
                (p, s, p.wrapping_add(1), s, 2)
            }
        }
    }

    /// `window` as the kernels' `(x0, y0, win_w, win_h)`. It must be chroma-aligned: the
    /// write-back's 2 × 2 blocks are cut at the window edge, which matches
    /// [`RgbWindow::run`](crate::image::yuv::RgbWindow::run) (blocks cut at the frame edge) only
    /// when the window ends on an even column / row or at the frame edge.
    fn window(&self, window: Rect) -> Result<[i32; 4], ImageError> {
        if chroma_aligned(window, self.yuv.width, self.yuv.height) != window {
            return Err(ImageError::BadRegion {
                rect: window,
                width: self.yuv.width,
                height: self.yuv.height,
            });
        }
        // Inside the frame, whose size fits i32.
        Ok([window.x, window.y, window.width, window.height].map(|v| v as i32))
    }
}

/// A window's packed RGB buffer: pixel (i, j) at `data[j * pitch + 3 * i]`.
pub(crate) fn check_rgb(
    len: usize,
    pitch: usize,
    window: Rect,
    what: &'static str,
) -> Result<(), ImageError> {
    check_rows(len, pitch, 3 * window.width, window.height, what)
}

/// Converts `window` (chroma-aligned, [`chroma_aligned`]) of `frame` to packed RGB in `rgb`
/// (`pitch` bytes per row; pixel (i, j) of the window at `rgb[j * pitch + 3 * i]`) and, when
/// given, in `before` as well — the reference [`writeback_luma`] and [`writeback_chroma`] compare
/// the rendered RGB with. Each pixel uses the chroma sample of its 2 × 2 block, as
/// [`RgbWindow::run`](crate::image::yuv::RgbWindow::run) does. Bytes outside the window's pixels
/// (row padding) are left alone.
pub fn to_rgb_window(
    frame: &YuvPlanes,
    colour: &YuvColour,
    window: Rect,
    rgb: (&mut [u8], usize),
    before: Option<(&mut [u8], usize)>,
) -> Result<(), ImageError> {
    let [x0, y0, w, h] = frame.window(window)?;
    let too_small = "RGB window buffer too small for the window and pitch, or pitch exceeds i32";
    check_rgb(rgb.0.len(), rgb.1, window, too_small)?;
    let (before_ptr, before_pitch) = match before {
        Some((data, pitch)) => {
            check_rgb(data.len(), pitch, window, too_small)?;
            (data.as_mut_ptr(), pitch as i32)
        }
        None => (std::ptr::null_mut(), 0),
    };
    if window.is_empty() {
        return Ok(());
    }
    let c = colour.coefficients();
    let y_stride = frame.yuv.y.stride as i32;
    let y = frame.yuv.y.data.as_ptr();
    let (u, u_stride, v, v_stride, step) = frame.chroma_read();
    // SAFETY: the planes cover the whole frame (checked at construction), the window lies inside
    // the frame (`window`), and both RGB buffers hold the window at their pitches (`check_rgb`);
    // `rgb` and `before` are distinct `&mut` borrows, so the C side's writes cannot alias.
    unsafe {
        iplap_host_yuv_to_rgb_window(
            &c,
            y,
            y_stride,
            u,
            u_stride,
            v,
            v_stride,
            step,
            x0,
            y0,
            w,
            h,
            rgb.0.as_mut_ptr(),
            rgb.1 as i32,
            before_ptr,
            before_pitch,
        );
    }
    Ok(())
}

/// Writes Y = `colour.luma(rgb)` for every pixel of `window` whose RGB differs from `before`
/// (both laid out as in [`to_rgb_window`]); every other luma sample keeps its bytes. Returns the
/// number of samples written, as [`RgbWindow::run`](crate::image::yuv::RgbWindow::run) does.
pub fn writeback_luma(
    frame: &mut YuvPlanes,
    colour: &YuvColour,
    window: Rect,
    rgb: (&[u8], usize),
    before: (&[u8], usize),
) -> Result<usize, ImageError> {
    let [x0, y0, w, h] = frame.window(window)?;
    let too_small = "RGB window buffer too small for the window and pitch, or pitch exceeds i32";
    check_rgb(rgb.0.len(), rgb.1, window, too_small)?;
    check_rgb(before.0.len(), before.1, window, too_small)?;
    if window.is_empty() {
        return Ok(0);
    }
    let c = colour.coefficients();
    // SAFETY: as in `to_rgb_window`; the C side writes only Y samples inside the window.
    let written = unsafe {
        iplap_host_yuv_writeback_luma(
            &c,
            rgb.0.as_ptr(),
            rgb.1 as i32,
            before.0.as_ptr(),
            before.1 as i32,
            x0,
            y0,
            w,
            h,
            frame.yuv.y.data.as_mut_ptr(),
            frame.yuv.y.stride as i32,
        )
    };
    Ok(written as usize)
}

/// Writes U, V = `colour.chroma` of the summed RGB of each 2 × 2 block of `window` (fewer pixels
/// where the frame edge cuts it) that holds a pixel whose RGB differs from `before`; every other
/// chroma sample keeps its bytes.
pub fn writeback_chroma(
    frame: &mut YuvPlanes,
    colour: &YuvColour,
    window: Rect,
    rgb: (&[u8], usize),
    before: (&[u8], usize),
) -> Result<(), ImageError> {
    let [x0, y0, w, h] = frame.window(window)?;
    let too_small = "RGB window buffer too small for the window and pitch, or pitch exceeds i32";
    check_rgb(rgb.0.len(), rgb.1, window, too_small)?;
    check_rgb(before.0.len(), before.1, window, too_small)?;
    if window.is_empty() {
        return Ok(());
    }
    let c = colour.coefficients();
    let cp = frame.chroma_ptrs();
    // SAFETY: as in `to_rgb_window`; the C side writes only the chroma samples of the window's
    // blocks, inside the planes (a chroma-aligned window's blocks map to samples of the frame).
    unsafe {
        iplap_host_yuv_writeback_chroma(
            &c,
            rgb.0.as_ptr(),
            rgb.1 as i32,
            before.0.as_ptr(),
            before.1 as i32,
            x0,
            y0,
            w,
            h,
            cp.u,
            cp.u_stride,
            cp.v,
            cp.v_stride,
            cp.step,
        );
    }
    Ok(())
}
