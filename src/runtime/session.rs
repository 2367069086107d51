//! One ONNX Runtime session per model, with its I/O contract checked at load (STYLE B4) and the
//! execution provider chosen explicitly (STYLE B5).
//!
//! `ort` builder errors are not `Send`/`Sync`; they are turned into strings here, so
//! [`SessionError`] can cross threads and element boundaries.

use std::fmt;
use std::path::Path;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, ValueType};

use super::RuntimeError;
use super::device::{Device, DeviceConfig};
use super::engine_cache::{EngineCacheEntry, EngineKey, EntryState};
use crate::graph::onnx::{DType, Dim, TensorSpec};

mod run;

pub use run::{BorrowedTensor, BoundInput, OutputBuffers};

/// How to build a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Where it runs. `auto` is resolved when the session is built; callers that build several
    /// sessions resolve once first ([`super::providers::resolve`]) and log the choice.
    pub device: DeviceConfig,
    /// Threads used inside one operator; 0 lets ONNX Runtime choose (one per physical core).
    pub intra_threads: usize,
    /// Let idle intra-op threads spin before sleeping (ONNX Runtime's own default). Off by default
    /// here: in a pipeline the cores are shared with decoders, encoders and our other sessions,
    /// and spinning threads then made a 2-thread session 2-3x slower than a 1-thread one.
    pub spin_wait: bool,
    /// The CUDA stream of the CUDA and TensorRT providers; `None`: each session its own. A model
    /// whose stages hand tensors to each other on the device gives them one
    /// ([`super::nvidia::ComputeStream`]).
    pub stream: Option<super::nvidia::ComputeStream>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            device: DeviceConfig::cpu(),
            intra_threads: 0,
            spin_wait: false,
            stream: None,
        }
    }
}

/// Errors of [`ModelSession`].
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// ONNX Runtime itself could not be loaded.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The requested device cannot run here (the error names the missing piece).
    #[error(transparent)]
    Device(#[from] super::providers::DeviceError),
    /// ONNX Runtime rejected the model or an option.
    #[error("model {model}: could not create the ONNX Runtime session: {message}")]
    Build {
        /// Model file or label.
        model: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The model's declared inputs/outputs differ from what the code expects.
    #[error("model {model} does not match its I/O contract: {message} (re-run `iplap convert`)")]
    Contract {
        /// Model file or label.
        model: String,
        /// The difference.
        message: String,
    },
    /// Bad input data (wrong length) or a failed run.
    #[error("model {model}: {message}")]
    Run {
        /// Model file or label.
        model: String,
        /// What went wrong.
        message: String,
    },
}

/// An ONNX Runtime session whose inputs and outputs were checked against a contract.
pub struct ModelSession {
    session: Session,
    /// Kept alive as long as the session that queues work on it (declared after `session`, so
    /// dropped after it).
    _stream: Option<super::nvidia::ComputeStream>,
    model: String,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelSession")
            .field("model", &self.model)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// Builds the session on a resolved device: the providers, then the model.
fn commit(
    env: &ort::environment::Environment,
    source: &Source<'_>,
    inputs: &[TensorSpec],
    config: &SessionConfig,
    device: &DeviceConfig,
    cache: Option<&EngineCacheEntry>,
) -> Result<Session, String> {
    let e = |e: ort::Error| e.to_string();
    let mut builder = Session::builder(env)
        .map_err(e)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|x| x.to_string())?;
    if config.intra_threads > 0 {
        builder = builder
            .with_intra_threads(config.intra_threads)
            .map_err(|x| x.to_string())?;
    }
    if !config.spin_wait {
        builder = builder
            .with_intra_op_spinning(false)
            .map_err(|x| x.to_string())?;
    }
    builder = super::providers::register(builder, device, config.stream.as_ref(), cache, inputs)?;
    // iplap's own operators (the Winograd convolution of the CPU flow head), only for graphs
    // that import their domain: a GPU graph's session then holds no CPU-only operator. ONNX
    // Runtime records a custom domain in a process-wide table with a check-then-insert that
    // fails when two sessions register it at the same time ("the domain is already exist"),
    // so sessions are built one at a time.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    if imports_iplap_domain(source)? {
        let domain = super::winograd_op::domain().map_err(|x| x.to_string())?;
        builder = builder.with_operators(domain).map_err(|x| x.to_string())?;
    }
    match source {
        Source::Bytes(b) => builder.commit_from_memory(b),
        Source::File(p) => builder.commit_from_file(p),
    }
    .map_err(|x| x.to_string())
}

