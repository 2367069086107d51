//! The one place where a [`Device`] becomes ONNX Runtime execution providers: what each device
//! needs on this machine, `auto`'s choice, and the registration on a session builder.

use std::path::Path;
use std::sync::OnceLock;

use ort::ep::{self, ExecutionProvider};
use ort::session::builder::SessionBuilder;

use super::device::{Device, DeviceConfig, Precision};
use super::engine_cache::EngineCacheEntry;
use super::nvidia;
use crate::graph::onnx::{Dim, TensorSpec};

/// `auto`'s choice and what it skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The configuration with a concrete device.
    pub config: DeviceConfig,
    /// The devices `auto` tried before its choice, each with why it was skipped.
    pub skipped: Vec<(Device, String)>,
}

impl Resolution {
    /// Whether `auto` fell back to the CPU although a GPU runtime or driver is present (worth a
    /// warning: the user probably expected the GPU). On a plain CPU install it is the normal case.
    pub fn fell_back_from_gpu(&self) -> bool {
        self.config.device == Device::Cpu
            && !self.skipped.is_empty()
            && (nvidia::driver().is_ok() || gpu_runtime_installed())
    }

    /// One line for the log: the choice and the reasons (devices skipped for the same reason,
    /// typically "no NVIDIA driver", share it).
    pub fn describe(&self) -> String {
        let mut s = format!("running on {}", self.config);
        let mut i = 0;
        while i < self.skipped.len() {
            let why = &self.skipped[i].1;
            let same: Vec<String> = self.skipped[i..]
                .iter()
                .take_while(|(_, w)| w == why)
                .map(|(d, _)| d.to_string())
                .collect();
            s.push_str(&format!("; {} skipped: {why}", same.join(", ")));
            i += same.len();
        }
        s
    }
}

/// Why a device cannot be used here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("device={device} cannot run here: {reason}")]
pub struct DeviceError {
    /// The device asked for.
    pub device: Device,
    /// The missing piece, and what to do.
    pub reason: String,
}

/// Makes `config` concrete: an explicit device is checked (the error names the missing piece);
/// `auto` takes the first of tensorrt-rtx, tensorrt, cuda that is usable, else the CPU.
pub fn resolve(config: &DeviceConfig) -> Result<Resolution, DeviceError> {
    if config.device != Device::Auto {
        usable(config.device, config).map_err(|reason| DeviceError {
            device: config.device,
            reason,
        })?;
        config.check().map_err(|reason| DeviceError {
            device: config.device,
            reason,
        })?;
        return Ok(Resolution {
            config: config.clone(),
            skipped: Vec::new(),
        });
    }
    let mut skipped = Vec::new();
    for device in [Device::TensorRtRtx, Device::TensorRt, Device::Cuda] {
        let candidate = DeviceConfig {
            device,
            ..config.clone()
        };
        match usable(device, &candidate).and_then(|()| candidate.check()) {
            Ok(()) => {
                return Ok(Resolution {
                    config: candidate,
                    skipped,
                });
            }
            Err(why) => skipped.push((device, why)),
        }
    }
    let cpu = DeviceConfig {
        device: Device::Cpu,
        // The CPU runs fp32 whatever was asked for a GPU.
        precision: Precision::Fp32,
        ..config.clone()
    };
    Ok(Resolution {
        config: cpu,
        skipped,
    })
}

/// Whether ONNX Runtime's GPU build is the one loaded (it lists the CUDA provider).
pub fn gpu_runtime_installed() -> bool {
    super::init().is_ok() && ep::CUDA::is_available().unwrap_or(false)
}

/// Whether `device` can run here, or the first missing piece.
pub fn usable(device: Device, config: &DeviceConfig) -> Result<(), String> {
    match device {
        Device::Auto => Err("`auto` is resolved, not run".into()),
        Device::Cpu => super::init().map(|_| ()).map_err(|e| e.to_string()),
        Device::Cuda => cuda_usable(config.device_id),
        Device::TensorRt => {
            cuda_usable(config.device_id)?;
            let ort = super::init().map_err(|e| e.to_string())?.path;
            if !ep::TensorRT::is_available().unwrap_or(false)
                || nvidia::provider_library(&ort, nvidia::TENSORRT_PROVIDER_LIBRARY).is_none()
            {
                return Err(format!(
                    "the ONNX Runtime at {} has no TensorRT provider ({} missing)",
                    ort.display(),
                    nvidia::TENSORRT_PROVIDER_LIBRARY
                ));
            }
            nvidia::tensorrt_version().map(|_| ())
        }
        Device::TensorRtRtx => {
            let ort = super::init().map_err(|e| e.to_string())?.path;
            gpu_build(&ort)?;
            nvidia::tensorrt_rtx_library(&ort)?;
            let gpu = nvidia::gpu(config.device_id)?;
            if !nvidia::tensorrt_rtx_supports(gpu.compute_capability) {
                let (major, minor) = gpu.compute_capability;
                return Err(format!(
                    "TensorRT-RTX runs on compute capability 8.6, 8.9 and 12.0 or newer (GeForce \
                     RTX 30/40/50, RTX PRO, L4, L40); GPU {} ({}) is {major}.{minor}: use \
                     device=cuda there",
                    gpu.index, gpu.name
                ));
            }
            Ok(())
        }
    }
}

fn gpu_build(ort: &Path) -> Result<(), String> {
    if !ep::CUDA::is_available().unwrap_or(false)
        || nvidia::provider_library(ort, nvidia::CUDA_PROVIDER_LIBRARY).is_none()
    {
        return Err(format!(
            "the ONNX Runtime at {} is the CPU-only build: run `scripts/setup.sh --gpu` (installs \
             onnxruntime-gpu and NVIDIA's CUDA 13 wheels), or point ORT_DYLIB_PATH at the GPU \
             build's libonnxruntime.so",
            ort.display()
        ));
    }
    Ok(())
}

