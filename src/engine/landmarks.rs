//! [`LandmarkEngine`]: the streaming state machine behind `iplaplandmarks` (ARCHITECTURE "engine/").
//!
//! Audio (16 kHz mono, timestamped) and video frames (timestamped, with the tracker's landmarks)
//! go in; per video frame, in order, a [`FrameResult`] comes out as soon as its T = 5 window is
//! complete: the audio up to the end of its last mel chunk (≤ 212.5 ms after the frame, spec §8.5
//! step 2) and the video up to 80 ms after it (the window's last position). All timing is derived
//! from timestamps (ARCHITECTURE "Timing"); see [`super::window`] for the window geometry.
//!
//! Differences from the official batch script, all at the edges of a stream:
//! * Output frames 0 and 1 are officially copies of frame 2 (spec §1.6); here every frame gets its
//!   own window, with chunks `max(0, ·)` and window positions before the first frame clamped to it.
//!   From the third frame on (t ≥ 80 ms of mel time) the windows equal the official ones.
//! * At the end the official template loop ping-pongs (spec §1.6), so the last frame's positions
//!   `+40, +80 ms` would be frames `V−1, V−2`; a live stream has no future frames, so they clamp to
//!   the last frame. Audio past the end is silence (−4 mel columns).
//! * A frame without a face ends a segment: windows clamp at it instead of reaching across.

use crate::sizes::WINDOW;
use std::collections::VecDeque;
use std::sync::Arc;

use super::bank::{IMAGE_REFERENCES, LANDMARK_REFERENCES, ReferenceBank};
use super::bank_build::{BankError, Enrolment};
use super::timeline::{AudioTimeline, AudioTimelineError, CHUNK_LEN};
use super::window::{
    AUDIO_LOOKAHEAD_NS, POSITION_SPACING_NS, Pose32, PoseTrack, WINDOW_REACH_NS, chunk_starts,
    mel_frames_needed, position_time,
};
use crate::face::crop_box::{CropBox, FaceGeometry};
use crate::face::indices::CONTENT;
use crate::graph::GraphError;
use crate::graph::package::ModelPackage;
use crate::image::ImageRef;
use crate::runtime::landmark_generator::{
    LandmarkInput, LandmarkModel, LandmarkModelError, T_POSE_LEN,
};
use crate::runtime::{SessionConfig, SessionError};

/// A CONTENT set (17 jaw + 40 lip points, row 0 = x, row 1 = y), crop-normalised.
pub type Content32 = [[f32; CONTENT.len()]; 2];

/// Where the reference bank comes from.
#[derive(Debug, Clone)]
pub enum BankMode {
    /// A ready bank (selected offline from a template file, or loaded): parity with the official
    /// script.
    Fixed(Arc<ReferenceBank>),
    /// Enrol from the stream: the face frames of the first `duration_ns` (stream time).
    Enrol { duration_ns: u64 },
}

/// A package error names the package itself ("model package X: …"); others get that context.
fn package_error_text(e: &GraphError) -> String {
    match e {
        GraphError::Package { .. } => e.to_string(),
        _ => format!("model package: {e}"),
    }
}

