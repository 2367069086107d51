//! The kernels on a GPU: every family compiled for the device's exact architecture (through the
//! on-disk [`KernelCache`]), loaded into the device's primary context, launched on one stream.
//!
//! Nothing here runs without a driver: [`GpuKernels::load`] checks for one first (cudarc panics
//! without `libcuda`), so a machine without a GPU gets [`GpuError::Driver`], never a crash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};
use cudarc::nvrtc::Ptx;

use super::nvrtc::{Arch, NvrtcError, nvrtc};
use super::{KERNELS, KernelCache};
use crate::runtime::nvidia::{self, DriverProblem};

/// Why the kernels cannot run, or a launch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    #[error(transparent)]
    Driver(#[from] DriverProblem),
    #[error("GPU {0} does not exist (device-id out of range)")]
    NoSuchGpu(u32),
    #[error(transparent)]
    Nvrtc(#[from] NvrtcError),
    #[error("CUDA {what}: {error}")]
    Cuda { what: String, error: String },
    #[error("kernel input: {0}")]
    Input(String),
}

impl GpuError {
    /// A driver call's failure, named for what was being done.
    pub fn cuda(what: impl Into<String>) -> impl FnOnce(DriverError) -> GpuError {
        let what = what.into();
        move |e| GpuError::Cuda {
            what,
            error: e.to_string(),
        }
    }
}

/// Every kernel family, loaded on one GPU, with the stream they run on.
#[derive(Debug)]
pub struct GpuKernels {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: Arch,
    modules: HashMap<&'static str, Arc<CudaModule>>,
    /// Entry points looked up so far: launchers ask per launch, the driver is asked once.
    functions: Mutex<HashMap<(String, String), CudaFunction>>,
}

impl GpuKernels {
    /// Compiles (or loads from `cache`) and loads every family for GPU `ordinal`, on a new stream.
    pub fn load(ordinal: u32, cache: &KernelCache) -> Result<Self, GpuError> {
        let gpu = nvidia::driver()?
            .gpus
            .iter()
            .find(|g| g.index == ordinal)
            .ok_or(GpuError::NoSuchGpu(ordinal))?;
        let (major, minor) = gpu.compute_capability;
        let arch = Arch(major, minor);
        let ctx = CudaContext::new(ordinal as usize).map_err(GpuError::cuda("context"))?;
        let stream = ctx.new_stream().map_err(GpuError::cuda("stream"))?;
        Self::on_stream(stream, arch, cache)
    }

    /// The same on a caller's stream (the renderer's, so kernels and networks are ordered).
    pub fn on_stream(
        stream: Arc<CudaStream>,
        arch: Arch,
        cache: &KernelCache,
    ) -> Result<Self, GpuError> {
        let nvrtc = nvrtc()?;
        let ctx = stream.context().clone();
        let mut modules = HashMap::new();
        for unit in &KERNELS {
            let cubin = cache.get_or_compile(nvrtc, unit, arch)?;
            let module = ctx
                .load_module(Ptx::from_binary(cubin.bytes))
                .map_err(GpuError::cuda(format!("loading the {} kernels", unit.name)))?;
            modules.insert(unit.name, module);
        }
        Ok(GpuKernels {
            ctx,
            stream,
            arch,
            modules,
            functions: Mutex::default(),
        })
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The entry point `name` of `family`.
    pub fn function(&self, family: &str, name: &str) -> Result<CudaFunction, GpuError> {
        let key = (family.to_owned(), name.to_owned());
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = functions.get(&key) {
            return Ok(f.clone());
        }
        let module = self
            .modules
            .get(family)
            .ok_or_else(|| GpuError::Input(format!("no kernel family {family}")))?;
        let f = module
            .load_function(name)
            .map_err(GpuError::cuda(format!("entry point {name}")))?;
        functions.insert(key, f.clone());
        Ok(f)
    }
}