/// The part of an ONNX file that names its operator sets; `prost` skips the graph without
/// copying it.
#[derive(Clone, PartialEq, prost::Message)]
struct OpsetHeader {
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<crate::graph::onnx::proto::OperatorSetIdProto>,
}

/// Whether the model imports iplap's operator domain (`ai.iplap`: the CPU graphs' Winograd
/// convolution). A file is read for it; an unreadable one is left to ONNX Runtime to report.
fn imports_iplap_domain(source: &Source<'_>) -> Result<bool, String> {
    use prost::Message;
    let file;
    let bytes: &[u8] = match source {
        Source::Bytes(b) => b,
        Source::File(p) => match std::fs::read(p) {
            Ok(b) => {
                file = b;
                &file
            }
            Err(_) => return Ok(false),
        },
    };
    let header = OpsetHeader::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))?;
    Ok(header
        .opset_import
        .iter()
        .any(|o| o.domain.as_deref() == Some(super::winograd_op::DOMAIN)))
}

/// The TensorRT engine cache key of a session: the graph, the GPU, TensorRT, precision, shapes.
fn cache_key(
    label: &str,
    source: &Source<'_>,
    inputs: &[TensorSpec],
    device: &DeviceConfig,
) -> Result<EngineKey, String> {
    let onnx_sha256 = match source {
        Source::Bytes(b) => EngineKey::hash_onnx(b),
        Source::File(p) => EngineKey::hash_onnx(
            &std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?,
        ),
    };
    let gpu = super::nvidia::gpu(device.device_id)?;
    let tensorrt_version = match device.device {
        Device::TensorRt => super::nvidia::tensorrt_version()?,
        // The RTX provider bundles its TensorRT-RTX; the library's size tells its builds apart.
        _ => {
            let ort = super::init().map_err(|e| e.to_string())?.path;
            let lib = super::nvidia::tensorrt_rtx_library(&ort)?;
            format!(
                "rtx{}",
                std::fs::metadata(&lib).map(|m| m.len()).unwrap_or(0)
            )
        }
    };
    let stage = Path::new(label)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(label)
        .to_owned();
    let input_shapes = inputs.iter().map(|t| t.shape_text(str::to_owned)).collect();
    Ok(EngineKey {
        stage,
        onnx_sha256,
        gpu_name: gpu.name.clone(),
        compute_capability: gpu.compute_capability,
        tensorrt_version,
        precision: device.precision,
        input_shapes,
    })
}

/// The prepared cache entry for the TensorRT devices; `None` for the others.
fn engine_cache_entry(
    label: &str,
    source: &Source<'_>,
    inputs: &[TensorSpec],
    device: &DeviceConfig,
) -> Result<Option<EngineCacheEntry>, String> {
    if !device.device.builds_engines() {
        return Ok(None);
    }
    let key = cache_key(label, source, inputs, device)?;
    let root = device.engine_cache_dir();
    let entry = EngineCacheEntry::prepare(&root, &key)
        .map_err(|e| format!("engine cache {}: {e}", root.display()))?;
    match entry.state {
        EntryState::Load => log::info!(
            "{label}: loading the cached engine from {}",
            entry.dir.display()
        ),
        EntryState::Build => log::info!(
            "{label}: building the {} engine (minutes on first use; cached in {})",
            device.device,
            entry.dir.display()
        ),
        EntryState::Replaced => log::warn!(
            "{label}: the cached engine in {} was stale or damaged; rebuilding it",
            entry.dir.display()
        ),
    }
    Ok(Some(entry))
}

impl ModelSession {
    /// Builds a session from `.onnx` bytes; `label` names the model in errors.
    pub fn from_bytes(
        label: &str,
        bytes: &[u8],
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
        config: &SessionConfig,
    ) -> Result<Self, SessionError> {
        Self::build(label, Source::Bytes(bytes), inputs, outputs, config)
    }

    /// Builds a session from an `.onnx` file.
    pub fn from_file(
        path: &Path,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
        config: &SessionConfig,
    ) -> Result<Self, SessionError> {
        let label = path.display().to_string();
        Self::build(&label, Source::File(path), inputs, outputs, config)
    }

