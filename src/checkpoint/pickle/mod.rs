//! A restricted pickle virtual machine: the subset of protocols 2–5 that `torch.save` writes for a
//! `state_dict`, with no way to import or call anything.
//!
//! Why our own VM instead of a general unpickler: a `.pth` file is an arbitrary-code-execution
//! format in Python (`GLOBAL` + `REDUCE` call any importable function). Here `GLOBAL` resolves
//! only names on a fixed allowlist to inert markers ([`Global`]), and `REDUCE` interprets those
//! few markers itself (an empty `OrderedDict`, a tensor view description, a storage reference).
//! Anything else is refused with an error naming it.
//!
//! Values live in an arena ([`Heap`]) and the stack/memo hold cheap handles, so a memoised
//! container mutated after `BINPUT` (the usual `EMPTY_DICT, BINPUT, MARK … SETITEMS` sequence)
//! is seen through every reference, and `BINGET` never deep-copies (no exponential blow-up).
//! Every count that input can grow — stack, marks, memo, arena elements — is capped, and every
//! length is checked against the bytes actually left before anything is allocated.

mod allowlist;
mod vm;

use std::collections::HashMap;
use std::rc::Rc;

use super::error::FormatError;
use super::tensor::DType;
use vm::Vm;

/// Largest pickle we accept. A state-dict pickle holds only structure (a few hundred bytes per
/// tensor), so even a large model is far below this.
pub(crate) const MAX_PICKLE_BYTES: usize = 64 << 20;
/// Stack depth cap (values plus nothing else).
const MAX_STACK: usize = 1 << 20;
/// Open `MARK`s cap.
const MAX_MARKS: usize = 1 << 16;
/// Memo entries cap.
const MAX_MEMO: usize = 1 << 20;
/// Arena objects plus container elements cap; bounds the memory a hostile pickle can claim at
/// roughly 100 MiB while leaving real state dicts (thousands of values) far inside.
const MAX_ELEMENTS: usize = 1 << 22;
/// Tensor rank cap (PyTorch itself allows 64 dimensions).
pub(crate) const MAX_DIMS: usize = 64;

/// Index of an object in the [`Heap`].
pub(crate) type ObjId = usize;

/// A pickled value: scalars inline, containers and torch objects by arena handle.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit `i64`: little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Obj(ObjId),
}

/// The allowlisted globals, as inert markers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Global {
    /// `collections.OrderedDict` — the type of every `state_dict`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, meta])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor(storage, offset, size, stride)` (PyTorch < 1.0 pickles).
    RebuildTensor,
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)`: a `Parameter` is its data.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(data, requires_grad, hooks, state)`.
    RebuildParameterWithState,
    /// `torch.<X>Storage`: only meaningful inside a storage persistent id.
    Storage(DType),
    /// `_codecs.encode(str, "latin1")`: how protocol 2 spells a `bytes` object.
    CodecsEncode,
}

/// A storage reference from a persistent id: `('storage', torch.<X>Storage, key, location,
/// numel[, view_metadata])`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageRef {
    /// Record name (`data/<key>` in a zip, position in the key list of a legacy file).
    pub key: String,
    pub dtype: DType,
    /// `cpu`, `cuda`, `cuda:N` or `mps`; only recorded, the bytes are the same.
    #[allow(dead_code)]
    pub location: String,
    /// Elements in the root storage.
    pub numel: usize,
    /// Legacy-format storage views: `(offset, size)` in elements within the root storage.
    pub view: Option<(usize, usize)>,
}

/// A tensor view: which storage, and the offset/size/stride geometry in elements.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorRef {
    pub storage: StorageRef,
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

