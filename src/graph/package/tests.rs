//! Unit tests of the model package (writing, opening, precisions).

use super::*;
use crate::runtime::{Device, Precision};
use crate::weights::FormulaWeights;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("iplap-package-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn write_formula_package(dir: &Path) -> Manifest {
    let src = SourceCheckpoint {
        network: "landmark_generator".into(),
        file: "landmark_generator_ref.pth".into(),
        sha256: "00".repeat(32),
    };
    write_package(
        dir,
        &[("landmark_generator", &FormulaWeights::new())],
        &[src],
    )
    .unwrap()
}

#[test]
fn write_then_open_round_trips() {
    let dir = temp_dir("roundtrip");
    let written = write_formula_package(&dir);
    let pkg = ModelPackage::open(&dir).unwrap();
    assert_eq!(pkg.manifest(), &written);
    let stage = pkg.stage("landmark_generator").unwrap();
    assert_eq!(stage.inputs[0].name, "T_mels");
    assert_eq!(stage.outputs[0].name, "predict_content");
    assert!(pkg.stage_path("landmark_generator").unwrap().is_file());
    let e = pkg.stage("renderer_translation").unwrap_err().to_string();
    assert!(
        e.contains("renderer_translation") && e.contains("iplap convert"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupted_or_missing_packages_give_clear_errors() {
    let dir = temp_dir("corrupt");
    let e = ModelPackage::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("does not exist") && e.contains("iplap convert"),
        "{e}"
    );

    write_formula_package(&dir);
    let onnx = dir.join("landmark_generator.onnx");
    let mut bytes = std::fs::read(&onnx).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&onnx, &bytes).unwrap();
    let e = ModelPackage::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("landmark_generator.onnx")
            && e.contains("sha256")
            && e.contains("iplap convert"),
        "{e}"
    );

    std::fs::remove_file(&onnx).unwrap();
    let e = ModelPackage::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("landmark_generator.onnx") && e.contains("unreadable"),
        "{e}"
    );

    std::fs::write(dir.join(MANIFEST_FILE), "{ not json").unwrap();
    let e = ModelPackage::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("manifest.json") && e.contains("invalid manifest"),
        "{e}"
    );

    std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
    let e = ModelPackage::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("manifest.json") && e.contains("iplap convert"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn renderer_stages_follow_the_landmark_generator() {
    let dir = temp_dir("full");
    let w = FormulaWeights::new();
    let m = write_package(&dir, &[("renderer", &w), ("landmark_generator", &w)], &[]).unwrap();
    let names: Vec<&str> = m.stages.iter().map(|s| s.name.as_str()).collect();
    // Each stage, then its fp16 form where it has one.
    let mut want = Vec::new();
    for d in STAGES {
        want.push(d.name.to_owned());
        if d.fp16 {
            want.push(stage_for_precision(d.name, GraphPrecision::Fp16));
        }
    }
    assert_eq!(names, want);
    assert!(m.unused_weights.is_empty(), "formula sources list no keys");
    let pkg = ModelPackage::open(&dir).unwrap();
    assert_eq!(pkg.manifest().stages.len(), want.len());

    for d in STAGES {
        let fp32 = pkg
            .stage_for_precision(d.name, GraphPrecision::Fp32)
            .unwrap();
        assert_eq!(
            (fp32.name.as_str(), fp32.precision.as_str()),
            (d.name, "fp32")
        );
        let fp16 = pkg.stage_for_precision(d.name, GraphPrecision::Fp16);
        if !d.fp16 {
            let e = fp16.unwrap_err().to_string();
            assert!(e.contains("has no fp16 form"), "{e}");
            continue;
        }
        let fp16 = fp16.unwrap();
        assert_eq!(fp16.precision, "fp16");
        assert_eq!(fp16.target, GraphTarget::Gpu);
        assert_eq!((&fp16.inputs, &fp16.outputs), (&fp32.inputs, &fp32.outputs));
        assert_ne!(fp16.sha256, fp32.sha256);
        assert_eq!(base_stage(&fp16.name), (d.name, GraphPrecision::Fp16));
        // Half the weight bytes: the file is well under the fp32 one.
        let size = |s: &Stage| std::fs::metadata(dir.join(&s.file)).unwrap().len();
        assert!(size(fp16) * 10 < size(fp32) * 6, "{}", fp16.file);
    }
    // Only stages a GPU runs have an fp16 form.
    assert!(
        STAGES
            .iter()
            .all(|d| !d.fp16 || d.target != GraphTarget::Cpu)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_fp16_form_says_why() {
    let dir = temp_dir("nofp16");
    let w = FormulaWeights::new();
    let mut m = write_package(&dir, &[("renderer", &w)], &[]).unwrap();
    let base = crate::graph::renderer::TRANSLATION_GPU;
    // As written by an iplap without fp16 graphs.
    m.stages.retain(|s| s.precision == "fp32");
    let write = |m: &Manifest| {
        let text = serde_json::to_string_pretty(m).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), text).unwrap();
        ModelPackage::open(&dir).unwrap()
    };
    let e = write(&m)
        .stage_for_precision(base, GraphPrecision::Fp16)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("without fp16 graphs") && e.contains("iplap convert"),
        "{e}"
    );
    // As written when the weights exceed fp16's range.
    let stage = m.stages.iter_mut().find(|s| s.name == base).unwrap();
    stage.attributes.insert(
        FP16_SKIPPED_ATTRIBUTE.into(),
        "1 weight tensor(s) exceed".into(),
    );
    let e = write(&m)
        .stage_for_precision(base, GraphPrecision::Fp16)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("did not fit fp16") && e.contains("1 weight tensor(s)"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn devices_pick_fp16_graphs_only_without_an_fp16_mode() {
    use GraphPrecision::{Fp16, Fp32};
    let pick = GraphPrecision::for_device;
    assert_eq!(pick(Device::Cuda, Precision::Fp16), Fp16);
    assert_eq!(pick(Device::TensorRtRtx, Precision::Fp16), Fp16);
    assert_eq!(pick(Device::TensorRt, Precision::Fp16), Fp32);
    assert_eq!(pick(Device::Cuda, Precision::Tf32), Fp32);
    assert_eq!(pick(Device::Cpu, Precision::Fp32), Fp32);
    assert_eq!(
        stage_for_precision("renderer_ref_encoder", Fp16),
        "renderer_ref_encoder_fp16"
    );
    assert_eq!(
        base_stage("renderer_ref_encoder"),
        ("renderer_ref_encoder", Fp32)
    );
    // Not an fp16 stage: the suffix is part of an unknown name.
    assert_eq!(
        base_stage("landmark_fusion_fp16"),
        ("landmark_fusion_fp16", Fp32)
    );
}

#[test]
fn streaming_stage_names_are_the_graph_names() {
    let names: Vec<&str> = LANDMARK_STREAMING_STAGES.iter().map(|d| d.name).collect();
    let graphs: Vec<&str> = LandmarkStage::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names, graphs);
}

#[test]
fn unknown_network_is_refused() {
    let dir = temp_dir("unknown");
    let e = write_package(&dir, &[("vgg", &FormulaWeights::new())], &[]).unwrap_err();
    assert!(e.to_string().contains("vgg"));
}

/// An fp16 stage's manifest entry is held to its base stage's contract (float32 inputs and
/// outputs): an edited input name is refused, naming the stage.
#[test]
fn fp16_stages_keep_their_base_contract() {
    let dir = temp_dir("fp16-contract");
    write_package(&dir, &[("renderer", &FormulaWeights::new())], &[]).unwrap();
    ModelPackage::open(&dir).unwrap();
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut m: Manifest = serde_json::from_str(&text).unwrap();
    let stage = m
        .stages
        .iter_mut()
        .find(|s| s.name == "renderer_translation_gpu_fp16")
        .expect("the package has the fp16 translation");
    stage.inputs[0].name = "renamed".into();
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let e = ModelPackage::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("renderer_translation_gpu_fp16") && e.contains("renamed"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
