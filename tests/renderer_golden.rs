//! The staged renderer (spec §5.2, §7.3) against the goldens of `golden/public/models/renderer`, with
//! the reference formula weights (`shared/docs/reference-weights.md`).
//!
//! The N = 25 frame is rendered once and shared by the assertions (it is the expensive part on a
//! 2-core machine); the other tests run single stages or a 3-reference bank.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use iplap::graph::renderer::RendererGraphOptions;
use iplap::runtime::renderer::{
    RendererConfig, RendererError, RendererInput, RendererModel, RendererOutput, TranslationInput,
};
use iplap::runtime::{BorrowedTensor, DeviceTensor, Placement, SessionConfig};
use iplap::weights::FormulaWeights;
use ndarray::{Array4, Array5, ArrayD, Axis, Ix4, s};
use ndarray_npy::read_npy;

/// Parity tolerance (absolute) against the float32 goldens.
const TOL: f32 = 2e-4;

fn dir() -> Option<PathBuf> {
    iplap::testdata::shared_path("golden/public/models/renderer")
}

fn load4(dir: &Path, rel: &str) -> Array4<f32> {
    let a: ArrayD<f32> = read_npy(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    // Golden tensors carry extra size-1 axes ((1, N, …) or (N, 1, …)); drop them down to rank 4.
    let mut a = a;
    while a.ndim() > 4 {
        let axis = a
            .shape()
            .iter()
            .position(|&d| d == 1)
            .expect("a size-1 axis to drop");
        a = a.index_axis_move(Axis(axis), 0);
    }
    a.into_dimensionality::<Ix4>().unwrap()
}

fn max_abs(name: &str, a: &Array4<f32>, b: &Array4<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape(), "{name}: shapes differ");
    let d = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    eprintln!("{name:<22} max abs diff {d:.3e}");
    d
}

fn config(graph_intermediates: bool) -> RendererConfig {
    RendererConfig {
        session: SessionConfig {
            intra_threads: 2,
            ..SessionConfig::default()
        },
        keep_flow: true,
        graph: RendererGraphOptions {
            intermediates: graph_intermediates,
            ..Default::default()
        },
        ..RendererConfig::default()
    }
}

struct Inputs {
    face: Array4<f32>,
    target: Array4<f32>,
    refs: Array4<f32>,
    ref_sketches: Array4<f32>,
    audio: Array4<f32>,
}

fn inputs(dir: &Path) -> Inputs {
    let face: Array5<f32> = read_npy(dir.join("inputs/face_frame_img.npy")).unwrap();
    Inputs {
        face: face.index_axis_move(Axis(0), 0),
        target: load4(dir, "inputs/target_sketches.npy"),
        refs: load4(dir, "inputs/ref_N_frame_img.npy"),
        ref_sketches: load4(dir, "inputs/ref_N_frame_sketch.npy"),
        audio: load4(dir, "inputs/audio_mels.npy"),
    }
}

