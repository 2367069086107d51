//! Reading the official IP_LAP checkpoints (`.pth`) without Python, and checking them against the
//! two network architectures (spec §5.3, §6, appendices A and B).
//!
//! Why a reader of our own: the official weights ship as `torch.save` files, which are pickles,
//! and unpickling in Python can run arbitrary code. This reader never imports or calls anything:
//! a small pickle VM (`pickle.rs`) understands exactly the objects a
//! `state_dict` checkpoint contains and refuses every other global by name. Hostile or damaged
//! input yields a [`CheckpointError`], never a panic, and every allocation is bounded by checks
//! against the data actually present.
//!
//! * [`load_checkpoint`] — detects the format by its magic bytes: the zip format (PyTorch ≥ 1.6,
//!   the official files), the legacy stream format, or safetensors; returns a [`StateDict`]
//!   (ordered, tensors contiguous, floats as `f32`) with the file's SHA-256 in
//!   [`StateDict::source`] for the model package manifest.
//! * [`validate`] — checks a [`StateDict`] against [`Network::LandmarkGenerator`] or
//!   [`Network::Renderer`] and lists every missing, unexpected and mis-shaped key and every
//!   tensor with NaN or infinite values in one error (and recognises the other network's file).
//!
//! ```no_run
//! use iplap::checkpoint::{Network, load_checkpoint, validate};
//! let sd = load_checkpoint("landmarkgenerator_checkpoint.pth")?;
//! let weights = validate(&sd, Network::LandmarkGenerator)?;
//! println!("{} tensors, sha256 {}", weights.len(), sd.source().unwrap().sha256_hex());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod legacy;
mod pickle;
mod safetensors;
mod tensor;
mod torch;
mod validate;
mod weight_source;
mod zip_format;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use error::{CheckpointError, FormatError};
pub use tensor::{
    CheckpointFormat, CheckpointSource, DType, MetaValue, StateDict, Tensor, TensorData,
    TensorError,
};
pub use validate::{
    Manifest, ManifestCheck, ManifestEntry, Network, NonFinite, ValidatedStateDict,
    ValidationError, ValidationReport, validate,
};

impl CheckpointFormat {
    /// What a file of this format is, for error messages.
    pub fn description(self) -> &'static str {
        match self {
            CheckpointFormat::TorchZip => "PyTorch zip checkpoint",
            CheckpointFormat::TorchLegacy => "legacy PyTorch checkpoint",
            CheckpointFormat::Safetensors => "safetensors file",
        }
    }
}

/// What we say we expected when the magic bytes match nothing.
const ANY_FORMAT: &str = "checkpoint (PyTorch .pth zip or legacy format, or safetensors)";

/// Bytes of the file head that [`detect_format`] looks at.
pub const MAGIC_LEN: usize = 512;

/// Identifies the container format from the first bytes of a file (at most [`MAGIC_LEN`]) and
/// its total length.
pub fn detect_format(head: &[u8], len: u64) -> Result<CheckpointFormat, FormatError> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(CheckpointFormat::TorchZip);
    }
    if head.len() >= 14
        && head[0] == 0x80
        && head[2..4] == [0x8a, 0x0a]
        && head[4..14] == legacy::MAGIC
    {
        return Ok(CheckpointFormat::TorchLegacy);
    }
    if head.get(257..262) == Some(b"ustar") {
        return Err(FormatError::Unsupported(
            "tar-based torch.save checkpoint (PyTorch < 0.4); load and re-save it with a newer \
             PyTorch"
                .into(),
        ));
    }
    if head.len() >= 9 {
        let mut n = [0u8; 8];
        n.copy_from_slice(&head[..8]);
        let n = u64::from_le_bytes(n);
        if head[8] == b'{' && n >= 2 && n <= len.saturating_sub(8) {
            return Ok(CheckpointFormat::Safetensors);
        }
    }
    let found = head
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    Err(FormatError::UnknownMagic {
        found: if found.is_empty() {
            "(empty file)".into()
        } else {
            found
        },
    })
}

