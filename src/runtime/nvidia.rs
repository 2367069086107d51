//! What this machine has for NVIDIA GPUs: the driver and its GPUs, the CUDA libraries ONNX
//! Runtime's CUDA provider links, TensorRT and the TensorRT-RTX provider library.
//!
//! Everything here *probes*: it loads libraries and asks, and answers with a reason when
//! something is missing. cudarc panics when `libcuda` is absent, so the driver is looked for
//! first, and every driver call runs under `catch_unwind` (an older driver lacking a CUDA 13
//! entry point is a reason, not a crash).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One GPU as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpu {
    /// CUDA ordinal (the `device-id`).
    pub index: u32,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// Device memory in bytes.
    pub memory_bytes: u64,
}

/// The NVIDIA driver and its GPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Driver {
    /// CUDA version the driver supports (e.g. (13, 0)).
    pub cuda_version: (u32, u32),
    /// The GPUs, by ordinal.
    pub gpus: Vec<Gpu>,
}

/// Why no GPU can be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverProblem {
    /// `libcuda.so.1` does not load.
    #[error(
        "no NVIDIA driver: libcuda.so.1 cannot be loaded (install the NVIDIA driver, or in a \
         container run with the NVIDIA container toolkit)"
    )]
    NoDriver,
    /// The driver loaded but did not initialise.
    #[error("the NVIDIA driver did not initialise: {0}")]
    InitFailed(String),
    /// The driver sees no GPU.
    #[error("the NVIDIA driver is installed but sees no GPU (CUDA_ERROR_NO_DEVICE)")]
    NoDevice,
}

/// The driver and GPUs, probed once per process.
pub fn driver() -> Result<&'static Driver, DriverProblem> {
    static DRIVER: OnceLock<Result<Driver, DriverProblem>> = OnceLock::new();
    DRIVER
        .get_or_init(probe_driver)
        .as_ref()
        .map_err(Clone::clone)
}

/// The GPU with CUDA ordinal `index`.
pub fn gpu(index: u32) -> Result<&'static Gpu, String> {
    let driver = driver().map_err(|e| e.to_string())?;
    driver.gpus.get(index as usize).ok_or_else(|| {
        format!(
            "device-id={index}: this machine has {} GPU(s) (0-{})",
            driver.gpus.len(),
            driver.gpus.len().saturating_sub(1)
        )
    })
}

fn probe_driver() -> Result<Driver, DriverProblem> {
    // SAFETY: only tries to dlopen the library by its usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(DriverProblem::NoDriver);
    }
    let probed = std::panic::catch_unwind(|| -> Result<Driver, DriverProblem> {
        use cudarc::driver::result;
        use cudarc::driver::sys::CUdevice_attribute as A;
        match result::init() {
            Ok(()) => {}
            Err(e) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => {
                return Err(DriverProblem::NoDevice);
            }
            Err(e) => return Err(DriverProblem::InitFailed(format!("{e:?}"))),
        }
        let mut version = 0i32;
        // SAFETY: a plain out-parameter call on an initialised driver.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
        let count =
            result::device::get_count().map_err(|e| DriverProblem::InitFailed(format!("{e:?}")))?;
        if count <= 0 {
            return Err(DriverProblem::NoDevice);
        }
        let mut gpus = Vec::new();
        for index in 0..count {
            let dev = result::device::get(index)
                .map_err(|e| DriverProblem::InitFailed(format!("{e:?}")))?;
            let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown GPU".into());
            // SAFETY: `dev` came from `device::get`.
            let attr = |a| unsafe { result::device::get_attribute(dev, a) }.unwrap_or(0);
            let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
            let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
            // SAFETY: as above.
            let memory = unsafe { result::device::total_mem(dev) }.unwrap_or(0);
            gpus.push(Gpu {
                index: index as u32,
                name,
                compute_capability: (major.max(0) as u32, minor.max(0) as u32),
                memory_bytes: memory as u64,
            });
        }
        Ok(Driver {
            cuda_version: ((version / 1000) as u32, ((version % 1000) / 10) as u32),
            gpus,
        })
    });
    probed.unwrap_or_else(|_| {
        Err(DriverProblem::InitFailed(
            "the driver lacks a CUDA 13 entry point (update the NVIDIA driver to 580 or newer)"
                .into(),
        ))
    })
}

