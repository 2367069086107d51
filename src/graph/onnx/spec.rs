//! I/O contract types: element type, dimensions and [`TensorSpec`] (name, dtype, shape) of graph
//! inputs and outputs. They serialise into the model package manifest.

use serde::{Deserialize, Serialize};

use super::proto;

/// Element type of a graph input, output or constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float (`tensor(float)`).
    Float32,
    /// 64-bit signed integer (`tensor(int64)`), used for shapes and indices.
    Int64,
}

impl DType {
    /// The ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::Float32 => proto::DT_FLOAT,
            DType::Int64 => proto::DT_INT64,
        }
    }
}

/// One dimension of a graph input or output: a fixed size or a symbolic name (e.g. `"n_ref"`).
///
/// Serialises as a JSON number or string. `Dim::from(5)` and `Dim::from("n")` build them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A size only known at run time; equal names must be equal sizes.
    Symbolic(String),
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Fixed(n)
    }
}

impl From<&str> for Dim {
    fn from(s: &str) -> Self {
        Dim::Symbolic(s.to_owned())
    }
}

impl Dim {
    /// All-fixed dims from a size list.
    pub fn fixed(sizes: &[usize]) -> Vec<Dim> {
        sizes.iter().map(|&n| Dim::Fixed(n)).collect()
    }
}

/// Name, element type and shape of a graph input or output: one line of an I/O contract.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Tensor name as the ONNX graph (and ONNX Runtime) knows it.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: Vec<Dim>,
}

impl TensorSpec {
    /// `name:d0xd1x…`, each symbolic dimension written by `symbolic` (TensorRT's profile-shape
    /// syntax; also the engine cache key's).
    pub fn shape_text(&self, symbolic: impl Fn(&str) -> String) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Symbolic(name) => symbolic(name),
            })
            .collect();
        format!("{}:{}", self.name, dims.join("x"))
    }

    /// A float32 spec with fixed dims.
    pub fn f32(name: &str, shape: &[usize]) -> Self {
        TensorSpec {
            name: name.to_owned(),
            dtype: DType::Float32,
            shape: Dim::fixed(shape),
        }
    }

    pub(crate) fn value_info(&self) -> proto::ValueInfoProto {
        let dim = self
            .shape
            .iter()
            .map(|d| proto::TensorShapeDimension {
                value: Some(match d {
                    Dim::Fixed(n) => proto::DimensionValue::DimValue(*n as i64),
                    Dim::Symbolic(s) => proto::DimensionValue::DimParam(s.clone()),
                }),
            })
            .collect();
        proto::ValueInfoProto {
            name: Some(self.name.clone()),
            r#type: Some(proto::TypeProto {
                tensor_type: Some(proto::TypeProtoTensor {
                    elem_type: Some(self.dtype.onnx_code()),
                    shape: Some(proto::TensorShapeProto { dim }),
                }),
            }),
            doc_string: None,
        }
    }
}
