//! `iplap convert`, `eval` and `bench`: the official checkpoint layout converts and reproduces the
//! golden forward passes; the formula-weight package drives eval and bench.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::ArrayD;
use ndarray_npy::read_npy;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iplap-cli-models-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn iplap(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_iplap"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "iplap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn max_diff(a: &Path, b: &Path) -> f32 {
    let a: ArrayD<f32> = read_npy(a).unwrap();
    let b: ArrayD<f32> = read_npy(b).unwrap();
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn landmark_checkpoint_converts_and_matches_golden() {
    let Some(ckpt) =
        iplap::testdata::shared_path("golden/public/checkpoints/landmark_generator_ref.pth")
    else {
        return;
    };
    let Some(golden) = iplap::testdata::shared_path("golden/public/models/landmark_generator")
    else {
        return;
    };
    let dir = temp_dir("lm");
    let pkg = dir.join("pkg");
    iplap(&[
        "convert".as_ref(),
        "--landmark-checkpoint".as_ref(),
        ckpt.as_os_str(),
        "--out".as_ref(),
        pkg.as_os_str(),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("manifest.json")).unwrap()).unwrap();
    let sources = manifest["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["network"], "landmark_generator");
    assert_eq!(sources[0]["sha256"].as_str().unwrap().len(), 64);
    let out = dir.join("out");
    iplap(&[
        "eval".as_ref(),
        "landmark-generator".as_ref(),
        "--models".as_ref(),
        pkg.as_os_str(),
        "--inputs".as_ref(),
        golden.join("inputs").as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let d = max_diff(
        &out.join("predict_content.npy"),
        &golden.join("outputs/predict_content.npy"),
    );
    assert!(d <= 1e-4, "predict_content max |diff| {d}");
}

#[test]
fn formula_package_eval_and_bench() {
    let Some(golden) = iplap::testdata::shared_path("golden/public/models/renderer") else {
        return;
    };
    let dir = temp_dir("formula");
    let pkg = dir.join("pkg");
    iplap(&[
        "convert".as_ref(),
        "--reference-weights".as_ref(),
        "--out".as_ref(),
        pkg.as_os_str(),
    ]);
    let out = dir.join("out");
    iplap(&[
        "eval".as_ref(),
        "renderer".as_ref(),
        "--models".as_ref(),
        pkg.as_os_str(),
        "--inputs".as_ref(),
        golden.join("inputs").as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    for (name, folder) in [
        ("generated_face", "outputs"),
        ("wrapped_ref", "outputs"),
        ("wrapped_h1", "intermediates"),
        ("wrapped_h2", "intermediates"),
    ] {
        let d = max_diff(
            &out.join(format!("{name}.npy")),
            &golden.join(folder).join(format!("{name}.npy")),
        );
        assert!(d <= 2e-4, "{name} max |diff| {d}");
    }
    // Bench on a small bank keeps the test cheap; the JSON contract is what is checked here.
    let run = iplap(&[
        "bench".as_ref(),
        "renderer".as_ref(),
        "--models".as_ref(),
        pkg.as_os_str(),
        "--references".as_ref(),
        "2".as_ref(),
        "--threads".as_ref(),
        "2".as_ref(),
        "--iterations".as_ref(),
        "1".as_ref(),
        "--json".as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["references"], 2);
    assert_eq!(v["threads"], 2);
    assert!(v["per_frame_s"].as_f64().unwrap() > 0.0);
    for stage in ["modulation", "flow_head", "warp", "translation"] {
        assert!(v["stages"][stage].as_f64().unwrap() > 0.0, "{stage}");
    }
    let run = iplap(&[
        "bench".as_ref(),
        "landmark-generator".as_ref(),
        "--models".as_ref(),
        pkg.as_os_str(),
        "--iterations".as_ref(),
        "3".as_ref(),
        "--json".as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(v["per_window_s"].as_f64().unwrap() > 0.0);
    assert!(v["one_graph_per_window_s"].as_f64().unwrap() > 0.0);
    for stage in ["mel_encoder", "pose_encoder", "fusion"] {
        assert!(v["stages"][stage].as_f64().unwrap() > 0.0, "{stage}");
    }
}

#[test]
fn missing_package_says_what_to_run() {
    let dir = temp_dir("missing");
    let out = Command::new(env!("CARGO_BIN_EXE_iplap"))
        .args(["bench", "landmark-generator", "--models"])
        .arg(dir.join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("iplap convert") && err.contains("nope"),
        "{err}"
    );
}
