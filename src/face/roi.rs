//! Face ROI for the mesh: from a detection (`face_detection_front_detection_to_roi.pbtxt`) or from
//! the previous frame's landmarks (`face_landmark_landmarks_to_roi.pbtxt`).
//!
//! Both run `DetectionsToRectsCalculator` (`mediapipe/calculators/util/detections_to_rects_calculator.cc`:
//! box centre and size, rotation `target − atan2(−(y1 − y0), x1 − x0)` from two keypoints in
//! pixels) and `RectTransformationCalculator` (`rect_transformation_calculator.cc`: `square_long`,
//! then scale 1.5). Rects are normalised to the frame (x by width, y by height) as upstream.

use std::f32::consts::PI;

use super::detector::Detection;
use super::image_to_tensor::RotatedRect;

/// `RectTransformationCalculatorOptions.scale_x / scale_y` of both ROI graphs.
pub const ROI_SCALE: f32 = 1.5;
/// Mesh landmarks giving the rotation when tracking: left side of the left eye, right side of the right eye.
pub const TRACK_ROTATION_LANDMARKS: (usize, usize) = (33, 263);

/// MediaPipe's `NormalizedRect`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormRect {
    /// Centre x / frame width.
    pub x_center: f32,
    /// Centre y / frame height.
    pub y_center: f32,
    /// Width / frame width.
    pub width: f32,
    /// Height / frame height.
    pub height: f32,
    /// Rotation, radians.
    pub rotation: f32,
}

impl NormRect {
    /// The same rectangle in frame pixels.
    pub fn to_pixels(&self, frame_w: usize, frame_h: usize) -> RotatedRect {
        let (w, h) = (frame_w as f32, frame_h as f32);
        RotatedRect {
            center_x: self.x_center * w,
            center_y: self.y_center * h,
            width: self.width * w,
            height: self.height * h,
            rotation: self.rotation,
        }
    }
}

/// `NormalizeRadians`: the angle mapped to [−π, π).
pub fn normalize_radians(angle: f32) -> f32 {
    angle - 2.0 * PI * ((angle + PI) / (2.0 * PI)).floor()
}

/// Rotation that brings the vector from `p0` to `p1` (normalised points) to horizontal.
fn rotation(p0: (f32, f32), p1: (f32, f32), frame_w: usize, frame_h: usize) -> f32 {
    let (w, h) = (frame_w as f32, frame_h as f32);
    let (x0, y0) = (p0.0 * w, p0.1 * h);
    let (x1, y1) = (p1.0 * w, p1.1 * h);
    normalize_radians(-(-(y1 - y0)).atan2(x1 - x0))
}

/// `square_long` and the 1.5 scale.
fn transform(mut r: NormRect, frame_w: usize, frame_h: usize) -> NormRect {
    let (w, h) = (frame_w as f32, frame_h as f32);
    let long = (r.width * w).max(r.height * h);
    r.width = long / w * ROI_SCALE;
    r.height = long / h * ROI_SCALE;
    r
}

/// The mesh ROI for a detection (rotation from keypoints 0 and 1, the eyes).
pub fn roi_from_detection(d: &Detection, frame_w: usize, frame_h: usize) -> NormRect {
    let r = NormRect {
        x_center: d.xmin + d.width / 2.0,
        y_center: d.ymin + d.height / 2.0,
        width: d.width,
        height: d.height,
        rotation: rotation(d.keypoints[0], d.keypoints[1], frame_w, frame_h),
    };
    transform(r, frame_w, frame_h)
}

/// The mesh ROI for the next frame from this frame's landmarks (normalised x, y), as
/// `LandmarksToDetectionCalculator` + the rect calculators. `None` when there are too few points.
pub fn roi_from_landmarks(points: &[[f32; 3]], frame_w: usize, frame_h: usize) -> Option<NormRect> {
    let (i0, i1) = TRACK_ROTATION_LANDMARKS;
    let (p0, p1) = (points.get(i0)?, points.get(i1)?);
    let (mut xmin, mut ymin, mut xmax, mut ymax) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in points {
        xmin = xmin.min(p[0]);
        ymin = ymin.min(p[1]);
        xmax = xmax.max(p[0]);
        ymax = ymax.max(p[1]);
    }
    if !(xmin.is_finite() && ymin.is_finite() && xmax.is_finite() && ymax.is_finite()) {
        return None;
    }
    let r = NormRect {
        x_center: (xmin + xmax) / 2.0,
        y_center: (ymin + ymax) / 2.0,
        width: xmax - xmin,
        height: ymax - ymin,
        rotation: rotation((p0[0], p0[1]), (p1[0], p1[1]), frame_w, frame_h),
    };
    Some(transform(r, frame_w, frame_h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radians_wrap() {
        assert!((normalize_radians(3.0 * PI / 2.0) + PI / 2.0).abs() < 1e-6);
        assert_eq!(normalize_radians(0.25), 0.25);
    }

    #[test]
    fn level_eyes_give_zero_rotation_and_square_roi() {
        let d = Detection {
            score: 0.9,
            xmin: 0.25,
            ymin: 0.2,
            width: 0.5,
            height: 0.4,
            keypoints: [
                (0.4, 0.4),
                (0.6, 0.4),
                (0.5, 0.5),
                (0.5, 0.6),
                (0.3, 0.4),
                (0.7, 0.4),
            ],
        };
        let r = roi_from_detection(&d, 100, 100);
        assert_eq!(r.rotation, 0.0);
        assert!((r.width - 0.75).abs() < 1e-6 && (r.height - 0.75).abs() < 1e-6);
        assert!((r.x_center - 0.5).abs() < 1e-6 && (r.y_center - 0.4).abs() < 1e-6);
    }
}
