//! The model package: a folder with one `.onnx` file per stage and a `manifest.json` recording
//! the format version, opset, each file's sha256, each stage's I/O contract and the sha256 of
//! the checkpoints it was converted from. Written by `iplap convert`, read by the elements.
//! Opening checks the manifest against the code and against the graphs ([`check`]).
//!
//! Stages are registered in [`STAGES`]; the renderer's stages (spec §7.3: reference encoder,
//! sketch modulation, per-reference flow head, translation network) are added there as more
//! [`StageDef`]s with `network: "renderer"`, nothing else changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod check;
mod precision;

pub use precision::{FP16_SUFFIX, GraphPrecision, base_stage, stage_for_precision};

use super::GraphError;
use super::fp16;
use super::landmark_generator::{self, LandmarkGraphOptions};
use super::landmark_stages::{self, LandmarkStage};
use super::onnx::{IR_VERSION, OPSET, OnnxModel, TensorSpec};
use super::renderer;
use super::target::GraphTarget;
use super::weights::{RecordingSource, WeightSource};

/// Name of the manifest inside the package folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Value of [`Manifest::format`].
pub const PACKAGE_FORMAT: &str = "iplap-model-package";
/// Version of the package layout; bumped when a reader can no longer use older packages.
pub const PACKAGE_VERSION: u32 = 1;

/// What to do about any package error; [`GraphError::Package`]'s message adds it once, after
/// the cause.
pub const CONVERT_HINT: &str = "run `iplap convert` to (re)create it";

/// How to build one stage: its name, which network's weights it needs and its file.
#[derive(Clone, Copy, Debug)]
pub struct StageDef {
    /// Stage name, unique in a package (e.g. `landmark_generator`).
    pub name: &'static str,
    /// Network whose weights it reads (`landmark_generator` or `renderer`).
    pub network: &'static str,
    /// File name inside the package.
    pub file: &'static str,
    /// Which providers the graph is for.
    pub target: GraphTarget,
    /// Also write an fp16 form, stage `<name>_fp16` ([`stage_for_precision`]), for the GPU
    /// providers without an fp16 mode of their own (CUDA, TensorRT-RTX). Only for stages a GPU
    /// runs (target `any` or `gpu`).
    pub fp16: bool,
    /// Emits the stage's graph from that network's weights.
    pub build: fn(&dyn WeightSource) -> Result<OnnxModel, GraphError>,
    /// The graph's I/O contract (inputs, outputs): what `build` declares and the runtime feeds.
    /// [`ModelPackage::open`] holds the manifest to it.
    pub contract: fn() -> (Vec<TensorSpec>, Vec<TensorSpec>),
}

fn build_landmark_generator(w: &dyn WeightSource) -> Result<OnnxModel, GraphError> {
    landmark_generator::build(w, LandmarkGraphOptions::default())
}

/// The Landmark_generator stage (spec §5.1), one T = 5 window per run.
pub const LANDMARK_GENERATOR_STAGE: StageDef = StageDef {
    name: "landmark_generator",
    network: "landmark_generator",
    file: "landmark_generator.onnx",
    target: GraphTarget::Any,
    fp16: false,
    build: build_landmark_generator,
    contract: || landmark_generator::contract(LandmarkGraphOptions::default()),
};

/// The landmark generator's streaming split (spec §7.2), in [`LandmarkStage::ALL`] order; the
/// engine prefers it to the one-graph [`LANDMARK_GENERATOR_STAGE`].
pub const LANDMARK_STREAMING_STAGES: [StageDef; 4] = [
    StageDef {
        name: "landmark_mel_encoder",
        network: "landmark_generator",
        file: "landmark_mel_encoder.onnx",
        target: GraphTarget::Any,
        fp16: false,
        build: |src| landmark_stages::build_stage(src, LandmarkStage::MelEncoder),
        contract: || LandmarkStage::MelEncoder.contract(),
    },
    StageDef {
        name: "landmark_pose_encoder",
        network: "landmark_generator",
        file: "landmark_pose_encoder.onnx",
        target: GraphTarget::Any,
        fp16: false,
        build: |src| landmark_stages::build_stage(src, LandmarkStage::PoseEncoder),
        contract: || LandmarkStage::PoseEncoder.contract(),
    },
    StageDef {
        name: "landmark_ref_encoder",
        network: "landmark_generator",
        file: "landmark_ref_encoder.onnx",
        target: GraphTarget::Any,
        fp16: false,
        build: |src| landmark_stages::build_stage(src, LandmarkStage::RefEncoder),
        contract: || LandmarkStage::RefEncoder.contract(),
    },
    StageDef {
        name: "landmark_fusion",
        network: "landmark_generator",
        file: "landmark_fusion.onnx",
        target: GraphTarget::Any,
        fp16: false,
        build: |src| landmark_stages::build_stage(src, LandmarkStage::Fusion),
        contract: || LandmarkStage::Fusion.contract(),
    },
];

