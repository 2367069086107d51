//! ONNX emission: the IP_LAP networks written once, as graphs that ONNX Runtime runs on CPU, CUDA
//! or TensorRT (spec §5, §7).
//!
//! * [`onnx`]: a protobuf writer for ONNX (opset 17, IR 8) and the [`onnx::GraphBuilder`] used by
//!   every network definition.
//! * [`weights`]: the [`weights::WeightSource`] trait (weights by `state_dict` key, shape-checked),
//!   so graph code does not care whether weights come from a `.pth` checkpoint or a formula.
//! * [`landmark_generator`]: the Landmark_generator (spec §5.1).
//! * [`landmark_stages`]: the same network split for streaming (spec §7.2).
//! * [`package`]: the model package on disk (ONNX files + `manifest.json`).

pub mod fp16;
pub mod landmark_generator;
pub mod landmark_stages;
pub mod onnx;
pub mod package;
pub mod renderer;
pub mod target;
pub mod weights;

use std::path::PathBuf;

/// Errors while building, writing or opening model graphs.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// A weight key is not in the source.
    #[error("weight `{key}` not found{context}")]
    MissingWeight {
        /// Full `state_dict` key (without `module.`).
        key: String,
        /// Extra context from the source (e.g. which checkpoint), may be empty.
        context: String,
    },
    /// A weight exists but has a different shape.
    #[error("shape mismatch for `{key}`: expected {expected:?}, found {found:?}")]
    WeightShape {
        /// Full `state_dict` key.
        key: String,
        /// Shape the graph needs.
        expected: Vec<usize>,
        /// Shape in the source.
        found: Vec<usize>,
    },
    /// A weight exists but is not float32.
    #[error("weight `{key}` has dtype {found}, expected float32")]
    WeightDtype {
        /// Full `state_dict` key.
        key: String,
        /// Dtype found in the source.
        found: String,
    },
    /// A builder call got arguments that cannot form a valid node (wrong lengths, unknown value).
    #[error("invalid graph construction: {0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A model package is missing, incomplete, corrupted or of another version. The message is
    /// the cause, then [`package::CONVERT_HINT`] once.
    #[error("model package {path}: {message}; {hint}", hint = package::CONVERT_HINT)]
    Package {
        /// The package folder or the file inside it.
        path: PathBuf,
        /// What is wrong (one line, no hint: callers with a better one can print their own).
        message: String,
    },
}

impl GraphError {
    /// Shorthand for [`GraphError::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        GraphError::Invalid(message.into())
    }
}
