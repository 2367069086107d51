//! `--device`, `--device-id`, `--precision`, `--engine-cache`: the CLI face of the engine's
//! [`DeviceConfig`], shared by `sync`, `track`, `eval` and `bench`.

use std::path::{Path, PathBuf};

use crate::runtime::{Device, DeviceConfig, MAX_DEVICE_ID, Precision, providers};
use anyhow::Context;

#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Where the networks run: auto (the best of tensorrt-rtx, tensorrt, cuda that initialises,
    /// else cpu), cpu, cuda, tensorrt, tensorrt-rtx. `iplap devices` shows what this machine has.
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<Device>())]
    pub device: Device,
    /// GPU index (CUDA ordinal) for the GPU devices.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=MAX_DEVICE_ID as i64))]
    pub device_id: u32,
    /// Arithmetic on a GPU: fp32 (parity with the official code), tf32, fp16. The CPU runs fp32.
    #[arg(long, default_value = "fp32", value_parser = |s: &str| s.parse::<Precision>())]
    pub precision: Precision,
    /// Folder for TensorRT engines (tensorrt, tensorrt-rtx). Default:
    /// $XDG_CACHE_HOME/iplap/engines (~/.cache/iplap/engines).
    #[arg(long)]
    pub engine_cache: Option<PathBuf>,
}

impl DeviceArgs {
    /// As given (possibly `auto`).
    pub fn config(&self) -> DeviceConfig {
        DeviceConfig {
            device: self.device,
            device_id: self.device_id,
            precision: self.precision,
            engine_cache: self.engine_cache.clone(),
        }
    }

    /// Resolves `auto` once and says on stderr where the networks run when that is not what the
    /// user may expect (`auto` falling back although a GPU runtime or driver is present). An
    /// explicit device that cannot run is an error naming the missing piece.
    pub fn resolve(&self) -> anyhow::Result<DeviceConfig> {
        crate::runtime::init().context("cannot load ONNX Runtime")?;
        let resolution = providers::resolve(&self.config())?;
        if resolution.fell_back_from_gpu() {
            eprintln!(
                "warning: --device auto fell back to the CPU: {}",
                resolution.describe()
            );
        }
        Ok(resolution.config)
    }
}

/// `--engine-cache` as an element property value.
pub fn engine_cache_property(config: &DeviceConfig) -> Option<String> {
    config
        .engine_cache
        .as_deref()
        .map(Path::to_string_lossy)
        .map(Into::into)
}