    fn build(
        label: &str,
        source: Source<'_>,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
        config: &SessionConfig,
    ) -> Result<Self, SessionError> {
        let env = super::environment()?;
        // Cheap after the first time (the probes are cached); an explicit device that cannot
        // run here is refused before ONNX Runtime sees it.
        let device = super::providers::resolve(&config.device)?.config;
        let err = |message: String| SessionError::Build {
            model: label.to_owned(),
            message,
        };
        let mut cache = engine_cache_entry(label, &source, inputs, &device).map_err(err)?;
        let started = std::time::Instant::now();
        let mut session = commit(env, &source, inputs, config, &device, cache.as_ref());
        if let (Err(e), Some(entry)) = (&session, cache.as_mut())
            && entry.state == EntryState::Load
        {
            // A cached engine that no longer loads (truncated, another TensorRT) is rebuilt.
            log::warn!(
                "{label}: the cached TensorRT engine in {} did not load ({e}); rebuilding it",
                entry.dir.display()
            );
            entry
                .discard(&cache_key(label, &source, inputs, &device).map_err(err)?)
                .map_err(|e| err(e.to_string()))?;
            session = commit(env, &source, inputs, config, &device, Some(entry));
        }
        let session = session.map_err(err)?;
        if let Some(entry) = &cache
            && entry.state != EntryState::Load
        {
            log::info!(
                "{label}: built the {} engine in {:.1} s (cached in {})",
                device.device,
                started.elapsed().as_secs_f64(),
                entry.dir.display()
            );
        }
        let s = ModelSession {
            session,
            _stream: config.stream.clone(),
            model: label.to_owned(),
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
        };
        s.check_contract()?;
        Ok(s)
    }

    fn check_contract(&self) -> Result<(), SessionError> {
        let declared_in: Vec<(String, ValueType)> = self
            .session
            .inputs()
            .iter()
            .map(|o| (o.name().to_owned(), o.dtype().clone()))
            .collect();
        let declared_out: Vec<(String, ValueType)> = self
            .session
            .outputs()
            .iter()
            .map(|o| (o.name().to_owned(), o.dtype().clone()))
            .collect();
        for (want, have, what) in [
            (&self.inputs, &declared_in, "input"),
            (&self.outputs, &declared_out, "output"),
        ] {
            for spec in want {
                let Some((_, ty)) = have.iter().find(|(n, _)| *n == spec.name) else {
                    let names: Vec<&str> = have.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(self.contract(format!(
                        "no {what} `{}` (the model has {names:?})",
                        spec.name
                    )));
                };
                check_type(spec, ty)
                    .map_err(|m| self.contract(format!("{what} `{}`: {m}", spec.name)))?;
            }
        }
        if let Some((extra, _)) = declared_in
            .iter()
            .find(|(n, _)| !self.inputs.iter().any(|s| &s.name == n))
        {
            return Err(self.contract(format!("unexpected input `{extra}`")));
        }
        Ok(())
    }

    fn contract(&self, message: String) -> SessionError {
        SessionError::Contract {
            model: self.model.clone(),
            message,
        }
    }

    /// The model file or label.
    pub fn model(&self) -> &str {
        &self.model
    }
}

fn check_type(spec: &TensorSpec, ty: &ValueType) -> Result<(), String> {
    let ValueType::Tensor {
        ty: elem, shape, ..
    } = ty
    else {
        return Err(format!("is not a tensor ({ty:?})"));
    };
    let want = match spec.dtype {
        DType::Float32 => TensorElementType::Float32,
        DType::Int64 => TensorElementType::Int64,
    };
    if *elem != want {
        return Err(format!("element type {elem:?}, expected {want:?}"));
    }
    if shape.len() != spec.shape.len() {
        return Err(format!(
            "rank {} ({:?}), expected {:?}",
            shape.len(),
            &shape[..],
            spec.shape
        ));
    }
    for (have, want) in shape.iter().zip(&spec.shape) {
        if let Dim::Fixed(n) = want
            && *have >= 0
            && *have != *n as i64
        {
            return Err(format!("shape {:?}, expected {:?}", &shape[..], spec.shape));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::onnx::proto::{ModelProto, OperatorSetIdProto};
    use prost::Message;

    fn model(domains: &[&str]) -> Vec<u8> {
        ModelProto {
            opset_import: domains
                .iter()
                .map(|d| OperatorSetIdProto {
                    domain: Some((*d).to_owned()),
                    version: Some(1),
                })
                .collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// Only graphs that import `ai.iplap` get iplap's CPU operator registered.
    #[test]
    fn the_custom_domain_is_registered_only_where_imported() {
        let cpu = model(&["", super::super::winograd_op::DOMAIN]);
        let gpu = model(&[""]);
        assert!(imports_iplap_domain(&Source::Bytes(&cpu)).unwrap());
        assert!(!imports_iplap_domain(&Source::Bytes(&gpu)).unwrap());
        assert!(imports_iplap_domain(&Source::Bytes(b"\xff\xff not onnx")).is_err());
    }
}
