//! Landmark_generator graph (spec §5.1) with the reference formula weights against the goldens in
//! `shared/golden/public/models/landmark_generator/`, and the formula weights against the
//! per-tensor sha256 of `shared/docs/manifests/*.json`.

use std::path::Path;

use iplap::graph::landmark_generator::{self as lg, LandmarkGraphOptions};
use iplap::runtime::landmark_generator::{LandmarkGenerator, LandmarkInput};
use iplap::runtime::{ModelSession, SessionConfig};
use iplap::weights::FormulaWeights;
use iplap::weights::formula::{self, Fill};
use sha2::{Digest, Sha256};

const TOL: f32 = 1e-4;

fn npy(dir: &Path, rel: &str) -> Vec<f32> {
    let a: ndarray::ArrayD<f32> =
        ndarray_npy::read_npy(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    a.iter().copied().collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn inputs(dir: &Path) -> [Vec<f32>; 4] {
    let ins = [
        npy(dir, "inputs/T_mels.npy"),
        npy(dir, "inputs/T_pose.npy"),
        npy(dir, "inputs/Nl_pose.npy"),
        npy(dir, "inputs/Nl_content.npy"),
    ];
    // The stored inputs are the formula inputs of reference-weights §4, bit for bit.
    let formula = [
        formula::golden_t_mels(),
        formula::golden_t_pose(),
        formula::golden_nl_pose(),
        formula::golden_nl_content(),
    ];
    for (a, b) in ins.iter().zip(&formula) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    ins
}

#[test]
fn predict_content_and_intermediates_match_golden() {
    let dir = iplap::require_shared!("golden/public/models/landmark_generator");
    let opts = LandmarkGraphOptions {
        intermediates: true,
    };
    let model = lg::build(&FormulaWeights::new(), opts).unwrap();
    let (cin, cout) = lg::contract(opts);
    let config = SessionConfig::default();
    let mut s = ModelSession::from_bytes(
        "landmark_generator",
        &model.to_bytes(),
        &cin,
        &cout,
        &config,
    )
    .unwrap();
    let [m, p, np, nc] = inputs(&dir);
    let names: Vec<&str> = cout.iter().map(|o| o.name.as_str()).collect();
    let outs = s
        .run_f32(
            &[
                (lg::T_MELS, &m),
                (lg::T_POSE, &p),
                (lg::NL_POSE, &np),
                (lg::NL_CONTENT, &nc),
            ],
            &names,
        )
        .unwrap();
    let mut worst = 0f32;
    for (name, got) in names.iter().zip(&outs) {
        let folder = if *name == lg::PREDICT_CONTENT {
            "outputs"
        } else {
            "intermediates"
        };
        let want = npy(&dir, &format!("{folder}/{name}.npy"));
        let d = max_abs_diff(got, &want);
        eprintln!("{name:>24}: max abs diff {d:.3e}");
        assert!(d <= TOL, "{name}: max abs diff {d} > {TOL}");
        worst = worst.max(d);
    }
    let f64_ref = npy_f64(&dir.join("outputs_f64/predict_content.npy"));
    let d64 = outs[0]
        .iter()
        .zip(&f64_ref)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "predict_content vs float64 reference: max abs diff {d64:.3e}; worst f32 diff {worst:.3e}"
    );
    assert!(d64 <= TOL as f64);
}

fn npy_f64(path: &Path) -> Vec<f64> {
    let a: ndarray::ArrayD<f64> = ndarray_npy::read_npy(path).unwrap();
    a.iter().copied().collect()
}

#[test]
fn typed_wrapper_runs_and_rejects_bad_input() {
    let dir = iplap::require_shared!("golden/public/models/landmark_generator");
    let model = lg::build(&FormulaWeights::new(), LandmarkGraphOptions::default()).unwrap();
    let config = SessionConfig {
        intra_threads: 1,
        ..Default::default()
    };
    let mut g = LandmarkGenerator::from_model(&model, &config).unwrap();
    let [m, p, np, nc] = inputs(&dir);
    let x = LandmarkInput {
        t_mels: &m,
        t_pose: &p,
        nl_pose: &np,
        nl_content: &nc,
    };
    let out = g.run(&x).unwrap();
    let want = npy(&dir, "outputs/predict_content.npy");
    assert!(max_abs_diff(&out.predict_content, &want) <= TOL);

    let short = LandmarkInput {
        t_mels: &m[1..],
        ..x
    };
    let e = g.run(&short).unwrap_err().to_string();
    assert!(e.contains("T_mels") && e.contains("6400"), "{e}");
}

#[test]
fn the_landmark_generator_contract_is_enforced_at_load() {
    // A model with the intermediates has the same inputs and more outputs: accepted. A model with a
    // different input name is refused with a message naming the model.
    let mut b = iplap::graph::onnx::GraphBuilder::new("wrong");
    let x = b.input_f32("T_mels_wrong", &[1, 5, 1, 80, 16]).unwrap();
    b.output_f32(&x, "predict_content", &[1, 5, 1, 80, 16])
        .unwrap();
    let bytes = b.finish().unwrap().to_bytes();
    let e =
        LandmarkGenerator::from_bytes("wrong.onnx", &bytes, &SessionConfig::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("wrong.onnx") && msg.contains("T_mels"),
        "{msg}"
    );
}

/// Without a GPU (and here without the GPU build of ONNX Runtime) an explicit GPU device is an
/// error that names the missing piece, never a panic and never a silent CPU run.
#[test]
fn gpu_devices_fail_clearly_without_a_gpu() {
    use iplap::runtime::{Device, DeviceConfig};
    if iplap::runtime::nvidia::driver().is_ok() {
        eprintln!("SKIP: this machine has an NVIDIA GPU");
        return;
    }
    let model = lg::build(&FormulaWeights::new(), LandmarkGraphOptions::default()).unwrap();
    for device in [Device::Cuda, Device::TensorRt, Device::TensorRtRtx] {
        let config = SessionConfig {
            device: DeviceConfig {
                device,
                ..DeviceConfig::default()
            },
            ..Default::default()
        };
        let e = LandmarkGenerator::from_model(&model, &config)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("device={device} cannot run here")),
            "{e}"
        );
        assert!(
            e.contains("CPU-only build") || e.contains("no NVIDIA driver"),
            "the missing piece is named: {e}"
        );
    }
}

