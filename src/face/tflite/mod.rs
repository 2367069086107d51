//! A defensive reader for the `.tflite` files of MediaPipe's face models.
//!
//! * [`flatbuf`]: bounded FlatBuffers table access (no verifier, every read checked).
//! * [`model`]: the schema subset (tensors, operators, buffers, fp16 constants).
//! * [`flexbuf`]: FlexBuffer maps (custom operator options).
//!
//! Nothing here panics on a damaged or hostile file: errors are [`TfliteError`].

pub mod flatbuf;
pub mod flexbuf;
pub mod model;

pub use model::{Model, Operator, Tensor, TensorType, builtin};

/// Errors from reading a `.tflite` file.
#[derive(Debug, thiserror::Error)]
pub enum TfliteError {
    /// The bytes are not a well-formed TFLite FlatBuffer (or use a feature this reader lacks).
    #[error("malformed TFLite model: {0}")]
    Malformed(String),
}