/// An ordered dict (Python dicts keep insertion order) with a hash index for scalar keys so
/// that replacing keys stays linear overall.
#[derive(Debug, Default, Clone)]
pub(crate) struct Dict {
    pub entries: Vec<(Value, Value)>,
    index: HashMap<HashKey, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HashKey {
    None,
    Bool(bool),
    Int(i64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

impl Dict {
    fn insert(&mut self, key: Value, value: Value) -> bool {
        let hk = match &key {
            Value::None => Some(HashKey::None),
            Value::Bool(b) => Some(HashKey::Bool(*b)),
            Value::Int(i) => Some(HashKey::Int(*i)),
            Value::Str(s) => Some(HashKey::Str(s.clone())),
            Value::Bytes(b) => Some(HashKey::Bytes(b.clone())),
            _ => None,
        };
        if let Some(hk) = hk {
            if let Some(&i) = self.index.get(&hk) {
                self.entries[i].1 = value;
                return false;
            }
            self.index.insert(hk, self.entries.len());
        }
        self.entries.push((key, value));
        true
    }

    /// The value stored under the string key `key`.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.index
            .get(&HashKey::Str(Rc::from(key)))
            .map(|&i| &self.entries[i].1)
    }
}

/// Arena objects.
#[derive(Debug, Clone)]
pub(crate) enum Object {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Dict),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

/// The arena of one unpickling run.
#[derive(Debug, Default)]
pub(crate) struct Heap {
    objects: Vec<Object>,
    /// Objects plus container elements, checked against [`MAX_ELEMENTS`].
    elements: usize,
}

impl Heap {
    pub fn get(&self, id: ObjId) -> &Object {
        &self.objects[id]
    }

    /// Every object (used to collect all storage references, e.g. for legacy files).
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }

    /// A short description of a value for error messages ("a list", "the int 3", …).
    pub fn describe(&self, v: &Value) -> String {
        match v {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the bool {b}"),
            Value::Int(i) => format!("the int {i}"),
            Value::BigInt(_) => "a big int".into(),
            Value::Float(x) => format!("the float {x}"),
            Value::Str(s) => format!("the string {:?}", truncate(s, 64)),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Obj(id) => match &self.objects[*id] {
                Object::Tuple(t) => format!("a tuple of {}", t.len()),
                Object::List(l) => format!("a list of {}", l.len()),
                Object::Dict(d) => format!("a dict of {}", d.entries.len()),
                Object::Global(g) => format!("the global {g:?}"),
                Object::Storage(_) => "a storage".into(),
                Object::Tensor(_) => "a tensor".into(),
            },
        }
    }
}

/// Cuts a string for display in an error message.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The result of one run: the value `STOP` returned, its arena and the bytes consumed.
#[derive(Debug)]
pub(crate) struct Pickled {
    pub heap: Heap,
    pub root: Value,
    pub consumed: usize,
}

/// Runs the restricted VM on `data` until `STOP`. Bytes after `STOP` are not read, so a legacy
/// stream can be parsed one pickle at a time.
pub(crate) fn unpickle(data: &[u8]) -> Result<Pickled, FormatError> {
    let mut vm = Vm {
        data,
        pos: 0,
        op_start: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        heap: Heap::default(),
    };
    let root = vm.run()?;
    Ok(Pickled {
        heap: vm.heap,
        root,
        consumed: vm.pos,
    })
}

#[cfg(test)]
mod tests {
    use super::allowlist::valid_location;
    use super::*;

    fn run(bytes: &[u8]) -> Result<Pickled, FormatError> {
        unpickle(bytes)
    }

    #[test]
    fn forbidden_global_is_named_and_never_called() {
        let p = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R.";
        match run(p) {
            Err(FormatError::ForbiddenGlobal { module, name }) => {
                assert_eq!((module.as_str(), name.as_str()), ("os", "system"));
            }
            other => panic!("expected ForbiddenGlobal, got {other:?}"),
        }
        // Same through STACK_GLOBAL (protocol 4).
        let p = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        assert!(matches!(run(p), Err(FormatError::ForbiddenGlobal { .. })));
    }

    #[test]
    fn memoised_dict_sees_later_items() {
        // {} BINPUT 0, MARK 'a' 1 SETITEMS, POP, BINGET 0, STOP
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u0h\x00.";
        let r = run(p).unwrap();
        match r.root {
            Value::Obj(id) => match r.heap.get(id) {
                Object::Dict(d) => assert_eq!(d.get_str("a"), Some(&Value::Int(1))),
                o => panic!("{o:?}"),
            },
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn scalars_decode() {
        let p = b"\x80\x02(J\xff\xff\xff\xff\x8a\x02\x00\x80\x8a\x00G?\xf0\x00\x00\x00\x00\x00\x00\x88Nt.";
        let r = run(p).unwrap();
        let Value::Obj(id) = r.root else { panic!() };
        let Object::Tuple(t) = r.heap.get(id) else {
            panic!()
        };
        assert_eq!(
            t,
            &vec![
                Value::Int(-1),
                Value::Int(-32768),
                Value::Int(0),
                Value::Float(1.0),
                Value::Bool(true),
                Value::None
            ]
        );
    }

    #[test]
    fn hostile_lengths_fail_cleanly() {
        for p in [
            &b"\x80\x02X\xff\xff\xff\xff"[..],
            b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x80\x02\x8b\xff\xff\xff\x7f",
            b"\x80\x02h\x05.",
            b"\x80\x02.",
            b"\x80\x02(t(u.",
            b"\x80\x02\x81.",
            b"\x80\x09.",
        ] {
            assert!(run(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn dup_bomb_hits_the_stack_cap() {
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat_n(b'2', MAX_STACK + 5));
        p.push(b'.');
        assert!(matches!(run(&p), Err(FormatError::Limit { .. })));
    }

    #[test]
    fn locations() {
        for ok in ["cpu", "cuda", "cuda:0", "cuda:15", "mps"] {
            assert!(valid_location(ok), "{ok}");
        }
        for bad in ["", "cuda:", "cuda:x", "tpu", "cuda:123456"] {
            assert!(!valid_location(bad), "{bad}");
        }
    }
}
