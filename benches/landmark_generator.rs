//! Landmark generator (spec §5.1), one T = 5 window as written (1.47 GFLOP, spec §7.2), formula
//! weights and golden inputs, ONNX Runtime CPU with 1 and 2 intra-op threads.
//! Target: at most 10 ms per window. Quote the machine beside every number (STYLE B6).
//! `landmark_streaming` measures the streaming split (spec §7.2) per window: one new mel chunk,
//! one new pose frame and the fusion stage (reference embeddings cached).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use iplap::graph::landmark_generator::{self as lg, LandmarkGraphOptions};
use iplap::graph::landmark_stages::{self as st, LandmarkStage, build_stage};
use iplap::graph::onnx::{Dim, TensorSpec};
use iplap::runtime::landmark_generator::{LandmarkGenerator, LandmarkInput};
use iplap::runtime::{ModelSession, SessionConfig};
use iplap::weights::{FormulaWeights, formula};

/// 1 and 2 intra-op threads, and 2 threads without spin-waiting.
fn configs() -> [(&'static str, SessionConfig); 3] {
    let c = |intra_threads, spin_wait| SessionConfig {
        intra_threads,
        spin_wait,
        ..Default::default()
    };
    [
        ("threads1", c(1, true)),
        ("threads2", c(2, true)),
        ("threads2_nospin", c(2, false)),
    ]
}

fn bench_landmark_generator(c: &mut Criterion) {
    let model = lg::build(&FormulaWeights::new(), LandmarkGraphOptions::default()).expect("graph");
    let (m, p, np, nc) = (
        formula::golden_t_mels(),
        formula::golden_t_pose(),
        formula::golden_nl_pose(),
        formula::golden_nl_content(),
    );
    let x = LandmarkInput {
        t_mels: &m,
        t_pose: &p,
        nl_pose: &np,
        nl_content: &nc,
    };
    let mut group = c.benchmark_group("landmark_generator");
    group.sample_size(50);
    for (label, config) in configs() {
        let mut g = match LandmarkGenerator::from_model(&model, &config) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skipping landmark_generator bench: {e}");
                return;
            }
        };
        group.bench_function(format!("window_F32_T5_Nl15_{label}"), |b| {
            b.iter(|| g.run(black_box(&x)).expect("run"))
        });
    }
    group.finish();
}

/// A streaming stage with its symbolic batch fixed to `n`.
fn stage(st: LandmarkStage, n: usize, config: &SessionConfig) -> Result<ModelSession, String> {
    let model = build_stage(&FormulaWeights::new(), st).map_err(|e| e.to_string())?;
    let (i, o) = st.contract();
    let fix = |specs: Vec<TensorSpec>| -> Vec<TensorSpec> {
        specs
            .into_iter()
            .map(|mut s| {
                for d in &mut s.shape {
                    if matches!(d, Dim::Symbolic(_)) {
                        *d = Dim::Fixed(n);
                    }
                }
                s
            })
            .collect()
    };
    ModelSession::from_bytes(st.name(), &model.to_bytes(), &fix(i), &fix(o), config)
        .map_err(|e| e.to_string())
}

/// Streaming cost per window (spec §7.2): one new mel chunk, one new pose frame, the fusion.
fn bench_streaming(c: &mut Criterion) {
    let (m, p) = (formula::golden_t_mels(), formula::golden_t_pose());
    let (emb_r, emb_5) = (vec![0.1f32; 15 * 512], vec![0.2f32; 5 * 512]);
    let mut group = c.benchmark_group("landmark_streaming");
    group.sample_size(50);
    for (label, config) in configs() {
        let sessions = (
            stage(LandmarkStage::MelEncoder, 1, &config),
            stage(LandmarkStage::PoseEncoder, 1, &config),
            stage(LandmarkStage::Fusion, 5, &config),
        );
        let (Ok(mut mel), Ok(mut pose), Ok(mut fusion)) = sessions else {
            eprintln!("skipping landmark_streaming bench: ONNX Runtime unavailable");
            return;
        };
        group.bench_function(format!("window_F32_1chunk_1frame_fusion_{label}"), |b| {
            b.iter(|| {
                let e_m = mel.run_f32(
                    &[(st::MEL_CHUNKS, black_box(&m[..1280]))],
                    &[st::MEL_EMBEDDING],
                );
                let e_p = pose.run_f32(
                    &[(st::POSE_FRAMES, black_box(&p[..148]))],
                    &[st::POSE_EMBEDDING],
                );
                let out = fusion.run_f32(
                    &[
                        (st::REF_EMBEDDING, &emb_r),
                        (st::MEL_EMBEDDING, &emb_5),
                        (st::POSE_EMBEDDING, &emb_5),
                    ],
                    &[lg::PREDICT_CONTENT],
                );
                (e_m.expect("mel"), e_p.expect("pose"), out.expect("fusion"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_landmark_generator, bench_streaming);
criterion_main!(benches);
