//! fp16 graphs (`graph::fp16`, the package's `<stage>_fp16` stages): which ops the renderer's GPU
//! graphs hold, that the converted graphs are typed consistently and load in ONNX Runtime, that
//! they compute the fp32 graph with fp16-rounded weights, what fp16 costs against the golden
//! frame, and that weights beyond fp16's range are refused.
//!
//! ONNX Runtime's CPU provider (1.31, x86) runs these graphs, but not in fp16: it has no fp16
//! kernel for Conv, Gemm, InstanceNormalization…, so its InsertCastTransformer computes those
//! nodes in fp32 between casts it then removes. The CPU result therefore carries the fp16 weights
//! with (mostly) fp32 activations; fp16 storage of the activations is measured with
//! [`widen_to_fp32`]`(…, true)`, which rounds every fp16 tensor.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use iplap::graph::fp16::{self, DT_FLOAT16, KEEP_FP32};
use iplap::graph::onnx::proto::{self, AttributeProto, ModelProto, NodeProto, TensorProto};
use iplap::graph::onnx::{Attr, Dim, GraphBuilder, OnnxModel, TensorSpec};
use iplap::graph::package::{GraphPrecision, ModelPackage, stage_for_precision, write_package};
use iplap::graph::renderer;
use iplap::graph::target::GraphTarget;
use iplap::graph::weights::HalfRounded;
use iplap::runtime::renderer::{RendererConfig, RendererInput, RendererModel};
use iplap::runtime::{ModelSession, SessionConfig};
use iplap::weights::FormulaWeights;
use ndarray::{Array4, Array5, ArrayD, Axis, Ix4};
use prost::Message;

/// The renderer stages a GPU runs, built from the formula weights: (name, fp32 graph, fp16 proto).
fn gpu_stages() -> &'static [(&'static str, OnnxModel, ModelProto)] {
    static STAGES: OnceLock<Vec<(&'static str, OnnxModel, ModelProto)>> = OnceLock::new();
    STAGES.get_or_init(|| {
        let w = FormulaWeights::new();
        let defs = renderer::STAGES.iter().filter(|d| d.fp16);
        defs.map(|d| {
            let model = (d.build)(&w).unwrap();
            let half = fp16::to_fp16(model.proto(), &KEEP_FP32).unwrap();
            (d.name, model, half)
        })
        .collect()
    })
}

fn session_config() -> SessionConfig {
    SessionConfig {
        intra_threads: 2,
        ..SessionConfig::default()
    }
}

/// Deterministic inputs in [0, 1) for every contract input, symbolic dims = 2.
fn inputs(specs: &[TensorSpec]) -> Vec<(String, Vec<f32>)> {
    specs
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let n: usize = s
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Symbolic(_) => 2,
                })
                .product();
            let data = (0..n)
                .map(|i| ((i as f32 * 0.618_034 + k as f32 * 0.1).sin() * 0.5 + 0.5).fract())
                .collect();
            (s.name.clone(), data)
        })
        .collect()
}

/// Runs `model` (bytes) on the CPU with the contract of `like` and returns every output.
fn run(label: &str, bytes: &[u8], like: &OnnxModel) -> Vec<Vec<f32>> {
    let mut s = ModelSession::from_bytes(
        label,
        bytes,
        like.inputs(),
        like.outputs(),
        &session_config(),
    )
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    let x = inputs(like.inputs());
    let feeds: Vec<(&str, &[f32])> = x.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    let names: Vec<&str> = like.outputs().iter().map(|o| o.name.as_str()).collect();
    s.run_f32_dims(&[(renderer::N_REF_DIM, 2)], &feeds, &names)
        .unwrap_or_else(|e| panic!("{label}: {e}"))
}

