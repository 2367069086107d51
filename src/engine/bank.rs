//! The reference bank (spec §1.5, ARCHITECTURE "Data contracts"): 15 landmark references for the
//! landmark generator and 25 image references for the renderer, chosen by lip openness.
//!
//! This file holds the data type shared by the landmark side (which builds banks) and the render
//! side (which consumes them). Selection, serialisation and tensor packing live beside it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::face::indices::{CONTENT, FULL_LEN, POSE};

/// Number of landmark references of the landmark generator (`Nl`, spec §1.1).
pub const LANDMARK_REFERENCES: usize = 15;
/// Number of image references of the renderer in the official inference (`ref_img_N`).
pub const IMAGE_REFERENCES: usize = 25;

/// One landmark reference: crop-normalised POSE (2 × 74) and CONTENT (2 × 57) sets of a frame,
/// row 0 = x, row 1 = y, as packed into `Nl_pose` / `Nl_content` (float32, spec §1.4).
#[derive(Debug, Clone, PartialEq)]
pub struct LandmarkReference {
    pub pose: [[f32; POSE.len()]; 2],
    pub content: [[f32; CONTENT.len()]; 2],
}

/// One image reference: the 128 × 128 face crop of a frame and what its sketch is drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageReference {
    /// `cv2.resize(crop, (128, 128))` of the frame's crop box, HWC, BGR, uint8 (spec §1.5 step 7).
    pub crop_bgr: Vec<u8>,
    /// The full 2 × 131 landmark set (POSE then CONTENT, crop-normalised, float32) of that frame.
    pub landmarks: [[f32; FULL_LEN]; 2],
    /// Size `(height, width)` of the frame's crop box, which sets the sketch canvas (spec §4).
    pub crop_hw: (usize, usize),
}

/// A complete reference bank. Every bank gets a process-unique [`ReferenceBank::id`], so that
/// consumers caching derived features (the renderer's reference encoding) can tell banks apart.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceBank {
    id: u64,
    /// Landmark references in selection order (k = 0..14 of spec §1.5 step 2).
    pub landmarks: Vec<LandmarkReference>,
    /// Image references in selection order (k = 0..24 of spec §1.5 step 3).
    pub images: Vec<ImageReference>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ReferenceBank {
    /// A bank from its parts, with a fresh id.
    pub fn new(landmarks: Vec<LandmarkReference>, images: Vec<ImageReference>) -> Self {
        ReferenceBank {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            landmarks,
            images,
        }
    }

    /// Process-unique identity of this bank (clones share it: they hold the same references).
    pub fn id(&self) -> u64 {
        self.id
    }
}
