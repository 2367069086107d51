//! From an unpickled `torch.save` object to a [`StateDict`]: find the `state_dict`, then turn
//! each tensor view (storage + offset + size + stride) into a contiguous copy.
//!
//! Layout handled (spec §5.3): the official training scripts save
//! `{"state_dict": model.state_dict(), "optimizer": …, "global_step": …, "global_epoch": …}`;
//! a bare `state_dict` at the top level is accepted too. Only the tensors the state dict
//! references are materialised; the optimizer state is parsed (safely) and dropped.

use std::collections::BTreeMap;

use super::error::FormatError;
use super::pickle::{Dict, Heap, Object, Pickled, StorageRef, TensorRef, Value, truncate};
use super::tensor::{DType, MetaValue, StateDict, Tensor, TensorData, f16_to_f32, numel};

/// Supplies the raw bytes of a storage record, exactly `numel * dtype.size()` long.
pub(crate) trait StorageSource {
    fn bytes(&mut self, storage: &StorageRef) -> Result<&[u8], FormatError>;
}

/// Budget of elements that may be materialised, so that stride-0 views (one stored element,
/// billions of logical ones) cannot turn a small file into a huge allocation.
pub(crate) struct ElementBudget(u64);

impl ElementBudget {
    /// Allows four elements per input byte plus one mebi-element: every honest checkpoint stays
    /// far inside (each stored element is at least one byte), shared storages included.
    pub fn for_input_len(len: u64) -> ElementBudget {
        ElementBudget(len.saturating_mul(4).saturating_add(1 << 20))
    }

    fn spend(&mut self, key: &str, n: usize) -> Result<(), FormatError> {
        let n = n as u64;
        if n > self.0 {
            return Err(FormatError::View {
                key: key.to_string(),
                detail: format!(
                    "{n} elements would exceed the materialisation budget of {} for this file \
                     (expanded/stride-0 views are limited)",
                    self.0
                ),
            });
        }
        self.0 -= n;
        Ok(())
    }
}

/// The state dict's tensors (still as views) and the scalar top-level entries.
pub(crate) struct RawStateDict {
    pub tensors: Vec<(String, TensorRef)>,
    pub metadata: BTreeMap<String, MetaValue>,
}

fn as_dict<'h>(heap: &'h Heap, v: &Value) -> Option<&'h Dict> {
    match v {
        Value::Obj(id) => match heap.get(*id) {
            Object::Dict(d) => Some(d),
            _ => None,
        },
        _ => None,
    }
}