fn cuda_usable(device_id: u32) -> Result<(), String> {
    let ort = super::init().map_err(|e| e.to_string())?.path;
    gpu_build(&ort)?;
    nvidia::gpu(device_id)?;
    let missing = nvidia::preload_cuda_libraries(&ort);
    if !missing.is_empty() {
        return Err(format!(
            "CUDA 13 libraries missing: {} (`scripts/setup.sh --gpu` installs NVIDIA's wheels \
             beside ONNX Runtime; or add their folders to LD_LIBRARY_PATH)",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// Adds the providers of a (resolved) device to a session builder. `cache` is the TensorRT
/// engine cache entry of this session, for the TensorRT devices.
pub(crate) fn register(
    builder: SessionBuilder,
    config: &DeviceConfig,
    stream: Option<&nvidia::ComputeStream>,
    cache: Option<&EngineCacheEntry>,
    inputs: &[TensorSpec],
) -> Result<SessionBuilder, String> {
    let id = config.device_id;
    let cuda = || {
        let mut cuda = ep::CUDA::default()
            .with_device_id(id as i32)
            // TF32 only when asked: fp32 is the parity setting.
            .with_tf32(config.precision == Precision::Tf32);
        if let Some(stream) = stream {
            // SAFETY: the stream outlives the session, which holds a clone of it.
            cuda = unsafe { cuda.with_compute_stream(stream.raw()) };
        }
        cuda.build().error_on_failure()
    };
    let result = match config.device {
        Device::Auto => return Err("device=auto must be resolved before sessions are built".into()),
        Device::Cpu => return Ok(builder),
        // fp16 on CUDA comes from the graphs (the package's `_fp16` stages), not the provider.
        Device::Cuda => builder.with_execution_providers([cuda()]),
        Device::TensorRt => {
            let mut trt = ep::TensorRT::default()
                .with_device_id(id as i32)
                .with_fp16(config.precision == Precision::Fp16)
                .with_timing_cache(true);
            if let Some(stream) = stream {
                // SAFETY: as for the CUDA provider above.
                trt = unsafe { trt.with_compute_stream(stream.raw()) };
            }
            if let Some(entry) = cache {
                let dir = entry.dir.display().to_string();
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(&dir)
                    .with_timing_cache_path(&dir);
            }
            if let Some([min, opt, max]) = profile_shapes(inputs) {
                trt = trt
                    .with_profile_min_shapes(min)
                    .with_profile_opt_shapes(opt)
                    .with_profile_max_shapes(max);
            }
            // CUDA takes whatever TensorRT does not.
            builder.with_execution_providers([trt.build().error_on_failure(), cuda()])
        }
        Device::TensorRtRtx => {
            let env = super::environment().map_err(|e| e.to_string())?;
            register_tensorrt_rtx_library(env)?;
            let mut options = vec![(format!("{}.device_id", ep::NVRTX::NAME), id.to_string())];
            if let Some(entry) = cache {
                options.push((
                    format!("{}.nv_runtime_cache_path", ep::NVRTX::NAME),
                    entry.dir.display().to_string(),
                ));
            }
            if let Some(shapes) = profile_shapes(inputs) {
                for (key, value) in [
                    "nv_profile_min_shapes",
                    "nv_profile_opt_shapes",
                    "nv_profile_max_shapes",
                ]
                .into_iter()
                .zip(shapes)
                {
                    options.push((format!("{}.{key}", ep::NVRTX::NAME), value));
                }
            }
            let devices: Vec<_> = env
                .devices()
                .filter(|d| d.ep().is_ok_and(|n| n == ep::NVRTX::NAME))
                .collect();
            let Some(device) = devices.into_iter().nth(id as usize) else {
                return Err(format!(
                    "the TensorRT-RTX provider offers no GPU {id} (ONNX Runtime found none it \
                     supports)"
                ));
            };
            builder.with_devices([device], Some(&options))
        }
    };
    result.map_err(|e| e.to_string())
}

fn register_tensorrt_rtx_library(env: &ort::environment::Environment) -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let ort = super::init().map_err(|e| e.to_string())?.path;
            let lib = nvidia::tensorrt_rtx_library(&ort)?;
            nvidia::preload_tensorrt_rtx(&lib)?;
            env.register_ep_library("NvTensorRTRTX", &lib)
                .map_err(|e| format!("registering {}: {e}", lib.display()))
        })
        .clone()
}

/// The largest batch a symbolic dimension takes (the official 25 image references; the landmark
/// encoders batch at most 15). One TensorRT engine per stage covers 1 to this.
pub const MAX_PROFILE_BATCH: usize = crate::engine::bank::IMAGE_REFERENCES;

/// TensorRT optimisation-profile shapes (`name:d0xd1x…`, comma-separated: min, opt, max) for the
/// inputs with symbolic dimensions: 1 to [`MAX_PROFILE_BATCH`], tuned for the largest. `None`
/// when every input is fixed (TensorRT then needs no profile).
pub fn profile_shapes(inputs: &[TensorSpec]) -> Option<[String; 3]> {
    let symbolic: Vec<&TensorSpec> = inputs
        .iter()
        .filter(|t| t.shape.iter().any(|d| matches!(d, Dim::Symbolic(_))))
        .collect();
    if symbolic.is_empty() {
        return None;
    }
    let with = |batch: usize| {
        symbolic
            .iter()
            .map(|t| t.shape_text(|_| batch.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    };
    Some([with(1), with(MAX_PROFILE_BATCH), with(MAX_PROFILE_BATCH)])
}
