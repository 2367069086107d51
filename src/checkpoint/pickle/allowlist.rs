//! The allowlist: which `module.name` globals a checkpoint may mention, and what `REDUCE` and
//! persistent ids do with them. Nothing here imports or calls Python; each global is an inert
//! marker, and each `REDUCE` on one is interpreted by the code below.

use std::rc::Rc;

use super::super::error::FormatError;
use super::super::tensor::DType;
use super::vm::Vm;
use super::{Dict, Global, MAX_DIMS, Object, StorageRef, TensorRef, Value, truncate};

impl Vm<'_> {
    fn tuple_items(&self, v: &Value, what: &str) -> Result<Vec<Value>, FormatError> {
        match v {
            Value::Obj(id) => match &self.heap.objects[*id] {
                Object::Tuple(t) => Ok(t.clone()),
                _ => Err(self.err(format!(
                    "{what}: expected a tuple, found {}",
                    self.heap.describe(v)
                ))),
            },
            _ => Err(self.err(format!(
                "{what}: expected a tuple, found {}",
                self.heap.describe(v)
            ))),
        }
    }

    fn index(&self, v: &Value, what: &str) -> Result<usize, FormatError> {
        match v {
            Value::Int(i) if *i >= 0 => usize::try_from(*i)
                .map_err(|_| self.err(format!("{what}: {i} does not fit this platform"))),
            Value::Bool(b) => Ok(usize::from(*b)),
            _ => Err(self.err(format!(
                "{what}: expected a non-negative int, found {}",
                self.heap.describe(v)
            ))),
        }
    }

    fn index_tuple(&self, v: &Value, what: &str) -> Result<Vec<usize>, FormatError> {
        let items = self.tuple_items(v, what)?;
        if items.len() > MAX_DIMS {
            return Err(FormatError::limit(format!("{what} rank"), MAX_DIMS as u64));
        }
        items.iter().map(|x| self.index(x, what)).collect()
    }

    pub(super) fn reduce(&mut self, callable: Value, args: Value) -> Result<Value, FormatError> {
        let g = match &callable {
            Value::Obj(id) => match &self.heap.objects[*id] {
                Object::Global(g) => *g,
                _ => return Err(self.err("REDUCE on something that is not an allowlisted global")),
            },
            _ => return Err(self.err("REDUCE on something that is not an allowlisted global")),
        };
        let args = self.tuple_items(&args, &format!("arguments of {g:?}"))?;
        match g {
            Global::OrderedDict => {
                let dict = self.alloc(Object::Dict(Dict::default()))?;
                match args.as_slice() {
                    [] => {}
                    [pairs] => {
                        // OrderedDict([(k, v), ...]): not written by torch, but harmless.
                        let pairs = match pairs {
                            Value::Obj(id) => match &self.heap.objects[*id] {
                                Object::List(l) | Object::Tuple(l) => l.clone(),
                                _ => return Err(self.err("OrderedDict() argument is not a list")),
                            },
                            _ => return Err(self.err("OrderedDict() argument is not a list")),
                        };
                        let mut flat = Vec::with_capacity(pairs.len() * 2);
                        for p in &pairs {
                            let kv = self.tuple_items(p, "OrderedDict() item")?;
                            let [k, v] = <[Value; 2]>::try_from(kv)
                                .map_err(|_| self.err("OrderedDict() item is not a pair"))?;
                            flat.push(k);
                            flat.push(v);
                        }
                        self.set_items(&dict, flat)?;
                    }
                    _ => return Err(self.err("OrderedDict() with more than one argument")),
                }
                Ok(dict)
            }
            Global::RebuildTensorV2 | Global::RebuildTensor => {
                if args.len() < 4 {
                    return Err(self.err(format!(
                        "_rebuild_tensor needs (storage, offset, size, stride, ...), got {} arguments",
                        args.len()
                    )));
                }
                let storage = match &args[0] {
                    Value::Obj(id) => match &self.heap.objects[*id] {
                        Object::Storage(s) => s.clone(),
                        _ => {
                            return Err(self.err(format!(
                                "_rebuild_tensor storage argument: expected a storage, found {}",
                                self.heap.describe(&args[0])
                            )));
                        }
                    },
                    other => {
                        return Err(self.err(format!(
                            "_rebuild_tensor storage argument: expected a storage, found {}",
                            self.heap.describe(other)
                        )));
                    }
                };
                let offset = self.index(&args[1], "tensor storage offset")?;
                let size = self.index_tuple(&args[2], "tensor size")?;
                let stride = self.index_tuple(&args[3], "tensor stride")?;
                if size.len() != stride.len() {
                    return Err(self.err(format!(
                        "tensor size has {} dimensions but stride has {}",
                        size.len(),
                        stride.len()
                    )));
                }
                self.alloc(Object::Tensor(TensorRef {
                    storage,
                    offset,
                    size,
                    stride,
                }))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(v @ Value::Obj(id)) if matches!(self.heap.objects[*id], Object::Tensor(_)) => {
                    Ok(v.clone())
                }
                _ => Err(self.err("_rebuild_parameter needs a tensor as its first argument")),
            },
            Global::CodecsEncode => match args.as_slice() {
                [Value::Str(s), Value::Str(enc)] => {
                    let latin1 = matches!(&**enc, "latin1" | "latin-1" | "iso-8859-1");
                    let bytes: Vec<u8> = if latin1 {
                        s.chars()
                            .map(|c| u8::try_from(u32::from(c)))
                            .collect::<Result<_, _>>()
                            .map_err(|_| self.err("_codecs.encode: character outside Latin-1"))?
                    } else {
                        s.as_bytes().to_vec()
                    };
                    Ok(Value::Bytes(Rc::from(bytes)))
                }
                _ => Err(self.err("_codecs.encode needs (str, encoding)")),
            },
            Global::Storage(d) => Err(self.err(format!(
                "the storage class for {d} is only valid inside a persistent id"
            ))),
        }
    }

    pub(super) fn persistent(&mut self, pid: Value) -> Result<Value, FormatError> {
        let items = self.tuple_items(&pid, "persistent id")?;
        let kind = match items.first() {
            Some(Value::Str(s)) => s.clone(),
            _ => return Err(self.err("persistent id does not start with a type name")),
        };
        match &*kind {
            "storage" => {}
            "module" => {
                return Err(self.err(
                    "the checkpoint pickles a whole nn.Module, which needs its Python source to \
                     load; re-save it as model.state_dict()",
                ));
            }
            other => {
                return Err(self.err(format!(
                    "unknown persistent id type {:?}",
                    truncate(other, 64)
                )));
            }
        }
        if !(5..=6).contains(&items.len()) {
            return Err(self.err(format!(
                "storage persistent id has {} fields, expected 5 (zip) or 6 (legacy)",
                items.len()
            )));
        }
        let dtype = match &items[1] {
            Value::Obj(id) => match self.heap.objects[*id] {
                Object::Global(Global::Storage(d)) => d,
                _ => {
                    return Err(
                        self.err("storage persistent id: second field is not a storage type")
                    );
                }
            },
            _ => return Err(self.err("storage persistent id: second field is not a storage type")),
        };
        let key = match &items[2] {
            Value::Str(s) => s.to_string(),
            // Some writers use an int key; its decimal form is the record name.
            Value::Int(i) => i.to_string(),
            other => {
                return Err(self.err(format!(
                    "storage key: expected a string, found {}",
                    self.heap.describe(other)
                )));
            }
        };
        let location = match &items[3] {
            Value::Str(s) if valid_location(s) => s.to_string(),
            other => {
                return Err(self.err(format!(
                    "storage location: expected cpu, cuda, cuda:N or mps, found {}",
                    self.heap.describe(other)
                )));
            }
        };
        let numel = self.index(&items[4], "storage element count")?;
        let view = match items.get(5) {
            None | Some(Value::None) => None,
            Some(v) => {
                let view = self.tuple_items(v, "storage view metadata")?;
                match view.as_slice() {
                    [_, off, size] => Some((
                        self.index(off, "storage view offset")?,
                        self.index(size, "storage view size")?,
                    )),
                    _ => return Err(self.err("storage view metadata is not (key, offset, size)")),
                }
            }
        };
        self.alloc(Object::Storage(StorageRef {
            key,
            dtype,
            location,
            numel,
            view,
        }))
    }
}

pub(super) fn valid_location(s: &str) -> bool {
    match s {
        "cpu" | "cuda" | "mps" => true,
        _ => s.strip_prefix("cuda:").is_some_and(|n| {
            !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit())
        }),
    }
}

/// Maps `module.name` to its inert marker, or refuses it.
pub(super) fn resolve_global(module: &str, name: &str) -> Result<Global, FormatError> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => {
            Some(Global::RebuildParameterWithState)
        }
        ("_codecs", "encode") => Some(Global::CodecsEncode),
        ("torch", storage) => DType::from_storage_class(storage).map(Global::Storage),
        _ => None,
    };
    g.ok_or_else(|| FormatError::ForbiddenGlobal {
        module: truncate(module, 128),
        name: truncate(name, 128),
    })
}
