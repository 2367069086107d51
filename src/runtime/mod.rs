//! ONNX Runtime: locating and initialising the shared library, and (later) sessions per model.
//!
//! `ort` is built with `load-dynamic`: the engine loads `libonnxruntime.so` at run time. The library
//! comes from the pinned `onnxruntime` wheel that `scripts/setup.sh` installs into the project's
//! venv; setup links it to a fixed place so that nothing has to be exported. See [`locate_library`].

mod locate;

pub use locate::{LibrarySource, LocatedLibrary, locate_library};

use std::sync::OnceLock;

/// Errors from the runtime layer.
#[derive(Debug, thiserror::Error)]
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
static INIT: OnceLock<Result<(LocatedLibrary, ort::environment::Environment), String>> = OnceLock::new();

/// Loads ONNX Runtime once per process and returns where it came from.
///
/// Safe to call from many threads and many times; the first call decides.
pub fn init() -> Result<LocatedLibrary, RuntimeError> {
    let result = INIT.get_or_init(|| {
        let lib = locate_library().map_err(|e| e.to_string())?;
        // `init_from` dlopens the library and checks its API version; a wrong file gives an error here.
        let builder = ort::init_from(&lib.path)
            .map_err(|e| format!("could not load ONNX Runtime from {}: {e}", lib.path.display()))?;
        let env = builder
            .with_name("iplap")
            .build()
            .map_err(|e| format!("could not create the ONNX Runtime environment: {e}"))?;
        Ok((lib, env))
    });
    match result {
        Ok((lib, _)) => Ok(lib.clone()),
        Err(message) => Err(RuntimeError::LoadFailed {
            path: "libonnxruntime".into(),
            message: message.clone(),
        }),
    }
}
