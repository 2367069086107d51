//! ONNX Runtime: locating and initialising the shared library, sessions, and the typed model
//! wrappers (landmark generator, renderer stages).
//!
//! `ort` is built with `load-dynamic`: the engine loads `libonnxruntime.so` at run time. The library
//! comes from the pinned `onnxruntime` wheel that `scripts/setup.sh` installs into the project's
//! venv; setup links it to a fixed place so that nothing has to be exported. See [`locate_library`].

pub mod device;
pub mod engine_cache;
pub mod landmark_generator;
pub mod landmark_stages;
mod locate;
pub mod nvidia;
pub mod providers;
pub mod renderer;
mod session;
pub mod tensor;
pub mod winograd_op;

pub use device::{Device, DeviceConfig, MAX_DEVICE_ID, Precision};
pub use landmark_generator::{LandmarkGenerator, LandmarkInput, LandmarkModel, LandmarkOutput};
pub use landmark_stages::StagedLandmarkGenerator;
pub use locate::{LibrarySource, LocatedLibrary, locate_library};
pub use providers::{DeviceError, Resolution};
pub use session::{
    BorrowedTensor, BoundInput, ModelSession, OutputBuffers, SessionConfig, SessionError,
};
pub use tensor::{DeviceTensor, Placement};

use std::sync::OnceLock;

/// Errors from the runtime layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found. Looked in: {searched}. Run `scripts/setup.sh` (it installs the pinned \
         onnxruntime wheel and links libonnxruntime.so), or set ORT_DYLIB_PATH to a libonnxruntime.so"
    )]
    LibraryNotFound { searched: String },
    #[error("could not load ONNX Runtime from {path}: {message}")]
    LoadFailed { path: String, message: String },
}

// The environment must outlive every session; `ort` only keeps a weak reference, so we hold it here.
static INIT: OnceLock<Result<(LocatedLibrary, ort::environment::Environment), RuntimeError>> =
    OnceLock::new();

/// Loads ONNX Runtime once per process and returns where it came from.
///
/// Safe to call from many threads and many times; the first call decides.
pub fn init() -> Result<LocatedLibrary, RuntimeError> {
    let result = INIT.get_or_init(|| {
        let lib = locate_library()?;
        let failed = |message: String| RuntimeError::LoadFailed {
            path: lib.path.display().to_string(),
            message,
        };
        // `init_from` dlopens the library and checks its API version; a wrong file gives an error here.
        let builder = ort::init_from(&lib.path).map_err(|e| failed(e.to_string()))?;
        let env = builder
            .with_name("iplap")
            .build()
            .map_err(|e| failed(format!("cannot create the environment: {e}")))?;
        Ok((lib, env))
    });
    match result {
        Ok((lib, _)) => Ok(lib.clone()),
        Err(e) => Err(e.clone()),
    }
}

/// The process-wide ONNX Runtime environment (after [`init`]), for building sessions.
pub(crate) fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    init()?;
    match INIT.get() {
        Some(Ok((_, env))) => Ok(env),
        _ => Err(RuntimeError::LoadFailed {
            path: "libonnxruntime".into(),
            message: "ONNX Runtime is not initialised".into(),
        }),
    }
}

/// The loaded ONNX Runtime's version (e.g. "1.31.1"), after [`init`].
pub fn version() -> Result<String, RuntimeError> {
    let lib = init()?;
    let failed = |message: String| RuntimeError::LoadFailed {
        path: lib.path.display().to_string(),
        message,
    };
    // SAFETY: the library is already loaded (this only takes another reference), and
    // `OrtGetApiBase`/`GetVersionString` are ONNX Runtime's stable C entry points, whose string
    // lives as long as the library.
    unsafe {
        let handle = libloading::Library::new(&lib.path).map_err(|e| failed(e.to_string()))?;
        let base = handle
            .get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase\0")
            .map_err(|e| failed(e.to_string()))?();
        if base.is_null() {
            return Err(failed("OrtGetApiBase returned null".into()));
        }
        let version = ((*base).GetVersionString)();
        Ok(std::ffi::CStr::from_ptr(version)
            .to_string_lossy()
            .into_owned())
    }
}