/// Parses a C99 hex float such as `0x1.279a74590331cp-1` (exact).
fn hex_float(s: &str) -> f64 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s.strip_prefix("0x").unwrap();
    let (mant, exp) = s.split_once('p').unwrap();
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let digits = format!("{int}{frac}");
    let m = u64::from_str_radix(&digits, 16).unwrap() as f64; // <= 53 significant bits here
    let e: i32 = exp.parse::<i32>().unwrap() - 4 * frac.len() as i32;
    let v = m * 2f64.powi(e);
    if neg { -v } else { v }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks every formula-filled entry of a manifest; returns (checked, positional-encoding matches).
fn check_manifest(path: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = m["entries"].as_array().unwrap();
    let (mut checked, mut pe_total, mut pe_equal) = (0, 0, 0);
    for e in entries {
        let name = e["name"].as_str().unwrap();
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let want = e["check"]["sha256"].as_str().unwrap();
        let bytes: Vec<u8> = match formula::fill_rule(name, &shape) {
            Fill::ConstantZeroI64 => 0i64.to_le_bytes().to_vec(),
            _ => FormulaWeights::fill(name, &shape)
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        let got = hex(&Sha256::digest(&bytes));
        if let Fill::PositionalEncoding = formula::fill_rule(name, &shape) {
            // Not formula-filled: our f32 sinusoid may differ from torch's in the last ulp of some
            // entries; only rows 0..4 are used and the golden test covers them.
            pe_total += 1;
            pe_equal += usize::from(got == want);
            continue;
        }
        if let Some(fill) = e["fill"].as_object()
            && let (Some(o), Some(s)) = (fill.get("offset_hex"), fill.get("scale_hex"))
            && let Fill::Formula { offset, scale } = formula::fill_rule(name, &shape)
        {
            let (o, s) = (
                hex_float(o.as_str().unwrap()),
                hex_float(s.as_str().unwrap()),
            );
            assert_eq!(
                (offset.to_bits(), scale.to_bits()),
                (o.to_bits(), s.to_bits()),
                "{name}"
            );
        }
        assert_eq!(got, want, "sha256 of {name} {shape:?}");
        checked += 1;
    }
    (checked, pe_total, pe_equal)
}

#[test]
fn formula_weights_match_manifests() {
    let dir = iplap::require_shared!("docs/manifests");
    let (n, pe_total, pe_equal) = check_manifest(&dir.join("landmark_generator.json"));
    eprintln!(
        "landmark_generator: {n} entries equal; positional encodings bit-equal {pe_equal}/{pe_total}"
    );
    assert_eq!(n + pe_total, 435);
    let (n, _, _) = check_manifest(&dir.join("renderer.json"));
    eprintln!("renderer: {n} entries equal");
    assert_eq!(n, 284);
}

/// Debug helper: `IPLAP_DUMP_ONNX=/tmp/lg.onnx cargo test --release -p iplap --test
/// landmark_generator_golden dump -- --ignored` writes the graph (with intermediates) for Netron
/// or Python onnxruntime.
#[test]
#[ignore]
fn dump_onnx() {
    let Some(path) = std::env::var_os("IPLAP_DUMP_ONNX") else {
        return;
    };
    let model = lg::build(
        &FormulaWeights::new(),
        LandmarkGraphOptions {
            intermediates: true,
        },
    )
    .unwrap();
    model.write(Path::new(&path)).unwrap();
}

/// The contract of a streaming stage with its symbolic batch fixed to `n`.
fn with_batch(
    specs: &[iplap::graph::onnx::TensorSpec],
    n: usize,
) -> Vec<iplap::graph::onnx::TensorSpec> {
    use iplap::graph::onnx::Dim;
    specs
        .iter()
        .map(|s| {
            let mut s = s.clone();
            for d in &mut s.shape {
                if matches!(d, Dim::Symbolic(_)) {
                    *d = Dim::Fixed(n);
                }
            }
            s
        })
        .collect()
}

fn stage_session(stage: iplap::graph::landmark_stages::LandmarkStage, n: usize) -> ModelSession {
    let model = iplap::graph::landmark_stages::build_stage(&FormulaWeights::new(), stage).unwrap();
    let (i, o) = stage.contract();
    ModelSession::from_bytes(
        stage.name(),
        &model.to_bytes(),
        &with_batch(&i, n),
        &with_batch(&o, n),
        &SessionConfig::default(),
    )
    .unwrap()
}

#[test]
fn streaming_stages_compose_to_the_golden() {
    use iplap::graph::landmark_stages::{self as st, LandmarkStage};
    let dir = iplap::require_shared!("golden/public/models/landmark_generator");
    let [m, p, np, nc] = inputs(&dir);
    let mel = stage_session(LandmarkStage::MelEncoder, 5)
        .run_f32(&[(st::MEL_CHUNKS, &m)], &[st::MEL_EMBEDDING])
        .unwrap()
        .remove(0);
    let pose = stage_session(LandmarkStage::PoseEncoder, 5)
        .run_f32(&[(st::POSE_FRAMES, &p)], &[st::POSE_EMBEDDING])
        .unwrap()
        .remove(0);
    let refs = stage_session(LandmarkStage::RefEncoder, 15)
        .run_f32(
            &[(st::REF_POSE, &np), (st::REF_CONTENT, &nc)],
            &[st::REF_EMBEDDING],
        )
        .unwrap()
        .remove(0);
    for (name, got) in [
        ("norm_mel_out", &mel),
        ("norm_pose_out", &pose),
        ("norm_ref_out", &refs),
    ] {
        let d = max_abs_diff(got, &npy(&dir, &format!("intermediates/{name}.npy")));
        eprintln!("staged {name:>14}: max abs diff {d:.3e}");
        assert!(d <= TOL);
    }
    // One chunk at a time gives the same embedding as the batch of five.
    let mut one = stage_session(LandmarkStage::MelEncoder, 1);
    for c in 0..5 {
        let e = one
            .run_f32(
                &[(st::MEL_CHUNKS, &m[c * 1280..(c + 1) * 1280])],
                &[st::MEL_EMBEDDING],
            )
            .unwrap()
            .remove(0);
        assert!(max_abs_diff(&e, &mel[c * 512..(c + 1) * 512]) <= 1e-6);
    }
    let content = stage_session(LandmarkStage::Fusion, 5)
        .run_f32(
            &[
                (st::REF_EMBEDDING, &refs),
                (st::MEL_EMBEDDING, &mel),
                (st::POSE_EMBEDDING, &pose),
            ],
            &[lg::PREDICT_CONTENT],
        )
        .unwrap()
        .remove(0);
    let d = max_abs_diff(&content, &npy(&dir, "outputs/predict_content.npy"));
    eprintln!("staged predict_content: max abs diff {d:.3e}");
    assert!(d <= TOL);
}

#[test]
fn renderer_golden_inputs_follow_the_formulas() {
    let dir = iplap::require_shared!("golden/public/models/renderer/inputs");
    let same = |a: &[f32], b: &[f32]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    };
    for (name, shape) in [
        ("target_sketches", [1, 5, 3, 128, 128]),
        ("ref_N_frame_sketch", [1, 25, 3, 128, 128]),
    ] {
        let want = npy(&dir, &format!("{name}.npy"));
        assert!(
            same(&formula::golden_sketch(name, &shape).unwrap(), &want),
            "{name}"
        );
    }
    for (name, shape) in [
        ("face_frame_img", vec![1, 1, 3, 128, 128]),
        ("ref_N_frame_img", vec![1, 25, 3, 128, 128]),
    ] {
        assert!(
            same(
                &formula::golden_image(name, &shape),
                &npy(&dir, &format!("{name}.npy"))
            ),
            "{name}"
        );
    }
    let mels = formula::golden_input("audio_mels", &[1, 1, 1, 80, 16], 0.0, 4.0);
    assert!(same(&mels, &npy(&dir, "audio_mels.npy")));
    assert!(formula::golden_sketch("x", &[1, 3, 0, 4]).is_err());
}

