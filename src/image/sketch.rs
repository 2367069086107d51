//! Landmark sketches: `draw_landmark.draw_landmarks` as IP_LAP uses it (spec §4), then the 128 x 128
//! resize and the /255 scaling of spec §1.5 step 8 (reference sketches) and §1.7 step 3 (target
//! sketches).

use super::ImageError;
use super::line::line8;
use super::resize::resize_gray_f64;
use crate::face::indices::{CONNECTION_COLUMNS, FULL_LEN};
use crate::sizes::FACE_SIZE;

/// Line colour: MediaPipe's `DrawingSpec` default (224, 224, 224) (spec §4 step 4).
pub const SKETCH_COLOUR: u8 = 224;
/// Largest canvas accepted (pixels). A crop of extreme aspect ratio would otherwise allocate
/// without bound (a 1 x 8000 crop already needs a 128 x 1,024,000 canvas).
const MAX_CANVAS_PIXELS: usize = 1 << 26;

/// Which of the two /255 conversions of the official script to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SketchScaling {
    /// Reference sketches (spec §1.5 step 8): `f32(resized / 255.0)` with the division in `f64`.
    Reference,
    /// Target sketches (spec §1.7 step 3): `f32(resized) / 255` with the division in `f32`.
    Target,
}

/// Canvas `(height, width)` for a crop of `crop_w` x `crop_h` (spec §4 step 1): the short side is
/// 128 and the long side `int(long * 128 / short)`. The quotient of two small integers is exact in
/// `f64` whenever it is an integer, so integer division gives Python's result.
pub fn canvas_size(crop_w: usize, crop_h: usize) -> Result<(usize, usize), ImageError> {
    let bad = ImageError::BadCropSize {
        width: crop_w,
        height: crop_h,
    };
    let short = crop_w.min(crop_h);
    if short == 0 {
        return Err(bad);
    }
    let h = crop_h.checked_mul(FACE_SIZE).ok_or(bad.clone())? / short;
    let w = crop_w.checked_mul(FACE_SIZE).ok_or(bad.clone())? / short;
    if h.checked_mul(w).is_none_or(|n| n > MAX_CANVAS_PIXELS) {
        return Err(bad);
    }
    Ok((h, w))
}

/// MediaPipe's `_normalized_to_pixel_coordinates` (spec §4 step 3): `None` for a value outside
/// [0, 1] (only exact 0, and 1 within a relative 1e-9, count as inside; NaN is outside), else
/// `min(floor(v * size), size - 1)` with the product in `f64` (numpy 1.x promotes the `f32` value).
fn to_pixel(v: f32, size: usize) -> Option<i64> {
    let v = v as f64;
    // MediaPipe writes `v > 0 or isclose(0, v)`; isclose with abs_tol 0 only accepts exact 0.
    let lower_ok = v >= 0.0;
    let upper_ok = v < 1.0 || (v - 1.0).abs() <= 1e-9 * v.abs().max(1.0);
    if !(lower_ok && upper_ok) {
        return None;
    }
    Some(((v * size as f64).floor() as i64).min(size as i64 - 1))
}

/// Draws sketches; holds the canvas and resize scratch so that a frame's five target sketches
/// allocate nothing once warmed up.
#[derive(Debug, Default)]
pub struct SketchRasteriser {
    canvas: Vec<u8>,
    canvas_w: usize,
    canvas_h: usize,
    resized: Vec<f64>,
    rows: [Vec<f64>; 2],
}

