//! Issue 13: a model package whose `manifest.json` disagrees with the code's I/O contracts or
//! with its own graphs is refused when it is opened, and the error names the stage, the field
//! and both values (such packages used to load and run).
//!
//! One landmark-generator package with the formula weights is written per run; each test opens
//! a copy (hard links to its graphs) with an edited manifest.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use iplap::graph::landmark_stages::{MEL_CHUNKS, POSE_FRAMES};
use iplap::graph::package::{MANIFEST_FILE, ModelPackage, write_package};
use iplap::weights::FormulaWeights;
use serde_json::Value;

/// Stage order of a landmark-generator package (`package::STAGES`).
const ONE_GRAPH: usize = 0;
const MEL_ENCODER: usize = 1;
const POSE_ENCODER: usize = 2;
const REF_ENCODER: usize = 3;
const FUSION: usize = 4;

fn source_package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("model-package-source");
        write_package(&dir, &[("landmark_generator", &FormulaWeights::new())], &[]).unwrap();
        dir
    })
}

/// A copy of the package in its own folder with the manifest changed by `edit`.
fn edited(tag: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let src = source_package();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("model-package-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name == MANIFEST_FILE {
            continue;
        }
        let to = dir.join(name);
        if std::fs::hard_link(&path, &to).is_err() {
            std::fs::copy(&path, &to).unwrap();
        }
    }
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(src.join(MANIFEST_FILE)).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    dir
}

/// The open error of `dir`, which must contain every needle.
fn assert_refused(dir: &Path, needles: &[&str]) {
    let err = match ModelPackage::open(dir) {
        Ok(_) => panic!("{} opened although its manifest was edited", dir.display()),
        Err(e) => e.to_string(),
    };
    for needle in needles.iter().chain(&["iplap convert"]) {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_eq!(err.matches("iplap convert").count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unedited_copy_opens() {
    let dir = edited("plain", |_| {});
    let pkg = ModelPackage::open(&dir).unwrap();
    assert_eq!(pkg.manifest().stages.len(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_shape_names_the_stage_the_tensor_and_both_shapes() {
    let dir = edited("shape", |m| {
        m["stages"][ONE_GRAPH]["inputs"][0]["shape"][4] = 17.into()
    });
    assert_refused(
        &dir,
        &[
            "manifest.json",
            "stage `landmark_generator` input `T_mels`",
            "the manifest has shape [1, 5, 1, 80, 17]",
            "this iplap expects [1, 5, 1, 80, 16]",
        ],
    );
    // A symbolic batch dimension made fixed, on an output.
    let dir = edited("shape-out", |m| {
        m["stages"][MEL_ENCODER]["outputs"][0]["shape"][0] = 5.into()
    });
    assert_refused(
        &dir,
        &[
            "stage `landmark_mel_encoder` output `mel_embedding`",
            "[5, 512]",
            "[n, 512]",
        ],
    );
}

#[test]
fn a_renamed_missing_or_retyped_tensor_is_named() {
    let dir = edited("rename", |m| {
        m["stages"][ONE_GRAPH]["inputs"][1]["name"] = "pose".into()
    });
    assert_refused(
        &dir,
        &["stage `landmark_generator` input 1", "`pose`", "`T_pose`"],
    );
    let dir = edited("rename-out", |m| {
        m["stages"][FUSION]["outputs"][0]["name"] = "content".into()
    });
    assert_refused(
        &dir,
        &[
            "stage `landmark_fusion` output 0",
            "`content`",
            "`predict_content`",
        ],
    );
    let dir = edited("dropped", |m| {
        m["stages"][REF_ENCODER]["inputs"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert_refused(
        &dir,
        &["stage `landmark_ref_encoder`", "1 input(s)", "expects 2"],
    );
    let dir = edited("dtype", |m| {
        m["stages"][ONE_GRAPH]["inputs"][0]["dtype"] = "int64".into()
    });
    assert_refused(&dir, &["input `T_mels`", "dtype int64", "expects float32"]);
    let dir = edited("network", |m| {
        m["stages"][ONE_GRAPH]["network"] = "renderer".into()
    });
    assert_refused(&dir, &["stage `landmark_generator`", "network `renderer`"]);
}

#[test]
fn an_old_or_foreign_producer_opset_or_ir_version_is_refused() {
    let dir = edited("opset", |m| m["opset"] = 13.into());
    assert_refused(&dir, &["`opset` is 13", "opset 17"]);
    let dir = edited("ir", |m| m["ir_version"] = 7.into());
    assert_refused(&dir, &["`ir_version` is 7", "IR version 8"]);
    let dir = edited("old-producer", |m| m["producer"] = "iplap 0.0.9".into());
    assert_refused(&dir, &["`producer` is `iplap 0.0.9`", "0.1.0"]);
    let dir = edited("foreign-producer", |m| {
        m["producer"] = "onnx-tf 1.10".into()
    });
    assert_refused(&dir, &["`producer` is `onnx-tf 1.10`"]);
    // A readable version, but not the one that wrote the graphs.
    let dir = edited("other-producer", |m| m["producer"] = "iplap 9.9.9".into());
    let writer = format!("iplap {}", env!("CARGO_PKG_VERSION"));
    assert_refused(
        &dir,
        &[
            "landmark_generator.onnx was written by",
            &writer,
            "`iplap 9.9.9`",
        ],
    );
}

#[test]
fn a_graph_that_disagrees_with_the_manifest_is_refused() {
    // The pose encoder's file replaced by the mel encoder's, with its sha256: the file is the
    // one the manifest names, but not the graph the manifest describes.
    let dir = edited("swapped-graph", |m| {
        m["stages"][POSE_ENCODER]["sha256"] = m["stages"][MEL_ENCODER]["sha256"].clone()
    });
    let pose = dir.join("landmark_pose_encoder.onnx");
    std::fs::remove_file(&pose).unwrap();
    std::fs::copy(dir.join("landmark_mel_encoder.onnx"), &pose).unwrap();
    assert_refused(
        &dir,
        &[
            "stage `landmark_pose_encoder` input 0",
            "the graph in landmark_pose_encoder.onnx has",
            &format!("`{MEL_CHUNKS}`"),
            &format!("the manifest says `{POSE_FRAMES}`"),
        ],
    );
}