fn staged_generator() -> iplap::runtime::StagedLandmarkGenerator {
    use iplap::graph::landmark_stages::{LandmarkStage, build_stage};
    let models = LandmarkStage::ALL.map(|s| build_stage(&FormulaWeights::new(), s).unwrap());
    iplap::runtime::StagedLandmarkGenerator::from_models(
        [&models[0], &models[1], &models[2], &models[3]],
        &SessionConfig::default(),
    )
    .unwrap()
}

#[test]
fn staged_generator_matches_the_golden() {
    let dir = iplap::require_shared!("golden/public/models/landmark_generator");
    let [m, p, np, nc] = inputs(&dir);
    let mut g = staged_generator();
    let x = LandmarkInput {
        t_mels: &m,
        t_pose: &p,
        nl_pose: &np,
        nl_content: &nc,
    };
    let out = g.run(&x).unwrap();
    let d = max_abs_diff(
        &out.predict_content,
        &npy(&dir, "outputs/predict_content.npy"),
    );
    eprintln!("staged generator predict_content: max abs diff {d:.3e}");
    assert!(d <= TOL);
    // The same window again is served from the caches: no encoder runs, the same bits.
    let before = g.runs();
    let again = g.run(&x).unwrap();
    let after = g.runs();
    assert_eq!(
        (after.mel_chunks, after.pose_frames, after.reference_sets),
        (before.mel_chunks, before.pose_frames, before.reference_sets)
    );
    assert_eq!(after.windows, before.windows + 1);
    assert_eq!(again, out);
    let short = LandmarkInput {
        t_mels: &m[..100],
        ..x
    };
    let e = g.run(&short).unwrap_err().to_string();
    assert!(e.contains("T_mels") && e.contains("6400"), "{e}");
}

