//! safetensors input, through the `safetensors` crate (header parsing and bounds checks are
//! its job). Tensors come out in file (data-offset) order, which is the order the writer gave,
//! so a converted state dict keeps its registration order.

use ::safetensors::{Dtype, SafeTensors};

use super::error::FormatError;
use super::pickle::{StorageRef, TensorRef};
use super::tensor::{DType, StateDict};
use super::torch::{ElementBudget, materialise};

fn dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

/// Reads a safetensors file held in memory.
pub(crate) fn read(bytes: &[u8]) -> Result<StateDict, FormatError> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| FormatError::Safetensors(e.to_string()))?;
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| FormatError::Safetensors(e.to_string()))?;
    let mut names: Vec<(usize, &str)> = st
        .names()
        .into_iter()
        .map(|n| (meta.info(n).map_or(usize::MAX, |i| i.data_offsets.0), n))
        .collect();
    names.sort_unstable();

    let mut budget = ElementBudget::for_input_len(bytes.len() as u64);
    let mut sd = StateDict::new();
    for (_, name) in names {
        let view = st
            .tensor(name)
            .map_err(|e| FormatError::Safetensors(e.to_string()))?;
        let dt = dtype(view.dtype()).ok_or_else(|| {
            FormatError::Unsupported(format!(
                "tensor `{name}` has dtype {:?}; expected a float, int or bool type",
                view.dtype()
            ))
        })?;
        let shape = view.shape().to_vec();
        let numel = view.data().len() / dt.size();
        // Row-major strides; the crate has already checked that the byte length matches.
        let mut stride = vec![0usize; shape.len()];
        let mut acc = 1usize;
        for (s, &d) in stride.iter_mut().zip(&shape).rev() {
            *s = acc;
            acc = acc.saturating_mul(d);
        }
        let t = TensorRef {
            storage: StorageRef {
                key: name.to_string(),
                dtype: dt,
                location: "cpu".into(),
                numel,
                view: None,
            },
            offset: 0,
            size: shape,
            stride,
        };
        sd.insert(name, materialise(name, view.data(), &t, true, &mut budget)?);
    }
    Ok(sd)
}
