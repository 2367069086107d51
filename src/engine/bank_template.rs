//! The reference bank of a face template (a video or image file), the one path for
//! `iplaplandmarks`' `reference-location` and `iplap sync`, so that both select the same bank from
//! the same file (spec §1.2, §1.4, §1.5):
//!
//! 1. the decoded frames are converted to 25 fps ([`template_frames_25fps`], nearest in time),
//!    because the official script re-encodes a template at another rate with `ffmpeg -r 25` and
//!    selects over the frames of the result (270 frames at 30 fps become 225);
//! 2. those frames are tracked with MediaPipe in static mode, as the official script does
//!    (`static_image_mode=True`), and summarised as [`FrameRecord`]s;
//! 3. the official selection ([`build_bank`]) runs over the 25 fps frames with a usable face.
//!
//! The caller decodes (this crate has no decoder) and pushes frames one at a time
//! ([`TemplateScan::push`]). Only the frames the 25 fps template can use are tracked: a frame's
//! fate is settled when its successor's timestamp arrives ([`PickWalk`]), so the newest frame is
//! copied and tracked one push later. The copy costs far less than the tracking it saves (a
//! 30 fps template skips one frame in six, a 60 fps one seven in twelve).

use std::path::Path;

use super::bank::ReferenceBank;
use super::bank_build::{BankError, FrameRecord, build_bank};
use super::template::{FRAME_NS, PickWalk, template_frames_25fps};
use crate::face::tracker::{FaceTracker, Mode, TrackError};
use crate::image::{ChannelOrder, Image, ImageRef, Resizer};
use crate::runtime::SessionConfig;

/// Why a template gives no bank.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no video frame in the file (expected a video or an image)")]
    NoFrame,
    #[error(
        "frame {index} is {}x{} but frame 0 is {}x{}; the template must keep one size",
        .size.0, .size.1, .first.0, .first.1
    )]
    SizeChanged {
        index: usize,
        size: (usize, usize),
        first: (usize, usize),
    },
    #[error("face tracking failed on frame {index}: {error}")]
    Track { index: usize, error: TrackError },
    #[error(
        "no face found in any of its {frames_25fps} frame(s) at 25 fps ({decoded} decoded; \
         MediaPipe face detector, confidence 0.5, face box inside the frame): use a video or \
         image with a clearly visible face"
    )]
    NoFace { decoded: usize, frames_25fps: usize },
    #[error("cannot build the reference bank: {0}")]
    Bank(#[from] BankError),
    /// A frame of the 25 fps template was skipped by the tracking (a bug of [`PickWalk`]).
    #[error("internal error: frame {index} of the 25 fps template was not tracked")]
    Untracked { index: usize },
}

/// A template's bank and what it was built from.
#[derive(Debug)]
pub struct TemplateBank {
    /// The official selection over the 25 fps frames with a usable face.
    pub bank: ReferenceBank,
    /// The 25 fps template: the decoded frame index of each of its frames (a frame repeats when
    /// the file's rate is below 25 fps).
    pub picked: Vec<usize>,
    /// Frames pushed (decoded from the file).
    pub decoded: usize,
    /// Frames run through the face tracker (those the 25 fps template can use).
    pub tracked: usize,
    /// 25 fps frames with a usable face: the bank's candidates (`V` of spec §1.5).
    pub face_frames: usize,
    /// Size of every frame.
    pub width: usize,
    pub height: usize,
}

impl TemplateBank {
    /// Frames of the 25 fps template.
    pub fn frames_25fps(&self) -> usize {
        self.picked.len()
    }
}

/// What tracking gave for one decoded frame.
#[derive(Debug)]
enum Scanned {
    /// Not tracked: the 25 fps template drops it.
    Skipped,
    /// No face, or one whose crop box leaves the frame (unusable for a reference, spec §1.4).
    NoFace,
    Face(Box<FrameRecord>),
}

/// Builds a template's bank from its decoded frames, pushed in decode order (see the module
/// documentation).
#[derive(Debug)]
pub struct TemplateScan {
    tracker: FaceTracker,
    walk: PickWalk,
    /// Timestamps of the frames pushed so far.
    pts: Vec<u64>,
    /// Every frame but the newest (still unsettled).
    scanned: Vec<Scanned>,
    /// The newest frame, tracked at the next push if the 25 fps template uses it.
    pending: Image,
    size: Option<(usize, usize)>,
    resizer: Resizer,
    scratch: Image,
}

