//! Face landmarks: IP_LAP's index sets and the geometry derived from MediaPipe FaceMesh landmarks
//! (spec §1.4, §3).

pub mod crop_box;
pub mod indices;

// Face tracking (MediaPipe face detector + attention face mesh), see `tracker.rs`.
pub mod convert;
pub mod detector;
pub mod image_to_tensor;
pub mod mesh;
pub mod prepare;
pub mod roi;
pub mod tflite;
pub mod tracker;