/// Every stage `iplap convert` knows how to write, in package order: the landmark generator
/// (one graph, then its streaming split), then the renderer stages of
/// [`crate::graph::renderer::STAGES`] in run order.
pub const STAGES: &[StageDef] = &[
    LANDMARK_GENERATOR_STAGE,
    LANDMARK_STREAMING_STAGES[0],
    LANDMARK_STREAMING_STAGES[1],
    LANDMARK_STREAMING_STAGES[2],
    LANDMARK_STREAMING_STAGES[3],
    renderer::STAGES[0],
    renderer::STAGES[1],
    renderer::STAGES[2],
    renderer::STAGES[3],
    renderer::STAGES[4],
    renderer::STAGES[5],
];

/// A checkpoint a package was converted from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCheckpoint {
    /// Network it holds (`landmark_generator`, `renderer`).
    pub network: String,
    /// File name as given to the converter (informational).
    pub file: String,
    /// sha256 of the checkpoint file, lowercase hex.
    pub sha256: String,
}

/// One stage of a package: an ONNX file and its I/O contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Stage name ([`StageDef::name`]).
    pub name: String,
    /// Network the weights came from.
    pub network: String,
    /// File name inside the package.
    pub file: String,
    /// sha256 of the file, lowercase hex.
    pub sha256: String,
    /// Which providers the graph is for (`cpu` when a manifest from before targets is silent).
    #[serde(default)]
    pub target: GraphTarget,
    /// Arithmetic precision of the graph's weights and activations.
    #[serde(default = "fp32")]
    pub precision: String,
    /// Graph inputs.
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs.
    pub outputs: Vec<TensorSpec>,
    /// Free-form stage facts (e.g. batching conventions); readers ignore unknown keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

fn fp32() -> String {
    "fp32".into()
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`PACKAGE_FORMAT`].
    pub format: String,
    /// [`PACKAGE_VERSION`] of the writer.
    pub format_version: u32,
    /// ONNX opset of every file.
    pub opset: i64,
    /// ONNX IR version of every file.
    pub ir_version: i64,
    /// iplap version that wrote the package.
    pub producer: String,
    /// Checkpoints converted.
    pub sources: Vec<SourceCheckpoint>,
    /// Stages, in [`STAGES`] order.
    pub stages: Vec<Stage>,
    /// Per network, the source keys no stage read (e.g. the renderer's training-only VGG19
    /// `perceptual.*` tensors); `num_batches_tracked` counters are not listed. Only sources that
    /// know their keys (checkpoints) report any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unused_weights: BTreeMap<String, Vec<String>>,
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GraphError + '_ {
    move |source| GraphError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Manifest attribute of an fp16-capable stage whose fp16 form was not written, with the reason.
pub const FP16_SKIPPED_ATTRIBUTE: &str = "fp16_skipped";

/// Writes `bytes` as `dir/file` (through a `.partial` file, so a crash leaves no half file under
/// the real name) and returns its sha256.
fn write_file(dir: &Path, file: &str, bytes: &[u8]) -> Result<String, GraphError> {
    let path = dir.join(file);
    let tmp = dir.join(format!("{file}.partial"));
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(sha256_hex(bytes))
}

