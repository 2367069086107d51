//! The legacy (non-zip) `torch.save` stream: what PyTorch < 1.6 wrote, and what later versions
//! write with `_use_new_zipfile_serialization=False`.
//!
//! Layout, all in one stream: five pickles, then the raw storages.
//! 1. The magic number `0x1950a86a20f9469cfc6c` (a `LONG1`).
//! 2. The protocol version `1001`.
//! 3. A sys-info dict (`little_endian`, `type_sizes`).
//! 4. The object itself, with storages as persistent ids
//!    `('storage', torch.<X>Storage, key, location, numel, view_metadata)`.
//! 5. The list of storage keys.
//!
//! Then, for each key in that order, an 8-byte element count followed by the elements. The
//! element size comes from the storage type named in pickle 4.
//!
//! The even older tar variant (PyTorch < 0.4) is recognised in `mod.rs` and refused by name.

use std::collections::HashMap;
use std::ops::Range;

use super::error::FormatError;
use super::pickle::{Object, Pickled, StorageRef, Value, truncate, unpickle};
use super::tensor::{DType, StateDict};
use super::torch::{ElementBudget, StorageSource, extract_state_dict, materialise_all};

/// The magic number as the little-endian bytes of its `LONG1` payload.
pub(crate) const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The only protocol version ever written by the legacy format.
const PROTOCOL_VERSION: i64 = 1001;

/// Reads a legacy checkpoint held in memory.
pub(crate) fn read(data: &[u8]) -> Result<StateDict, FormatError> {
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<Pickled, FormatError> {
        let p = unpickle(&data[pos..]).map_err(|e| match e {
            FormatError::Pickle { offset, message } => FormatError::Pickle {
                offset: offset + pos,
                message: format!("{what}: {message}"),
            },
            other => other,
        })?;
        pos += p.consumed;
        Ok(p)
    };

    let magic = next("magic number")?;
    match &magic.root {
        Value::BigInt(b) if **b == MAGIC => {}
        other => {
            return Err(FormatError::structure(
                "legacy magic number",
                "0x1950a86a20f9469cfc6c",
                magic.heap.describe(other),
            ));
        }
    }
    let version = next("protocol version")?;
    if version.root != Value::Int(PROTOCOL_VERSION) {
        return Err(FormatError::structure(
            "legacy protocol version",
            PROTOCOL_VERSION.to_string(),
            version.heap.describe(&version.root),
        ));
    }
    let sys_info = next("sys info")?;
    let little_endian = match &sys_info.root {
        Value::Obj(id) => match sys_info.heap.get(*id) {
            Object::Dict(d) => !matches!(d.get_str("little_endian"), Some(Value::Bool(false))),
            _ => true,
        },
        _ => true,
    };
    let main = next("checkpoint object")?;
    let raw = extract_state_dict(&main)?;
    let keys = next("storage key list")?;
    let key_list: Vec<String> = match &keys.root {
        Value::Obj(id) => match keys.heap.get(*id) {
            Object::List(l) => l
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.to_string()),
                    other => Err(FormatError::structure(
                        "legacy storage key list",
                        "strings",
                        keys.heap.describe(other),
                    )),
                })
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };

    // Element type and count of every storage the object references (optimizer ones too:
    // they are in the stream and must be stepped over).
    let mut info: HashMap<&str, (DType, usize)> = HashMap::new();
    for obj in main.heap.objects() {
        if let Object::Storage(s) = obj {
            match info.get(s.key.as_str()) {
                Some(&(d, n)) if d != s.dtype || n != s.numel => {
                    return Err(FormatError::structure(
                        format!("storage `{}`", truncate(&s.key, 40)),
                        format!("one dtype and size ({n} × {d})"),
                        format!("also {} × {}", s.numel, s.dtype),
                    ));
                }
                _ => {
                    info.insert(&s.key, (s.dtype, s.numel));
                }
            }
        }
    }

    let mut ranges: HashMap<String, Range<usize>> = HashMap::new();
    for key in &key_list {
        let &(dtype, numel) = info.get(key.as_str()).ok_or_else(|| {
            FormatError::structure(
                "legacy storage key list",
                "keys referenced by the checkpoint object",
                format!("unreferenced key {:?}", truncate(key, 40)),
            )
        })?;
        let what = format!("storage `{}`", truncate(key, 40));
        let head = data
            .get(pos..pos.saturating_add(8))
            .ok_or_else(|| FormatError::truncated(&what, 8, (data.len() - pos) as u64))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(head);
        let count = if little_endian {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        };
        pos += 8;
        if count != numel as u64 {
            return Err(FormatError::structure(
                &what,
                format!("{numel} elements as the pickle says"),
                format!("a count of {count}"),
            ));
        }
        let nbytes = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| FormatError::limit(format!("{what} byte size"), usize::MAX as u64))?;
        let available = data.len() - pos;
        if nbytes > available {
            return Err(FormatError::truncated(
                what,
                nbytes as u64,
                available as u64,
            ));
        }
        ranges.insert(key.clone(), pos..pos + nbytes);
        pos += nbytes;
    }

    let mut source = LegacyStorages { data, ranges };
    let mut budget = ElementBudget::for_input_len(data.len() as u64);
    materialise_all(raw, &mut source, little_endian, &mut budget)
}

struct LegacyStorages<'a> {
    data: &'a [u8],
    ranges: HashMap<String, Range<usize>>,
}

impl StorageSource for LegacyStorages<'_> {
    fn bytes(&mut self, s: &StorageRef) -> Result<&[u8], FormatError> {
        let r = self.ranges.get(&s.key).ok_or_else(|| {
            FormatError::MissingRecord(format!(
                "storage `{}` (not in the legacy key list)",
                truncate(&s.key, 40)
            ))
        })?;
        Ok(&self.data[r.clone()])
    }
}
