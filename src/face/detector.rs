//! MediaPipe's short-range face detector (BlazeFace): letterboxed 128×128 input, SSD anchors, box
//! decoding and weighted non-maximum suppression.
//!
//! Options are those of `mediapipe/modules/face_detection/face_detection_short_range.pbtxt` and
//! `face_detection.pbtxt`; the algorithms follow `mediapipe/calculators/tflite/ssd_anchors_calculator.cc`,
//! `mediapipe/calculators/tensor/tensors_to_detections_calculator.cc` and
//! `mediapipe/calculators/util/non_max_suppression_calculator.cc`.

use std::path::Path;

use super::image_to_tensor::{Border, RotatedRect, warp_to_tensor};
use crate::graph::onnx::TensorSpec;
use crate::image::ImageRef;
use crate::runtime::{ModelSession, SessionConfig, SessionError};

/// Input side of the detector tensor.
pub const INPUT_SIZE: usize = 128;
/// Number of anchors / candidate boxes.
pub const NUM_BOXES: usize = 896;
/// Values per box: 4 box values + 6 keypoints × 2.
pub const NUM_COORDS: usize = 16;
/// Keypoints per detection (right eye, left eye, nose, mouth, right ear, left ear as seen).
pub const NUM_KEYPOINTS: usize = 6;
/// `x_scale = y_scale = w_scale = h_scale`.
const COORD_SCALE: f32 = 128.0;
/// `score_clipping_thresh`.
const SCORE_CLIP: f32 = 100.0;
/// `min_score_thresh` (= FaceMesh `min_detection_confidence` 0.5).
pub const MIN_SCORE: f32 = 0.5;
/// NMS `min_suppression_threshold` (IoU).
const NMS_IOU: f32 = 0.3;

/// ONNX input name (NCHW `[1, 3, 128, 128]`, RGB in [-1, 1]).
pub const INPUT: &str = "input";
/// ONNX output: `[1, 896, 16]` raw box regressions.
pub const OUT_REGRESSORS: &str = "regressors";
/// ONNX output: `[1, 896, 1]` raw logits.
pub const OUT_CLASSIFICATORS: &str = "classificators";

/// An SSD anchor centre (fixed anchor size 1 × 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchor {
    /// Centre x in [0, 1].
    pub x: f32,
    /// Centre y in [0, 1].
    pub y: f32,
}

/// The 896 anchors of `SsdAnchorsCalculator` with num_layers 4, strides [8, 16, 16, 16], one
/// aspect ratio plus the interpolated one and `fixed_anchor_size`: layers of equal stride share a
/// grid, giving 2 anchors per 16×16 cell and 6 per 8×8 cell.
pub fn anchors() -> Vec<Anchor> {
    let strides = [8usize, 16, 16, 16];
    let mut out = Vec::with_capacity(NUM_BOXES);
    let mut layer = 0;
    while layer < strides.len() {
        let stride = strides[layer];
        let mut per_cell = 0;
        while layer < strides.len() && strides[layer] == stride {
            per_cell += 2; // aspect ratio 1.0 + interpolated scale
            layer += 1;
        }
        let fm = INPUT_SIZE.div_ceil(stride);
        for y in 0..fm {
            for x in 0..fm {
                for _ in 0..per_cell {
                    out.push(Anchor {
                        x: (x as f32 + 0.5) / fm as f32,
                        y: (y as f32 + 0.5) / fm as f32,
                    });
                }
            }
        }
    }
    out
}

/// A face detection in normalised frame coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Sigmoid score.
    pub score: f32,
    /// Box `xmin`.
    pub xmin: f32,
    /// Box `ymin`.
    pub ymin: f32,
    /// Box width.
    pub width: f32,
    /// Box height.
    pub height: f32,
    /// Keypoints `(x, y)`; 0 and 1 are the eyes used for the ROI rotation.
    pub keypoints: [(f32, f32); NUM_KEYPOINTS],
}