fn cast(from: &str, to: &str, code: i32) -> NodeProto {
    NodeProto {
        input: vec![from.into()],
        output: vec![to.into()],
        name: Some(format!("{to}/round")),
        op_type: Some("Cast".into()),
        attribute: vec![AttributeProto {
            name: Some("to".into()),
            r#type: Some(proto::attr_type::INT),
            i: Some(code.into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The reverse of `fp16::to_fp16`, for checking fp16 graphs with fp32 kernels: every fp16 tensor
/// becomes fp32 holding the same (fp16-representable) values, casts between the float types
/// become `Identity`. With `round_activations`, each value that is fp16 in `model` is rounded to
/// fp16 and widened again where it is produced (a `Cast` pair), which reproduces fp16 storage of
/// the activations; the arithmetic inside each op stays fp32.
fn widen_to_fp32(model: &ModelProto, round_activations: bool) -> ModelProto {
    let mut m = model.clone();
    let g = m.graph.as_mut().unwrap();
    let types = fp16::value_types(g).unwrap();
    let widen = |t: &mut TensorProto| {
        if t.data_type() == DT_FLOAT16 {
            let raw = t.raw_data.as_ref().unwrap().chunks_exact(2);
            let wide = raw.flat_map(|b| {
                half::f16::from_le_bytes([b[0], b[1]])
                    .to_f32()
                    .to_le_bytes()
            });
            (t.data_type, t.raw_data) = (Some(proto::DT_FLOAT), Some(wide.collect()));
        }
    };
    g.initializer.iter_mut().for_each(widen);
    let mut nodes = Vec::new();
    for mut n in std::mem::take(&mut g.node) {
        if n.op_type() == "Cast" {
            let float_in = matches!(types[&n.input[0]], DT_FLOAT16 | proto::DT_FLOAT);
            let to = n.attribute.iter_mut().find(|a| a.name() == "to").unwrap();
            if float_in {
                (n.op_type, n.attribute) = (Some("Identity".into()), Vec::new());
            } else if to.i == Some(DT_FLOAT16.into()) {
                to.i = Some(proto::DT_FLOAT.into());
            }
        }
        n.attribute
            .iter_mut()
            .filter_map(|a| a.t.as_mut())
            .for_each(widen);
        let mut after = Vec::new();
        for o in &mut n.output {
            if round_activations && types[o.as_str()] == DT_FLOAT16 {
                let (wide, half) = (format!("{o}/wide"), format!("{o}/half"));
                after.extend([
                    cast(&wide, &half, DT_FLOAT16),
                    cast(&half, o, proto::DT_FLOAT),
                ]);
                *o = wide;
            }
        }
        nodes.push(n);
        nodes.extend(after);
    }
    g.node = nodes;
    m
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let pairs = a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y));
    pairs.map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn graph(m: &ModelProto) -> &proto::GraphProto {
    m.graph.as_ref().unwrap()
}

/// The op types of the renderer's GPU graphs: a new one must get an fp16 rule checked against
/// the ONNX spec (the pass refuses ops it has no rule for), and this list is where it shows.
#[test]
fn renderer_gpu_graphs_hold_only_ops_with_fp16_rules() {
    let mut all = BTreeSet::new();
    for (name, model, half) in gpu_stages() {
        let ops = fp16::op_types(model.proto());
        eprintln!("{name}: {ops:?}");
        eprintln!("{name} (fp16): {:?}", fp16::op_types(half));
        all.extend(ops);
    }
    let want = [
        "Add",
        "Concat",
        "Conv",
        "DepthToSpace",
        "Identity",
        "InstanceNormalization",
        "LeakyRelu",
        "MatMul",
        "Mul",
        "Relu",
        "Reshape",
        "Resize",
        "Sigmoid",
        "Split",
    ];
    assert_eq!(all, want.iter().map(|s| s.to_string()).collect());
}

/// Every fp16 stage: fp32 inputs and outputs as in the fp32 graph, fp16 weights except those only
/// fp32 readers use, kept ops read and write fp32, no op mixes fp16 and fp32 data, no back-to-back
/// casts, and ONNX Runtime accepts and runs it.
#[test]
fn fp16_stages_are_typed_consistently_and_load() {
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    for (name, model, half) in gpu_stages() {
        let (g32, g16) = (graph(model.proto()), graph(half));
        assert_eq!(g16.input, g32.input, "{name}: inputs");
        assert_eq!(g16.output, g32.output, "{name}: outputs");
        assert!(g16.value_info.is_empty());
        let types = fp16::value_types(g16).unwrap();
        let mut readers: HashMap<&str, Vec<(&str, usize)>> = HashMap::new();
        for n in &g16.node {
            for (i, v) in n.input.iter().enumerate() {
                readers.entry(v).or_default().push((n.op_type(), i));
            }
        }
        let spec_fp32 = |op: &str, i: usize| op == "Resize" && i > 0;
        let (mut bytes16, mut bytes32) = (0, 0);
        for t in &g16.initializer {
            let len = t.raw_data.as_ref().map_or(0, Vec::len);
            match t.data_type() {
                DT_FLOAT16 => bytes16 += len,
                proto::DT_FLOAT => {
                    bytes32 += len;
                    let r = &readers[t.name()];
                    assert!(
                        r.iter()
                            .all(|&(op, i)| KEEP_FP32.contains(&op) || spec_fp32(op, i)),
                        "{name}: float32 initializer `{}` read by {r:?}",
                        t.name()
                    );
                }
                proto::DT_INT64 => {}
                other => panic!("{name}: initializer `{}` of type {other}", t.name()),
            }
        }
        let (mut half_nodes, mut kept_nodes, mut casts) = (0, 0, 0);
        let producer: HashMap<&str, &str> = g16
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n.op_type())))
            .collect();
        for n in &g16.node {
            let op = n.op_type();
            let float_types: BTreeSet<i32> = (n.input.iter().enumerate())
                .filter(|&(i, _)| !spec_fp32(op, i))
                .filter_map(|(_, v)| types.get(v).copied())
                .filter(|&t| t == proto::DT_FLOAT || t == DT_FLOAT16)
                .collect();
            if op == "Cast" {
                casts += 1;
                let src = producer.get(n.input[0].as_str()).copied();
                assert_ne!(
                    src,
                    Some("Cast"),
                    "{name}: back-to-back casts at {}",
                    n.name()
                );
                continue;
            }
            assert!(
                float_types.len() <= 1,
                "{name}: {} mixes {float_types:?}",
                n.name()
            );
            if KEEP_FP32.contains(&op) {
                kept_nodes += 1;
                assert_eq!(
                    float_types,
                    BTreeSet::from([proto::DT_FLOAT]),
                    "{}",
                    n.name()
                );
                assert_eq!(types[&n.output[0]], proto::DT_FLOAT, "{}", n.name());
            } else if float_types.contains(&DT_FLOAT16) {
                half_nodes += 1;
            }
        }
        eprintln!(
            "{name}: {half_nodes} fp16 nodes, {kept_nodes} kept fp32, {casts} casts; weights \
             {bytes16} B fp16 + {bytes32} B fp32 (fp32 graph: {} B)",
            model.to_bytes().len()
        );
        assert!(
            half_nodes > kept_nodes && bytes16 > 100 * bytes32.max(1),
            "{name}"
        );
        // Session creation type-checks the whole graph; running it proves the CPU provider can.
        let out = run(&format!("{name}_fp16"), &half.encode_to_vec(), model);
        assert!(out.iter().flatten().all(|x| x.is_finite()), "{name}");
    }
}

/// The fp32 graph with each weight that became fp16 rounded to fp16 (what the fp16 graph holds).
fn rounded_fp32(model: &ModelProto, half: &ModelProto) -> ModelProto {
    let halved: BTreeSet<&str> = (graph(half).initializer.iter())
        .filter(|t| t.data_type() == DT_FLOAT16)
        .map(|t| t.name())
        .collect();
    let mut out = model.clone();
    for t in &mut out.graph.as_mut().unwrap().initializer {
        if halved.contains(t.name()) {
            let raw: Vec<u8> = (t.raw_data.as_ref().unwrap().chunks_exact(4))
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .flat_map(|x| half::f16::from_f32(x).to_f32().to_le_bytes())
                .collect();
            t.raw_data = Some(raw);
        }
    }
    out
}

/// The reverse pass gives back the fp32 graph with fp16-rounded weights (up to the order ONNX
/// Runtime sums in), and the CPU run of the fp16 graph agrees with it; both are compared with the
/// graph built from `HalfRounded` weights, which rounds before BatchNorm folding and the SPADE
/// `+ 1`, so it differs by more than the tolerance (printed, not asserted).
#[test]
fn widened_fp16_graphs_are_the_fp32_graphs_with_rounded_weights() {
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let hw = FormulaWeights::new();
    let half_rounded = HalfRounded(&hw);
    for (name, model, half) in gpu_stages() {
        let widened = widen_to_fp32(half, false);
        assert!(
            (graph(&widened).initializer.iter()).all(|t| t.data_type() != DT_FLOAT16),
            "{name}"
        );
        let want = run(
            name,
            &rounded_fp32(model.proto(), half).encode_to_vec(),
            model,
        );
        let got = run(name, &widened.encode_to_vec(), model);
        let d = max_abs_diff(&want, &got);
        let cpu = max_abs_diff(&want, &run(name, &half.encode_to_vec(), model));
        let def = renderer::STAGES.iter().find(|d| d.name == *name).unwrap();
        let hr = (def.build)(&half_rounded).unwrap();
        let hr = max_abs_diff(&want, &run(name, &hr.to_bytes(), model));
        let fp32 = max_abs_diff(&want, &run(name, &model.to_bytes(), model));
        eprintln!(
            "{name}: widened vs rounded fp32 {d:.2e}, fp16 on the CPU {cpu:.2e}, \
             HalfRounded graph {hr:.2e}, fp32 weights {fp32:.2e}"
        );
        assert!(d <= 1e-6, "{name}: widened graph differs by {d}");
        assert!(
            cpu <= 1e-3,
            "{name}: the CPU run of the fp16 graph differs by {cpu}"
        );
    }
}

fn golden() -> Option<PathBuf> {
    iplap::testdata::shared_path("golden/public/models/renderer")
}

fn load4(dir: &Path, rel: &str) -> Array4<f32> {
    let mut a: ArrayD<f32> = ndarray_npy::read_npy(dir.join(rel)).unwrap();
    while a.ndim() > 4 {
        let axis = a.shape().iter().position(|&d| d == 1).unwrap();
        a = a.index_axis_move(Axis(axis), 0);
    }
    a.into_dimensionality::<Ix4>().unwrap()
}

/// PSNR (peak 1: `generated_face` is a sigmoid output) of the golden frame (N = 25) rendered by
/// the package's GPU stages, each replaced by `replace(fp16 stage bytes)`.
fn golden_psnr(tag: &str, replace: impl Fn(&ModelProto) -> Vec<u8>) -> f64 {
    let dir = golden().unwrap();
    let pkg_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fp16-golden-{tag}"));
    let _ = std::fs::remove_dir_all(&pkg_dir);
    let mut m = write_package(&pkg_dir, &[("renderer", &FormulaWeights::new())], &[]).unwrap();
    for base in renderer::stage_names(GraphTarget::Gpu) {
        let half_name = stage_for_precision(base, GraphPrecision::Fp16);
        let s16 = m.stages.iter().find(|s| s.name == half_name).unwrap();
        let half = ModelProto::decode(&*std::fs::read(pkg_dir.join(&s16.file)).unwrap()).unwrap();
        let bytes = replace(&half);
        let file = format!("{base}_{tag}.onnx");
        std::fs::write(pkg_dir.join(&file), &bytes).unwrap();
        let s = m.stages.iter_mut().find(|s| s.name == base).unwrap();
        (s.file, s.sha256) = (file, iplap::graph::package::sha256_hex(&bytes));
    }
    let text = serde_json::to_string_pretty(&m).unwrap();
    std::fs::write(pkg_dir.join("manifest.json"), text).unwrap();
    let pkg = ModelPackage::open(&pkg_dir).unwrap();
    let config = RendererConfig {
        session: session_config(),
        target: Some(GraphTarget::Gpu),
        ..RendererConfig::default()
    };
    let mut e = RendererModel::from_package(&pkg, config).unwrap();
    let face: Array5<f32> = ndarray_npy::read_npy(dir.join("inputs/face_frame_img.npy")).unwrap();
    let face = face.index_axis_move(Axis(0), 0);
    let (refs, sketches) = (
        load4(&dir, "inputs/ref_N_frame_img.npy"),
        load4(&dir, "inputs/ref_N_frame_sketch.npy"),
    );
    e.set_reference_bank(refs.view(), sketches.view()).unwrap();
    let (target, audio) = (
        load4(&dir, "inputs/target_sketches.npy"),
        load4(&dir, "inputs/audio_mels.npy"),
    );
    let out = e
        .render(&RendererInput {
            face: face.view(),
            target_sketches: target.view(),
            audio: audio.view(),
        })
        .unwrap();
    let golden = load4(&dir, "outputs/generated_face.npy");
    let mse = (out.generated_face.iter().zip(golden.iter()))
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        / golden.len() as f64;
    let _ = std::fs::remove_dir_all(&pkg_dir);
    10.0 * (1.0 / mse.max(1e-20)).log10()
}

/// The golden frame through the fp16 stages: run by the CPU provider as they are (fp16 weights),
/// and with every fp16 activation rounded to fp16 (fp16 storage throughout). The target is 40 dB.
#[test]
fn fp16_stages_render_the_golden_frame_above_40_db() {
    if golden().is_none() {
        return;
    }
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let as_is = golden_psnr("asis", |m| m.encode_to_vec());
    eprintln!("generated_face, fp16 stages on the CPU provider: PSNR {as_is:.1} dB");
    let rounded = golden_psnr("rounded", |m| widen_to_fp32(m, true).encode_to_vec());
    eprintln!("generated_face, fp16 weights and fp16-rounded activations: PSNR {rounded:.1} dB");
    assert!(
        as_is >= 40.0 && rounded >= 40.0,
        "{as_is:.1} / {rounded:.1} dB"
    );
}

/// What keeping ops in fp32 buys, with fp16-rounded activations (slow: one N = 25 frame per
/// choice): `cargo test --release --test fp16_graphs -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_keep_fp32_choices() {
    if golden().is_none() {
        return;
    }
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let choices: [&[&str]; 3] = [&KEEP_FP32, &["Sigmoid"], &[]];
    for keep in choices {
        let psnr = golden_psnr("keep", |m| {
            // Back to fp32, then converted again with this keep list.
            let fp32 = widen_to_fp32(m, false);
            let half = fp16::to_fp16(&fp32, keep).unwrap();
            widen_to_fp32(&half, true).encode_to_vec()
        });
        eprintln!("keep {keep:?}: PSNR {psnr:.1} dB");
    }
}

