//! TFLite → ONNX conversion for MediaPipe's face detector and attention face mesh.
//!
//! Generic converters fail on these files (see `shared/docs/mediapipe-models.md`), so this one
//! handles exactly the operators the two models use, listed in [`builtin`] and [`custom`]:
//!
//! * fp16 weights behind `DEQUANTIZE` are folded into float32 initializers;
//! * activations are kept NCHW inside the graph: every value remembers whether it is stored
//!   NCHW (permuted) or in TFLite's own layout, and is transposed lazily where an operator needs the
//!   other one. The graph input is declared **NCHW** (`[1, 3, H, W]`); outputs keep TFLite's shapes;
//! * TF "SAME" padding is made explicit from the static shapes;
//! * MediaPipe's three custom operators are expressed with standard ONNX operators (opset 17),
//!   so the converted mesh is a single ONNX graph;
//! * the graph is shaped for ONNX Runtime's CPU provider, which runs Conv/MaxPool/Add/Relu chains
//!   in a blocked "NCHWc" layout and reorders to NCHW around every other operator: per-channel
//!   `PRELU` becomes 1×1 depthwise convolutions and Relus, a channel-only `PAD` a 1×1 convolution
//!   with 0/1 weights (both exact), and the bilinear crop a `Gather` instead of `GridSample`.
//!   Together these made the attention mesh about 2.3× faster on one core with the same outputs
//!   (to float rounding).

mod builtin;
mod custom;

use crate::face::tflite::{Model, TfliteError, builtin as op};
use crate::graph::GraphError;
use crate::graph::onnx::{GraphBuilder, OnnxModel, Value};

/// Errors from converting a TFLite model.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The file could not be read.
    #[error(transparent)]
    Tflite(#[from] TfliteError),
    /// The ONNX graph could not be built.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The model uses an operator or a form of it this converter does not handle.
    #[error("unsupported TFLite construct in operator #{op} ({name}): {message}")]
    Unsupported {
        /// Operator index in the subgraph.
        op: usize,
        /// Operator name.
        name: String,
        /// What exactly is unsupported.
        message: String,
    },
}

/// What a TFLite tensor currently is during conversion.
#[derive(Clone, Debug)]
enum Slot {
    /// A float constant (weights, folded `DEQUANTIZE` outputs), in TFLite layout.
    ConstF32(Vec<f32>),
    /// An integer constant (shapes, paddings, slice bounds).
    ConstInt(Vec<i64>),
    /// A graph value; `nchw` tells whether a rank-4 value is stored NCHW.
    Value { v: Value, nchw: bool },
}

/// NHWC axis → NCHW axis.
const NHWC_TO_NCHW_AXIS: [usize; 4] = [0, 2, 3, 1];

/// Conversion state for one model.
struct Converter<'m, 'a> {
    model: &'m Model<'a>,
    g: GraphBuilder,
    slots: Vec<Option<Slot>>,
    /// Index of the operator being converted (for error messages).
    current: usize,
}

/// Converts a parsed TFLite model to ONNX. `name` becomes the ONNX graph name.
pub fn convert(model: &Model<'_>, name: &str) -> Result<OnnxModel, ConvertError> {
    let mut c = Converter {
        model,
        g: GraphBuilder::new(name),
        slots: vec![None; model.tensors.len()],
        current: 0,
    };
    c.g.set_doc("converted from MediaPipe TFLite by iplap::face::convert (input NCHW, outputs in TFLite shapes)");
    for (i, t) in model.tensors.iter().enumerate() {
        if let Some(d) = t.f32_data() {
            c.slots[i] = Some(Slot::ConstF32(d));
        } else if let Some(d) = t.int_data() {
            c.slots[i] = Some(Slot::ConstInt(d));
        }
    }
    for &i in &model.inputs {
        let t = &model.tensors[i];
        let v = if t.shape.len() == 4 {
            let s = &t.shape;
            c.g.input_f32(&t.name, &[s[0], s[3], s[1], s[2]])?
        } else {
            c.g.input_f32(&t.name, &t.shape)?
        };
        c.slots[i] = Some(Slot::Value {
            v,
            nchw: t.shape.len() == 4,
        });
    }
    for (k, o) in model.operators.iter().enumerate() {
        c.current = k;
        if o.code == op::CUSTOM {
            custom::convert(&mut c, o)?;
        } else {
            builtin::convert(&mut c, o)?;
        }
    }
    for &i in &model.outputs {
        let v = c.tflite_layout(i)?;
        let t = &model.tensors[i];
        c.g.output_f32(&v, &t.name, &t.shape)?;
    }
    Ok(c.g.finish()?)
}

impl Converter<'_, '_> {
    fn unsupported(&self, message: impl Into<String>) -> ConvertError {
        let o = &self.model.operators[self.current];
        let name = if o.code == op::CUSTOM {
            o.custom_name.clone()
        } else {
            format!("builtin {}", o.code)
        };
        ConvertError::Unsupported {
            op: self.current,
            name,
            message: message.into(),
        }
    }