/// The fp16 stage of `def` (already built as `model`), or `None` with a warning when the weights
/// do not fit fp16: the fp32 stages stay usable and the base stage's manifest entry records why
/// ([`FP16_SKIPPED_ATTRIBUTE`]), so asking for fp16 later fails with that reason.
fn write_fp16_stage(
    dir: &Path,
    def: &StageDef,
    model: &OnnxModel,
    base: &mut Stage,
) -> Result<Option<Stage>, GraphError> {
    let bad = fp16::out_of_range(model.proto(), &fp16::KEEP_FP32)?;
    if let Some((name, max)) = bad.first() {
        let reason = format!(
            "{} weight tensor(s) exceed fp16's range ±{} (first: `{name}`, |x| up to {max:e})",
            bad.len(),
            fp16::FP16_MAX
        );
        log::warn!("stage `{}`: no fp16 form written: {reason}", def.name);
        base.attributes
            .insert(FP16_SKIPPED_ATTRIBUTE.to_owned(), reason);
        return Ok(None);
    }
    let bytes = fp16::to_fp16_bytes(model.proto()).map_err(|e| match e {
        GraphError::Invalid(m) => GraphError::invalid(format!("stage `{}`: {m}", def.name)),
        other => other,
    })?;
    let stem = def.file.strip_suffix(".onnx").unwrap_or(def.file);
    let file = format!("{stem}{FP16_SUFFIX}.onnx");
    let sha256 = write_file(dir, &file, &bytes)?;
    let attributes = BTreeMap::from([("fp32_ops".to_owned(), fp16::KEEP_FP32.join(","))]);
    Ok(Some(Stage {
        name: stage_for_precision(def.name, GraphPrecision::Fp16),
        file,
        sha256,
        target: GraphTarget::Gpu,
        precision: GraphPrecision::Fp16.nick().to_owned(),
        attributes,
        ..base.clone()
    }))
}

