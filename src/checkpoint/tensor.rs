//! The in-memory result of reading a checkpoint: [`Tensor`] (dtype, shape, contiguous row-major
//! data) and [`StateDict`] (ordered name → tensor map plus where it came from).
//!
//! Float tensors are widened to `f32` whatever their stored precision, because every consumer
//! (graph emitter, reference runs) works in `f32` and the official weights are `float32` (spec
//! app. A/B). Integer tensors (in practice only the BatchNorm `num_batches_tracked` counters) keep
//! full `i64` precision. The stored dtype is remembered so a manifest can still say what was on disk.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

/// Element type of a tensor as stored in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `torch.float64` (`DoubleStorage`); read into `f32`.
    F64,
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.float16` (`HalfStorage`); widened exactly to `f32`.
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`); widened exactly to `f32`.
    BF16,
    /// `torch.int64` (`LongStorage`).
    I64,
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int16` (`ShortStorage`).
    I16,
    /// `torch.int8` (`CharStorage`).
    I8,
    /// `torch.uint8` (`ByteStorage`).
    U8,
    /// `torch.bool` (`BoolStorage`), one byte per element.
    Bool,
}

impl DType {
    /// Bytes per element on disk.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// True for the floating-point types, which are held as `f32`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }

    /// The NumPy/PyTorch spelling (`"float32"`, `"int64"`, …), as used by the manifests and goldens.
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "float64",
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// Inverse of [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        Some(match name {
            "float64" => DType::F64,
            "float32" => DType::F32,
            "float16" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" => DType::I64,
            "int32" => DType::I32,
            "int16" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// The legacy storage class that `torch.save` pickles for this dtype (`torch.<name>`).
    pub(crate) fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Contiguous row-major element data.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// Any floating-point dtype, widened to `f32`.
    Float(Vec<f32>),
    /// Any integer or bool dtype, widened to `i64`.
    Int(Vec<i64>),
}

impl TensorData {
    fn len(&self) -> usize {
        match self {
            TensorData::Float(v) => v.len(),
            TensorData::Int(v) => v.len(),
        }
    }
}

/// One tensor: stored dtype, shape (empty for a 0-d scalar) and contiguous data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: TensorData,
}

/// Why [`Tensor::new`] refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// The data length is not the product of the shape.
    #[error("shape {shape:?} needs {expected} elements, got {found}")]
    Length {
        /// Requested shape.
        shape: Vec<usize>,
        /// Product of the shape (`None` on overflow is reported as `usize::MAX`).
        expected: usize,
        /// Elements supplied.
        found: usize,
    },
    /// Float data for an integer dtype or the other way round.
    #[error("dtype {dtype} does not match the kind of data supplied")]
    Kind {
        /// Requested dtype.
        dtype: DType,
    },
}

impl Tensor {
    /// Builds a tensor, checking that the data matches the shape and the dtype's kind.
    pub fn new(dtype: DType, shape: Vec<usize>, data: TensorData) -> Result<Tensor, TensorError> {
        let expected = numel(&shape).unwrap_or(usize::MAX);
        if expected != data.len() {
            return Err(TensorError::Length {
                shape,
                expected,
                found: data.len(),
            });
        }
        if dtype.is_float() != matches!(data, TensorData::Float(_)) {
            return Err(TensorError::Kind { dtype });
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// A `float32` tensor.
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::F32, shape, TensorData::Float(data))
    }

    /// An `int64` tensor.
    pub fn from_i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::I64, shape, TensorData::Int(data))
    }

    /// The dtype the tensor had on disk.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape; empty for a 0-d scalar.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements (1 for a 0-d scalar).
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The data, row-major.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The values of a floating-point tensor; `None` for integer dtypes.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::Float(v) => Some(v),
            TensorData::Int(_) => None,
        }
    }

    /// The values of an integer/bool tensor; `None` for floating-point dtypes.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::Int(v) => Some(v),
            TensorData::Float(_) => None,
        }
    }

    /// The values as `f64`, whatever the kind (exact for every `f32` and for integers below 2^53).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            TensorData::Float(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::Int(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Consumes the tensor and returns its `f32` data, if it is a float tensor.
    pub fn into_f32(self) -> Option<Vec<f32>> {
        match self.data {
            TensorData::Float(v) => Some(v),
            TensorData::Int(_) => None,
        }
    }
}

/// Product of a shape's dimensions, `None` on overflow.
pub(crate) fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Exact widening of an IEEE binary16 bit pattern to `f32` (no `half` dependency for ten lines).
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let mant = u32::from(bits & 0x3ff);
    let out = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24, exactly representable in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000); // 2^-24
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(out)
}

/// Where a [`StateDict`] was read from; the model package manifest records this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSource {
    /// The file as given to [`super::load_checkpoint`] (or a label for in-memory input).
    pub path: PathBuf,
    /// SHA-256 of the whole file.
    pub sha256: [u8; 32],
    /// File length in bytes.
    pub len: u64,
    /// The container format detected from the magic bytes.
    pub format: CheckpointFormat,
}

impl CheckpointSource {
    /// The SHA-256 as 64 lowercase hex digits.
    pub fn sha256_hex(&self) -> String {
        use fmt::Write;
        self.sha256
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

/// Container formats [`super::load_checkpoint`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `torch.save` since PyTorch 1.6: a zip archive holding `<dir>/data.pkl` and `<dir>/data/<key>`.
    TorchZip,
    /// `torch.save(..., _use_new_zipfile_serialization=False)` and PyTorch < 1.6: a run of pickles
    /// followed by raw storages.
    TorchLegacy,
    /// Hugging Face safetensors.
    Safetensors,
}

/// A non-tensor top-level entry of a checkpoint (`global_step`, `global_epoch`, …), kept for
/// reports; containers such as the optimizer state are not kept.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Python `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int that fits in `i64`.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