/// The golden frame with all 25 references.
fn render_n25(e: &mut RendererModel, x: &Inputs) -> RendererOutput {
    e.set_reference_bank(x.refs.view(), x.ref_sketches.view())
        .unwrap();
    e.render(&RendererInput {
        face: x.face.view(),
        target_sketches: x.target.view(),
        audio: x.audio.view(),
    })
    .unwrap()
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The N = 25 frame, rendered once per test binary (engine built with intermediates).
fn full() -> Option<&'static (RendererModel, RendererOutput)> {
    static RESULT: OnceLock<(RendererModel, RendererOutput)> = OnceLock::new();
    let dir = dir()?;
    Some(RESULT.get_or_init(|| {
        iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
        let x = inputs(&dir);
        let t = std::time::Instant::now();
        let mut engine = RendererModel::from_weights(&FormulaWeights::new(), config(true)).unwrap();
        eprintln!("graphs + sessions: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        engine
            .set_reference_bank(x.refs.view(), x.ref_sketches.view())
            .unwrap();
        eprintln!("reference bank (N = 25): {:?}", t.elapsed());
        let out = engine
            .render(&RendererInput {
                face: x.face.view(),
                target_sketches: x.target.view(),
                audio: x.audio.view(),
            })
            .unwrap();
        eprintln!("render: {:?} ({:?})", out.timings.total(), out.timings);
        eprintln!("peak RSS: {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));
        (engine, out)
    }))
}

#[test]
fn n25_outputs_and_intermediates_match_goldens() {
    let dir = iplap::require_shared!("golden/public/models/renderer");
    let Some((_, out)) = full() else { return };
    let g = |rel: &str| load4(&dir, rel);
    let mut worst = Vec::new();
    let mut check = |name: &str, a: &Array4<f32>, rel: &str| {
        worst.push((name.to_owned(), max_abs(name, a, &g(rel))))
    };
    check(
        "generated_face",
        &out.generated_face,
        "outputs/generated_face.npy",
    );
    check("wrapped_ref", &out.wrapped_ref, "outputs/wrapped_ref.npy");
    check(
        "wrapped_h1",
        &out.wrapped_h1,
        "intermediates/wrapped_h1.npy",
    );
    check(
        "wrapped_h2",
        &out.wrapped_h2,
        "intermediates/wrapped_h2.npy",
    );
    check(
        "flow_per_ref",
        out.flow.as_ref().unwrap(),
        "intermediates/flow_per_ref.npy",
    );
    check(
        "weight_per_ref",
        out.weight.as_ref().unwrap(),
        "intermediates/weight_per_ref.npy",
    );
    let t = out.intermediates.as_ref().unwrap();
    check(
        "audio_encoder_out",
        &t.audio_feature,
        "intermediates/audio_encoder_out.npy",
    );
    check(
        "trans_spade1_out",
        &t.spade1,
        "intermediates/trans_spade1_out.npy",
    );
    check(
        "trans_adain1_out",
        &t.adain1,
        "intermediates/trans_adain1_out.npy",
    );
    check(
        "trans_spade4_out",
        &t.spade4,
        "intermediates/trans_spade4_out.npy",
    );
    check(
        "trans_conv_last_out",
        &t.conv_last,
        "intermediates/trans_conv_last_out.npy",
    );
    for (name, d) in worst {
        assert!(d <= TOL, "{name}: max abs diff {d} > {TOL}");
    }
}

#[test]
fn single_stages_match_goldens_on_golden_inputs() {
    let dir = iplap::require_shared!("golden/public/models/renderer");
    let Some((engine, _)) = full() else { return };
    let x = inputs(&dir);
    // A second engine shares nothing mutable with the cached one; stage runs here are cheap (N = 1).
    let mut e = RendererModel::from_weights(&FormulaWeights::new(), config(true)).unwrap();

    // translation_input built by the engine equals the golden one.
    let ti = iplap::runtime::renderer::translation_input(x.face.view(), x.target.view()).unwrap();
    assert_eq!(
        max_abs(
            "translation_input",
            &ti,
            &load4(&dir, "intermediates/translation_input.npy")
        ),
        0.0
    );

    // Stage (e) on the golden averages.
    let (h1, h2, ra) = (
        load4(&dir, "intermediates/wrapped_h1.npy"),
        load4(&dir, "intermediates/wrapped_h2.npy"),
        load4(&dir, "outputs/wrapped_ref.npy"),
    );
    let out = e
        .translation()
        .run(&TranslationInput {
            translation_input: ti.view(),
            h1_avg: h1.view(),
            h2_avg: h2.view(),
            ref_avg: ra.view(),
            audio: x.audio.view(),
        })
        .unwrap();
    let d = max_abs(
        "generated (stage e)",
        &out.generated,
        &load4(&dir, "outputs/generated_face.npy"),
    );
    assert!(d <= TOL);

    // Stages (b) + (c) for reference 0, using the cached h2: spade_layer_1 output and flow.
    let h2_ref0 = engine
        .reference_features()
        .unwrap()
        .h2
        .slice(s![0..1, .., .., ..])
        .to_owned();
    let maps = e.flow_modulation().run(x.target.view()).unwrap();
    let head = e.flow_head().run(h2_ref0.view(), &maps).unwrap();
    let d1 = max_abs(
        "flow_spade1_ref0",
        head.spade1.as_ref().unwrap(),
        &load4(&dir, "intermediates/flow_spade1_ref0.npy"),
    );
    let flow0 = load4(&dir, "intermediates/flow_per_ref.npy")
        .slice(s![0..1, .., .., ..])
        .to_owned();
    let d2 = max_abs("flow ref0 (N = 1)", &head.flow, &flow0);
    assert!(d1 <= TOL && d2 <= TOL);

    // The GPU warp's seams, run with host placement (what CI can run): the flow head leaving
    // flow and weight as device tensors, and the translation reading averages from memory it does
    // not own, bound in place. Same numbers as the host paths, bit for bit.
    let h2_dev = DeviceTensor::upload(
        h2_ref0.as_slice().unwrap(),
        h2_ref0.shape(),
        Placement::Host,
    )
    .unwrap();
    let (flow_dev, weight_dev) = e.flow_head().run_on_device(&h2_dev, &maps).unwrap();
    assert_eq!(flow_dev.download().unwrap(), head.flow.as_slice().unwrap());
    assert_eq!(
        weight_dev.download().unwrap(),
        head.weight.as_slice().unwrap()
    );
    // SAFETY: the arrays outlive the run and nothing writes them meanwhile.
    let borrow = |a: &Array4<f32>| unsafe {
        BorrowedTensor::new(a.as_ptr() as u64, a.shape(), Placement::Host)
    };
    let (bh1, bh2, bra) = (borrow(&h1), borrow(&h2), borrow(&ra));
    let generated = e
        .translation()
        .run_on_device_averages(
            ti.as_slice().unwrap(),
            x.audio.as_standard_layout().as_slice().unwrap(),
            [&bh1, &bh2, &bra],
        )
        .unwrap();
    assert_eq!(
        generated, out.generated,
        "borrowed averages give the same face"
    );
    // A borrowed tensor of the wrong shape is refused, not read.
    let wrong = borrow(&ra);
    let err = e
        .translation()
        .run_on_device_averages(ti.as_slice().unwrap(), &[0.0; 1280], [&wrong, &bh2, &bra])
        .unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
}

#[test]
fn n_is_a_run_time_parameter_and_bad_input_is_an_error() {
    let dir = iplap::require_shared!("golden/public/models/renderer");
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let x = inputs(&dir);
    let cfg = RendererConfig {
        chunk: 2, // 3 references: chunks of 2 and 1
        ..config(false)
    };
    let mut e = RendererModel::from_weights(&FormulaWeights::new(), cfg).unwrap();
    let frame = RendererInput {
        face: x.face.view(),
        target_sketches: x.target.view(),
        audio: x.audio.view(),
    };
    assert!(matches!(
        e.render(&frame),
        Err(RendererError::NoReferenceBank)
    ));
    let empty = x.refs.slice(s![0..0, .., .., ..]);
    assert!(matches!(
        e.set_reference_bank(empty, empty),
        Err(RendererError::EmptyBank)
    ));
    let bad = x.refs.slice(s![0..3, .., 0..64, ..]);
    assert!(matches!(
        e.set_reference_bank(bad, bad),
        Err(RendererError::Shape { .. })
    ));

    e.set_reference_bank(
        x.refs.slice(s![0..3, .., .., ..]),
        x.ref_sketches.slice(s![0..3, .., .., ..]),
    )
    .unwrap();
    assert_eq!(e.reference_count(), Some(3));
    let out = e.render(&frame).unwrap();
    assert_eq!(out.generated_face.shape(), &[1, 3, 128, 128]);
    assert_eq!(out.flow.as_ref().unwrap().shape(), &[3, 2, 128, 128]);
    assert!(
        out.generated_face
            .iter()
            .all(|v| v.is_finite() && *v > 0.0 && *v < 1.0)
    );
    assert!(out.wrapped_h2.iter().all(|v| v.is_finite()));
    // The per-reference flows do not depend on the bank size: they equal the N = 25 goldens.
    let flow3 = load4(&dir, "intermediates/flow_per_ref.npy")
        .slice(s![0..3, .., .., ..])
        .to_owned();
    assert!(max_abs("flow (N = 3)", out.flow.as_ref().unwrap(), &flow3) <= TOL);

    let bad_audio = Array4::<f32>::zeros((1, 1, 80, 15));
    let bad_frame = RendererInput {
        audio: bad_audio.view(),
        ..frame
    };
    assert!(matches!(
        e.render(&bad_frame),
        Err(RendererError::Shape { name: "audio", .. })
    ));
}

#[test]
fn engine_loads_from_a_model_package() {
    use iplap::graph::package::{ModelPackage, write_package};

    let dir = iplap::require_shared!("golden/public/models/renderer");
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let pkg_dir = std::env::temp_dir().join(format!("iplap-renderer-pkg-{}", std::process::id()));
    let manifest = write_package(&pkg_dir, &[("renderer", &FormulaWeights::new())], &[]).unwrap();
    // Only the training-only VGG19 keys are left unread (spec §6, appendix B).
    let unused = manifest
        .unused_weights
        .get("renderer")
        .cloned()
        .unwrap_or_default();
    assert!(
        unused.iter().all(|k| k.starts_with("perceptual.")),
        "{unused:?}"
    );
    let pkg = ModelPackage::open(&pkg_dir).unwrap();
    let mut e = RendererModel::from_package(&pkg, config(false)).unwrap();
    let x = inputs(&dir);
    let one = s![0..1, .., .., ..];
    e.set_reference_bank(x.refs.slice(one), x.ref_sketches.slice(one))
        .unwrap();
    let out = e
        .render(&RendererInput {
            face: x.face.view(),
            target_sketches: x.target.view(),
            audio: x.audio.view(),
        })
        .unwrap();
    let flow0 = load4(&dir, "intermediates/flow_per_ref.npy")
        .slice(one)
        .to_owned();
    assert!(max_abs("flow ref0 (package)", out.flow.as_ref().unwrap(), &flow0) <= TOL);
    let _ = std::fs::remove_dir_all(&pkg_dir);
}

/// The package's GPU graphs (standard ONNX operators only) run on the CPU provider and match the
/// goldens as the CPU graphs do (N = 25); a package without them is refused for the GPU target.
#[test]
fn gpu_target_graphs_match_goldens_on_the_cpu() {
    use iplap::graph::package::{ModelPackage, write_package};
    use iplap::graph::target::GraphTarget;

    let dir = iplap::require_shared!("golden/public/models/renderer");
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let pkg_dir =
        std::env::temp_dir().join(format!("iplap-renderer-gpu-pkg-{}", std::process::id()));
    let manifest = write_package(&pkg_dir, &[("renderer", &FormulaWeights::new())], &[]).unwrap();
    for stage in manifest
        .stages
        .iter()
        .filter(|s| s.target == GraphTarget::Gpu)
    {
        let bytes = std::fs::read(pkg_dir.join(&stage.file)).unwrap();
        assert!(
            !bytes.windows(8).any(|w| w == b"ai.iplap"),
            "{} uses iplap's CPU operator",
            stage.file
        );
    }
    let gpu_stages: Vec<&str> = manifest
        .stages
        .iter()
        .filter(|s| s.target == GraphTarget::Gpu && s.precision == "fp32")
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        gpu_stages,
        ["renderer_flow_head_gpu", "renderer_translation_gpu"]
    );

    let pkg = ModelPackage::open(&pkg_dir).unwrap();
    let config = RendererConfig {
        target: Some(GraphTarget::Gpu),
        ..config(false)
    };
    let mut e = RendererModel::from_package(&pkg, config.clone()).unwrap();
    let out = render_n25(&mut e, &inputs(&dir));
    for (name, a, rel) in [
        (
            "generated_face (gpu graphs)",
            &out.generated_face,
            "outputs/generated_face.npy",
        ),
        (
            "wrapped_ref (gpu graphs)",
            &out.wrapped_ref,
            "outputs/wrapped_ref.npy",
        ),
        (
            "flow_per_ref (gpu graphs)",
            out.flow.as_ref().unwrap(),
            "intermediates/flow_per_ref.npy",
        ),
    ] {
        let d = max_abs(name, a, &load4(&dir, rel));
        assert!(d <= TOL, "{name}: max abs diff {d} > {TOL}");
    }

    // A package from before GPU graphs: its manifest lists no `_gpu` stage.
    let mut old = manifest.clone();
    old.stages.retain(|s| s.target != GraphTarget::Gpu);
    std::fs::write(
        pkg_dir.join("manifest.json"),
        serde_json::to_string_pretty(&old).unwrap(),
    )
    .unwrap();
    let pkg = ModelPackage::open(&pkg_dir).unwrap();
    let Err(err) = RendererModel::from_package(&pkg, config) else {
        panic!("a package without GPU graphs was accepted for the GPU target");
    };
    let err = err.to_string();
    assert!(err.contains("has no GPU graphs"), "{err}");
    assert!(err.contains("iplap convert"), "{err}");
    assert!(RendererModel::from_package(&pkg, RendererConfig::default()).is_ok());
    let _ = std::fs::remove_dir_all(&pkg_dir);
}

/// What fp16 weights cost, measured without a GPU: the GPU graphs built from weights rounded to
/// half precision, run in fp32 on the CPU, against the fp32 golden (N = 25). fp16 activations
/// (TensorRT's fp16 mode) add their own error, measured by the GPU check.
#[test]
fn half_precision_weights_keep_the_face_above_40_db() {
    use iplap::graph::target::GraphTarget;
    use iplap::graph::weights::HalfRounded;

    let dir = iplap::require_shared!("golden/public/models/renderer");
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let config = RendererConfig {
        graph: RendererGraphOptions {
            intermediates: false,
            target: GraphTarget::Gpu,
        },
        ..config(false)
    };
    let weights = FormulaWeights::new();
    let mut e = RendererModel::from_weights(&HalfRounded(&weights), config).unwrap();
    let out = render_n25(&mut e, &inputs(&dir));
    let golden = load4(&dir, "outputs/generated_face.npy");
    let mse = out
        .generated_face
        .iter()
        .zip(golden.iter())
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        / golden.len() as f64;
    // generated_face is a sigmoid output: peak 1.
    let psnr = 10.0 * (1.0 / mse.max(1e-20)).log10();
    eprintln!("generated_face with fp16-rounded weights: PSNR {psnr:.1} dB vs the fp32 golden");
    assert!(psnr >= 40.0, "PSNR {psnr:.1} dB < 40 dB");
}

/// Formula weights that also list the Renderer's `state_dict` keys (from the shared manifest), so
/// that unread keys can be reported.
struct KeyedFormula(FormulaWeights, Vec<String>);

impl iplap::graph::weights::WeightSource for KeyedFormula {
    fn tensor(
        &self,
        name: &str,
        shape: &[usize],
    ) -> Result<std::borrow::Cow<'_, [f32]>, iplap::graph::GraphError> {
        self.0.tensor(name, shape)
    }

    fn keys(&self) -> Option<Vec<String>> {
        Some(self.1.clone())
    }
}

#[test]
fn graphs_read_every_renderer_key_except_vgg() {
    use iplap::graph::renderer::RendererGraphs;
    use iplap::graph::weights::{RecordingSource, WeightSource};

    let manifest = iplap::require_shared!("docs/manifests/renderer.json");
    let text = std::fs::read_to_string(manifest).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<String> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 284, "spec appendix B");
    let src = KeyedFormula(FormulaWeights::new(), keys);
    let rec = RecordingSource::new(&src as &dyn WeightSource);
    RendererGraphs::build(&rec, RendererGraphOptions::default()).unwrap();
    let unused = rec.unused();
    assert_eq!(unused.len(), 32, "{unused:?}");
    assert!(
        unused.iter().all(|k| k.starts_with("perceptual.")),
        "{unused:?}"
    );
}