/// Decodes raw outputs into scored detections (tensor-normalised coordinates), keeping those with
/// score ≥ [`MIN_SCORE`]. `reverse_output_order`: boxes are (x, y, w, h).
pub fn decode(regressors: &[f32], logits: &[f32], anchors: &[Anchor]) -> Vec<Detection> {
    let mut out = Vec::new();
    for (i, a) in anchors.iter().enumerate() {
        let (Some(raw), Some(&logit)) = (
            regressors.get(i * NUM_COORDS..(i + 1) * NUM_COORDS),
            logits.get(i),
        ) else {
            break;
        };
        let score = 1.0 / (1.0 + (-logit.clamp(-SCORE_CLIP, SCORE_CLIP)).exp());
        if score < MIN_SCORE || !score.is_finite() {
            continue;
        }
        let xc = raw[0] / COORD_SCALE + a.x;
        let yc = raw[1] / COORD_SCALE + a.y;
        let w = raw[2] / COORD_SCALE;
        let h = raw[3] / COORD_SCALE;
        let mut keypoints = [(0.0, 0.0); NUM_KEYPOINTS];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            *kp = (
                raw[4 + 2 * k] / COORD_SCALE + a.x,
                raw[5 + 2 * k] / COORD_SCALE + a.y,
            );
        }
        out.push(Detection {
            score,
            xmin: xc - w / 2.0,
            ymin: yc - h / 2.0,
            width: w,
            height: h,
            keypoints,
        });
    }
    out
}