impl TemplateScan {
    /// A scan with the face models of `model_dir`, tracking in static mode as the official script.
    pub fn load(model_dir: &Path, config: &SessionConfig) -> Result<Self, TrackError> {
        Ok(TemplateScan {
            tracker: FaceTracker::load(model_dir, Mode::Static, config)?,
            walk: PickWalk::new(),
            pts: Vec::new(),
            scanned: Vec::new(),
            pending: Image::default(),
            size: None,
            resizer: Resizer::new(),
            scratch: Image::new(1, 1, ChannelOrder::Bgr),
        })
    }

    /// Frames pushed so far.
    pub fn decoded(&self) -> usize {
        self.pts.len()
    }

    /// Adds the next decoded frame (any channel order) with its timestamp; a frame without one
    /// (an image) follows its predecessor by one 25 fps frame. Tracks the previous frame when the
    /// 25 fps template uses it. Returns the frame's time from frame 0 (nanoseconds), the time
    /// [`template_frames_25fps`] places it at.
    pub fn push(&mut self, pts_ns: Option<u64>, frame: &ImageRef) -> Result<u64, TemplateError> {
        let index = self.pts.len();
        let size = (frame.width(), frame.height());
        match self.size {
            None => self.size = Some(size),
            // The official script assumes frame 0's size for every frame (spec §1.2 step 3).
            Some(first) if first != size => {
                return Err(TemplateError::SizeChanged { index, size, first });
            }
            Some(_) => {}
        }
        let t = pts_ns
            .or_else(|| self.pts.last().map(|p| p.saturating_add(FRAME_NS)))
            .unwrap_or(0);
        self.pts.push(t);
        if let Some(keep) = self.walk.push(t) {
            let scanned = match keep {
                true => self.track_pending(index - 1)?,
                false => Scanned::Skipped,
            };
            self.scanned.push(scanned);
        }
        copy_into(&mut self.pending, frame);
        Ok(t.saturating_sub(self.pts[0]))
    }

    /// Settles the last frame and selects the bank over the 25 fps frames with a usable face.
    pub fn finish(mut self) -> Result<TemplateBank, TemplateError> {
        let Some((width, height)) = self.size else {
            return Err(TemplateError::NoFrame);
        };
        let picked = template_frames_25fps(&self.pts);
        let last = self.pts.len() - 1;
        // The selection's indices never decrease, so the last frame can only be its last pick.
        let scanned = match picked.last() == Some(&last) {
            true => self.track_pending(last)?,
            false => Scanned::Skipped,
        };
        self.scanned.push(scanned);
        let mut records = Vec::with_capacity(picked.len());
        for &index in &picked {
            match &self.scanned[index] {
                // A repeated frame (a template below 25 fps) counts each time, as ffmpeg's
                // duplicated frames do in the official script.
                Scanned::Face(record) => records.push(FrameRecord::clone(record)),
                Scanned::NoFace => {}
                Scanned::Skipped => return Err(TemplateError::Untracked { index }),
            }
        }
        if records.is_empty() {
            return Err(TemplateError::NoFace {
                decoded: self.pts.len(),
                frames_25fps: picked.len(),
            });
        }
        let (bank, _) = build_bank(&records)?;
        let tracked = self
            .scanned
            .iter()
            .filter(|s| !matches!(s, Scanned::Skipped))
            .count();
        Ok(TemplateBank {
            bank,
            face_frames: records.len(),
            picked,
            decoded: self.pts.len(),
            tracked,
            width,
            height,
        })
    }

    /// Tracks the pending frame (decoded frame `index`).
    fn track_pending(&mut self, index: usize) -> Result<Scanned, TemplateError> {
        let image = self.pending.view();
        let face = self
            .tracker
            .process(&image)
            .map_err(|error| TemplateError::Track { index, error })?;
        // A face whose crop box leaves the frame is unusable, like no face.
        Ok(face
            .and_then(|f| {
                FrameRecord::from_frame(&image, &f.normalized, &mut self.resizer, &mut self.scratch)
                    .ok()
            })
            .map_or(Scanned::NoFace, |r| Scanned::Face(Box::new(r))))
    }
}

/// Copies `src` into `dst` (packed, same channel order), reusing `dst`'s allocation.
fn copy_into(dst: &mut Image, src: &ImageRef) {
    dst.reset(src.width(), src.height(), src.order());
    let row = src.width() * src.order().bytes_per_pixel();
    if row == 0 {
        return;
    }
    for (y, out) in dst.data_mut().chunks_exact_mut(row).enumerate() {
        out.copy_from_slice(src.row(y));
    }
}
