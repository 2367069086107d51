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

/// `iplap convert --reference-weights` into `dir/pkg`.
fn formula_package(dir: &Path) -> PathBuf {
    let pkg = dir.join("pkg");
    iplap(&[
        "convert".as_ref(),
        "--reference-weights".as_ref(),
        "--out".as_ref(),
        pkg.as_os_str(),
    ]);
    pkg
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
    let pkg = formula_package(&dir);
    // The package's CPU graphs on the device's default, then its GPU graphs on the CPU (how the
    // GPU graphs are checked without a GPU; README "NVIDIA GPUs").
    let inputs = golden.join("inputs");
    for (tag, extra) in [
        ("cpu", &[][..]),
        ("gpu", &["--target", "gpu", "--device", "cpu"][..]),
    ] {
        let out = dir.join(format!("out-{tag}"));
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "eval".as_ref(),
            "renderer".as_ref(),
            "--models".as_ref(),
            pkg.as_os_str(),
            "--inputs".as_ref(),
            inputs.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        iplap(&args);
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
            assert!(d <= 2e-4, "{tag} graphs: {name} max |diff| {d}");
        }
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
    assert_eq!(v["precision"], "fp32");
    assert!(v["per_frame_s"].as_f64().unwrap() > 0.0);
    assert!(v["frames_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["graphs"][3], "renderer_translation", "{v}");
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

/// `iplap bench frame`: the compositor's whole 1080p frame on a device, step by step, and with
/// `--compare-cpu` against the CPU compositor. Here the device is the CPU, so the two frames are
/// the same bits; the check still proves the frame changed inside the paste region only. And
/// `iplap bench live`'s report (the GPU check's live streams).
#[test]
fn bench_frame_and_live_report_on_the_cpu() {
    let dir = temp_dir("bench-frame");
    let pkg = formula_package(&dir);
    for format in ["bgrx", "nv12"] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["bench".as_ref(), "frame".as_ref()];
        args.extend(["--models".as_ref(), pkg.as_os_str()]);
        for a in [
            "--device",
            "cpu",
            "--format",
            format,
            "--references",
            "2",
            "--threads",
            "2",
            "--iterations",
            "1",
            "--compare-cpu",
            "--json",
        ] {
            args.push(a.as_ref());
        }
        let run = iplap(&args);
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(v["format"], format, "{v}");
        assert_eq!(v["on_gpu"], false, "{v}");
        assert!(v["gpu_steps_s"].is_null(), "{v}");
        for step in [
            "sketches",
            "crop",
            "modulation",
            "translation",
            "paste",
            "per_frame",
        ] {
            assert!(v["steps_s"][step].as_f64().unwrap() > 0.0, "{step}: {v}");
        }
        let c = &v["compare_cpu"];
        assert_eq!(c["passed"], true, "{v}");
        assert_eq!(c["max_abs"], 0, "{v}");
        assert_eq!(c["changed_outside_region"], 0, "{v}");
        assert!(c["changed_in_region"].as_u64().unwrap() > 10_000, "{v}");
    }

    // `bench live`: one stream at 1 fps for 2 s; every frame is composed or skipped, and the
    // latency of a composed frame is at least its composition.
    let mut args: Vec<&std::ffi::OsStr> = vec!["bench".as_ref(), "live".as_ref()];
    args.extend(["--models".as_ref(), pkg.as_os_str()]);
    for a in [
        "--device",
        "cpu",
        "--references",
        "1",
        "--threads",
        "2",
        "--streams",
        "1",
        "--fps",
        "1",
        "--seconds",
        "2",
        "--json",
    ] {
        args.push(a.as_ref());
    }
    let run = iplap(&args);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let r = &v["runs"][0];
    assert_eq!(r["streams"], 1, "{v}");
    assert_eq!(r["frames"], 2, "{v}");
    let (composed, skipped) = (
        r["composed"].as_u64().unwrap(),
        r["skipped"].as_u64().unwrap(),
    );
    assert!(composed >= 1 && composed + skipped == 2, "{v}");
    assert!(r["latency_p50_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(r["latency_p99_s"].as_f64().unwrap() >= r["latency_p50_s"].as_f64().unwrap());
    assert!(r["gpu_memory_per_stream_mib"].is_null(), "{v}");
}

/// `iplap parity` (also in `iplap-engine`, the GPU check's tool): the GPU graphs on the CPU against
/// the CPU graphs, on the golden inputs; and a limit they cannot meet makes it fail.
#[test]
fn parity_compares_a_device_with_the_cpu() {
    let dir = temp_dir("parity");
    let pkg = formula_package(&dir);
    let args = |extra: &[&'static str]| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = ["parity", "--models"].map(Into::into).to_vec();
        a.push(pkg.clone().into_os_string());
        let common = ["--device", "cpu", "--target", "gpu", "--references", "3"];
        a.extend(common.iter().chain(extra).map(Into::into));
        a
    };
    let ok = args(&["--json"]);
    let run = iplap(&ok.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["stages"][2], "renderer_flow_head_gpu", "{v}");
    assert_eq!(v["stages"][3], "renderer_translation_gpu", "{v}");
    for out in ["generated_face", "wrapped_ref", "predict_content"] {
        let d = v[out]["max_abs"].as_f64().unwrap();
        assert!(d <= 2e-4, "{out}: {d}");
    }
    assert!(
        v["generated_face"]["psnr_db"].as_f64().unwrap() > 60.0,
        "{v}"
    );
    // The fp16 graphs (what cuda runs at precision=fp16): no absolute limit, PSNR ≥ 40 dB.
    let half = args(&["--graph-precision", "fp16", "--json"]);
    let run = iplap(&half.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["stages"][3], "renderer_translation_gpu_fp16", "{v}");
    assert!(v["max_abs_allowed"].is_null(), "{v}");
    let psnr = v["generated_face"]["psnr_db"].as_f64().unwrap();
    eprintln!("fp16 graphs on the CPU provider: generated_face PSNR {psnr:.1} dB");
    assert!(psnr >= 40.0, "{v}");
    // The GPU graphs differ from the CPU ones in summation order: not bit-exact, so a zero
    // limit fails, naming the difference.
    let strict = args(&["--max-abs", "0"]);
    let out = Command::new(env!("CARGO_BIN_EXE_iplap"))
        .args(&strict)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cpu differs from the CPU reference by"),
        "{err}"
    );
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

/// Runs `iplap` expecting a failure; returns its stderr.
fn iplap_fails(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_iplap"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "iplap {args:?} succeeded: {err}");
    err
}

/// A safetensors file (written by hand: 8-byte header length, JSON header, data) with every
/// tensor of `network` in its official layout (`module.` keys), float values all `value`.
fn write_safetensors(path: &Path, network: iplap::checkpoint::Network, value: f32) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for e in &network.manifest().entries {
        let n: usize = e.shape.iter().product();
        let start = data.len();
        let dtype = if e.dtype == "int64" {
            data.extend(std::iter::repeat_n(0u8, n * 8));
            "I64"
        } else {
            data.extend(std::iter::repeat_n(value.to_le_bytes(), n).flatten());
            "F32"
        };
        header.insert(
            e.checkpoint_key.clone(),
            serde_json::json!({"dtype": dtype, "shape": e.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// Issue 13: a checkpoint whose weights are NaN (here all of them) is refused by `convert`,
/// naming the first bad tensor and what was found; no package is written.
#[test]
fn convert_refuses_non_finite_weights() {
    use iplap::checkpoint::Network;
    let dir = temp_dir("nan");
    let ckpt = dir.join("nan.safetensors");
    write_safetensors(&ckpt, Network::LandmarkGenerator, f32::NAN);
    let pkg = dir.join("pkg");
    let err = iplap_fails(&[
        "convert".as_ref(),
        "--landmark-checkpoint".as_ref(),
        ckpt.as_os_str(),
        "--out".as_ref(),
        pkg.as_os_str(),
    ]);
    let first = &Network::LandmarkGenerator.manifest().entries[0];
    let first_line = err.lines().nth(1).unwrap_or_default();
    assert!(
        first_line.contains(&first.checkpoint_key) && first_line.contains("NaN"),
        "the first bad tensor ({}) should lead the list:\n{err}",
        first.checkpoint_key
    );
    assert!(err.lines().count() <= 12, "{err}");
    assert!(!pkg.join("manifest.json").exists());
    // The same file with finite weights converts: only the values were wrong.
    write_safetensors(&ckpt, Network::LandmarkGenerator, 0.01);
    iplap(&[
        "convert".as_ref(),
        "--landmark-checkpoint".as_ref(),
        ckpt.as_os_str(),
        "--out".as_ref(),
        pkg.as_os_str(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13: the landmark generator's checkpoint passed as `--renderer-checkpoint` is named in
/// a sentence, not a 671-line key list; an unrelated mismatch lists at most ten keys.
#[test]
fn convert_names_a_swapped_checkpoint_and_caps_key_lists() {
    let Some(lm) =
        iplap::testdata::shared_path("golden/public/checkpoints/landmark_generator_ref.pth")
    else {
        return;
    };
    let dir = temp_dir("swapped");
    let pkg = dir.join("pkg");
    let err = iplap_fails(&[
        "convert".as_ref(),
        "--renderer-checkpoint".as_ref(),
        lm.as_os_str(),
        "--out".as_ref(),
        pkg.as_os_str(),
    ]);
    assert!(
        err.contains(
            "this looks like the landmark generator checkpoint (pass it as --landmark-checkpoint)"
        ),
        "{err}"
    );
    assert!(
        err.lines().count() <= 3,
        "{} lines:\n{err}",
        err.lines().count()
    );

    // A tiny checkpoint in the official layout: a few landmark keys, most missing.
    let tiny = lm.with_file_name("tiny_official_layout.pth");
    let err = iplap_fails(&[
        "convert".as_ref(),
        "--landmark-checkpoint".as_ref(),
        tiny.as_os_str(),
        "--out".as_ref(),
        pkg.as_os_str(),
    ]);
    assert!(
        err.lines().count() <= 12,
        "{} lines:\n{err}",
        err.lines().count()
    );
    assert!(err.contains(" more"), "{err}");
    assert!(!err.contains("looks like"), "{err}");
}

/// Issue 13: a checkpoint that cannot be read says its cause once (it was printed twice: in the
/// error's own text and again as its source).
#[test]
fn convert_errors_name_their_cause_once() {
    let dir = temp_dir("cause");
    let notes = dir.join("notes.pth");
    std::fs::write(&notes, "hello, not a checkpoint").unwrap();
    let pkg = dir.join("pkg");
    for (ckpt, cause) in [
        (notes.clone(), "unrecognised file signature"),
        (dir.join("absent.pth"), "os error 2"),
    ] {
        let err = iplap_fails(&[
            "convert".as_ref(),
            "--landmark-checkpoint".as_ref(),
            ckpt.as_os_str(),
            "--out".as_ref(),
            pkg.as_os_str(),
        ]);
        assert_eq!(err.matches(cause).count(), 1, "{err}");
        assert!(err.contains(&*ckpt.to_string_lossy()), "{err}");
    }
}

/// Issue 13: a missing or corrupt model package leads with the cause on the first line and says
/// how to make one once, briefly (it buried the cause after ~400 characters of instructions and
/// said "run iplap convert" twice).
#[test]
fn package_errors_lead_with_the_cause() {
    let dir = temp_dir("pkgerr");
    let missing = dir.join("missing");
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("manifest.json"), "{ not json").unwrap();
    let sync = |models: &Path| {
        iplap_fails(&[
            "sync".as_ref(),
            "--face".as_ref(),
            dir.join("face.mp4").as_os_str(),
            "--audio".as_ref(),
            dir.join("speech.wav").as_os_str(),
            "-o".as_ref(),
            dir.join("out.mp4").as_os_str(),
            "--models".as_ref(),
            models.as_os_str(),
        ])
    };
    let eval = |models: &Path| {
        iplap_fails(&[
            "eval".as_ref(),
            "landmark-generator".as_ref(),
            "--models".as_ref(),
            models.as_os_str(),
            "--inputs".as_ref(),
            dir.as_os_str(),
            "--out".as_ref(),
            dir.join("eval").as_os_str(),
        ])
    };
    for (err, cause) in [
        (sync(&missing), "does not exist"),
        (sync(&corrupt), "invalid manifest"),
        (eval(&missing), "does not exist"),
        (eval(&corrupt), "invalid manifest"),
    ] {
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(cause), "cause not in the first line:\n{err}");
        assert!(first.len() <= 200, "first line too long:\n{err}");
        assert_eq!(err.matches("iplap convert").count(), 1, "{err}");
        assert!(err.len() <= 500, "{} characters:\n{err}", err.len());
    }
}

/// Issue 13: a manifest.json edited to disagree with the graphs is refused when the package is
/// opened, naming the stage and the field (it loaded and ran).
#[test]
fn edited_manifest_is_refused_naming_the_field() {
    let dir = temp_dir("manifest");
    let pkg = formula_package(&dir);
    let path = pkg.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["stages"][0]["inputs"][1]["shape"][3] = 75.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let err = iplap_fails(&[
        "bench".as_ref(),
        "landmark-generator".as_ref(),
        "--models".as_ref(),
        pkg.as_os_str(),
        "--iterations".as_ref(),
        "1".as_ref(),
    ]);
    for needle in [
        "landmark_generator",
        "T_pose",
        "[1, 5, 2, 74]",
        "[1, 5, 2, 75]",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
