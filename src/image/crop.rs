//! Face crops for the renderer: `cv2.resize(frame[y1:y2, x1:x2], (128, 128))` on `uint8`, then
//! `/ 255` in `f64`, `f32`, CHW, BGR (spec §1.5 step 7, §1.7 step 4).

use super::resize::{Resizer, resize_bgr_u8};
use super::{ChannelOrder, Image, ImageError, ImageRef, Rect};
use crate::sizes::FACE_SIZE;

const PLANE: usize = FACE_SIZE * FACE_SIZE;

/// Crops `rect` out of `frame` (any colour order) and resizes it to a 128 x 128 packed BGR image
/// (spec appendix C.2), reusing `out`'s allocation.
pub fn crop_face(
    frame: &ImageRef,
    rect: Rect,
    out: &mut Image,
    resizer: &mut Resizer,
) -> Result<(), ImageError> {
    out.reset(FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr);
    let full = Rect::new(0, 0, FACE_SIZE, FACE_SIZE);
    resize_bgr_u8(frame, rect, &mut out.view_mut(), full, resizer)
}

/// A 128 x 128 colour image as the renderer's `f32` CHW tensor in BGR order: `f32(v / 255.0)`
/// with the division in `f64` (numpy's `uint8 / 255` gives `float64`). `out` holds 3 x 128 x 128.
pub fn bgr_to_chw(face: &ImageRef, out: &mut [f32]) -> Result<(), ImageError> {
    if face.width() != FACE_SIZE || face.height() != FACE_SIZE {
        return Err(ImageError::BadLength {
            expected: PLANE,
            got: face.width() * face.height(),
        });
    }
    if out.len() != 3 * PLANE {
        return Err(ImageError::BadLength {
            expected: 3 * PLANE,
            got: out.len(),
        });
    }
    let off = face.order().bgr_offsets().ok_or(ImageError::NeedsColour {
        what: "face tensor",
        order: face.order(),
    })?;
    let bpp = face.order().bytes_per_pixel();
    // One table lookup per value instead of a division (same numbers: the table is built with the
    // same f64 division).
    let lut: [f32; 256] = std::array::from_fn(|v| (v as f64 / 255.0) as f32);
    for y in 0..FACE_SIZE {
        let row = face.row(y);
        for (x, px) in row.chunks_exact(bpp).enumerate() {
            for c in 0..3 {
                out[c * PLANE + y * FACE_SIZE + x] = lut[px[off[c]] as usize];
            }
        }
    }
    Ok(())
}

/// Zeroes rows 64..127 of all three channels of a 3 x 128 x 128 face tensor: the "masked face"
/// the renderer builds from its input before use (spec §1.7 step 4).
pub fn mask_lower_half(chw: &mut [f32]) -> Result<(), ImageError> {
    if chw.len() != 3 * PLANE {
        return Err(ImageError::BadLength {
            expected: 3 * PLANE,
            got: chw.len(),
        });
    }
    for plane in chw.chunks_exact_mut(PLANE) {
        plane[PLANE / 2..].fill(0.0);
    }
    Ok(())
}