    /// Static TFLite shape of tensor `i`.
    fn shape(&self, i: usize) -> Vec<usize> {
        self.model.tensors[i].shape.clone()
    }

    fn slot(&self, i: usize) -> Result<&Slot, ConvertError> {
        self.slots[i].as_ref().ok_or_else(|| {
            self.unsupported(format!(
                "tensor `{}` is used before it is produced",
                self.model.tensors[i].name
            ))
        })
    }

    fn const_f32(&self, i: usize) -> Result<Vec<f32>, ConvertError> {
        match self.slot(i)? {
            Slot::ConstF32(d) => Ok(d.clone()),
            _ => Err(self.unsupported(format!(
                "tensor `{}` must be a float constant",
                self.model.tensors[i].name
            ))),
        }
    }

    fn const_int(&self, i: usize) -> Result<Vec<i64>, ConvertError> {
        match self.slot(i)? {
            Slot::ConstInt(d) => Ok(d.clone()),
            _ => Err(self.unsupported(format!(
                "tensor `{}` must be an integer constant",
                self.model.tensors[i].name
            ))),
        }
    }

    fn is_const(&self, i: usize) -> bool {
        matches!(
            self.slots[i],
            Some(Slot::ConstF32(_)) | Some(Slot::ConstInt(_))
        )
    }

    /// Tensor `i` as a graph value in its current layout: `(value, stored NCHW?)`.
    fn value(&mut self, i: usize) -> Result<(Value, bool), ConvertError> {
        match self.slot(i)?.clone() {
            Slot::Value { v, nchw } => Ok((v, nchw)),
            Slot::ConstF32(d) => {
                let name = self.model.tensors[i].name.clone();
                let v = self.g.initializer_f32(&name, &self.shape(i), &d)?;
                self.slots[i] = Some(Slot::Value {
                    v: v.clone(),
                    nchw: false,
                });
                Ok((v, false))
            }
            Slot::ConstInt(d) => {
                let name = self.model.tensors[i].name.clone();
                let v = self.g.initializer_i64(&name, &self.shape(i), &d)?;
                Ok((v, false))
            }
        }
    }

    /// Tensor `i` in TFLite layout (NHWC for rank 4).
    fn tflite_layout(&mut self, i: usize) -> Result<Value, ConvertError> {
        let (v, nchw) = self.value(i)?;
        Ok(if nchw {
            self.g.transpose(&v, &[0, 2, 3, 1])?
        } else {
            v
        })
    }

    /// Rank-4 tensor `i` as an NCHW value.
    fn nchw(&mut self, i: usize) -> Result<Value, ConvertError> {
        if self.shape(i).len() != 4 {
            return Err(self.unsupported(format!(
                "tensor `{}` must have rank 4",
                self.model.tensors[i].name
            )));
        }
        let (v, nchw) = self.value(i)?;
        Ok(if nchw {
            v
        } else {
            self.g.transpose(&v, &[0, 3, 1, 2])?
        })
    }

    /// A float constant of TFLite shape `shape`, broadcast-aligned to an NCHW rank-4 operand:
    /// the shape is left-padded to rank 4 (numpy rules) and the data permuted NHWC → NCHW.
    fn const_as_nchw(
        &mut self,
        hint: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<Value, ConvertError> {
        if shape.len() > 4 {
            return Err(self.unsupported("constant of rank > 4 against an image tensor"));
        }
        let mut s = vec![1usize; 4 - shape.len()];
        s.extend_from_slice(shape);
        let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
        let mut out = vec![0f32; data.len()];
        for a in 0..n {
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        out[((a * c + ch) * h + y) * w + x] = data[((a * h + y) * w + x) * c + ch];
                    }
                }
            }
        }
        Ok(self.g.initializer_f32(hint, &[n, c, h, w], &out)?)
    }

    /// Records the result of the current operator for output tensor `i`.
    fn set(&mut self, i: usize, v: Value, nchw: bool) {
        self.slots[i] = Some(Slot::Value { v, nchw });
    }

    /// Output tensor index `k` of operator `o`.
    fn out(&self, o: &crate::face::tflite::Operator<'_>, k: usize) -> Result<usize, ConvertError> {
        o.outputs
            .get(k)
            .and_then(|&i| usize::try_from(i).ok())
            .ok_or_else(|| self.unsupported(format!("missing output {k}")))
    }

    /// Input tensor index `k` of operator `o`.
    fn inp(&self, o: &crate::face::tflite::Operator<'_>, k: usize) -> Result<usize, ConvertError> {
        o.inputs
            .get(k)
            .and_then(|&i| usize::try_from(i).ok())
            .ok_or_else(|| self.unsupported(format!("missing input {k}")))
    }
}
