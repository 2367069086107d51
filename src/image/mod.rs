//! Bit-exact image primitives of IP_LAP's pre- and post-processing: face crops, landmark sketches
//! and the feathered paste-back (spec §1.5 steps 7-8, §1.7, §1.8, §4, appendix C).
//!
//! Every primitive reproduces the OpenCV 4.6 arithmetic that the official script relies on
//! (`cv2.resize` INTER_LINEAR, `cv2.line` LINE_8, `cv2.fillConvexPoly`, `cv2.GaussianBlur`), as
//! written down in spec appendix C, and is checked against `shared/golden/public/{sketch,crop}`.
//! Frames are read and written in place through [`ImageRef`] / [`ImageMut`] in any 8-bit RGB
//! channel order; OpenCV's BGR order appears only in the 128 x 128 model tensors. [`yuv`] pastes
//! into 4:2:0 frames (I420, NV12) by converting only the touched region.

mod blur;
mod crop;
mod fill;
mod frame;
mod line;
mod paste;
mod resize;
mod sketch;
pub mod yuv;

pub use blur::{BlurScratch, GAUSS_KERNEL, GAUSS_RADIUS, gaussian_blur_region};
pub use crop::{bgr_to_chw, crop_face, mask_lower_half};
pub use fill::fill_convex_poly;
pub use frame::{ChannelOrder, Image, ImageMut, ImageRef, Rect};
pub use line::line8;
pub use paste::{PasteBack, face_to_u8, paste_face};
pub use resize::{Resizer, resize_bgr_u8};
pub use sketch::{SKETCH_COLOUR, SketchRasteriser, SketchScaling, canvas_size};

/// Errors from the image primitives. Bad geometry is reported, never clamped silently.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image layout: {0}")]
    Layout(&'static str),
    #[error("{what} needs a colour image, got {order:?}")]
    NeedsColour {
        what: &'static str,
        order: ChannelOrder,
    },
    #[error("region {rect:?} is empty or outside the {width}x{height} image")]
    BadRegion {
        rect: Rect,
        width: usize,
        height: usize,
    },
    #[error("expected {expected} values, got {got}")]
    BadLength { expected: usize, got: usize },
    #[error("crop size {width}x{height} cannot be sketched")]
    BadCropSize { width: usize, height: usize },
    #[error("polygon vertex {index} ({x}, {y}) is out of the supported coordinate range")]
    BadVertex { index: usize, x: i64, y: i64 },
}