/// Bytes of GPU `ordinal`'s memory in use (by every process), or `None` without a driver or that
/// GPU.
pub fn memory_in_use(ordinal: u32) -> Option<u64> {
    gpu(ordinal).ok()?;
    let ctx = std::panic::catch_unwind(|| cudarc::driver::CudaContext::new(ordinal as usize))
        .ok()?
        .ok()?;
    let (free, total) = ctx.mem_get_info().ok()?;
    Some(total.saturating_sub(free) as u64)
}

/// A CUDA stream shared by the sessions of one model, so that a frame's stages queue on one
/// stream in order, with no device-wide synchronisation between them (ONNX Runtime's
/// `user_compute_stream`). Created on the primary context, the one ONNX Runtime uses.
#[derive(Clone)]
pub struct ComputeStream(std::sync::Arc<cudarc::driver::CudaStream>);

impl ComputeStream {
    /// A new stream on GPU `ordinal`; an error (never a panic) without a driver or that GPU.
    pub fn new(ordinal: u32) -> Result<Self, String> {
        gpu(ordinal)?;
        std::panic::catch_unwind(|| {
            cudarc::driver::CudaContext::new(ordinal as usize).and_then(|ctx| ctx.new_stream())
        })
        .map_err(|_| "the CUDA driver panicked creating a stream".to_owned())?
        .map(ComputeStream)
        .map_err(|e| format!("cannot create a CUDA stream on GPU {ordinal}: {e:?}"))
    }

    /// The cudarc stream, for our own kernels (ordered with the sessions' work on it).
    pub(crate) fn cuda(&self) -> &std::sync::Arc<cudarc::driver::CudaStream> {
        &self.0
    }

    /// The raw `CUstream`, for ONNX Runtime's provider options.
    pub(crate) fn raw(&self) -> *mut () {
        self.0.cu_stream() as *mut ()
    }
}

impl PartialEq for ComputeStream {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ComputeStream {}

impl std::fmt::Debug for ComputeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComputeStream({:p})", self.raw())
    }
}

/// Whether the TensorRT-RTX provider supports a GPU of this compute capability (its own rule:
/// 8.6, 8.9 and 12.0 or newer: GeForce RTX 30/40/50, RTX PRO, L4, L40).
pub fn tensorrt_rtx_supports(cc: (u32, u32)) -> bool {
    matches!(cc, (8, 6) | (8, 9)) || cc.0 >= 12
}

/// The loaded TensorRT's version (e.g. "10.9.0"), or why TensorRT cannot be used.
pub fn tensorrt_version() -> Result<String, String> {
    const LIB: &str = "libnvinfer.so.10";
    // SAFETY: loading TensorRT runs only its initialisers; the handle is kept for the process
    // (ONNX Runtime's provider loads it again by name).
    let lib = unsafe { libloading::Library::new(LIB) }.map_err(|_| {
        format!(
            "TensorRT 10 is not installed: {LIB} cannot be loaded. Install TensorRT 10 from \
             NVIDIA (https://developer.nvidia.com/tensorrt, the tar or deb packages for CUDA 13) \
             and make its lib folder findable (ldconfig or LD_LIBRARY_PATH), or use device=cuda"
        )
    })?;
    // SAFETY: `getInferLibVersion` is `int32_t (void)` in every TensorRT 10.
    let version = unsafe {
        lib.get::<unsafe extern "C" fn() -> i32>(b"getInferLibVersion\0")
            .map(|f| f())
            .map_err(|e| format!("{LIB} has no getInferLibVersion: {e}"))?
    };
    std::mem::forget(lib);
    // TensorRT 10 encodes major * 10000 + minor * 100 + patch.
    Ok(format!(
        "{}.{}.{}",
        version / 10000,
        (version / 100) % 100,
        version % 100
    ))
}

/// The CUDA libraries the CUDA provider links or opens, in the order they must be loaded (each
/// after what it links). cuDNN finds its own sub-libraries (its RUNPATH is `$ORIGIN`).
pub const CUDA_LIBRARIES: [&str; 6] = [
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcurand.so.10",
    "libcufft.so.12",
    "libcudnn.so.9",
];