/// Errors of the landmark engine. Unusable face geometry is not an error (the frame is NoFace).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("landmark generator: {0}")]
    Session(#[from] SessionError),
    #[error("{}", package_error_text(.0))]
    Package(#[from] GraphError),
    #[error("reference bank: {0}")]
    Bank(#[from] BankError),
    #[error("audio: {0}")]
    Audio(#[from] AudioTimelineError),
    #[error("video timestamp {pts_ns} ns is before the previous frame's {previous_ns} ns")]
    NonMonotonicVideo { pts_ns: u64, previous_ns: u64 },
    #[error("video frame pushed after finish_video without a reset")]
    VideoAfterEos,
    /// A broken internal invariant (a bug); reported rather than panicking inside a pipeline.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// The tracked face of a frame, in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceInfo {
    /// Crop box of spec §1.4 pass 1.
    pub crop_box: CropBox,
    /// All mesh points (478 refined), `(w · x, h · y)` in frame pixels.
    pub points_px: Vec<[f32; 2]>,
    /// The same points as MediaPipe gives them, normalised by the frame size. Kept because the
    /// paste-back polygon is `int(w · x)` of these (a pixel value rounded to f32 can cross an
    /// integer boundary).
    pub points_norm: Vec<[f32; 2]>,
    /// Frame `(width, height)`.
    pub frame_size: (usize, usize),
}

/// A frame whose window went through the landmark generator.
#[derive(Debug, Clone)]
pub struct SyncedFace {
    pub face: FaceInfo,
    /// The frame's own 74 POSE points (crop-normalised, = `window_pose[2]`).
    pub pose: Pose32,
    /// The 57 predicted CONTENT points of the frame (= `window_content[2]`).
    pub content: Content32,
    /// The renderer's audio: the chunk of the centre position (80 × 16 row-major, rows = bins).
    pub mel_chunk: Vec<f32>,
    /// POSE at the five window positions (`T_pose`), for the renderer's target sketches.
    pub window_pose: [Pose32; WINDOW],
    /// Predicted CONTENT at the five positions (all five target sketches use them, spec §1.7).
    pub window_content: [Content32; WINDOW],
    /// Crop size `(height, width)` at each position (the sketch canvas; nearest frame).
    pub window_crop_hw: [(usize, usize); WINDOW],
    /// The bank the prediction used (and the renderer must use).
    pub bank: Arc<ReferenceBank>,
}

/// What the engine says about one frame.
#[derive(Debug, Clone)]
pub enum FrameStatus {
    /// No usable face: pass the frame through.
    NoFace,
    /// A face, but the bank is still being enrolled: pass through (or show the tracking).
    Enrolling(FaceInfo),
    /// Lip-synced landmarks.
    Synced(Box<SyncedFace>),
}

/// One output frame, in input order.
#[derive(Debug, Clone)]
pub struct FrameResult {
    pub pts_ns: u64,
    pub duration_ns: u64,
    pub status: FrameStatus,
}

#[derive(Debug)]
struct Pending {
    pts: u64,
    duration: u64,
    face: Option<(FaceInfo, u64)>,
}

/// The bank with its packed landmark tensors.
#[derive(Debug)]
struct ActiveBank {
    bank: Arc<ReferenceBank>,
    nl_pose: Vec<f32>,
    nl_content: Vec<f32>,
}

impl ActiveBank {
    fn new(bank: Arc<ReferenceBank>) -> Result<Self, BankError> {
        bank.check_counts(LANDMARK_REFERENCES, IMAGE_REFERENCES)?;
        Ok(ActiveBank {
            nl_pose: bank.nl_pose(),
            nl_content: bank.nl_content(),
            bank,
        })
    }
}

/// The landmark side of the pipeline; see the module documentation. Not thread-safe by itself
/// (`&mut self` everywhere); the element owns it behind its own lock.
#[derive(Debug)]
pub struct LandmarkEngine {
    generator: LandmarkModel,
    bank: Option<ActiveBank>,
    enrolment: Option<Enrolment>,
    audio: AudioTimeline,
    track: PoseTrack,
    pending: VecDeque<Pending>,
    first_video_pts: Option<u64>,
    last_video_pts: Option<u64>,
    last_duration: u64,
    video_finished: bool,
    t_mels: Vec<f32>,
    t_pose: Vec<f32>,
}

impl LandmarkEngine {
    /// An engine running `generator` with a bank from `mode`.
    pub fn new(generator: impl Into<LandmarkModel>, mode: BankMode) -> Result<Self, EngineError> {
        let generator = generator.into();
        let (bank, enrolment) = match mode {
            BankMode::Fixed(b) => (Some(ActiveBank::new(b)?), None),
            BankMode::Enrol { duration_ns } => (None, Some(Enrolment::new(duration_ns))),
        };
        Ok(LandmarkEngine {
            generator,
            bank,
            enrolment,
            audio: AudioTimeline::new(),
            track: PoseTrack::new(),
            pending: VecDeque::new(),
            first_video_pts: None,
            last_video_pts: None,
            last_duration: 0,
            video_finished: false,
            t_mels: vec![0.0; WINDOW * CHUNK_LEN],
            t_pose: vec![0.0; T_POSE_LEN],
        })
    }

    /// An engine with a model package's landmark generator (its streaming split when present).
    pub fn from_package(
        package: &ModelPackage,
        config: &SessionConfig,
        mode: BankMode,
    ) -> Result<Self, EngineError> {
        let model = match LandmarkModel::from_package(package, config) {
            Ok(m) => m,
            Err(LandmarkModelError::Package(e)) => return Err(e.into()),
            Err(LandmarkModelError::Session(e)) => return Err(e.into()),
        };
        Self::new(model, mode)
    }

    /// The bank in use, once there is one.
    pub fn bank(&self) -> Option<&Arc<ReferenceBank>> {
        self.bank.as_ref().map(|b| &b.bank)
    }

    /// Replaces the bank (e.g. a `bank-location` property set while running); ends an enrolment.
    pub fn set_bank(&mut self, bank: Arc<ReferenceBank>) -> Result<(), EngineError> {
        self.bank = Some(ActiveBank::new(bank)?);
        self.enrolment = None;
        Ok(())
    }

    /// The latency to report: the audio look-ahead (212.5 ms) or the video look-ahead (the frame
    /// 80 ms later must have arrived: 80 ms plus one frame duration), whichever is larger.
    pub fn latency_ns(&self) -> u64 {
        AUDIO_LOOKAHEAD_NS.max(WINDOW_REACH_NS as u64 + self.last_duration)
    }

    /// Frames waiting for their window to complete.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds 16 kHz mono audio whose first sample is at `pts_ns` (running time). The first call
    /// defines mel time 0; gaps become silence, overlaps are trimmed.
    pub fn push_audio(&mut self, pts_ns: u64, samples: &[f32]) -> Result<(), EngineError> {
        Ok(self.audio.push(pts_ns, samples)?)
    }

    /// Adds a video frame. `landmarks` are the tracker's normalised mesh points (MediaPipe `x / w`,
    /// `y / h`), `None` when no face was found. `frame` is read only while a bank is enrolled (its
    /// size always). A face whose crop box is unusable (off the frame) counts as no face.
    pub fn push_video(
        &mut self,
        pts_ns: u64,
        duration_ns: u64,
        frame: &ImageRef,
        landmarks: Option<&[[f32; 3]]>,
    ) -> Result<(), EngineError> {
        if self.video_finished {
            return Err(EngineError::VideoAfterEos);
        }
        if let Some(previous_ns) = self.last_video_pts.filter(|&p| pts_ns < p) {
            return Err(EngineError::NonMonotonicVideo {
                pts_ns,
                previous_ns,
            });
        }
        let pts = to_i64(pts_ns);
        let (w, h) = (frame.width(), frame.height());
        let usable = landmarks.and_then(|lm| {
            let g = FaceGeometry::from_landmarks(lm, w, h).ok()?;
            let sets = g.crop_box.normalised_sets(lm, w, h).ok()?;
            Some((lm, g, sets))
        });
        // Enrolment first: if it fails, the engine's state is unchanged.
        if let Some((lm, g, _)) = &usable
            && self.bank.is_none()
            && let Some(enrol) = self.enrolment.as_mut()
            && enrol.push_geometry(pts_ns, duration_ns, frame, lm, g)?
        {
            let bank = enrol.finish()?;
            self.set_bank(Arc::new(bank))?;
        }
        self.first_video_pts.get_or_insert(pts_ns);
        self.last_video_pts = Some(pts_ns);
        self.last_duration = duration_ns;
        let face = match usable {
            None => {
                self.track.push_gap(pts);
                None
            }
            Some((lm, g, sets)) => {
                let b = g.crop_box;
                let seg = self
                    .track
                    .push_face(pts, sets.pose, (b.height(), b.width()));
                let points_px = lm
                    .iter()
                    .map(|p| {
                        [
                            (w as f64 * p[0] as f64) as f32,
                            (h as f64 * p[1] as f64) as f32,
                        ]
                    })
                    .collect();
                let info = FaceInfo {
                    crop_box: b,
                    points_px,
                    points_norm: lm.iter().map(|p| [p[0], p[1]]).collect(),
                    frame_size: (w, h),
                };
                Some((info, seg))
            }
        };
        self.pending.push_back(Pending {
            pts: pts_ns,
            duration: duration_ns,
            face,
        });
        Ok(())
    }

    /// End of the audio stream: the remaining frames' chunks are padded with silence.
    pub fn finish_audio(&mut self) {
        self.audio.finish(self.first_video_pts);
    }

    /// End of the video stream: the last frames no longer wait for later frames. An enrolment
    /// still in progress selects its bank from the frames it has.
    pub fn finish_video(&mut self) -> Result<(), EngineError> {
        self.video_finished = true;
        if self.bank.is_none()
            && let Some(enrol) = self.enrolment.as_mut().filter(|e| !e.is_empty())
        {
            let bank = enrol.finish()?;
            self.set_bank(Arc::new(bank))?;
        }
        Ok(())
    }

    /// Forgets all stream state (flushing seek); keeps the bank. An unfinished enrolment restarts.
    pub fn reset(&mut self) {
        self.audio.reset();
        self.track.clear();
        self.pending.clear();
        self.first_video_pts = None;
        self.last_video_pts = None;
        self.video_finished = false;
        if let Some(e) = self.enrolment.as_mut() {
            e.clear();
        }
    }

    /// New video caps: windows do not reach across the change (the tracker is reset by the
    /// element); pending frames, audio and the bank are kept.
    pub fn caps_changed(&mut self) {
        self.track.break_segment();
    }

    /// The next frame whose result is complete, in input order; `None` while the oldest frame
    /// still waits for audio or later video.
    pub fn pop_ready(&mut self) -> Result<Option<FrameResult>, EngineError> {
        let Some(front) = self.pending.front() else {
            return Ok(None);
        };
        let status = match (&front.face, &self.bank) {
            (None, _) => FrameStatus::NoFace,
            (Some((info, _)), None) => FrameStatus::Enrolling(info.clone()),
            (Some((_, seg)), Some(_)) => {
                let (pts, seg) = (to_i64(front.pts), *seg);
                let Some(t) = self.mel_time(front.pts) else {
                    return Ok(None);
                };
                let audio_ok =
                    self.audio.is_finished() || self.audio.mel_frames() >= mel_frames_needed(t);
                let video_ok = self.video_finished || self.track.covers(pts, seg);
                if !(audio_ok && video_ok) {
                    return Ok(None);
                }
                self.synced(t, pts, seg)?
            }
        };
        let Some(p) = self.pending.pop_front() else {
            return Ok(None);
        };
        self.prune();
        Ok(Some(FrameResult {
            pts_ns: p.pts,
            duration_ns: p.duration,
            status,
        }))
    }

    /// Mel time of a video timestamp (ns since the first audio sample), once audio has started
    /// (or ended without any, then the first video frame is time 0).
    fn mel_time(&self, pts_ns: u64) -> Option<i64> {
        // Audio that ended before any video reached the engine (or never had a sample) set no
        // origin: the first video frame is then mel time 0 and everything is silence.
        let t0 = self.audio.origin().or_else(|| {
            self.audio
                .is_finished()
                .then_some(self.first_video_pts)
                .flatten()
        })?;
        Some(to_i64(pts_ns).saturating_sub(to_i64(t0)))
    }

    /// Runs the window of the front frame (mel time `t`, timestamp `pts`, segment `seg`).
    fn synced(&mut self, t: i64, pts: i64, seg: u64) -> Result<FrameStatus, EngineError> {
        let bank = self
            .bank
            .as_ref()
            .ok_or(EngineError::Internal("window without a bank"))?;
        let info = self
            .pending
            .front()
            .and_then(|p| p.face.as_ref())
            .map(|(info, _)| info)
            .ok_or(EngineError::Internal("window without a face frame"))?;
        let starts = chunk_starts(t);
        for (j, o) in self.t_mels.chunks_exact_mut(CHUNK_LEN).enumerate() {
            self.audio.chunk_into(starts[j], o);
        }
        let mut window_pose = [[[0.0f32; 74]; 2]; WINDOW];
        let mut window_crop_hw = [(0, 0); WINDOW];
        for j in 0..WINDOW {
            // The frame itself is stored in its segment, so sampling always finds a frame.
            let (pose, hw) =
                self.track
                    .sample(position_time(pts, j), seg)
                    .ok_or(EngineError::Internal(
                        "centre frame missing from the pose track",
                    ))?;
            window_pose[j] = pose;
            window_crop_hw[j] = hw;
        }
        for (o, v) in self
            .t_pose
            .iter_mut()
            .zip(window_pose.iter().flatten().flatten())
        {
            *o = *v;
        }
        let out = self.generator.run(&LandmarkInput {
            t_mels: &self.t_mels,
            t_pose: &self.t_pose,
            nl_pose: &bank.nl_pose,
            nl_content: &bank.nl_content,
        })?;
        let mut window_content = [[[0.0f32; CONTENT.len()]; 2]; WINDOW];
        for (c, v) in window_content
            .iter_mut()
            .flatten()
            .flatten()
            .zip(&out.predict_content)
        {
            *c = *v;
        }
        Ok(FrameStatus::Synced(Box::new(SyncedFace {
            face: info.clone(),
            pose: window_pose[2],
            content: window_content[2],
            mel_chunk: self.t_mels[2 * CHUNK_LEN..3 * CHUNK_LEN].to_vec(),
            window_pose,
            window_content,
            window_crop_hw,
            bank: bank.bank.clone(),
        })))
    }

    /// Drops poses and mel frames that no pending or future frame can use.
    fn prune(&mut self) {
        let oldest = self.pending.front().map(|p| p.pts).or(self.last_video_pts);
        let Some(oldest) = oldest else { return };
        let tau = to_i64(oldest).saturating_sub(WINDOW_REACH_NS + POSITION_SPACING_NS);
        self.track.prune_before(tau);
        if let Some(t) = self.mel_time(oldest) {
            self.audio.prune_before(chunk_starts(t)[0]);
        }
    }
}

/// Nanosecond timestamps as i64 (saturating: 292 years of running time fit).
fn to_i64(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_errors_name_the_package_once() {
        let e = EngineError::from(GraphError::Package {
            path: "/x/pkg".into(),
            message: "folder does not exist".into(),
        });
        let text = e.to_string();
        assert!(
            text.starts_with("model package /x/pkg: folder does not exist"),
            "{text}"
        );
        assert_eq!(text.matches("model package").count(), 1, "{text}");
        let e = EngineError::from(GraphError::invalid("bad graph"));
        assert!(e.to_string().starts_with("model package: "), "{e}");
    }
}
