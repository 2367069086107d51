//! The subset of the TFLite schema (`tensorflow/lite/schema/schema.fbs`) that the face models use:
//! model → subgraphs → tensors / operators, operator codes and constant buffers.
//!
//! Operator codes are read from both `deprecated_builtin_code` (field 0, a byte) and `builtin_code`
//! (field 3): MediaPipe's files only fill the old field, and the schema's rule is to take the larger
//! of the two (`tflite::GetBuiltinCode`).

use super::TfliteError;
use super::flatbuf::Table;

/// Upper bounds that keep a hostile file from making the reader allocate without limit.
const MAX_TENSORS: usize = 100_000;
const MAX_OPERATORS: usize = 100_000;
const MAX_BUFFERS: usize = 100_000;
const MAX_SUBGRAPHS: usize = 64;
const MAX_OPCODES: usize = 4096;

/// `BuiltinOperator` values used by the face models (schema.fbs).
pub mod builtin {
    /// `ADD`.
    pub const ADD: i32 = 0;
    /// `CONCATENATION`.
    pub const CONCATENATION: i32 = 2;
    /// `CONV_2D`.
    pub const CONV_2D: i32 = 3;
    /// `DEPTHWISE_CONV_2D`.
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    /// `DEQUANTIZE`.
    pub const DEQUANTIZE: i32 = 6;
    /// `MAX_POOL_2D`.
    pub const MAX_POOL_2D: i32 = 17;
    /// `MUL`.
    pub const MUL: i32 = 18;
    /// `RELU`.
    pub const RELU: i32 = 19;
    /// `RELU6`.
    pub const RELU6: i32 = 21;
    /// `RESHAPE`.
    pub const RESHAPE: i32 = 22;
    /// `CUSTOM` (the name is in the operator code's `custom_code`).
    pub const CUSTOM: i32 = 32;
    /// `PAD`.
    pub const PAD: i32 = 34;
    /// `STRIDED_SLICE`.
    pub const STRIDED_SLICE: i32 = 45;
    /// `PRELU`.
    pub const PRELU: i32 = 54;
}

/// `TensorType` of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    /// `FLOAT32`.
    F32,
    /// `FLOAT16`.
    F16,
    /// `INT32`.
    I32,
    /// `INT64`.
    I64,
    /// `UINT8`.
    U8,
    /// Anything else (the raw schema value).
    Other(u8),
}

impl TensorType {
    fn from_schema(v: u8) -> Self {
        match v {
            0 => TensorType::F32,
            1 => TensorType::F16,
            2 => TensorType::I32,
            3 => TensorType::U8,
            4 => TensorType::I64,
            o => TensorType::Other(o),
        }
    }

    /// Bytes per element, when known.
    pub fn size(self) -> Option<usize> {
        match self {
            TensorType::F32 | TensorType::I32 => Some(4),
            TensorType::F16 => Some(2),
            TensorType::I64 => Some(8),
            TensorType::U8 => Some(1),
            TensorType::Other(_) => None,
        }
    }
}

/// One tensor of a subgraph.
#[derive(Clone, Debug)]
pub struct Tensor<'a> {
    /// Name (for messages and graph value names).
    pub name: String,
    /// Static shape (TFLite order: NHWC for images).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: TensorType,
    /// Constant data when the tensor is backed by a non-empty buffer.
    pub data: Option<&'a [u8]>,
}

/// One operator: its resolved code, inputs, outputs and options.
#[derive(Clone, Debug)]
pub struct Operator<'a> {
    /// `BuiltinOperator` value (see [`builtin`]).
    pub code: i32,
    /// Custom operator name (for `CUSTOM`), else empty.
    pub custom_name: String,
    /// Operator version from the operator code table.
    pub version: i32,
    /// Input tensor indices (`-1` = optional input left out).
    pub inputs: Vec<i32>,
    /// Output tensor indices.
    pub outputs: Vec<i32>,
    /// The builtin options table, if any.
    pub options: Option<Table<'a>>,
    /// Custom options (a FlexBuffer for MediaPipe's operators).
    pub custom_options: &'a [u8],
}

/// A parsed `.tflite` model (first subgraph only: the face models have one).
#[derive(Clone, Debug)]
pub struct Model<'a> {
    /// Tensors of subgraph 0.
    pub tensors: Vec<Tensor<'a>>,
    /// Operators of subgraph 0 in execution order.
    pub operators: Vec<Operator<'a>>,
    /// Graph input tensor indices.
    pub inputs: Vec<usize>,
    /// Graph output tensor indices.
    pub outputs: Vec<usize>,
}

fn malformed(msg: impl Into<String>) -> TfliteError {
    TfliteError::Malformed(msg.into())
}

fn tensor_index(i: i32, n: usize) -> Result<usize, TfliteError> {
    usize::try_from(i)
        .ok()
        .filter(|&i| i < n)
        .ok_or_else(|| malformed(format!("tensor index {i} out of range (0..{n})")))
}

