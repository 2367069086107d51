//! Where the networks run: the one `Device` type, from the elements' `device` property and the
//! CLI's `--device` down to the ONNX Runtime session, with its GPU index, precision and
//! TensorRT engine cache.
//!
//! `Device::Auto` is resolved once, before sessions are built ([`super::providers::resolve`]):
//! sessions only ever see a concrete device.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the networks run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// The best provider that initialises here: TensorRT-RTX or TensorRT, then CUDA, then the CPU.
    #[default]
    Auto,
    /// ONNX Runtime's CPU execution provider.
    Cpu,
    /// ONNX Runtime's CUDA execution provider (`onnxruntime-gpu`, NVIDIA driver, CUDA 13 libraries).
    Cuda,
    /// ONNX Runtime's TensorRT execution provider (a TensorRT 10 the user installed), with CUDA
    /// for anything TensorRT does not take.
    TensorRt,
    /// The NvTensorRTRTX plugin execution provider (pip wheel; RTX-class GPUs: compute capability
    /// 8.6, 8.9 or 12.0 and newer).
    TensorRtRtx,
}

impl Device {
    /// Every value, in the order `auto` tries the concrete ones after itself.
    pub const ALL: [Device; 5] = [
        Device::Auto,
        Device::TensorRtRtx,
        Device::TensorRt,
        Device::Cuda,
        Device::Cpu,
    ];

    /// The name used by the `device` property and `--device`.
    pub fn nick(self) -> &'static str {
        match self {
            Device::Auto => "auto",
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::TensorRt => "tensorrt",
            Device::TensorRtRtx => "tensorrt-rtx",
        }
    }

    /// Whether this device runs on an NVIDIA GPU.
    pub fn is_gpu(self) -> bool {
        matches!(self, Device::Cuda | Device::TensorRt | Device::TensorRtRtx)
    }

    /// Whether ONNX Runtime builds TensorRT engines for this device (and so the engine cache applies).
    pub fn builds_engines(self) -> bool {
        matches!(self, Device::TensorRt | Device::TensorRtRtx)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nick())
    }
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Device::ALL
            .into_iter()
            .find(|d| d.nick().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Device::ALL.iter().map(|d| d.nick()).collect();
                format!("unknown device `{s}` (one of {})", names.join(", "))
            })
    }
}

/// Arithmetic precision of the networks on a GPU. The CPU always runs fp32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// IEEE single precision throughout.
    #[default]
    Fp32,
    /// fp32 storage, TensorFloat-32 matrix maths (Ampere and newer): ~10-bit mantissa products.
    Tf32,
    /// Half precision where the provider allows it.
    Fp16,
}

impl Precision {
    /// Every value.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Tf32, Precision::Fp16];

    /// The name used by the `precision` property and `--precision`.
    pub fn nick(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Fp16 => "fp16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nick())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.nick().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown precision `{s}` (one of fp32, tf32, fp16)"))
    }
}

/// The largest `device-id` accepted (a GPU index; the probe says which exist).
pub const MAX_DEVICE_ID: u32 = 63;

/// Everything that says where and how the networks run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceConfig {
    /// Which provider.
    pub device: Device,
    /// GPU index (CUDA ordinal) for the GPU devices.
    pub device_id: u32,
    /// Arithmetic precision on a GPU.
    pub precision: Precision,
    /// Folder for TensorRT engines; `None`: [`default_engine_cache`].
    pub engine_cache: Option<PathBuf>,
}

impl DeviceConfig {
    /// The CPU, fp32.
    pub fn cpu() -> Self {
        DeviceConfig {
            device: Device::Cpu,
            ..DeviceConfig::default()
        }
    }

    /// The engine cache folder in effect.
    pub fn engine_cache_dir(&self) -> PathBuf {
        self.engine_cache
            .clone()
            .unwrap_or_else(default_engine_cache)
    }

    /// Settings that only make sense on a GPU, checked against the (resolved) device.
    pub fn check(&self) -> Result<(), String> {
        if self.device == Device::Cpu && self.precision != Precision::Fp32 {
            return Err(format!(
                "precision={} needs a GPU device; the CPU runs fp32 (set precision=fp32, or \
                 device=cuda/tensorrt/tensorrt-rtx)",
                self.precision
            ));
        }
        if self.device_id > MAX_DEVICE_ID {
            return Err(format!(
                "device-id={} is out of range (0-{MAX_DEVICE_ID})",
                self.device_id
            ));
        }
        Ok(())
    }
}

impl fmt::Display for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.device {
            Device::Cpu | Device::Auto => write!(f, "{}", self.device),
            d => write!(f, "{d}:{} {}", self.device_id, self.precision),
        }
    }
}

/// `$XDG_CACHE_HOME/iplap/engines`, else `~/.cache/iplap/engines`, else a folder in the temp dir.
pub fn default_engine_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("iplap").join("engines")
}