impl SketchRasteriser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Draws the 125 connections of a full 2 x 131 set (row 0 = x, row 1 = y, crop-normalised;
    /// POSE then CONTENT columns) on the canvas of a `crop_w` x `crop_h` crop (spec §4 steps 1-4).
    /// Returns the canvas (one channel, `height` x `width`, values 0 or 224) and its size.
    pub fn draw_canvas(
        &mut self,
        landmarks: &[[f32; FULL_LEN]; 2],
        crop_w: usize,
        crop_h: usize,
    ) -> Result<(&[u8], usize, usize), ImageError> {
        let (h, w) = canvas_size(crop_w, crop_h)?;
        self.canvas.clear();
        self.canvas.resize(w * h, 0);
        self.canvas_w = w;
        self.canvas_h = h;
        let mut px = [None; FULL_LEN];
        for (j, p) in px.iter_mut().enumerate() {
            *p = to_pixel(landmarks[0][j], w).zip(to_pixel(landmarks[1][j], h));
        }
        let canvas = &mut self.canvas;
        for &(a, b) in CONNECTION_COLUMNS.iter() {
            // An edge with an invalid endpoint is dropped (no clamping, spec §4 step 3).
            if let (Some(pa), Some(pb)) = (px[a], px[b]) {
                // Endpoints are inside the canvas by construction, so no pixel needs clipping.
                line8(pa, pb, |x, y| {
                    canvas[y as usize * w + x as usize] = SKETCH_COLOUR
                });
            }
        }
        Ok((&self.canvas, w, h))
    }

    /// The full sketch: canvas, `f64` INTER_LINEAR resize to 128 x 128, /255 as `scaling` says,
    /// written as `f32` CHW with three equal channels into `out` (3 x 128 x 128 values).
    pub fn render(
        &mut self,
        landmarks: &[[f32; FULL_LEN]; 2],
        crop_w: usize,
        crop_h: usize,
        scaling: SketchScaling,
        out: &mut [f32],
    ) -> Result<(), ImageError> {
        const PLANE: usize = FACE_SIZE * FACE_SIZE;
        if out.len() != 3 * PLANE {
            return Err(ImageError::BadLength {
                expected: 3 * PLANE,
                got: out.len(),
            });
        }
        self.draw_canvas(landmarks, crop_w, crop_h)?;
        self.resized.resize(PLANE, 0.0);
        resize_gray_f64(
            &self.canvas,
            self.canvas_w,
            self.canvas_h,
            &mut self.resized,
            FACE_SIZE,
            FACE_SIZE,
            &mut self.rows,
        );
        let (first, rest) = out.split_at_mut(PLANE);
        match scaling {
            SketchScaling::Reference => {
                for (o, &v) in first.iter_mut().zip(self.resized.iter()) {
                    *o = (v / 255.0) as f32;
                }
            }
            SketchScaling::Target => {
                for (o, &v) in first.iter_mut().zip(self.resized.iter()) {
                    *o = v as f32 / 255.0f32;
                }
            }
        }
        // All three channels are equal (grey lines), so the order is irrelevant (spec §1.10).
        rest[..PLANE].copy_from_slice(first);
        rest[PLANE..].copy_from_slice(first);
        Ok(())
    }

    /// The 128 x 128 `f64` sketch (values 0..224) of the last [`SketchRasteriser::render`] call,
    /// before scaling; spec §1.7 step 10 shows it in the left half of the official output.
    pub fn resized_f64(&self) -> &[f64] {
        &self.resized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_sizes() {
        assert_eq!(canvas_size(245, 199).unwrap(), (128, 157));
        assert_eq!(canvas_size(97, 131).unwrap(), (172, 128));
        assert_eq!(canvas_size(128, 128).unwrap(), (128, 128));
        assert!(canvas_size(0, 10).is_err());
        assert!(canvas_size(1, 1 << 20).is_err());
    }

    #[test]
    fn pixel_mapping_edges() {
        assert_eq!(to_pixel(0.0, 10), Some(0));
        assert_eq!(to_pixel(-0.0, 10), Some(0));
        assert_eq!(to_pixel(1.0, 10), Some(9));
        assert_eq!(to_pixel(0.999_999_94, 10), Some(9));
        assert_eq!(to_pixel(1.000_000_1, 10), None);
        assert_eq!(to_pixel(-1e-7, 10), None);
        assert_eq!(to_pixel(f32::NAN, 10), None);
        assert_eq!(to_pixel(0.55, 10), Some(5));
    }

    #[test]
    fn nan_landmarks_draw_nothing() {
        let lm = [[f32::NAN; FULL_LEN]; 2];
        let mut r = SketchRasteriser::new();
        let mut out = vec![1.0; 3 * 128 * 128];
        r.render(&lm, 100, 100, SketchScaling::Target, &mut out)
            .unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
        assert!(
            r.render(&lm, 100, 100, SketchScaling::Target, &mut out[1..])
                .is_err()
        );
    }
}
