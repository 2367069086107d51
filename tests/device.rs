//! The one `Device`: names, settings checks, and `auto`'s choice on a machine without a GPU
//! (CI): the CPU, with every GPU device skipped for a stated reason.

use iplap::runtime::providers::{self, resolve};
use iplap::runtime::{Device, DeviceConfig, Precision, nvidia};

#[test]
fn names_round_trip_and_unknown_ones_list_the_choices() {
    for d in Device::ALL {
        assert_eq!(d.nick().parse::<Device>().unwrap(), d);
    }
    for p in Precision::ALL {
        assert_eq!(p.nick().parse::<Precision>().unwrap(), p);
    }
    let e = "gpu".parse::<Device>().unwrap_err();
    assert!(e.contains("auto, tensorrt-rtx, tensorrt, cuda, cpu"), "{e}");
    assert_eq!(DeviceConfig::default().device, Device::Auto);
}

#[test]
fn gpu_only_settings_are_refused_on_the_cpu() {
    let fp16 = DeviceConfig {
        precision: Precision::Fp16,
        ..DeviceConfig::cpu()
    };
    let e = resolve(&fp16).unwrap_err().to_string();
    assert!(e.contains("precision=fp16 needs a GPU device"), "{e}");
    let id = DeviceConfig {
        device_id: 64,
        ..DeviceConfig::cpu()
    };
    assert!(
        resolve(&id)
            .unwrap_err()
            .to_string()
            .contains("device-id=64")
    );
}

#[test]
fn auto_without_a_gpu_runs_on_the_cpu_and_says_why() {
    if nvidia::driver().is_ok() && providers::gpu_runtime_installed() {
        eprintln!("SKIP: this machine can run a GPU device");
        return;
    }
    // A GPU precision asked of `auto` does not stop the CPU fallback: the CPU runs fp32.
    let asked = DeviceConfig {
        precision: Precision::Fp16,
        ..DeviceConfig::default()
    };
    let r = resolve(&asked).unwrap();
    assert_eq!(r.config.device, Device::Cpu);
    assert_eq!(r.config.precision, Precision::Fp32);
    let skipped: Vec<Device> = r.skipped.iter().map(|(d, _)| *d).collect();
    assert_eq!(
        skipped,
        [Device::TensorRtRtx, Device::TensorRt, Device::Cuda]
    );
    for (d, why) in &r.skipped {
        assert!(!why.is_empty(), "{d}");
    }
    let line = r.describe();
    assert!(line.starts_with("running on cpu; tensorrt-rtx"), "{line}");
    // Worth a warning only where a GPU was plausibly expected (GPU runtime or driver present).
    assert_eq!(r.fell_back_from_gpu(), providers::gpu_runtime_installed());
}

/// With `scripts/setup.sh --gpu` (CI installs it), the GPU build of ONNX Runtime is the one
/// loaded, and the CUDA libraries its CUDA provider needs load from pip's wheels beside it, in
/// order, without a driver: what a GPU machine relies on, checked here.
#[test]
fn the_gpu_runtime_from_setup_is_complete() {
    if !providers::gpu_runtime_installed() {
        eprintln!(
            "SKIP: the CPU-only ONNX Runtime is loaded (scripts/setup.sh --gpu installs the GPU one)"
        );
        return;
    }
    let ort = iplap::runtime::init().unwrap().path;
    for lib in [
        nvidia::CUDA_PROVIDER_LIBRARY,
        nvidia::TENSORRT_PROVIDER_LIBRARY,
    ] {
        assert!(
            nvidia::provider_library(&ort, lib).is_some(),
            "{lib} beside {}",
            ort.display()
        );
    }
    assert!(!nvidia::wheel_library_dirs(&ort).is_empty());
    assert_eq!(nvidia::preload_cuda_libraries(&ort), Vec::<&str>::new());
    let rtx = nvidia::tensorrt_rtx_library(&ort).unwrap();
    assert!(rtx.ends_with(nvidia::TENSORRT_RTX_PROVIDER_LIBRARY));
}

#[test]
fn explicit_gpu_devices_name_the_missing_piece() {
    if nvidia::driver().is_ok() {
        eprintln!("SKIP: this machine has an NVIDIA driver");
        return;
    }
    for device in [Device::Cuda, Device::TensorRt, Device::TensorRtRtx] {
        let e = resolve(&DeviceConfig {
            device,
            ..DeviceConfig::default()
        })
        .unwrap_err();
        assert_eq!(e.device, device);
        let text = e.to_string();
        assert!(
            text.contains("scripts/setup.sh --gpu") || text.contains("no NVIDIA driver"),
            "{text}"
        );
    }
}

#[test]
fn tensorrt_rtx_takes_rtx_class_gpus_only() {
    for cc in [(8, 6), (8, 9), (12, 0), (12, 1)] {
        assert!(nvidia::tensorrt_rtx_supports(cc), "{cc:?}");
    }
    for cc in [(7, 5), (8, 0), (9, 0), (10, 0)] {
        assert!(!nvidia::tensorrt_rtx_supports(cc), "{cc:?}");
    }
}

#[test]
fn the_engine_cache_defaults_to_the_user_cache_folder() {
    let dir = iplap::runtime::device::default_engine_cache();
    assert!(dir.ends_with("iplap/engines"), "{}", dir.display());
    let set = DeviceConfig {
        engine_cache: Some("/tmp/engines".into()),
        ..DeviceConfig::default()
    };
    assert_eq!(set.engine_cache_dir(), std::path::Path::new("/tmp/engines"));
}

#[test]
fn tensorrt_profiles_cover_one_to_twenty_five_references() {
    use iplap::graph::onnx::{Dim, TensorSpec};
    let fixed = TensorSpec::f32("audio", &[1, 1, 80, 16]);
    assert_eq!(
        providers::profile_shapes(std::slice::from_ref(&fixed)),
        None
    );
    let batched = TensorSpec {
        shape: vec![
            Dim::from("n_ref"),
            Dim::Fixed(256),
            Dim::Fixed(64),
            Dim::Fixed(64),
        ],
        ..TensorSpec::f32("h2", &[1])
    };
    let [min, opt, max] = providers::profile_shapes(&[fixed, batched]).unwrap();
    assert_eq!(min, "h2:1x256x64x64");
    assert_eq!(opt, "h2:25x256x64x64");
    assert_eq!(max, opt);
}
