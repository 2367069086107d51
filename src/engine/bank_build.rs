//! Building a [`ReferenceBank`] from tracked frames (spec §1.4-§1.5), offline from a whole template
//! or by enrolment from the first seconds of a live stream, and packing it into the tensors the
//! networks take (spec §1.5 steps 6-8).
//!
//! Only what selection and the bank need is kept per frame ([`FrameRecord`]: lip distance,
//! crop-normalised sets, crop size and the 128 × 128 BGR crop, about 50 KB), never whole frames,
//! so an enrolment's memory is bounded by its frame cap.

use super::bank::{ImageReference, LandmarkReference, ReferenceBank};
use super::select::{Selection, select_references};
use crate::face::crop_box::{CropBoxError, FaceGeometry, MeshPoint, NormalisedSets};
use crate::image::{
    ChannelOrder, Image, ImageError, ImageRef, Resizer, SketchRasteriser, SketchScaling,
    bgr_to_chw, crop_face,
};
use crate::sizes::FACE_SIZE;

/// Most frames an enrolment keeps (60 s at 25 fps, about 75 MB of crops); reaching it completes
/// the enrolment early, so a huge `enroll-duration` cannot exhaust memory.
pub const MAX_ENROL_FRAMES: usize = 1500;

/// Values of one 3 × 128 × 128 image or sketch tensor.
const CHW: usize = 3 * FACE_SIZE * FACE_SIZE;

/// Errors while building or packing a bank.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("no frames with a face to select references from")]
    NoFrames,
    #[error("face geometry: {0}")]
    Geometry(#[from] CropBoxError),
    #[error("image: {0}")]
    Image(#[from] ImageError),
    #[error("bank has {got} {what} references, the network needs {want}")]
    WrongCount {
        what: &'static str,
        got: usize,
        want: usize,
    },
    #[error("bank file {path}: {message}")]
    File { path: String, message: String },
}

/// What the bank needs from one template frame (spec §1.4 passes 1 and 3).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameRecord {
    /// Lip openness `|lm0 - lm17|`, normalised coordinates (spec §1.5 step 1).
    pub lip_dist: f64,
    /// Crop-normalised POSE / CONTENT sets in f64 (cast to f32 when packed).
    pub sets: NormalisedSets,
    /// Crop box size `(height, width)`.
    pub crop_hw: (usize, usize),
    /// `cv2.resize(frame[y1:y2, x1:x2], (128, 128))`, packed BGR u8.
    pub crop_bgr: Vec<u8>,
}

impl FrameRecord {
    /// Computes the record of one frame (`frame` in any colour order, `landmarks` normalised as
    /// MediaPipe gives them). `resizer` and `scratch` are reused buffers.
    pub fn from_frame<P: MeshPoint>(
        frame: &ImageRef,
        landmarks: &[P],
        resizer: &mut Resizer,
        scratch: &mut Image,
    ) -> Result<Self, BankError> {
        let (w, h) = (frame.width(), frame.height());
        let geometry = FaceGeometry::from_landmarks(landmarks, w, h)?;
        Self::from_geometry(frame, landmarks, &geometry, resizer, scratch)
    }

    /// [`FrameRecord::from_frame`] when the geometry is already known.
    pub fn from_geometry<P: MeshPoint>(
        frame: &ImageRef,
        landmarks: &[P],
        geometry: &FaceGeometry,
        resizer: &mut Resizer,
        scratch: &mut Image,
    ) -> Result<Self, BankError> {
        let (w, h) = (frame.width(), frame.height());
        let b = geometry.crop_box;
        let sets = b.normalised_sets(landmarks, w, h)?;
        crop_face(frame, b.rect(), scratch, resizer)?;
        Ok(FrameRecord {
            lip_dist: geometry.lip_dist,
            sets,
            crop_hw: (b.height(), b.width()),
            crop_bgr: scratch.data().to_vec(),
        })
    }

    fn landmark_reference(&self) -> LandmarkReference {
        LandmarkReference {
            pose: self.sets.pose_f32(),
            content: self.sets.content_f32(),
        }
    }

    fn image_reference(&self) -> ImageReference {
        ImageReference {
            crop_bgr: self.crop_bgr.clone(),
            landmarks: self.sets.full_f32(),
            crop_hw: self.crop_hw,
        }
    }
}

/// The official bank (spec §1.5) over `records` (all frames of a template, in frame order),
/// returned with the selected frame indices.
pub fn build_bank(records: &[FrameRecord]) -> Result<(ReferenceBank, Selection), BankError> {
    if records.is_empty() {
        return Err(BankError::NoFrames);
    }
    let lips: Vec<f64> = records.iter().map(|r| r.lip_dist).collect();
    let sel = select_references(&lips);
    let landmarks = sel
        .landmark
        .iter()
        .map(|&i| records[i].landmark_reference())
        .collect();
    let images = sel
        .image
        .iter()
        .map(|&i| records[i].image_reference())
        .collect();
    Ok((ReferenceBank::new(landmarks, images), sel))
}

