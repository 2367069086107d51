//! Crop box, crop-normalised landmark sets and lip openness from MediaPipe landmarks (spec §1.4).
//!
//! Reference: `inference_single.py` steps (1) and (3) of IP_LAP (commit 9b9dc03). All arithmetic is
//! done in `f64` from the `f32` landmark values, as Python does with MediaPipe's protobuf floats; the
//! packed `f32` sets are plain casts of the `f64` values (spec §1.4 "packing convention").

use super::indices::{CONTENT, FULL_LEN, LIP_INDEX, ORI, PASTE_CONTOUR, POSE};
use crate::image::Rect;

/// Crop margin in pixels at inference (`plus_pixel`, spec §1.1; training used 5, spec §8.1).
pub const PLUS_PIXEL: f64 = 25.0;

/// Smallest landmark count accepted: the largest index used by IP_LAP is 466 (< 468), so both the
/// refined (478) and the unrefined (468) mesh work.
pub const MIN_LANDMARKS: usize = 468;

/// Errors from the landmark-derived geometry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CropBoxError {
    #[error("need at least {MIN_LANDMARKS} face-mesh landmarks, got {0}")]
    TooFewLandmarks(usize),
    #[error("landmark {0} is not finite")]
    NonFiniteLandmark(usize),
    #[error("frame size {width}x{height} is empty")]
    EmptyFrame { width: usize, height: usize },
    #[error("crop box is empty (x {x1}..{x2}, y {y1}..{y2}): the face lies outside the frame")]
    EmptyBox { x1: i64, x2: i64, y1: i64, y2: i64 },
}

/// A normalised face-mesh landmark: anything that yields MediaPipe's `(x, y)` (x / width, y / height).
pub trait MeshPoint {
    fn xy(&self) -> (f32, f32);
}

impl MeshPoint for [f32; 2] {
    fn xy(&self) -> (f32, f32) {
        (self[0], self[1])
    }
}

impl MeshPoint for [f32; 3] {
    fn xy(&self) -> (f32, f32) {
        (self[0], self[1])
    }
}

/// Normalised extent `(y_min, y_max, x_min, x_max)` of the ORI points (golden `box_extent_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    pub y_min: f64,
    pub y_max: f64,
    pub x_min: f64,
    pub x_max: f64,
}

/// Integer crop box: rows `y1..y2`, columns `x1..x2` (end exclusive), as in `frame[y1:y2, x1:x2]`.
///
/// Always non-empty and inside the frame it was computed for (the clamp of spec §1.4 guarantees
/// `0 <= x1 < x2 <= width`, and [`CropBox::from_landmarks`] rejects anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub y1: usize,
    pub y2: usize,
    pub x1: usize,
    pub x2: usize,
}

/// Everything spec §1.4 derives from one frame's landmarks.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceGeometry {
    /// ORI extent before the margin (normalised).
    pub extent_raw: Extent,
    /// Extent after the 25 px margin and the clamp to [0, 1].
    pub extent_margin: Extent,
    pub crop_box: CropBox,
    /// Lip openness `|lm0 - lm17|` in normalised coordinates (spec §1.4, §1.5 step 1).
    pub lip_dist: f64,
}

impl CropBox {
    pub fn width(&self) -> usize {
        self.x2 - self.x1
    }
    pub fn height(&self) -> usize {
        self.y2 - self.y1
    }
    /// The box as an image rectangle.
    pub fn rect(&self) -> Rect {
        Rect::new(self.x1, self.y1, self.width(), self.height())
    }

    /// Crop box of spec §1.4 pass 1 for a `width` x `height` frame.
    pub fn from_landmarks<P: MeshPoint>(
        landmarks: &[P],
        width: usize,
        height: usize,
    ) -> Result<Self, CropBoxError> {
        FaceGeometry::from_landmarks(landmarks, width, height).map(|g| g.crop_box)
    }

    /// Crop-normalised coordinates of MediaPipe point `mp` (spec §1.4 pass 3), in `f64`:
    /// `u = (w x - x1) / (x2 - x1)`, `v = (h y - y1) / (y2 - y1)`.
    fn normalise(&self, (x, y): (f32, f32), width: usize, height: usize) -> (f64, f64) {
        let px = width as f64 * x as f64;
        let py = height as f64 * y as f64;
        (
            (px - self.x1 as f64) / self.width() as f64,
            (py - self.y1 as f64) / self.height() as f64,
        )
    }

