//! Host build of `kernels/crop.cuh`: the face crop (`crop_face` + `bgr_to_chw`) straight from a
//! frame in its native layout — packed RGB in any channel order, I420 or NV12 — as the GPU kernel
//! `iplap_crop_face` computes it.
//!
//! [`crop_args`] is the single place that checks a frame layout and a crop rectangle and turns
//! them into the kernel's scalar parameters; it takes plane lengths rather than slices so the GPU
//! launcher can run the same checks on device buffers. The kernel itself trusts its parameters.

use crate::image::yuv::{YuvCoefficients, YuvColour, check_rows, chroma_size};
use crate::image::{ChannelOrder, ImageError, ImageRef, Rect};
use crate::sizes::FACE_SIZE;

/// Format codes of the kernel's `format` parameter (`IPLAP_CROP_*` in `kernels/crop.cuh`).
pub const FORMAT_PACKED: i32 = 0;
pub const FORMAT_I420: i32 = 1;
pub const FORMAT_NV12: i32 = 2;

/// Length of the kernel's `out_chw` tensor (3 x 128 x 128).
pub const CHW_LEN: usize = 3 * FACE_SIZE * FACE_SIZE;
/// Length of the kernel's optional `out_bgr` image (128 x 128 packed BGR).
pub const BGR_LEN: usize = FACE_SIZE * FACE_SIZE * 3;

/// How a frame's pixels are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CropFormat {
    /// One plane of 3- or 4-byte pixels.
    Packed(ChannelOrder),
    /// Y, U, V planes, 4:2:0, with the caps' colour encoding.
    I420(YuvColour),
    /// Y plane and an interleaved UV plane, 4:2:0.
    Nv12(YuvColour),
}

/// The kernel's parameters other than the pointers, checked by [`crop_args`]: pass them to the
/// kernel in its documented order (`kernels/crop.cu`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropArgs {
    pub format: i32,
    /// Packed only (else 0): bytes per pixel and the offsets of B, G, R.
    pub bpp: i32,
    pub offsets: [i32; 3],
    /// Row strides of planes 0, 1, 2 in bytes (0 for planes the format does not use).
    pub strides: [i64; 3],
    /// YUV only (zeros for packed frames, which never read them).
    pub coeffs: YuvCoefficients,
    /// x, y, width, height of the crop rectangle.
    pub rect: [i32; 4],
}

/// Checks a `width` x `height` frame stored as `format` in planes of `lens` bytes with row
/// `strides` (entries of unused planes are ignored), and a crop rectangle inside it, and returns
/// the kernel's scalar parameters. Errors: [`ImageError::NeedsColour`] for a grey "frame",
/// [`ImageError::Layout`] for planes too small for the frame, [`ImageError::BadRegion`] for an
/// empty rectangle or one not inside the frame — the conditions under which `crop_face` fails or
/// the kernel would read out of bounds. Sizes beyond `i32` pixels / `i64` bytes are layout errors,
/// as the kernel's integer types could not address them.
pub fn crop_args(
    format: CropFormat,
    width: usize,
    height: usize,
    strides: [usize; 3],
    lens: [usize; 3],
    rect: Rect,
) -> Result<CropArgs, ImageError> {
    const TOO_BIG: ImageError = ImageError::Layout("frame too large for the crop kernel");
    let (cw, ch) = chroma_size(width, height);
    let (code, bpp, offsets, used, coeffs) = match format {
        CropFormat::Packed(order) => {
            let off = order.bgr_offsets().ok_or(ImageError::NeedsColour {
                what: "crop kernel",
                order,
            })?;
            let bpp = order.bytes_per_pixel();
            let row = width.checked_mul(bpp).ok_or(TOO_BIG)?;
            check_rows(lens[0], strides[0], row, height, "frame plane too small")?;
            let coeffs = YuvCoefficients {
                fwd: [0.0; 9],
                inv: [0.0; 9],
                y_offset: 0.0,
            };
            (FORMAT_PACKED, bpp as i32, off.map(|o| o as i32), 1, coeffs)
        }
        CropFormat::I420(colour) => {
            check_rows(lens[0], strides[0], width, height, "Y plane too small")?;
            check_rows(lens[1], strides[1], cw, ch, "U plane too small")?;
            check_rows(lens[2], strides[2], cw, ch, "V plane too small")?;
            (FORMAT_I420, 0, [0; 3], 3, colour.coefficients())
        }
        CropFormat::Nv12(colour) => {
            check_rows(lens[0], strides[0], width, height, "Y plane too small")?;
            let row = cw.checked_mul(2).ok_or(TOO_BIG)?;
            check_rows(lens[1], strides[1], row, ch, "UV plane too small")?;
            (FORMAT_NV12, 0, [0; 3], 2, colour.coefficients())
        }
    };
    if rect.is_empty() || !rect.fits_in(width, height) {
        return Err(ImageError::BadRegion {
            rect,
            width,
            height,
        });
    }
    // The kernel indexes pixels with i32 and bytes with i64. A byte offset it computes is at most
    // the (checked) plane length, so only the strides and the frame size need converting.
    if i32::try_from(width).is_err() || i32::try_from(height).is_err() {
        return Err(TOO_BIG);
    }
    let mut out_strides = [0i64; 3];
    for (o, &s) in out_strides.iter_mut().zip(&strides).take(used) {
        *o = i64::try_from(s).map_err(|_| TOO_BIG)?;
    }
    // Inside an i32-sized frame, so these fit.
    let r = [rect.x, rect.y, rect.width, rect.height].map(|v| v as i32);
    Ok(CropArgs {
        format: code,
        bpp,
        offsets,
        strides: out_strides,
        coeffs,
        rect: r,
    })
}