/// `y = x * w (+ InstanceNorm)` with `w` = `values`.
fn scaled(values: &[f32], norm_scale: Option<&[f32]>) -> OnnxModel {
    let mut b = GraphBuilder::new("range");
    let x = b.input_f32("x", &[1, 4, 2, 2]).unwrap();
    let w = b.initializer_f32("w", &[1, 4, 1, 1], values).unwrap();
    let mut y = b.mul(&x, &w).unwrap();
    if let Some(s) = norm_scale {
        let s = b.initializer_f32("norm_scale", &[4], s).unwrap();
        let z = b.initializer_f32("norm_bias", &[4], &[0.0; 4]).unwrap();
        y = b.node("InstanceNormalization", &[&y, &s, &z], &[]).unwrap();
    }
    b.output_f32(&y, "y", &[1, 4, 2, 2]).unwrap();
    b.finish().unwrap()
}

#[test]
fn weights_beyond_fp16_range_are_refused() {
    let m = scaled(&[1e5, 1.0, -2.0, 3.0], None);
    let bad = fp16::out_of_range(m.proto(), &KEEP_FP32).unwrap();
    assert_eq!(bad, [("w".to_owned(), 1e5)]);
    let e = fp16::to_fp16(m.proto(), &KEEP_FP32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`w`") && e.contains("65504"), "{e}");
    let m = scaled(&[f32::NAN, 1.0, 2.0, 3.0], None);
    assert!(fp16::to_fp16(m.proto(), &KEEP_FP32).is_err());
    // The largest fp16 value itself converts.
    let m = scaled(&[65504.0, -65504.0, 0.0, 1.0], None);
    assert!(fp16::to_fp16(m.proto(), &KEEP_FP32).is_ok());
    // A large weight that only a kept op reads stays float32 and is fine.
    let m = scaled(&[1.0; 4], Some(&[1e6; 4]));
    let half = fp16::to_fp16(m.proto(), &KEEP_FP32).unwrap();
    let kept: Vec<&TensorProto> = (graph(&half).initializer.iter())
        .filter(|t| t.data_type() == proto::DT_FLOAT)
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(fp16::to_fp16(m.proto(), &[]).is_err());
}

/// A graph with the ops whose inputs the ONNX spec types apart from the data (Resize, Pad, Clip,
/// Reshape, Cast, Constant, ConstantOfShape, Shape, Size), a kept LayerNormalization → Softmax
/// pair and int64 shape arithmetic: it converts, its kept pair has no cast between them, and ONNX
/// Runtime computes the fp32 result to fp16 accuracy.
#[test]
fn spec_typed_inputs_keep_their_types() {
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let mut b = GraphBuilder::new("ops");
    let x = b.input_f32("x", &[1, 2, 4, 4]).unwrap();
    let shape = b.node("Shape", &[&x], &[]).unwrap();
    let ones = b.node("ConstantOfShape", &[&shape], &[]).unwrap();
    let y = b.add(&x, &ones).unwrap();
    let pads = b.const_i64("pads", &[0, 0, 1, 1, 0, 0, 1, 1]);
    let fill = b.scalar_f32("fill", 0.25);
    let y = b.node("Pad", &[&y, &pads, &fill], &[]).unwrap();
    let (lo, hi) = (b.scalar_f32("lo", 0.1), b.scalar_f32("hi", 1.5));
    let y = b.node("Clip", &[&y, &lo, &hi], &[]).unwrap();
    let y = b.resize_bilinear(&y, &[1, 2, 3, 3]).unwrap();
    let y = b.reshape(&y, &[1, 2, 9]).unwrap();
    let ln_g = b.initializer_f32("ln_g", &[9], &[1.5; 9]).unwrap();
    let ln_b = b.initializer_f32("ln_b", &[9], &[0.1; 9]).unwrap();
    let y = b
        .node(
            "LayerNormalization",
            &[&y, &ln_g, &ln_b],
            &[("axis", Attr::Int(-1))],
        )
        .unwrap();
    let y = b.softmax(&y, -1).unwrap();
    let n = b.node("Size", &[&y], &[]).unwrap();
    let n = b.node("Cast", &[&n], &[("to", Attr::Int(1))]).unwrap();
    let y = b.mul(&y, &n).unwrap();
    b.output_f32(&y, "y", &[1, 2, 9]).unwrap();
    let model = b.finish().unwrap();
    // Pad's fill comes from a Constant node; ConstantOfShape fills with 1.0 (float32 `value`
    // attributes set by hand: the builder writes initializers).
    let mut p = model.proto().clone();
    let g = p.graph.as_mut().unwrap();
    let at = g
        .initializer
        .iter()
        .position(|t| t.name() == fill.name())
        .unwrap();
    let value = AttributeProto {
        name: Some("value".into()),
        r#type: Some(proto::attr_type::TENSOR),
        t: Some(g.initializer.remove(at)),
        ..Default::default()
    };
    let constant = NodeProto {
        output: vec![fill.name().into()],
        op_type: Some("Constant".into()),
        attribute: vec![value],
        ..Default::default()
    };
    g.node.insert(0, constant);
    let cos = g
        .node
        .iter_mut()
        .find(|n| n.op_type() == "ConstantOfShape")
        .unwrap();
    cos.attribute.push(proto::AttributeProto {
        name: Some("value".into()),
        r#type: Some(proto::attr_type::TENSOR),
        t: Some(TensorProto {
            dims: vec![1],
            data_type: Some(proto::DT_FLOAT),
            raw_data: Some(1f32.to_le_bytes().to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    });

    let half = fp16::to_fp16(&p, &KEEP_FP32).unwrap();
    let g16 = graph(&half);
    let types = fp16::value_types(g16).unwrap();
    let node = |op: &str| g16.node.iter().find(|n| n.op_type() == op).unwrap();
    // Resize: X in fp16, roi and scales stay float32; sizes, pads and the shape stay int64.
    let resize = node("Resize");
    let t: Vec<i32> = resize.input.iter().map(|v| types[v]).collect();
    assert_eq!(
        t,
        [
            DT_FLOAT16,
            proto::DT_FLOAT,
            proto::DT_FLOAT,
            proto::DT_INT64
        ]
    );
    let t: Vec<i32> = node("Pad").input.iter().map(|v| types[v]).collect();
    assert_eq!(t, [DT_FLOAT16, proto::DT_INT64, DT_FLOAT16]);
    let constant = node("Constant").attribute[0].t.as_ref().unwrap();
    assert_eq!(
        (constant.data_type(), constant.raw_data().len()),
        (DT_FLOAT16, 2)
    );
    let t: Vec<i32> = node("Clip").input.iter().map(|v| types[v]).collect();
    assert_eq!(t, [DT_FLOAT16; 3]);
    assert_eq!(types[&node("ConstantOfShape").output[0]], DT_FLOAT16);
    assert_eq!(types[&node("Reshape").input[1]], proto::DT_INT64);
    // The Cast of the element count now makes fp16 for the fp16 Mul.
    assert_eq!(types[&node("Size").output[0]], proto::DT_INT64);
    let mul = g16
        .node
        .iter()
        .rev()
        .find(|n| n.op_type() == "Mul")
        .unwrap();
    assert_eq!(types[&mul.input[1]], DT_FLOAT16);
    // LayerNormalization feeds Softmax directly, both in fp32.
    let ln = node("LayerNormalization");
    assert_eq!(node("Softmax").input[0], ln.output[0]);
    assert_eq!(types[&ln.input[0]], proto::DT_FLOAT);
    assert_eq!(types[&ln.input[1]], proto::DT_FLOAT);

    let want = run("ops", &p.encode_to_vec(), &model);
    let got = run("ops_fp16", &half.encode_to_vec(), &model);
    let widened = run(
        "ops_wide",
        &widen_to_fp32(&half, true).encode_to_vec(),
        &model,
    );
    let scale = want[0].iter().fold(0f32, |m, x| m.max(x.abs()));
    for (label, y) in [("fp16 graph", &got), ("rounded widened", &widened)] {
        let d = max_abs_diff(&want, y);
        eprintln!("ops: {label} differs by {d:.2e} (output up to {scale:.2})");
        assert!(d <= 2e-3 * scale, "{label}: {d}");
    }
}