fn as_tensor<'h>(heap: &'h Heap, v: &Value) -> Option<&'h TensorRef> {
    match v {
        Value::Obj(id) => match heap.get(*id) {
            Object::Tensor(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

fn meta_value(v: &Value) -> Option<MetaValue> {
    Some(match v {
        Value::None => MetaValue::None,
        Value::Bool(b) => MetaValue::Bool(*b),
        Value::Int(i) => MetaValue::Int(*i),
        Value::Float(x) => MetaValue::Float(*x),
        Value::Str(s) => MetaValue::Str(s.to_string()),
        _ => return None,
    })
}

/// Finds the state dict in an unpickled checkpoint: `root["state_dict"]` when present,
/// otherwise the root itself, which must then be a dict of tensors.
pub(crate) fn extract_state_dict(p: &Pickled) -> Result<RawStateDict, FormatError> {
    let heap = &p.heap;
    let root = as_dict(heap, &p.root).ok_or_else(|| {
        FormatError::structure(
            "top-level object",
            "a dict (a state_dict or {\"state_dict\": …, …})",
            heap.describe(&p.root),
        )
    })?;
    let (sd, metadata) = match root.get_str("state_dict") {
        Some(v) => {
            let sd = as_dict(heap, v).ok_or_else(|| {
                FormatError::structure("entry \"state_dict\"", "a dict", heap.describe(v))
            })?;
            let mut meta = BTreeMap::new();
            for (k, v) in &root.entries {
                if let (Value::Str(k), Some(m)) = (k, meta_value(v)) {
                    meta.insert(k.to_string(), m);
                }
            }
            (sd, meta)
        }
        None => (root, BTreeMap::new()),
    };
    let top_level = std::ptr::eq(sd, root);
    let mut tensors = Vec::with_capacity(sd.entries.len());
    for (k, v) in &sd.entries {
        let Value::Str(name) = k else {
            return Err(FormatError::structure(
                "state_dict key",
                "a string",
                heap.describe(k),
            ));
        };
        let t = as_tensor(heap, v).ok_or_else(|| {
            let context = if top_level {
                format!(
                    "top-level entry {:?} (no \"state_dict\" entry, so the top level must be a dict of tensors)",
                    truncate(name, 80)
                )
            } else {
                format!("state_dict entry {:?}", truncate(name, 80))
            };
            FormatError::structure(context, "a tensor", heap.describe(v))
        })?;
        tensors.push((name.to_string(), t.clone()));
    }
    Ok(RawStateDict { tensors, metadata })
}

/// Materialises every tensor of `raw` from `source`.
pub(crate) fn materialise_all(
    raw: RawStateDict,
    source: &mut dyn StorageSource,
    little_endian: bool,
    budget: &mut ElementBudget,
) -> Result<StateDict, FormatError> {
    let mut sd = StateDict::new();
    for (name, t) in raw.tensors {
        if sd.contains(&name) {
            return Err(FormatError::structure(
                format!("state_dict entry {:?}", truncate(&name, 80)),
                "a unique key",
                "a duplicate",
            ));
        }
        let bytes = source.bytes(&t.storage)?;
        let tensor = materialise(&name, bytes, &t, little_endian, budget)?;
        sd.insert(name, tensor);
    }
    sd.set_metadata(raw.metadata);
    Ok(sd)
}

/// Copies one strided view out of its storage bytes into a contiguous tensor.
///
/// Every product and sum of the view geometry is checked, and the furthest element the view
/// touches must lie inside the storage (or its legacy sub-view) before anything is allocated.
pub(crate) fn materialise(
    key: &str,
    bytes: &[u8],
    t: &TensorRef,
    little_endian: bool,
    budget: &mut ElementBudget,
) -> Result<Tensor, FormatError> {
    let view_err = |detail: String| FormatError::View {
        key: key.to_string(),
        detail,
    };
    let s = &t.storage;
    let esize = s.dtype.size();
    let stored = s
        .numel
        .checked_mul(esize)
        .ok_or_else(|| view_err("storage size overflows".into()))?;
    if bytes.len() != stored {
        return Err(view_err(format!(
            "storage `{}` holds {} bytes, expected {} ({} × {})",
            truncate(&s.key, 40),
            bytes.len(),
            stored,
            s.numel,
            s.dtype
        )));
    }
    // Legacy storage views restrict the addressable range to a window of the root storage.
    let (base, avail) = match s.view {
        None => (0, s.numel),
        Some((off, size)) => {
            let end = off.checked_add(size).filter(|&e| e <= s.numel);
            if end.is_none() {
                return Err(view_err(format!(
                    "storage view [{off}, {off}+{size}) outside a storage of {} elements",
                    s.numel
                )));
            }
            (off, size)
        }
    };
    let count = numel(&t.size).ok_or_else(|| view_err(format!("size {:?} overflows", t.size)))?;
    if count > 0 {
        let mut last = t.offset;
        for (&d, &st) in t.size.iter().zip(&t.stride) {
            last = (d - 1)
                .checked_mul(st)
                .and_then(|x| last.checked_add(x))
                .ok_or_else(|| view_err("view extent overflows".into()))?;
        }
        if last >= avail {
            return Err(view_err(format!(
                "view (offset {}, size {:?}, stride {:?}) reaches element {last} of a storage \
                 with {avail} elements",
                t.offset, t.size, t.stride
            )));
        }
    }
    budget.spend(key, count)?;
    let elems = &bytes[base * esize..(base + avail) * esize];
    let indices = ViewIndices::new(t.offset, &t.size, &t.stride, count);
    let data = decode(s.dtype, elems, little_endian, indices, count);
    Tensor::new(s.dtype, t.size.clone(), data).map_err(|e| view_err(e.to_string()))
}

/// Storage element indices of a view in row-major order, contiguous runs first-class so the
/// common case is a straight slice conversion.
enum ViewIndices {
    Contiguous { start: usize, len: usize },
    Strided(Odometer),
}

/// Walks a strided view. Only dimensions of size ≥ 2 are kept: a size-1 dimension adds nothing
/// to any index, and may carry any stride (even one near `usize::MAX`), so leaving it out keeps
/// every intermediate sum below twice the extent checked in [`materialise`].
struct Odometer {
    /// `(size, stride)` of the kept dimensions, outermost first.
    dims: Vec<(usize, usize)>,
    pos: Vec<usize>,
    cur: usize,
    left: usize,
}

impl Iterator for Odometer {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let out = self.cur;
        if self.left > 0 {
            // Advance the innermost dimension, carrying outwards.
            for (d, &(size, stride)) in self.dims.iter().enumerate().rev() {
                self.pos[d] += 1;
                self.cur += stride;
                if self.pos[d] < size {
                    break;
                }
                self.cur -= stride * size;
                self.pos[d] = 0;
            }
        }
        Some(out)
    }
}

impl ViewIndices {
    fn new(offset: usize, size: &[usize], stride: &[usize], count: usize) -> Self {
        if count == 0 {
            return ViewIndices::Contiguous { start: 0, len: 0 };
        }
        let dims: Vec<(usize, usize)> = size
            .iter()
            .zip(stride)
            .filter(|&(&d, _)| d != 1)
            .map(|(&d, &st)| (d, st))
            .collect();
        // Row-major contiguous if each kept dimension's stride is the product of the later sizes.
        let mut expect = 1usize;
        let mut contiguous = true;
        for &(d, st) in dims.iter().rev() {
            if st != expect {
                contiguous = false;
                break;
            }
            expect = expect.saturating_mul(d);
        }
        if contiguous {
            ViewIndices::Contiguous {
                start: offset,
                len: count,
            }
        } else {
            let pos = vec![0; dims.len()];
            ViewIndices::Strided(Odometer {
                dims,
                pos,
                cur: offset,
                left: count,
            })
        }
    }
}

fn decode(
    dtype: DType,
    elems: &[u8],
    little_endian: bool,
    indices: ViewIndices,
    count: usize,
) -> TensorData {
    macro_rules! read {
        ($n:literal, $conv:expr) => {{
            let get = |i: usize| {
                let mut a = [0u8; $n];
                a.copy_from_slice(&elems[i * $n..i * $n + $n]);
                if !little_endian {
                    a.reverse();
                }
                $conv(a)
            };
            match indices {
                ViewIndices::Contiguous { start, len } => elems[start * $n..(start + len) * $n]
                    .chunks_exact($n)
                    .map(|c| {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(c);
                        if !little_endian {
                            a.reverse();
                        }
                        $conv(a)
                    })
                    .collect::<Vec<_>>(),
                ViewIndices::Strided(it) => {
                    let mut v = Vec::with_capacity(count);
                    v.extend(it.map(get));
                    v
                }
            }
        }};
    }
    match dtype {
        DType::F32 => TensorData::Float(read!(4, f32::from_le_bytes)),
        DType::F64 => TensorData::Float(read!(8, |a| f64::from_le_bytes(a) as f32)),
        DType::F16 => TensorData::Float(read!(2, |a| f16_to_f32(u16::from_le_bytes(a)))),
        DType::BF16 => TensorData::Float(read!(2, |a| f32::from_bits(
            u32::from(u16::from_le_bytes(a)) << 16
        ))),
        DType::I64 => TensorData::Int(read!(8, i64::from_le_bytes)),
        DType::I32 => TensorData::Int(read!(4, |a| i64::from(i32::from_le_bytes(a)))),
        DType::I16 => TensorData::Int(read!(2, |a| i64::from(i16::from_le_bytes(a)))),
        DType::I8 => TensorData::Int(read!(1, |a: [u8; 1]| i64::from(a[0] as i8))),
        DType::U8 => TensorData::Int(read!(1, |a: [u8; 1]| i64::from(a[0]))),
        DType::Bool => TensorData::Int(read!(1, |a: [u8; 1]| i64::from(a[0] != 0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(numel: usize, offset: usize, size: &[usize], stride: &[usize]) -> TensorRef {
        TensorRef {
            storage: StorageRef {
                key: "0".into(),
                dtype: DType::F32,
                location: "cpu".into(),
                numel,
                view: None,
            },
            offset,
            size: size.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn storage(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    fn run(t: &TensorRef, bytes: &[u8]) -> Result<Tensor, FormatError> {
        materialise("k", bytes, t, true, &mut ElementBudget::for_input_len(0))
    }

    #[test]
    fn transposed_and_offset_views() {
        let b = storage(12);
        let t = run(&view(12, 0, &[3, 4], &[1, 3]), &b).unwrap();
        assert_eq!(
            t.as_f32().unwrap(),
            &[0., 3., 6., 9., 1., 4., 7., 10., 2., 5., 8., 11.]
        );
        let t = run(&view(12, 5, &[2, 2], &[4, 1]), &b).unwrap();
        assert_eq!(t.as_f32().unwrap(), &[5., 6., 9., 10.]);
        let t = run(&view(12, 7, &[], &[]), &b).unwrap();
        assert_eq!((t.shape(), t.as_f32().unwrap()), (&[][..], &[7.0][..]));
        let t = run(&view(12, 0, &[0, 5], &[5, 1]), &b).unwrap();
        assert_eq!(t.numel(), 0);
        let t = run(&view(12, 2, &[3, 1, 2], &[0, 99, 1]), &b).unwrap();
        assert_eq!(t.as_f32().unwrap(), &[2., 3., 2., 3., 2., 3.]);
        // Size-1 dimensions may carry any stride; empty views any offset.
        let t = run(&view(12, 2, &[1, 3], &[usize::MAX, 2]), &b).unwrap();
        assert_eq!(t.as_f32().unwrap(), &[2., 4., 6.]);
        let t = run(&view(12, usize::MAX, &[2, 0], &[usize::MAX, 1]), &b).unwrap();
        assert_eq!(t.shape(), &[2, 0]);
    }

    #[test]
    fn out_of_range_and_overflowing_views_are_errors() {
        let b = storage(12);
        assert!(run(&view(12, 9, &[2, 2], &[2, 1]), &b).is_err());
        assert!(run(&view(12, 0, &[usize::MAX, 2], &[1, 1]), &b).is_err());
        assert!(run(&view(12, 0, &[2, 2], &[usize::MAX, 1]), &b).is_err());
        assert!(run(&view(13, 0, &[2], &[1]), &b).is_err());
        // Stride-0 expansion beyond the budget.
        assert!(run(&view(12, 0, &[1 << 40], &[0]), &b).is_err());
    }
}