    /// POSE and CONTENT sets of spec §1.4 pass 3, crop-normalised with this box.
    pub fn normalised_sets<P: MeshPoint>(
        &self,
        landmarks: &[P],
        width: usize,
        height: usize,
    ) -> Result<NormalisedSets, CropBoxError> {
        check_landmarks(landmarks)?;
        let mut sets = NormalisedSets {
            pose: [[0.0; POSE.len()]; 2],
            content: [[0.0; CONTENT.len()]; 2],
        };
        for (k, &mp) in POSE.iter().enumerate() {
            let (u, v) = self.normalise(landmarks[mp].xy(), width, height);
            sets.pose[0][k] = u;
            sets.pose[1][k] = v;
        }
        for (k, &mp) in CONTENT.iter().enumerate() {
            let (u, v) = self.normalise(landmarks[mp].xy(), width, height);
            sets.content[0][k] = u;
            sets.content[1][k] = v;
        }
        Ok(sets)
    }
}

/// Crop-normalised POSE (2 x 74) and CONTENT (2 x 57) sets; row 0 = u (x), row 1 = v (y).
#[derive(Debug, Clone, PartialEq)]
pub struct NormalisedSets {
    pub pose: [[f64; POSE.len()]; 2],
    pub content: [[f64; CONTENT.len()]; 2],
}

impl NormalisedSets {
    /// POSE as packed into the model tensors (`f64` -> `f32` cast).
    pub fn pose_f32(&self) -> [[f32; POSE.len()]; 2] {
        self.pose.map(|row| row.map(|v| v as f32))
    }
    /// CONTENT as packed into the model tensors.
    pub fn content_f32(&self) -> [[f32; CONTENT.len()]; 2] {
        self.content.map(|row| row.map(|v| v as f32))
    }
    /// The full 2 x 131 set (POSE then CONTENT) in `f32`, the sketch input of spec §4.
    pub fn full_f32(&self) -> [[f32; FULL_LEN]; 2] {
        full_set(&self.pose_f32(), &self.content_f32())
    }
}

/// Concatenates a POSE and a CONTENT set into a full 2 x 131 set (spec §1.4, §1.7 step 3).
pub fn full_set(
    pose: &[[f32; POSE.len()]; 2],
    content: &[[f32; CONTENT.len()]; 2],
) -> [[f32; FULL_LEN]; 2] {
    let mut out = [[0.0f32; FULL_LEN]; 2];
    for r in 0..2 {
        out[r][..POSE.len()].copy_from_slice(&pose[r]);
        out[r][POSE.len()..].copy_from_slice(&content[r]);
    }
    out
}

/// The paste-back contour (README "crop" part, in place of the 27-point face-alignment contour of
/// spec §1.8 step 2): `(int(w x), int(h y))` of the [`PASTE_CONTOUR`] points, products in `f64`,
/// truncated toward zero.
pub fn paste_polygon<P: MeshPoint>(
    landmarks: &[P],
    width: usize,
    height: usize,
) -> Result<[(i64, i64); PASTE_CONTOUR.len()], CropBoxError> {
    if landmarks.len() < MIN_LANDMARKS {
        return Err(CropBoxError::TooFewLandmarks(landmarks.len()));
    }
    let mut out = [(0i64, 0i64); PASTE_CONTOUR.len()];
    for (o, &mp) in out.iter_mut().zip(PASTE_CONTOUR.iter()) {
        let (x, y) = landmarks[mp].xy();
        if !x.is_finite() || !y.is_finite() {
            return Err(CropBoxError::NonFiniteLandmark(mp));
        }
        // `as i64` truncates toward zero like Python's int() (and saturates absurd values, which
        // the paste-back then rejects).
        *o = (
            (width as f64 * x as f64) as i64,
            (height as f64 * y as f64) as i64,
        );
    }
    Ok(out)
}

fn check_landmarks<P: MeshPoint>(landmarks: &[P]) -> Result<(), CropBoxError> {
    if landmarks.len() < MIN_LANDMARKS {
        return Err(CropBoxError::TooFewLandmarks(landmarks.len()));
    }
    // Only the ORI points (which include POSE, CONTENT and the lip index) feed any result.
    for &mp in ORI.iter() {
        let (x, y) = landmarks[mp].xy();
        if !x.is_finite() || !y.is_finite() {
            return Err(CropBoxError::NonFiniteLandmark(mp));
        }
    }
    Ok(())
}

