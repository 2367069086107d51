//! `iplap devices`: what this machine can run the networks on. Always exits 0: it reports,
//! it does not judge.

use crate::runtime::{Device, DeviceConfig, nvidia, providers};

#[derive(clap::Args)]
pub struct DevicesArgs {
    /// GPU index the providers are checked against.
    #[arg(long, default_value_t = 0)]
    pub device_id: u32,
}

pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    match crate::runtime::init() {
        Ok(lib) => {
            let version = crate::runtime::version().unwrap_or_else(|e| e.to_string());
            let build = if providers::gpu_runtime_installed() {
                "GPU build"
            } else {
                "CPU-only build"
            };
            println!(
                "ONNX Runtime {version} ({build}) at {} ({:?})",
                lib.path.display(),
                lib.source
            );
        }
        Err(e) => println!("ONNX Runtime: not loaded: {e}"),
    }
    println!("providers (device-id {}):", args.device_id);
    for device in Device::ALL.into_iter().filter(|d| *d != Device::Auto) {
        let config = DeviceConfig {
            device,
            device_id: args.device_id,
            ..DeviceConfig::default()
        };
        match providers::usable(device, &config) {
            Ok(()) => println!("  {:<13} available", device.nick()),
            Err(why) => println!("  {:<13} unavailable: {why}", device.nick()),
        }
    }
    let auto = DeviceConfig {
        device_id: args.device_id,
        ..DeviceConfig::default()
    };
    match providers::resolve(&auto) {
        Ok(r) => println!("auto: {}", r.config),
        Err(e) => println!("auto: {e}"),
    }
    match nvidia::driver() {
        Ok(driver) => {
            let (major, minor) = driver.cuda_version;
            println!("NVIDIA driver: CUDA {major}.{minor}");
            for gpu in &driver.gpus {
                let (cc_major, cc_minor) = gpu.compute_capability;
                println!(
                    "  GPU {}: {}, compute capability {cc_major}.{cc_minor}, {:.1} GiB",
                    gpu.index,
                    gpu.name,
                    gpu.memory_bytes as f64 / (1u64 << 30) as f64
                );
            }
        }
        Err(e) => println!("GPUs: none ({e})"),
    }
    match nvidia::tensorrt_version() {
        Ok(v) => println!("TensorRT: {v}"),
        Err(_) => println!("TensorRT: not installed (libnvinfer.so.10 not found)"),
    }
    Ok(())
}
