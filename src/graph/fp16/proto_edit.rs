//! Tensor and model rebuilding for [`super::to_fp16`]: reading float32 data, narrowing to fp16, and
//! copies of a model or graph with new contents (prost messages have no builder).

use half::f16;

use super::DT_FLOAT16;
use crate::graph::onnx::proto::{GraphProto, ModelProto, NodeProto, TensorProto};

/// Elements of a float32 tensor (raw or `float_data`).
pub(super) fn f32_data(t: &TensorProto) -> Vec<f32> {
    match &t.raw_data {
        Some(raw) => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        None => t.float_data.clone(),
    }
}

/// Largest |x| (NaN counts as infinite).
pub(super) fn max_abs(data: &[f32]) -> f32 {
    data.iter().fold(0.0, |m, &x| {
        if x.is_nan() {
            f32::INFINITY
        } else {
            m.max(x.abs())
        }
    })
}

/// `t`'s dims and name with other elements.
pub(super) fn retyped(t: &TensorProto, data_type: i32, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: t.dims.clone(),
        data_type: Some(data_type),
        name: t.name.clone(),
        raw_data: Some(raw),
        doc_string: t.doc_string.clone(),
        ..Default::default()
    }
}

/// The same float32 tensor as float16 (round to nearest even).
pub(super) fn narrow(t: &TensorProto) -> TensorProto {
    let data = f32_data(t);
    let half = data.iter().map(|&x| f16::from_f32(x).to_le_bytes());
    retyped(t, DT_FLOAT16, half.flatten().collect())
}

/// `model` with another graph (without copying the old one).
pub(super) fn with_graph(model: &ModelProto, graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: model.ir_version,
        opset_import: model.opset_import.clone(),
        producer_name: model.producer_name.clone(),
        producer_version: model.producer_version.clone(),
        domain: model.domain.clone(),
        model_version: model.model_version,
        doc_string: model.doc_string.clone(),
        graph: Some(graph),
        metadata_props: model.metadata_props.clone(),
    }
}

/// `graph`'s name, inputs and outputs with new nodes and initializers, without `value_info`.
pub(super) fn rebuilt(
    graph: &GraphProto,
    node: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
) -> GraphProto {
    GraphProto {
        node,
        name: graph.name.clone(),
        initializer,
        doc_string: graph.doc_string.clone(),
        input: graph.input.clone(),
        output: graph.output.clone(),
        value_info: Vec::new(),
    }
}