fn iou(a: &Detection, b: &Detection) -> f32 {
    let ix = (a.xmin + a.width).min(b.xmin + b.width) - a.xmin.max(b.xmin);
    let iy = (a.ymin + a.height).min(b.ymin + b.height) - a.ymin.max(b.ymin);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    let inter = ix * iy;
    let union = a.width * a.height + b.width * b.height - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// MediaPipe's `WEIGHTED` non-maximum suppression: clusters of boxes overlapping the best one by
/// more than the IoU threshold are averaged (box and keypoints, weighted by score); the result keeps
/// the best score. Output sorted by score, best first.
pub fn weighted_nms(mut dets: Vec<Detection>) -> Vec<Detection> {
    // Stable sort by descending score, as upstream's std::sort of (index, score) pairs.
    dets.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut remaining = dets.into_iter();
    let mut out = Vec::new();
    while let Some(best) = remaining.next() {
        // The best box always belongs to its own cluster (IoU 1 upstream; also for degenerate boxes
        // here, so the loop always makes progress).
        let (mut cluster, others): (Vec<Detection>, Vec<Detection>) =
            remaining.partition(|d| iou(d, &best) > NMS_IOU);
        cluster.insert(0, best.clone());
        let mut merged = best;
        let total: f32 = cluster.iter().map(|d| d.score).sum();
        if total > 0.0 {
            let (mut xmin, mut ymin, mut xmax, mut ymax) = (0.0, 0.0, 0.0, 0.0);
            let mut kps = [(0.0f32, 0.0f32); NUM_KEYPOINTS];
            for d in &cluster {
                xmin += d.xmin * d.score;
                ymin += d.ymin * d.score;
                xmax += (d.xmin + d.width) * d.score;
                ymax += (d.ymin + d.height) * d.score;
                for (k, kp) in kps.iter_mut().enumerate() {
                    kp.0 += d.keypoints[k].0 * d.score;
                    kp.1 += d.keypoints[k].1 * d.score;
                }
            }
            merged.xmin = xmin / total;
            merged.ymin = ymin / total;
            merged.width = xmax / total - xmin / total;
            merged.height = ymax / total - ymin / total;
            for (k, kp) in kps.iter().enumerate() {
                merged.keypoints[k] = (kp.0 / total, kp.1 / total);
            }
        }
        out.push(merged);
        remaining = others.into_iter();
    }
    out
}

/// The letterbox ROI of `ImageToTensorCalculator` with `keep_aspect_ratio` over the whole frame:
/// a square of side max(W, H) centred on the frame (`image_to_tensor_utils.cc` `PadRoi`).
pub fn letterbox_roi(width: usize, height: usize) -> RotatedRect {
    let side = width.max(height) as f32;
    RotatedRect {
        center_x: width as f32 / 2.0,
        center_y: height as f32 / 2.0,
        width: side,
        height: side,
        rotation: 0.0,
    }
}

/// The face detector model with its anchors and scratch buffers.
#[derive(Debug)]
pub struct FaceDetector {
    session: ModelSession,
    anchors: Vec<Anchor>,
    input: Vec<f32>,
}

impl FaceDetector {
    /// Loads `face_detection_short_range.onnx` (from [`crate::face::prepare`]).
    pub fn load(path: &Path, config: &SessionConfig) -> Result<Self, SessionError> {
        let inputs = [TensorSpec::f32(INPUT, &[1, 3, INPUT_SIZE, INPUT_SIZE])];
        let outputs = [
            TensorSpec::f32(OUT_REGRESSORS, &[1, NUM_BOXES, NUM_COORDS]),
            TensorSpec::f32(OUT_CLASSIFICATORS, &[1, NUM_BOXES, 1]),
        ];
        Ok(FaceDetector {
            session: ModelSession::from_file(path, &inputs, &outputs, config)?,
            anchors: anchors(),
            input: Vec::new(),
        })
    }

    /// Detects faces in the whole frame; detections in normalised frame coordinates, best first.
    pub fn detect(&mut self, image: &ImageRef<'_>) -> Result<Vec<Detection>, SessionError> {
        if image.width() == 0 || image.height() == 0 {
            return Ok(Vec::new());
        }
        let roi = letterbox_roi(image.width(), image.height());
        warp_to_tensor(
            image,
            &roi,
            INPUT_SIZE,
            INPUT_SIZE,
            Border::Zero,
            (-1.0, 1.0),
            &mut self.input,
        );
        let out = self.session.run_f32(
            &[(INPUT, &self.input)],
            &[OUT_REGRESSORS, OUT_CLASSIFICATORS],
        )?;
        let (reg, cls) = match (out.first(), out.get(1)) {
            (Some(r), Some(c)) => (r, c),
            _ => return Ok(Vec::new()),
        };
        let dets = weighted_nms(decode(reg, cls, &self.anchors));
        // DetectionProjectionCalculator: tensor-normalised → frame-normalised (letterbox undone).
        let (w, h) = (image.width() as f32, image.height() as f32);
        let px = |u: f32| (roi.center_x + (u - 0.5) * roi.width) / w;
        let py = |v: f32| (roi.center_y + (v - 0.5) * roi.height) / h;
        Ok(dets
            .into_iter()
            .map(|d| {
                let (x0, y0) = (px(d.xmin), py(d.ymin));
                let (x1, y1) = (px(d.xmin + d.width), py(d.ymin + d.height));
                Detection {
                    score: d.score,
                    xmin: x0,
                    ymin: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                    keypoints: d.keypoints.map(|(x, y)| (px(x), py(y))),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_layout() {
        let a = anchors();
        assert_eq!(a.len(), NUM_BOXES);
        assert_eq!(
            a[0],
            Anchor {
                x: 0.5 / 16.0,
                y: 0.5 / 16.0
            }
        );
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2].x, 1.5 / 16.0);
        assert_eq!(
            a[512],
            Anchor {
                x: 0.5 / 8.0,
                y: 0.5 / 8.0
            }
        );
        assert_eq!(a[517], a[512]);
        assert_eq!(
            a[895],
            Anchor {
                x: 7.5 / 8.0,
                y: 7.5 / 8.0
            }
        );
    }

    fn det(score: f32, x: f32) -> Detection {
        Detection {
            score,
            xmin: x,
            ymin: 0.0,
            width: 1.0,
            height: 1.0,
            keypoints: [(x, 0.0); NUM_KEYPOINTS],
        }
    }

    #[test]
    fn weighted_nms_averages_overlapping_boxes() {
        let out = weighted_nms(vec![det(0.6, 0.1), det(0.9, 0.0), det(0.7, 5.0)]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        let expect = 0.6 * 0.1 / 1.5;
        assert!((out[0].xmin - expect).abs() < 1e-6);
        assert_eq!(out[1].xmin, 5.0);
    }

    #[test]
    fn nan_scores_do_not_panic() {
        let regs = vec![f32::NAN; NUM_BOXES * NUM_COORDS];
        let logits = vec![f32::NAN; NUM_BOXES];
        assert!(weighted_nms(decode(&regs, &logits, &anchors())).is_empty());
    }
}
