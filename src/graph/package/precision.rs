//! Which precision a stage's graph has, and the package names of the fp16 forms.

use super::STAGES;
use crate::runtime::{Device, Precision};

/// Arithmetic precision of a stage's graph (the manifest's `precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GraphPrecision {
    /// float32 weights and activations.
    #[default]
    Fp32,
    /// float16 weights and activations, float32 inputs and outputs, normalisations in fp32
    /// ([`crate::graph::fp16::to_fp16`] with [`crate::graph::fp16::KEEP_FP32`]). Written for [`super::StageDef::fp16`] stages.
    Fp16,
}

impl GraphPrecision {
    /// The manifest's spelling.
    pub fn nick(self) -> &'static str {
        match self {
            GraphPrecision::Fp32 => "fp32",
            GraphPrecision::Fp16 => "fp16",
        }
    }

    /// Which graphs a device runs at a `precision`: the fp16 graphs for `cuda` and `tensorrt-rtx`
    /// at fp16 (the CUDA provider has no fp16 mode, and TensorRT-RTX builds strongly typed
    /// networks, whose precision is the graph's tensor types); the fp32 graphs otherwise
    /// (`tensorrt` switches on its own fp16 mode on them, tf32 is a math mode on fp32 tensors).
    pub fn for_device(device: Device, precision: Precision) -> GraphPrecision {
        match (device, precision) {
            (Device::Cuda | Device::TensorRtRtx, Precision::Fp16) => GraphPrecision::Fp16,
            _ => GraphPrecision::Fp32,
        }
    }
}

impl std::str::FromStr for GraphPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" => Ok(GraphPrecision::Fp32),
            "fp16" => Ok(GraphPrecision::Fp16),
            _ => Err(format!("unknown graph precision `{s}` (fp32 or fp16)")),
        }
    }
}

/// Suffix of the fp16 stages' names (and files, before `.onnx`).
pub const FP16_SUFFIX: &str = "_fp16";

/// The package stage that holds stage `base` (a [`StageDef::name`], e.g.
/// [`crate::graph::renderer::TRANSLATION_GPU`]) in `precision`: `base` for fp32, `<base>_fp16` for fp16. Only
/// [`super::StageDef::fp16`] stages have an fp16 form; [`super::ModelPackage::stage_for_precision`] looks the
/// result up and says why when it is missing.
pub fn stage_for_precision(base: &str, precision: GraphPrecision) -> String {
    match precision {
        GraphPrecision::Fp32 => base.to_owned(),
        GraphPrecision::Fp16 => format!("{base}{FP16_SUFFIX}"),
    }
}

/// The inverse of [`stage_for_precision`]: a stage name's base stage and precision.
pub fn base_stage(name: &str) -> (&str, GraphPrecision) {
    match name.strip_suffix(FP16_SUFFIX) {
        Some(base) if STAGES.iter().any(|d| d.name == base && d.fp16) => {
            (base, GraphPrecision::Fp16)
        }
        _ => (name, GraphPrecision::Fp32),
    }
}