impl FaceGeometry {
    /// Spec §1.4 pass 1 for a `width` x `height` frame.
    pub fn from_landmarks<P: MeshPoint>(
        landmarks: &[P],
        width: usize,
        height: usize,
    ) -> Result<Self, CropBoxError> {
        if width == 0 || height == 0 {
            return Err(CropBoxError::EmptyFrame { width, height });
        }
        check_landmarks(landmarks)?;
        let (w, h) = (width as f64, height as f64);
        let mut raw = Extent {
            y_min: f64::INFINITY,
            y_max: f64::NEG_INFINITY,
            x_min: f64::INFINITY,
            x_max: f64::NEG_INFINITY,
        };
        for &mp in ORI.iter() {
            let (x, y) = landmarks[mp].xy();
            let (x, y) = (x as f64, y as f64);
            raw.x_min = raw.x_min.min(x);
            raw.x_max = raw.x_max.max(x);
            raw.y_min = raw.y_min.min(y);
            raw.y_max = raw.y_max.max(y);
        }
        // Margin then a one-sided clamp per bound, exactly as the script: `max(x_min - 25 / w, 0)`.
        let margin = Extent {
            y_min: (raw.y_min - PLUS_PIXEL / h).max(0.0),
            y_max: (raw.y_max + PLUS_PIXEL / h).min(1.0),
            x_min: (raw.x_min - PLUS_PIXEL / w).max(0.0),
            x_max: (raw.x_max + PLUS_PIXEL / w).min(1.0),
        };
        // Python `int()` truncates toward zero; `as i64` does the same for finite values.
        let y1 = (margin.y_min * h) as i64;
        let y2 = (margin.y_max * h) as i64;
        let x1 = (margin.x_min * w) as i64;
        let x2 = (margin.x_max * w) as i64;
        // The clamp is one-sided, so a face entirely off one edge gives x1 >= x2 (or a negative
        // end); the script would crash later on an empty crop, we report it.
        if x1 < 0 || y1 < 0 || x2 <= x1 || y2 <= y1 || x2 > width as i64 || y2 > height as i64 {
            return Err(CropBoxError::EmptyBox { x1, x2, y1, y2 });
        }
        let (x0l, y0l) = landmarks[LIP_INDEX[0]].xy();
        let (x1l, y1l) = landmarks[LIP_INDEX[1]].xy();
        let (dx, dy) = (x0l as f64 - x1l as f64, y0l as f64 - y1l as f64);
        Ok(FaceGeometry {
            extent_raw: raw,
            extent_margin: margin,
            crop_box: CropBox {
                y1: y1 as usize,
                y2: y2 as usize,
                x1: x1 as usize,
                x2: x2 as usize,
            },
            lip_dist: (dx * dx + dy * dy).sqrt(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat_face() -> Vec<[f32; 2]> {
        // A synthetic mesh: every point at the centre except a spread over the ORI points.
        let mut lm = vec![[0.5f32, 0.5]; 478];
        for (i, &mp) in ORI.iter().enumerate() {
            let t = i as f32 / 130.0;
            lm[mp] = [0.25 + 0.5 * t, 0.375 + 0.25 * (1.0 - t)];
        }
        lm
    }

    #[test]
    fn box_has_margin_and_sets_lie_inside() {
        let lm = flat_face();
        let g = FaceGeometry::from_landmarks(&lm, 200, 100).unwrap();
        assert_eq!(
            g.crop_box,
            CropBox {
                y1: 12,
                y2: 87,
                x1: 25,
                x2: 175
            }
        );
        let sets = g.crop_box.normalised_sets(&lm, 200, 100).unwrap();
        assert!(
            sets.pose
                .iter()
                .flatten()
                .all(|&v| (0.0..=1.0).contains(&v))
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut lm = flat_face();
        assert_eq!(
            FaceGeometry::from_landmarks(&lm[..100], 200, 100).unwrap_err(),
            CropBoxError::TooFewLandmarks(100)
        );
        assert!(FaceGeometry::from_landmarks(&lm, 0, 100).is_err());
        lm[ORI[5]][0] = f32::NAN;
        assert_eq!(
            FaceGeometry::from_landmarks(&lm, 200, 100).unwrap_err(),
            CropBoxError::NonFiniteLandmark(ORI[5])
        );
        // A face entirely right of the frame: one-sided clamp gives an empty box.
        let off: Vec<[f32; 2]> = flat_face().iter().map(|p| [p[0] + 2.0, p[1]]).collect();
        assert!(matches!(
            FaceGeometry::from_landmarks(&off, 200, 100),
            Err(CropBoxError::EmptyBox { .. })
        ));
    }
}
