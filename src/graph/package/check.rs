//! What [`super::ModelPackage::open`] checks beyond the sha256 of each file: that `manifest.json`
//! agrees with this code (opset, IR version, producer, and each known stage's network and I/O
//! contract) and with the graphs it describes (each file's declared opset, IR version, producer,
//! inputs and outputs).
//!
//! Why: the manifest is what the elements read their tensor names and shapes from, and a sha256
//! only proves the file is the one the manifest names, not that the manifest is right. An edited
//! or foreign manifest used to load and then fail deep inside ONNX Runtime, or run with the wrong
//! shapes. Every message names the stage, the tensor and both values.

use prost::Message;

use super::{Manifest, STAGES, Stage};
use crate::graph::onnx::proto::{self, DimensionValue, OperatorSetIdProto, ValueInfoProto};
use crate::graph::onnx::{DType, Dim, IR_VERSION, OPSET, TensorSpec};

/// Name in [`Manifest::producer`] and the graphs' `producer_name`.
pub(super) const PRODUCER_NAME: &str = "iplap";

/// The oldest iplap whose packages this one reads: 0.1.0 wrote the first packages of
/// [`super::PACKAGE_VERSION`] 1. Raise it (or the package version) when the graphs change in a
/// way the contracts do not show.
const OLDEST_READABLE: (u64, u64, u64) = (0, 1, 0);

/// `major.minor.patch` of a version string (a `-pre` or `+build` suffix is ignored).
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The manifest against this code: opset, IR version, producer, and for every stage this code
/// knows, its network and I/O contract. Stages it does not know are left to whoever reads them.
pub(super) fn check_manifest(m: &Manifest) -> Result<(), String> {
    if m.opset != OPSET {
        return Err(format!(
            "manifest `opset` is {}, this iplap reads opset {OPSET} packages",
            m.opset
        ));
    }
    if m.ir_version != IR_VERSION {
        return Err(format!(
            "manifest `ir_version` is {}, this iplap reads IR version {IR_VERSION} packages",
            m.ir_version
        ));
    }
    let version = m
        .producer
        .strip_prefix(PRODUCER_NAME)
        .and_then(|rest| rest.strip_prefix(' '))
        .and_then(parse_version)
        .ok_or_else(|| {
            format!(
                "manifest `producer` is `{}`, not `{PRODUCER_NAME} <version>`",
                m.producer
            )
        })?;
    if version < OLDEST_READABLE {
        let (a, b, c) = OLDEST_READABLE;
        return Err(format!(
            "manifest `producer` is `{}`: packages older than {PRODUCER_NAME} {a}.{b}.{c} are not \
             read",
            m.producer
        ));
    }
    for (i, stage) in m.stages.iter().enumerate() {
        if m.stages[..i].iter().any(|s| s.name == stage.name) {
            return Err(format!("manifest lists stage `{}` twice", stage.name));
        }
        // An fp16 form keeps its base stage's float32 inputs and outputs.
        let (base, _) = super::base_stage(&stage.name);
        let Some(def) = STAGES.iter().find(|d| d.name == base) else {
            continue;
        };
        if stage.network != def.network {
            return Err(format!(
                "stage `{}`: the manifest has network `{}`, this iplap expects `{}`",
                stage.name, stage.network, def.network
            ));
        }
        let (inputs, outputs) = (def.contract)();
        let label = Labels {
            stage: &stage.name,
            found: "the manifest has",
            wanted: "this iplap expects",
        };
        compare(&label, "input", &inputs, &stage.inputs)?;
        compare(&label, "output", &outputs, &stage.outputs)?;
    }
    Ok(())
}

/// The fields of an ONNX file that the manifest describes; `prost` skips the rest (nodes and
/// initializers) without copying them, so reading this costs no more than the sha256 pass.
#[derive(Clone, PartialEq, prost::Message)]
struct ModelHeader {
    #[prost(int64, optional, tag = "1")]
    ir_version: Option<i64>,
    #[prost(string, optional, tag = "2")]
    producer_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    producer_version: Option<String>,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphHeader>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
}

/// `GraphProto` inputs and outputs only.
#[derive(Clone, PartialEq, prost::Message)]
struct GraphHeader {
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

/// The I/O spec an ONNX value declares; unknown element types and missing dims are reported.
fn spec_of(v: &ValueInfoProto) -> Result<TensorSpec, String> {
    let name = v.name.clone().unwrap_or_default();
    let tensor = v
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| format!("`{name}` is not a tensor"))?;
    let dtype = match tensor.elem_type {
        Some(proto::DT_FLOAT) => DType::Float32,
        Some(proto::DT_INT64) => DType::Int64,
        other => {
            return Err(format!(
                "`{name}` has ONNX element type {}, not float32 or int64",
                other.unwrap_or(0)
            ));
        }
    };
    let shape = tensor
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|d| match &d.value {
            Some(DimensionValue::DimValue(n)) => usize::try_from(*n)
                .map(Dim::Fixed)
                .map_err(|_| format!("`{name}` has dimension {n}")),
            Some(DimensionValue::DimParam(p)) => Ok(Dim::Symbolic(p.clone())),
            None => Err(format!("`{name}` has a dimension without size or name")),
        })
        .collect::<Result<_, _>>()?;
    Ok(TensorSpec { name, dtype, shape })
}

