//! Errors of the checkpoint reader. Every message names the file (in [`CheckpointError`]) and says
//! what was expected and what was found (in [`FormatError`]), because the person reading it is
//! usually holding a checkpoint from somewhere else and needs to know whether it is the wrong
//! file, a damaged file or a format we do not read.

use std::path::PathBuf;

/// Reading a checkpoint failed.
///
/// Each message is whole: it includes its cause, so the cause is deliberately *not* also
/// returned by [`std::error::Error::source`] — error reporters (`anyhow`'s `{:#}`) print the
/// source chain after the message, and the cause would appear twice. [`Self::format_problem`]
/// and the `error` field give the cause to code that needs it.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("cannot read checkpoint `{}`: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file was read but its content is not what a checkpoint of the detected format holds.
    #[error("checkpoint `{}` is not a valid {expected}: {problem}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What we were reading it as (e.g. "PyTorch zip checkpoint").
        expected: &'static str,
        /// What was wrong.
        problem: FormatError,
    },
}

impl CheckpointError {
    /// The underlying format problem, if this is not an I/O error.
    pub fn format_problem(&self) -> Option<&FormatError> {
        match self {
            CheckpointError::Format { problem, .. } => Some(problem),
            CheckpointError::Io { .. } => None,
        }
    }
}

/// What is wrong inside a checkpoint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    /// The first bytes match none of the formats we read.
    #[error(
        "unrecognised file signature {found}: expected a zip archive (`PK\\x03\\x04`), a legacy \
         torch.save stream (`\\x80\\x02\\x8a\\x0a` + magic number) or a safetensors header"
    )]
    UnknownMagic {
        /// Hex of the first bytes.
        found: String,
    },
    /// A format we recognise but deliberately do not read.
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// The data ends before a record that the structure promises.
    #[error("truncated: {what} needs {needed} bytes, only {available} available")]
    Truncated {
        /// The record being read.
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// Bytes actually there.
        available: u64,
    },
    /// The pickle stream is malformed or uses an opcode outside the subset `torch.save` writes.
    #[error("pickle error at byte {offset}: {message}")]
    Pickle {
        /// Offset of the opcode in the pickle.
        offset: usize,
        /// What went wrong.
        message: String,
    },
    /// The pickle names a Python callable outside the allowlist. We never import anything; this
    /// is how a malicious or non-`state_dict` checkpoint shows up.
    #[error(
        "pickle references `{module}.{name}`, which is not in the allowlist (collections.OrderedDict, \
         torch._utils._rebuild_tensor_v2/_rebuild_parameter, torch.*Storage): refusing to load it"
    )]
    ForbiddenGlobal {
        /// Module part of the global.
        module: String,
        /// Name part of the global.
        name: String,
    },
    /// A value has the wrong shape for its place (e.g. a state-dict value that is not a tensor).
    #[error("{context}: expected {expected}, found {found}")]
    Structure {
        /// Where in the structure.
        context: String,
        /// What belongs there.
        expected: String,
        /// What is there.
        found: String,
    },
    /// A record that the format requires is absent.
    #[error("missing record `{0}`")]
    MissingRecord(String),
    /// A size or count exceeds the reader's safety limits (or overflows).
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// What was being counted.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A tensor view reaches outside its storage, or its geometry is inconsistent.
    #[error("tensor `{key}`: {detail}")]
    View {
        /// State-dict key of the tensor.
        key: String,
        /// What is inconsistent.
        detail: String,
    },
    /// The zip container itself is damaged.
    #[error("zip container: {0}")]
    Zip(String),
    /// The safetensors container is damaged.
    #[error("safetensors container: {0}")]
    Safetensors(String),
}

impl FormatError {
    pub(crate) fn structure(
        context: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> FormatError {
        FormatError::Structure {
            context: context.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn limit(what: impl Into<String>, limit: u64) -> FormatError {
        FormatError::Limit {
            what: what.into(),
            limit,
        }
    }

    pub(crate) fn truncated(what: impl Into<String>, needed: u64, available: u64) -> FormatError {
        FormatError::Truncated {
            what: what.into(),
            needed,
            available,
        }
    }
}