impl<'a> Model<'a> {
    /// Parses a `.tflite` file held in memory. Never panics; a damaged file gives an error.
    pub fn parse(buf: &'a [u8]) -> Result<Self, TfliteError> {
        if buf.len() < 8 || &buf[4..8] != b"TFL3" {
            return Err(malformed("not a TFLite file (missing the TFL3 identifier)"));
        }
        let root = Table::root(buf)?;
        let opcodes = root.tables(1, MAX_OPCODES)?;
        let subgraphs = root.tables(2, MAX_SUBGRAPHS)?;
        let buffers = root.tables(4, MAX_BUFFERS)?;
        let sg = subgraphs
            .first()
            .ok_or_else(|| malformed("model has no subgraph"))?;

        let mut codes = Vec::with_capacity(opcodes.len());
        for oc in &opcodes {
            let deprecated = oc.u8(0, 0)? as i8 as i32;
            let code = oc.i32(3, 0)?.max(deprecated);
            codes.push((code, oc.string(1)?, oc.i32(2, 1)?));
        }

        let mut tensors = Vec::new();
        for t in sg.tables(0, MAX_TENSORS)? {
            let shape = t
                .i32s(0)?
                .into_iter()
                .map(|d| {
                    usize::try_from(d).map_err(|_| malformed(format!("negative dimension {d}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let dtype = TensorType::from_schema(t.u8(1, 0)?);
            let buffer = t.u32(2, 0)? as usize;
            let name = t.string(3)?;
            let data = match buffers.get(buffer) {
                Some(b) if buffer != 0 => {
                    if b.u64(1, 0)? > 1 {
                        return Err(malformed(format!(
                            "tensor `{name}`: external buffers are not supported"
                        )));
                    }
                    let d = b.bytes(0)?;
                    (!d.is_empty()).then_some(d)
                }
                Some(_) => None,
                None => {
                    return Err(malformed(format!(
                        "tensor `{name}`: buffer {buffer} out of range"
                    )));
                }
            };
            if let (Some(d), Some(es)) = (data, dtype.size()) {
                let numel = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
                if numel.and_then(|n| n.checked_mul(es)) != Some(d.len()) {
                    return Err(malformed(format!(
                        "tensor `{name}`: {} data bytes do not match shape {shape:?}",
                        d.len()
                    )));
                }
            }
            tensors.push(Tensor {
                name,
                shape,
                dtype,
                data,
            });
        }
        let n = tensors.len();

        let mut operators = Vec::new();
        for op in sg.tables(3, MAX_OPERATORS)? {
            let idx = op.u32(0, 0)? as usize;
            let (code, custom_name, version) = codes
                .get(idx)
                .cloned()
                .ok_or_else(|| malformed(format!("operator code index {idx} out of range")))?;
            let inputs = op.i32s(1)?;
            let outputs = op.i32s(2)?;
            for &i in inputs.iter().filter(|&&i| i >= 0).chain(outputs.iter()) {
                tensor_index(i, n)?;
            }
            operators.push(Operator {
                code,
                custom_name,
                version,
                inputs,
                outputs,
                options: op.table(4)?,
                custom_options: op.bytes(5)?,
            });
        }
        let indices = |v: Vec<i32>| {
            v.into_iter()
                .map(|i| tensor_index(i, n))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Model {
            inputs: indices(sg.i32s(1)?)?,
            outputs: indices(sg.i32s(2)?)?,
            tensors,
            operators,
        })
    }

    /// The distinct operator names in this model (`CUSTOM` ones by their custom name).
    pub fn op_summary(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .operators
            .iter()
            .map(|o| {
                if o.code == builtin::CUSTOM {
                    o.custom_name.clone()
                } else {
                    format!("builtin:{}", o.code)
                }
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Decodes an IEEE 754 half-precision value.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

impl Tensor<'_> {
    /// The constant data as `f32` (from FLOAT32 or FLOAT16 buffers).
    pub fn f32_data(&self) -> Option<Vec<f32>> {
        let d = self.data?;
        match self.dtype {
            TensorType::F32 => Some(
                d.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            TensorType::F16 => Some(
                d.chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The constant data as `i64` (from INT32 or INT64 buffers).
    pub fn int_data(&self) -> Option<Vec<i64>> {
        let d = self.data?;
        match self.dtype {
            TensorType::I32 => Some(
                d.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
            ),
            TensorType::I64 => Some(
                d.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_decode() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x3400), 0.25);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn non_tflite_bytes_are_rejected() {
        assert!(Model::parse(b"").is_err());
        assert!(Model::parse(b"\x08\0\0\0TFL3").is_err());
        let mut junk = vec![0u8; 64];
        junk[4..8].copy_from_slice(b"TFL3");
        assert!(Model::parse(&junk).is_err());
    }
}