/// Folders where pip's NVIDIA wheels put the CUDA libraries, found from the ONNX Runtime library
/// (`site-packages/onnxruntime/capi/libonnxruntime.so*` → `site-packages/nvidia/*/lib`).
pub fn wheel_library_dirs(ort_library: &Path) -> Vec<PathBuf> {
    let real = std::fs::canonicalize(ort_library).unwrap_or_else(|_| ort_library.to_path_buf());
    let Some(site) = real.ancestors().find(|a| a.join("nvidia").is_dir()) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(site.join("nvidia"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("lib"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Loads the CUDA libraries (globally, so the provider's own `dlopen`s resolve to them) from
/// pip's wheels beside ONNX Runtime, else by name. Returns the ones that could not be loaded.
pub fn preload_cuda_libraries(ort_library: &Path) -> Vec<&'static str> {
    static MISSING: OnceLock<Vec<&'static str>> = OnceLock::new();
    MISSING
        .get_or_init(|| {
            let dirs = wheel_library_dirs(ort_library);
            CUDA_LIBRARIES
                .into_iter()
                .filter(|name| {
                    let candidates = dirs
                        .iter()
                        .map(|d| d.join(name))
                        .filter(|p| p.is_file())
                        .chain(std::iter::once(PathBuf::from(name)));
                    let loaded = candidates.into_iter().any(|p| load_global(&p));
                    !loaded
                })
                .collect()
        })
        .clone()
}

fn load_global(path: &Path) -> bool {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading a CUDA library runs only its initialisers; the handle is leaked on purpose
    // so the symbols stay for the process.
    match unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) } {
        Ok(lib) => {
            std::mem::forget(lib);
            true
        }
        Err(_) => false,
    }
}

/// The ONNX Runtime provider library `name` beside `ort_library`, if present.
pub fn provider_library(ort_library: &Path, name: &str) -> Option<PathBuf> {
    let real = std::fs::canonicalize(ort_library).unwrap_or_else(|_| ort_library.to_path_buf());
    [real.parent(), ort_library.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The CUDA provider's library in the GPU build of ONNX Runtime.
pub const CUDA_PROVIDER_LIBRARY: &str = "libonnxruntime_providers_cuda.so";
/// The TensorRT provider's library in the GPU build of ONNX Runtime.
pub const TENSORRT_PROVIDER_LIBRARY: &str = "libonnxruntime_providers_tensorrt.so";
/// The NvTensorRTRTX plugin provider's library (wheel `onnxruntime-ep-nv-tensorrt-rtx-cu13`).
pub const TENSORRT_RTX_PROVIDER_LIBRARY: &str = "libonnxruntime_providers_nv_tensorrt_rtx.so";

/// The TensorRT-RTX plugin provider library: `IPLAP_TENSORRT_RTX_EP`, else the wheel's package
/// folder in the `site-packages` that holds ONNX Runtime.
pub fn tensorrt_rtx_library(ort_library: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("IPLAP_TENSORRT_RTX_EP").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "IPLAP_TENSORRT_RTX_EP={} is not a file",
                p.display()
            ))
        };
    }
    let real = std::fs::canonicalize(ort_library).unwrap_or_else(|_| ort_library.to_path_buf());
    // `site-packages/onnxruntime/capi/` (a venv) or `.venv/gpu/onnxruntime/capi/` (setup's
    // `pip --target`): the wheel's package folder is a sibling of `onnxruntime/`.
    let site = real.ancestors().nth(3).map(Path::to_path_buf);
    let found = site.as_ref().and_then(|site| {
        std::fs::read_dir(site)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("onnxruntime_ep_nv_tensorrt_rtx"))
            })
            .map(|p| p.join(TENSORRT_RTX_PROVIDER_LIBRARY))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| {
        format!(
            "the TensorRT-RTX provider is not installed ({TENSORRT_RTX_PROVIDER_LIBRARY} not found \
             beside ONNX Runtime{}): run `scripts/setup.sh --gpu`, or set IPLAP_TENSORRT_RTX_EP",
            site.map(|s| format!(" in {}", s.display()))
                .unwrap_or_default()
        )
    })
}

/// Loads what the TensorRT-RTX provider library links from its own wheel folder (the wheel
/// ships versioned file names only, so the loader would not find them by SONAME): its CUDA
/// runtime, TensorRT-RTX and the ONNX parser. Returns the first that failed.
pub fn preload_tensorrt_rtx(provider: &Path) -> Result<(), String> {
    let Some(dir) = provider.parent() else {
        return Ok(());
    };
    for stem in [
        "libcudart.so.",
        "libtensorrt_rtx.so.",
        "libtensorrt_onnxparser_rtx.so.",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(stem))
            })
            .collect();
        files.sort();
        // The CUDA runtime may come from elsewhere (already loaded); TensorRT-RTX may not.
        let required = stem.starts_with("libtensorrt");
        match files.last() {
            Some(f) if !load_global(f) && required => {
                return Err(format!("cannot load {}", f.display()));
            }
            None if required => return Err(format!("no {stem}* in {}", dir.display())),
            _ => {}
        }
    }
    Ok(())
}