/// The stage's ONNX file (`bytes`) against its manifest entry and the manifest's opset, IR
/// version and producer.
pub(super) fn check_graph(m: &Manifest, stage: &Stage, bytes: &[u8]) -> Result<(), String> {
    let file = &stage.file;
    let header = ModelHeader::decode(bytes)
        .map_err(|e| format!("stage `{}`: {file} is not an ONNX model ({e})", stage.name))?;
    let opset = header
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref().unwrap_or_default().is_empty())
        .and_then(|o| o.version);
    if opset != Some(m.opset) {
        return Err(format!(
            "stage `{}`: {file} declares opset {}, the manifest `opset` is {}",
            stage.name,
            opset.map_or("(none)".into(), |v| v.to_string()),
            m.opset
        ));
    }
    if header.ir_version != Some(m.ir_version) {
        return Err(format!(
            "stage `{}`: {file} has IR version {}, the manifest `ir_version` is {}",
            stage.name,
            header.ir_version.unwrap_or(0),
            m.ir_version
        ));
    }
    let producer = format!(
        "{} {}",
        header.producer_name.unwrap_or_default(),
        header.producer_version.unwrap_or_default()
    );
    if producer != m.producer {
        return Err(format!(
            "stage `{}`: {file} was written by `{producer}`, the manifest `producer` is `{}`",
            stage.name, m.producer
        ));
    }
    let graph = header.graph.unwrap_or_default();
    let specs = |values: &[ValueInfoProto]| {
        values
            .iter()
            .map(spec_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("stage `{}`: {file}: {e}", stage.name))
    };
    let found = format!("the graph in {file} has");
    let label = Labels {
        stage: &stage.name,
        found: &found,
        wanted: "the manifest says",
    };
    compare(&label, "input", &stage.inputs, &specs(&graph.input)?)?;
    compare(&label, "output", &stage.outputs, &specs(&graph.output)?)
}

/// Who says what, for [`compare`]'s messages.
struct Labels<'a> {
    stage: &'a str,
    /// The side being checked ("the manifest has").
    found: &'a str,
    /// The side it must agree with ("this iplap expects").
    wanted: &'a str,
}

/// `[1, 5, 2, 74]`, symbolic dims by name: `[n_ref, 3, 128, 128]`.
fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Symbolic(s) => s.clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The manifest's spelling of a dtype.
fn dtype_text(dtype: DType) -> &'static str {
    match dtype {
        DType::Float32 => "float32",
        DType::Int64 => "int64",
    }
}

fn names(specs: &[TensorSpec]) -> String {
    let names: Vec<String> = specs.iter().map(|s| format!("`{}`", s.name)).collect();
    names.join(", ")
}

/// First difference between `wanted` and `found` (count, then per position name, dtype, shape).
fn compare(
    l: &Labels<'_>,
    kind: &str,
    wanted: &[TensorSpec],
    found: &[TensorSpec],
) -> Result<(), String> {
    let stage = l.stage;
    if wanted.len() != found.len() {
        return Err(format!(
            "stage `{stage}`: {} {} {kind}(s) ({}), {} {} ({})",
            l.found,
            found.len(),
            names(found),
            l.wanted,
            wanted.len(),
            names(wanted)
        ));
    }
    for (i, (w, f)) in wanted.iter().zip(found).enumerate() {
        if w.name != f.name {
            return Err(format!(
                "stage `{stage}` {kind} {i}: {} `{}`, {} `{}`",
                l.found, f.name, l.wanted, w.name
            ));
        }
        let name = &w.name;
        if w.dtype != f.dtype {
            return Err(format!(
                "stage `{stage}` {kind} `{name}`: {} dtype {}, {} {}",
                l.found,
                dtype_text(f.dtype),
                l.wanted,
                dtype_text(w.dtype)
            ));
        }
        if w.shape != f.shape {
            return Err(format!(
                "stage `{stage}` {kind} `{name}`: {} shape {}, {} {}",
                l.found,
                shape_text(&f.shape),
                l.wanted,
                shape_text(&w.shape)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(parse_version("0.1.0"), Some((0, 1, 0)));
        assert_eq!(parse_version("1.2.3-rc.1"), Some((1, 2, 3)));
        assert_eq!(parse_version("1.2"), None);
        assert_eq!(parse_version("1.2.3.4"), None);
        assert!(parse_version("0.0.9").unwrap() < OLDEST_READABLE);
        assert!(parse_version(env!("CARGO_PKG_VERSION")).unwrap() >= OLDEST_READABLE);
    }

    #[test]
    fn every_stage_contract_is_what_its_builder_declares() {
        let w = crate::weights::FormulaWeights::new();
        // The one-graph landmark generator and the smallest renderer stage stand for the rest;
        // `write_then_open` tests all of them through `open`.
        for def in [STAGES[0], crate::graph::renderer::STAGES[0]] {
            let model = (def.build)(&w).unwrap();
            let (inputs, outputs) = (def.contract)();
            assert_eq!(model.inputs(), inputs.as_slice(), "{}", def.name);
            assert_eq!(model.outputs(), outputs.as_slice(), "{}", def.name);
        }
    }
}
