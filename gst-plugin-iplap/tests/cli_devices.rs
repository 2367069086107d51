//! `iplap devices` and the device options of the commands, on a machine without a GPU.

use std::process::Command;

fn iplap(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_iplap"))
        .args(args)
        .output()
        .expect("run iplap")
}

#[test]
fn devices_lists_the_runtime_every_provider_and_the_gpus_and_exits_0() {
    let out = iplap(&["devices"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("ONNX Runtime 1."), "{text}");
    for device in ["cpu", "cuda", "tensorrt", "tensorrt-rtx"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{device} "))),
            "{device} missing: {text}"
        );
    }
    assert!(text.contains("  cpu           available"), "{text}");
    assert!(text.contains("\nauto: "), "{text}");
    assert!(text.contains("GPUs: none (") || text.contains("NVIDIA driver: CUDA"));
    if iplap::runtime::nvidia::driver().is_err() {
        assert!(text.contains("cuda          unavailable: "), "{text}");
        assert!(text.contains("\nauto: cpu\n"), "{text}");
    }
}

#[test]
fn an_explicit_gpu_device_fails_the_command_with_the_missing_piece() {
    if iplap::runtime::nvidia::driver().is_ok() {
        eprintln!("SKIP: this machine has an NVIDIA driver");
        return;
    }
    let dir = std::env::temp_dir().join(format!("iplap-cli-devices-{}", std::process::id()));
    let out = iplap(&[
        "eval",
        "landmark-generator",
        "--models",
        "/nonexistent",
        "--inputs",
        "/nonexistent",
        "--out",
        dir.to_str().unwrap(),
        "--device",
        "cuda",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // The device is checked before the package: the answer is about the device.
    assert!(err.contains("device=cuda cannot run here"), "{err}");
    assert!(
        err.contains("CPU-only build") || err.contains("no NVIDIA driver"),
        "{err}"
    );
    let out = iplap(&[
        "sync", "--face", "f", "--audio", "a", "-o", "o.mp4", "--device", "gpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unknown device `gpu`"), "{err}");
}