/// Builds every registered stage whose network is in `networks` (network name → weights) and
/// writes the package into `dir` (created if needed): each stage's graph, and for
/// [`StageDef::fp16`] stages also its fp16 form (`<name>_fp16`, target `gpu`, precision `fp16`).
/// The manifest is written last, so an interrupted conversion leaves no valid package. Returns the
/// manifest.
pub fn write_package(
    dir: &Path,
    networks: &[(&str, &dyn WeightSource)],
    sources: &[SourceCheckpoint],
) -> Result<Manifest, GraphError> {
    for (net, _) in networks {
        if !STAGES.iter().any(|s| s.network == *net) {
            return Err(GraphError::invalid(format!(
                "no stage uses network `{net}`"
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut stages = Vec::new();
    let mut unused_weights = BTreeMap::new();
    for (net, weights) in networks {
        let recorder = RecordingSource::new(*weights);
        for def in STAGES.iter().filter(|d| d.network == *net) {
            let model = (def.build)(&recorder)?;
            let bytes = model.to_bytes();
            let mut stage = Stage {
                name: def.name.to_owned(),
                network: def.network.to_owned(),
                file: def.file.to_owned(),
                sha256: write_file(dir, def.file, &bytes)?,
                target: def.target,
                precision: fp32(),
                inputs: model.inputs().to_vec(),
                outputs: model.outputs().to_vec(),
                attributes: BTreeMap::new(),
            };
            let half = if def.fp16 {
                write_fp16_stage(dir, def, &model, &mut stage)?
            } else {
                None
            };
            stages.push(stage);
            stages.extend(half);
        }
        let unused = recorder.unused();
        if !unused.is_empty() {
            unused_weights.insert((*net).to_owned(), unused);
        }
    }
    // Manifest order is STAGES order, each fp16 form after its stage, whatever order the
    // networks were given in.
    stages.sort_by_key(|s| {
        let (base, precision) = base_stage(&s.name);
        (STAGES.iter().position(|d| d.name == base), precision as u8)
    });
    let manifest = Manifest {
        format: PACKAGE_FORMAT.to_owned(),
        format_version: PACKAGE_VERSION,
        opset: OPSET,
        ir_version: IR_VERSION,
        producer: format!("{} {}", check::PRODUCER_NAME, env!("CARGO_PKG_VERSION")),
        sources: sources.to_vec(),
        stages,
        unused_weights,
    };
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| GraphError::invalid(e.to_string()))?;
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, text).map_err(io_err(&path))?;
    Ok(manifest)
}

/// An opened and verified model package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPackage {
    dir: PathBuf,
    manifest: Manifest,
}

impl ModelPackage {
    /// Opens `dir`, reads the manifest and checks it: format version, opset, IR version and
    /// producer; every known stage's network and I/O contract against this code; every file's
    /// sha256, and its declared opset, IR version, producer, inputs and outputs against the
    /// manifest. Errors name the file and the field, then say to re-run `iplap convert`.
    pub fn open(dir: &Path) -> Result<Self, GraphError> {
        let err = |path: &Path, message: String| GraphError::Package {
            path: path.to_owned(),
            message,
        };
        if !dir.is_dir() {
            return Err(err(dir, "folder does not exist".into()));
        }
        let mpath = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&mpath)
            .map_err(|e| err(&mpath, format!("cannot read the manifest ({e})")))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| err(&mpath, format!("invalid manifest ({e})")))?;
        if manifest.format != PACKAGE_FORMAT || manifest.format_version != PACKAGE_VERSION {
            return Err(err(
                &mpath,
                format!(
                    "format `{}` version {} is not `{PACKAGE_FORMAT}` version {PACKAGE_VERSION}",
                    manifest.format, manifest.format_version
                ),
            ));
        }
        check::check_manifest(&manifest).map_err(|message| err(&mpath, message))?;
        for stage in &manifest.stages {
            if stage.file.contains(['/', '\\']) || stage.file.starts_with('.') {
                return Err(err(
                    &mpath,
                    format!(
                        "stage `{}` names an invalid file `{}`",
                        stage.name, stage.file
                    ),
                ));
            }
            let path = dir.join(&stage.file);
            let bytes = std::fs::read(&path).map_err(|e| {
                err(
                    &path,
                    format!("stage `{}` file is unreadable ({e})", stage.name),
                )
            })?;
            let sha = sha256_hex(&bytes);
            if sha != stage.sha256 {
                return Err(err(
                    &path,
                    format!(
                        "sha256 {sha} does not match the manifest ({}): the file is corrupted or was replaced",
                        stage.sha256
                    ),
                ));
            }
            check::check_graph(&manifest, stage, &bytes).map_err(|message| err(&mpath, message))?;
        }
        Ok(ModelPackage {
            dir: dir.to_owned(),
            manifest,
        })
    }

    /// The package folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The stage called `name`, or an error naming the package.
    pub fn stage(&self, name: &str) -> Result<&Stage, GraphError> {
        self.manifest
            .stages
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                let needs = STAGES
                    .iter()
                    .find(|d| d.name == name)
                    .map(|d| format!(", which needs the {} checkpoint", d.network))
                    .unwrap_or_default();
                GraphError::Package {
                    path: self.dir.clone(),
                    message: format!("has no stage `{name}`{needs}"),
                }
            })
    }

    /// Path of the stage's `.onnx` file.
    pub fn stage_path(&self, name: &str) -> Result<PathBuf, GraphError> {
        Ok(self.dir.join(&self.stage(name)?.file))
    }

    /// Stage `base` in `precision` ([`stage_for_precision`]), e.g.
    /// `(renderer::TRANSLATION_GPU, GraphPrecision::Fp16)` → `renderer_translation_gpu_fp16`.
    /// A missing fp16 form is an error that says why: the stage has none, the weights did not fit
    /// fp16 when the package was converted, or an older iplap converted it.
    pub fn stage_for_precision(
        &self,
        base: &str,
        precision: GraphPrecision,
    ) -> Result<&Stage, GraphError> {
        let name = stage_for_precision(base, precision);
        if precision == GraphPrecision::Fp32 || self.manifest.stages.iter().any(|s| s.name == name)
        {
            return self.stage(&name);
        }
        let base_stage = self.stage(base)?;
        let why = if let Some(reason) = base_stage.attributes.get(FP16_SKIPPED_ATTRIBUTE) {
            format!("its weights did not fit fp16 at conversion: {reason}")
        } else if STAGES.iter().any(|d| d.name == base && d.fp16) {
            "it was converted by an iplap without fp16 graphs".to_owned()
        } else {
            "this stage has no fp16 form (only the stages a GPU runs do)".to_owned()
        };
        Err(GraphError::Package {
            path: self.dir.clone(),
            message: format!("has no stage `{name}` (fp16 form of `{base}`): {why}"),
        })
    }
}

#[cfg(test)]
mod tests;