/// Sliding windows over a stream (the official s = 0 padding, then one new chunk and frame per
/// window, then a ping-pong turn): each window equals the one-graph model's, and each chunk,
/// frame and reference set is encoded once.
#[test]
fn staged_generator_streams_like_the_one_graph_model() {
    let mut staged = staged_generator();
    let model = lg::build(&FormulaWeights::new(), LandmarkGraphOptions::default()).unwrap();
    let mut one = LandmarkGenerator::from_model(&model, &SessionConfig::default()).unwrap();
    let chunks: Vec<Vec<f32>> = (0..12)
        .map(|i| formula::golden_input(&format!("chunk{i}"), &[1, 80, 16], 0.0, 4.0))
        .collect();
    let frames: Vec<Vec<f32>> = (0..6)
        .map(|i| formula::golden_input(&format!("frame{i}"), &[2, 74], 0.5, 0.3))
        .collect();
    let (np, nc) = (formula::golden_nl_pose(), formula::golden_nl_content());
    // Ping-pong frame sequence of spec §1.6 over 6 frames.
    let seq = |k: usize| if k % 12 < 6 { k % 12 } else { 11 - k % 12 };
    let windows: usize = 10;
    let mut worst = 0.0f32;
    for s in 0..windows {
        let t_mels: Vec<f32> = (0..5)
            .flat_map(|j: usize| chunks[(s + j).saturating_sub(2)].iter().copied())
            .collect();
        let t_pose: Vec<f32> = (0..5)
            .flat_map(|j| frames[seq(s + j)].iter().copied())
            .collect();
        let x = LandmarkInput {
            t_mels: &t_mels,
            t_pose: &t_pose,
            nl_pose: &np,
            nl_content: &nc,
        };
        let a = staged.run(&x).unwrap();
        let b = one.run(&x).unwrap();
        worst = worst.max(max_abs_diff(&a.predict_content, &b.predict_content));
    }
    eprintln!("staged vs one graph over {windows} windows: max abs diff {worst:.3e}");
    assert!(worst <= 1e-5, "{worst}");
    let runs = staged.runs();
    // Chunks 0..=windows+1 (chunk index max(0, s+j-2)), distinct frames 0..=5.
    assert_eq!(runs.mel_chunks, windows + 2);
    assert_eq!(runs.pose_frames, 6);
    assert_eq!(runs.reference_sets, 1);
    assert_eq!(runs.windows, windows);
}