/// Enrolment from a live stream: collects the face frames of the first `duration_ns` (by
/// timestamps, from the first face frame) and then selects the bank from them.
#[derive(Debug)]
pub struct Enrolment {
    duration_ns: u64,
    first_pts: Option<u64>,
    records: Vec<FrameRecord>,
    resizer: Resizer,
    scratch: Image,
}

impl Enrolment {
    /// An empty enrolment lasting `duration_ns` of stream time.
    pub fn new(duration_ns: u64) -> Self {
        Enrolment {
            duration_ns,
            first_pts: None,
            records: Vec::new(),
            resizer: Resizer::new(),
            scratch: Image::new(FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr),
        }
    }

    /// Frames collected so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no frame was collected yet.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Adds a face frame spanning `pts_ns .. pts_ns + duration_ns`. Returns `Ok(true)` when the
    /// enrolment is complete (the frames cover `duration_ns`, or [`MAX_ENROL_FRAMES`] were
    /// collected); then call [`Enrolment::finish`]. A frame whose geometry is unusable (face off
    /// the frame) is an error the caller may treat as "no face".
    pub fn push<P: MeshPoint>(
        &mut self,
        pts_ns: u64,
        duration_ns: u64,
        frame: &ImageRef,
        landmarks: &[P],
    ) -> Result<bool, BankError> {
        let geometry = FaceGeometry::from_landmarks(landmarks, frame.width(), frame.height())?;
        self.push_geometry(pts_ns, duration_ns, frame, landmarks, &geometry)
    }

    /// [`Enrolment::push`] when the geometry is already known.
    pub fn push_geometry<P: MeshPoint>(
        &mut self,
        pts_ns: u64,
        duration_ns: u64,
        frame: &ImageRef,
        landmarks: &[P],
        geometry: &FaceGeometry,
    ) -> Result<bool, BankError> {
        let rec = FrameRecord::from_geometry(
            frame,
            landmarks,
            geometry,
            &mut self.resizer,
            &mut self.scratch,
        )?;
        self.records.push(rec);
        let first = *self.first_pts.get_or_insert(pts_ns);
        let covered = pts_ns.saturating_add(duration_ns).saturating_sub(first);
        Ok(covered >= self.duration_ns || self.records.len() >= MAX_ENROL_FRAMES)
    }

    /// Selects the bank from the collected frames and empties the enrolment.
    pub fn finish(&mut self) -> Result<ReferenceBank, BankError> {
        let records = std::mem::take(&mut self.records);
        self.first_pts = None;
        build_bank(&records).map(|(bank, _)| bank)
    }

    /// Drops the collected frames (a flush before the enrolment completed).
    pub fn clear(&mut self) {
        self.records.clear();
        self.first_pts = None;
    }
}

/// Tensor packing (spec §1.5 steps 6-8). Lengths follow the bank's own counts; the callers that
/// need the official 15 / 25 check them ([`ReferenceBank::check_counts`]).
impl ReferenceBank {
    /// Errors unless the bank has exactly `landmarks` landmark and `images` image references.
    pub fn check_counts(&self, landmarks: usize, images: usize) -> Result<(), BankError> {
        let check = |what, got, want| {
            (got == want)
                .then_some(())
                .ok_or(BankError::WrongCount { what, got, want })
        };
        check("landmark", self.landmarks.len(), landmarks)?;
        check("image", self.images.len(), images)
    }

    /// `Nl_pose` (N × 2 × 74, f32, row 0 = x, row 1 = y).
    pub fn nl_pose(&self) -> Vec<f32> {
        self.landmarks
            .iter()
            .flat_map(|r| r.pose.iter().flatten().copied())
            .collect()
    }

    /// `Nl_content` (N × 2 × 57).
    pub fn nl_content(&self) -> Vec<f32> {
        self.landmarks
            .iter()
            .flat_map(|r| r.content.iter().flatten().copied())
            .collect()
    }

    /// `ref_imgs` (N × 3 × 128 × 128, BGR, `f32(u8 / 255.0)` with the division in f64).
    pub fn ref_images_chw(&self) -> Result<Vec<f32>, BankError> {
        let mut out = vec![0.0f32; self.images.len() * CHW];
        for (img, o) in self.images.iter().zip(out.chunks_exact_mut(CHW)) {
            let view = ImageRef::packed(&img.crop_bgr, FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr)?;
            bgr_to_chw(&view, o)?;
        }
        Ok(out)
    }

    /// `ref_img_sketches` (N × 3 × 128 × 128): each reference's full 131-point set drawn on the
    /// canvas of its crop size, reference-path scaling (`f32(resized / 255.0)`, spec §1.5 step 8).
    pub fn ref_sketches(&self) -> Result<Vec<f32>, BankError> {
        let mut out = vec![0.0f32; self.images.len() * CHW];
        let mut raster = SketchRasteriser::new();
        for (img, o) in self.images.iter().zip(out.chunks_exact_mut(CHW)) {
            let (h, w) = img.crop_hw;
            raster.render(&img.landmarks, w, h, SketchScaling::Reference, o)?;
        }
        Ok(out)
    }
}
