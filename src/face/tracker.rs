//! [`FaceTracker`]: MediaPipe FaceMesh (`max_num_faces = 1`, `refine_landmarks = True`) on frames.
//!
//! * [`Mode::Static`] detects on every frame, as `static_image_mode=True` in IP_LAP's
//!   `inference_single.py` (spec §1.4, §3.1).
//! * [`Mode::Tracking`] takes the ROI from the previous frame's landmarks
//!   (`face_landmark_landmarks_to_roi.pbtxt`) and runs the detector again only when there is no
//!   previous face or the mesh's presence score drops below 0.5 (`min_tracking_confidence`).
//!
//! Both modes give the same [`Face`] type. A frame without a face gives `Ok(None)`.

use std::path::{Path, PathBuf};

use super::detector::FaceDetector;
use super::mesh::{FaceMesh, NUM_LANDMARKS, PRESENCE_THRESHOLD};
use super::prepare::{DETECTOR, MESH};
use super::roi::{NormRect, roi_from_detection, roi_from_landmarks};
use crate::image::ImageRef;
use crate::runtime::{SessionConfig, SessionError};

/// Detection policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Detect on every frame (the official script's setting).
    #[default]
    Static,
    /// Follow the face from frame to frame; detect only when it is lost.
    Tracking,
}

/// One tracked face.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    /// The 478 refined landmarks normalised as MediaPipe returns them: x / width, y / height, z
    /// in the same units as x.
    pub normalized: Vec<[f32; 3]>,
    /// The same x, y in frame pixels (`x · width`, `y · height`).
    pub pixels: Vec<[f32; 2]>,
    /// Face-presence probability from the mesh.
    pub score: f32,
    /// Detector score when this frame ran the detector.
    pub detection_score: Option<f32>,
    /// The mesh ROI used (normalised).
    pub roi: NormRect,
}

/// Errors from the tracker.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// A converted model file is missing. The message names the command of the installed
    /// `iplap` binary that writes it into that folder (no source checkout needed).
    #[error(
        "face model {} not found: convert MediaPipe's face models with `iplap \
         prepare-face-models <mediapipe-0.10.21 wheel> --out {}` (the wheel: `pip download \
         --no-deps mediapipe==0.10.21`; scripts/setup.sh does both)",
        .0.display(),
        .0.parent().unwrap_or(Path::new(".")).display()
    )]
    MissingModel(PathBuf),
    /// ONNX Runtime failed.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Face detector + attention mesh with per-stream state.
#[derive(Debug)]
pub struct FaceTracker {
    detector: FaceDetector,
    mesh: FaceMesh,
    mode: Mode,
    previous: Option<Vec<[f32; 3]>>,
}

impl FaceTracker {
    /// Loads both models from `model_dir` (normally `models/generated/face`).
    pub fn load(model_dir: &Path, mode: Mode, config: &SessionConfig) -> Result<Self, TrackError> {
        let det = model_dir.join(DETECTOR.onnx_name);
        let mesh = model_dir.join(MESH.onnx_name);
        for p in [&det, &mesh] {
            if !p.is_file() {
                return Err(TrackError::MissingModel(p.clone()));
            }
        }
        Ok(FaceTracker {
            detector: FaceDetector::load(&det, config)?,
            mesh: FaceMesh::load(&mesh, config)?,
            mode,
            previous: None,
        })
    }

    /// The detection policy.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Forgets the previous frame (e.g. after a seek).
    pub fn reset(&mut self) {
        self.previous = None;
    }

    /// Processes one frame (any channel order of [`ImageRef`]); `Ok(None)` when no face is found.
    pub fn process(&mut self, image: &ImageRef<'_>) -> Result<Option<Face>, TrackError> {
        let (w, h) = (image.width(), image.height());
        if w == 0 || h == 0 {
            return Ok(None);
        }
        if self.mode == Mode::Tracking
            && let Some(roi) = self
                .previous
                .as_deref()
                .and_then(|p| roi_from_landmarks(p, w, h))
            && let Some(face) = self.mesh_at(image, roi, None)?
        {
            self.previous = Some(face.normalized.clone());
            return Ok(Some(face));
        }
        self.previous = None;
        let detections = self.detector.detect(image)?;
        let Some(best) = detections.first() else {
            return Ok(None);
        };
        let roi = roi_from_detection(best, w, h);
        let face = self.mesh_at(image, roi, Some(best.score))?;
        if self.mode == Mode::Tracking {
            self.previous = face.as_ref().map(|f| f.normalized.clone());
        }
        Ok(face)
    }

    fn mesh_at(
        &mut self,
        image: &ImageRef<'_>,
        roi: NormRect,
        detection_score: Option<f32>,
    ) -> Result<Option<Face>, TrackError> {
        let Some(out) = self.mesh.run(image, &roi)? else {
            return Ok(None);
        };
        if out.presence.is_nan()
            || out.presence < PRESENCE_THRESHOLD
            || out.landmarks.len() != NUM_LANDMARKS
        {
            return Ok(None);
        }
        let (w, h) = (image.width() as f32, image.height() as f32);
        let pixels = out.landmarks.iter().map(|p| [p[0] * w, p[1] * h]).collect();
        Ok(Some(Face {
            normalized: out.landmarks,
            pixels,
            score: out.presence,
            detection_score,
            roi,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_names_the_command_that_makes_it() {
        let dir = std::env::temp_dir().join("iplap-tracker-no-face-models");
        let Err(err) = FaceTracker::load(&dir, Mode::Static, &SessionConfig::default()) else {
            panic!("loaded face models from a folder that does not exist");
        };
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "`iplap prepare-face-models <mediapipe-0.10.21 wheel> --out {}`",
                dir.display()
            )) && msg.contains("scripts/setup.sh"),
            "{msg}"
        );
        assert!(!msg.contains("cargo run"), "{msg}");
    }
}