/// One plane of a frame: its bytes and row stride.
#[derive(Debug, Clone, Copy)]
pub struct PlaneRef<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// A read-only frame in its native layout, as the crop kernel takes it.
#[derive(Debug, Clone, Copy)]
pub struct CropFrame<'a> {
    pub format: CropFormat,
    pub width: usize,
    pub height: usize,
    /// Packed: `[pixels, -, -]`; I420: `[Y, U, V]`; NV12: `[Y, UV, -]` (unused: any, e.g. empty).
    pub planes: [PlaneRef<'a>; 3],
}

impl<'a> CropFrame<'a> {
    /// A packed frame (already checked by [`ImageRef`]).
    pub fn packed(image: &ImageRef<'a>) -> Self {
        let empty = PlaneRef {
            data: &[],
            stride: 0,
        };
        CropFrame {
            format: CropFormat::Packed(image.order()),
            width: image.width(),
            height: image.height(),
            planes: [
                PlaneRef {
                    data: image.data(),
                    stride: image.stride(),
                },
                empty,
                empty,
            ],
        }
    }
}

unsafe extern "C" {
    fn iplap_host_crop_face(
        plane0: *const u8,
        stride0: i64,
        plane1: *const u8,
        stride1: i64,
        plane2: *const u8,
        stride2: i64,
        format: i32,
        bpp: i32,
        off_b: i32,
        off_g: i32,
        off_r: i32,
        coeffs: *const YuvCoefficients,
        rect_x: i32,
        rect_y: i32,
        rect_w: i32,
        rect_h: i32,
        out_chw: *mut f32,
        out_bgr: *mut u8,
    );
}

/// The host build of the crop kernel: `rect` of `frame` resized to 128 x 128 into `chw` (3 x 128
/// x 128, B, G, R planes of `v / 255`), and into `bgr` (packed 128 x 128 BGR bytes) when given.
/// Same bytes as `crop_face` + `bgr_to_chw` on the frame (YUV: on its RGB conversion by
/// `RgbWindow`). Every size is checked first ([`crop_args`]; wrong output lengths are
/// [`ImageError::BadLength`]), so the C++ side only reads inside the planes.
pub fn crop_face(
    frame: &CropFrame,
    rect: Rect,
    chw: &mut [f32],
    bgr: Option<&mut [u8]>,
) -> Result<(), ImageError> {
    let a = crop_args(
        frame.format,
        frame.width,
        frame.height,
        frame.planes.map(|p| p.stride),
        frame.planes.map(|p| p.data.len()),
        rect,
    )?;
    if chw.len() != CHW_LEN {
        return Err(ImageError::BadLength {
            expected: CHW_LEN,
            got: chw.len(),
        });
    }
    let bgr_ptr = match bgr {
        Some(b) if b.len() != BGR_LEN => {
            return Err(ImageError::BadLength {
                expected: BGR_LEN,
                got: b.len(),
            });
        }
        Some(b) => b.as_mut_ptr(),
        None => std::ptr::null_mut(),
    };
    let [p0, p1, p2] = frame.planes.map(|p| p.data.as_ptr());
    // SAFETY: `crop_args` checked that each plane the format reads holds the whole frame at its
    // stride and that the rectangle is inside the frame, so every tap the kernel reads (clamped
    // to the rectangle) is in bounds; planes the format does not use are never dereferenced. The
    // outputs have exactly the lengths the C++ writes; the coefficients outlive the call.
    unsafe {
        iplap_host_crop_face(
            p0,
            a.strides[0],
            p1,
            a.strides[1],
            p2,
            a.strides[2],
            a.format,
            a.bpp,
            a.offsets[0],
            a.offsets[1],
            a.offsets[2],
            &a.coeffs,
            a.rect[0],
            a.rect[1],
            a.rect[2],
            a.rect[3],
            chw.as_mut_ptr(),
            bgr_ptr,
        );
    }
    Ok(())
}