/// Reads a checkpoint file: format by magic bytes, SHA-256 of the whole file, then the tensors of
/// its `state_dict` (the `"state_dict"` entry, or the top-level dict when that is itself a state
/// dict). Optimizer state and other entries are parsed safely and dropped; scalar top-level
/// entries are kept in [`StateDict::metadata`].
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<StateDict, CheckpointError> {
    let path = path.as_ref();
    let io = |error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();

    // One streaming pass for the hash (and the head), so that a large zip checkpoint is never
    // held in memory whole; the zip reader then seeks to the records it needs.
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(MAGIC_LEN);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        if head.len() < MAGIC_LEN {
            let take = (MAGIC_LEN - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
    }
    let sha256 = digest(hasher);
    let format = detect_format(&head, len).map_err(|problem| CheckpointError::Format {
        path: path.to_path_buf(),
        expected: ANY_FORMAT,
        problem,
    })?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let parsed = match format {
        CheckpointFormat::TorchZip => zip_format::read(BufReader::new(file), len),
        CheckpointFormat::TorchLegacy | CheckpointFormat::Safetensors => {
            let mut data = Vec::new();
            file.take(len).read_to_end(&mut data).map_err(io)?;
            parse_in_memory(format, &data)
        }
    };
    finish(parsed, path.to_path_buf(), sha256, len, format)
}

/// [`load_checkpoint`] for bytes already in memory; `label` stands in for the file name in
/// errors and in [`StateDict::source`].
pub fn load_checkpoint_bytes(
    data: &[u8],
    label: impl Into<PathBuf>,
) -> Result<StateDict, CheckpointError> {
    let path = label.into();
    let len = data.len() as u64;
    let head = &data[..data.len().min(MAGIC_LEN)];
    let format = detect_format(head, len).map_err(|problem| CheckpointError::Format {
        path: path.clone(),
        expected: ANY_FORMAT,
        problem,
    })?;
    let mut hasher = Sha256::new();
    hasher.update(data);
    let parsed = match format {
        CheckpointFormat::TorchZip => zip_format::read(Cursor::new(data), len),
        _ => parse_in_memory(format, data),
    };
    finish(parsed, path, digest(hasher), len, format)
}

fn parse_in_memory(format: CheckpointFormat, data: &[u8]) -> Result<StateDict, FormatError> {
    match format {
        CheckpointFormat::TorchZip => zip_format::read(Cursor::new(data), data.len() as u64),
        CheckpointFormat::TorchLegacy => legacy::read(data),
        CheckpointFormat::Safetensors => safetensors::read(data),
    }
}

fn digest(hasher: Sha256) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&hasher.finalize());
    out
}

fn finish(
    parsed: Result<StateDict, FormatError>,
    path: PathBuf,
    sha256: [u8; 32],
    len: u64,
    format: CheckpointFormat,
) -> Result<StateDict, CheckpointError> {
    match parsed {
        Ok(mut sd) => {
            sd.set_source(CheckpointSource {
                path,
                sha256,
                len,
                format,
            });
            Ok(sd)
        }
        Err(problem) => Err(CheckpointError::Format {
            path,
            expected: format.description(),
            problem,
        }),
    }
}

/// Fuzzing entry point for the pickle reader: runs `data` as a `data.pkl`, extracts the state
/// dict and materialises its tensors against zero-filled stand-in storages (so the view
/// arithmetic is exercised too). Returns the number of tensors. Public only for `fuzz/`.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) -> Result<usize, FormatError> {
    let pickled = pickle::unpickle(data)?;
    let raw = torch::extract_state_dict(&pickled)?;
    let mut storages = ZeroStorages {
        cache: HashMap::new(),
        budget: 16 << 20,
    };
    let mut budget = torch::ElementBudget::for_input_len(data.len() as u64);
    let sd = torch::materialise_all(raw, &mut storages, true, &mut budget)?;
    Ok(sd.len())
}

/// Stand-in storages for [`fuzz_parse`]: zeroes of the declared size, within a byte budget.
struct ZeroStorages {
    cache: HashMap<String, Vec<u8>>,
    budget: usize,
}

impl torch::StorageSource for ZeroStorages {
    fn bytes(&mut self, s: &pickle::StorageRef) -> Result<&[u8], FormatError> {
        let need = s
            .numel
            .checked_mul(s.dtype.size())
            .filter(|&n| n <= self.budget)
            .ok_or_else(|| FormatError::limit("fuzz stand-in storage bytes", self.budget as u64))?;
        if !self.cache.contains_key(&s.key) {
            self.budget -= need;
            self.cache.insert(s.key.clone(), vec![0; need]);
        }
        Ok(&self.cache[&s.key])
    }
}