/// Ordered name → tensor map, in the order the checkpoint stored it (module registration order
/// for a PyTorch `state_dict`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
    metadata: BTreeMap<String, MetaValue>,
    source: Option<CheckpointSource>,
}

impl StateDict {
    /// An empty state dict with no source (for building one by hand, e.g. in tests).
    pub fn new() -> StateDict {
        StateDict::default()
    }

    /// Inserts or replaces `name`; a replaced entry keeps its position.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1 = tensor,
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, tensor));
            }
        }
    }

    /// Removes `name`, keeping the order of the rest.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        let i = self.index.remove(name)?;
        let (_, t) = self.entries.remove(i);
        for v in self.index.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        Some(t)
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(name, tensor)` in stored order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// Names in stored order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Scalar top-level entries of the checkpoint (`global_step`, …).
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    /// The file this came from, with its SHA-256; `None` for a hand-built state dict.
    pub fn source(&self) -> Option<&CheckpointSource> {
        self.source.as_ref()
    }

    pub(crate) fn set_metadata(&mut self, metadata: BTreeMap<String, MetaValue>) {
        self.metadata = metadata;
    }

    pub(crate) fn set_source(&mut self, source: CheckpointSource) {
        self.source = Some(source);
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_widening_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn state_dict_keeps_order_on_remove_and_replace() {
        let mut sd = StateDict::new();
        for name in ["a", "b", "c"] {
            sd.insert(name, Tensor::from_f32(vec![], vec![1.0]).unwrap());
        }
        sd.insert("a", Tensor::from_f32(vec![1], vec![2.0]).unwrap());
        assert!(sd.remove("b").is_some());
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(sd.get("a").unwrap().shape(), &[1]);
        assert_eq!(sd.get("c").unwrap().numel(), 1);
    }

    #[test]
    fn tensor_new_checks_length_and_kind() {
        assert!(Tensor::from_f32(vec![2, 3], vec![0.0; 5]).is_err());
        assert!(Tensor::new(DType::I64, vec![1], TensorData::Float(vec![0.0])).is_err());
        assert!(Tensor::new(DType::F16, vec![1], TensorData::Float(vec![0.0])).is_ok());
    }
}
