//! Which hardware a stage's graph was emitted for. One network definition (`src/graph/`) gives
//! per-target graphs: the CPU ones may use iplap's own operators and CPU-only rewrites, the GPU
//! ones are standard ONNX operators only, so the CUDA and TensorRT providers take every node
//! (no CPU fallback in the middle of a stage).

use serde::{Deserialize, Serialize};

/// A graph's target, recorded per stage in the package manifest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphTarget {
    /// Standard operators with nothing CPU-specific: the same graph serves every device.
    Any,
    /// ONNX Runtime's CPU provider: the Winograd custom operator (`ai.iplap`) and the
    /// space-to-depth form of the 7×7 convolutions with few outputs. Packages written before
    /// targets were recorded hold only these, so it is the default when a manifest is silent.
    #[default]
    Cpu,
    /// The GPU providers: standard ONNX operators only (plain convolutions).
    Gpu,
}

impl GraphTarget {
    /// The name used in manifests and by `iplap eval --target`.
    pub fn nick(self) -> &'static str {
        match self {
            GraphTarget::Any => "any",
            GraphTarget::Cpu => "cpu",
            GraphTarget::Gpu => "gpu",
        }
    }

    /// The target whose graphs a device runs.
    pub fn for_device(device: crate::runtime::Device) -> GraphTarget {
        if device.is_gpu() {
            GraphTarget::Gpu
        } else {
            GraphTarget::Cpu
        }
    }
}

impl std::fmt::Display for GraphTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.nick())
    }
}

impl std::str::FromStr for GraphTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(GraphTarget::Cpu),
            "gpu" => Ok(GraphTarget::Gpu),
            "any" => Ok(GraphTarget::Any),
            _ => Err(format!("unknown graph target `{s}` (cpu or gpu)")),
        }
    }
}
