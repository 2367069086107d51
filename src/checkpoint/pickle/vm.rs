//! The opcode loop of the restricted VM: stack, marks, memo and containers. What the allowlisted
//! globals *mean* (REDUCE, persistent ids) lives in `allowlist.rs`.

use std::collections::HashMap;
use std::rc::Rc;

use super::super::error::FormatError;
use super::allowlist::resolve_global;
use super::{
    Dict, Heap, MAX_ELEMENTS, MAX_MARKS, MAX_MEMO, MAX_PICKLE_BYTES, MAX_STACK, Object, Value,
};

pub(super) struct Vm<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) op_start: usize,
    pub(super) stack: Vec<Value>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u32, Value>,
    pub(super) heap: Heap,
}

impl<'a> Vm<'a> {
    pub(super) fn err(&self, message: impl Into<String>) -> FormatError {
        FormatError::Pickle {
            offset: self.op_start,
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let data = self.data;
        let end = self.pos.checked_add(n).filter(|&e| e <= data.len());
        match end {
            Some(end) => {
                let s = &data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(FormatError::truncated(
                format!("pickle opcode at byte {}", self.op_start),
                n as u64,
                (data.len() - self.pos) as u64,
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length field: must fit `usize` and the bytes left (checked before any allocation).
    fn len_from(&self, n: u64) -> Result<usize, FormatError> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(FormatError::truncated(
                format!("pickle opcode at byte {}", self.op_start),
                n,
                left,
            ));
        }
        Ok(n as usize)
    }

    fn line(&mut self) -> Result<&'a str, FormatError> {
        let data = self.data;
        let rest = &data[self.pos..];
        let n = rest
            .iter()
            .take(1024)
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("GLOBAL name not terminated by a newline within 1024 bytes"))?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| self.err("GLOBAL name is not UTF-8"))
    }

    fn push(&mut self, v: Value) -> Result<(), FormatError> {
        if self.stack.len() >= MAX_STACK {
            return Err(FormatError::limit("pickle stack depth", MAX_STACK as u64));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, FormatError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top(&self) -> Result<&Value, FormatError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.last().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, FormatError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }

    fn charge(&mut self, n: usize) -> Result<(), FormatError> {
        self.heap.elements = self
            .heap
            .elements
            .checked_add(n)
            .filter(|&e| e <= MAX_ELEMENTS)
            .ok_or_else(|| {
                FormatError::limit("pickle objects and elements", MAX_ELEMENTS as u64)
            })?;
        Ok(())
    }

    pub(super) fn alloc(&mut self, obj: Object) -> Result<Value, FormatError> {
        let n = match &obj {
            Object::Tuple(v) | Object::List(v) => v.len(),
            Object::Dict(d) => d.entries.len(),
            Object::Tensor(t) => t.size.len() * 2,
            _ => 0,
        };
        self.charge(n + 1)?;
        self.heap.objects.push(obj);
        Ok(Value::Obj(self.heap.objects.len() - 1))
    }

    fn memo_put(&mut self, idx: u32, v: Value) -> Result<(), FormatError> {
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&idx) {
            return Err(FormatError::limit("pickle memo entries", MAX_MEMO as u64));
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Result<(), FormatError> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("memo entry {idx} read before it was written")))?;
        self.push(v)
    }

    fn string(&mut self, n: u64) -> Result<(), FormatError> {
        let n = self.len_from(n)?;
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err("string is not valid UTF-8"))?;
        self.push(Value::Str(Rc::from(s)))
    }

    /// Python 2 `str` (BINSTRING): UTF-8 when valid, else Latin-1 as `torch.load` would decode it.
    fn py2_string(&mut self, n: u64) -> Result<(), FormatError> {
        let n = self.len_from(n)?;
        let b = self.take(n)?;
        let s: Rc<str> = match std::str::from_utf8(b) {
            Ok(s) => Rc::from(s),
            Err(_) => Rc::from(b.iter().map(|&c| char::from(c)).collect::<String>()),
        };
        self.push(Value::Str(s))
    }

    fn bytes(&mut self, n: u64) -> Result<(), FormatError> {
        let n = self.len_from(n)?;
        let b = self.take(n)?;
        self.push(Value::Bytes(Rc::from(b)))
    }

    fn long(&mut self, n: u64) -> Result<(), FormatError> {
        let n = self.len_from(n)?;
        let b = self.take(n)?;
        let v = if n == 0 {
            Value::Int(0)
        } else if n <= 8 {
            let fill = if b[n - 1] & 0x80 != 0 { 0xff } else { 0 };
            let mut a = [fill; 8];
            a[..n].copy_from_slice(b);
            Value::Int(i64::from_le_bytes(a))
        } else {
            Value::BigInt(Rc::from(b))
        };
        self.push(v)
    }

    fn tuple(&mut self, items: Vec<Value>) -> Result<(), FormatError> {
        let v = self.alloc(Object::Tuple(items))?;
        self.push(v)
    }

    fn obj_mut(&mut self, v: &Value, what: &str) -> Result<&mut Object, FormatError> {
        match v {
            Value::Obj(id) => Ok(&mut self.heap.objects[*id]),
            other => Err(self.err(format!(
                "{what} target must be a container, found {}",
                self.heap.describe(other)
            ))),
        }
    }

    fn extend_list(&mut self, target: &Value, items: Vec<Value>) -> Result<(), FormatError> {
        self.charge(items.len())?;
        let desc = self.heap.describe(target);
        match self.obj_mut(target, "APPEND")? {
            Object::List(l) => {
                l.extend(items);
                Ok(())
            }
            _ => Err(self.err(format!("APPEND target must be a list, found {desc}"))),
        }
    }

    pub(super) fn set_items(
        &mut self,
        target: &Value,
        items: Vec<Value>,
    ) -> Result<(), FormatError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of items"));
        }
        self.charge(items.len() / 2)?;
        let desc = self.heap.describe(target);
        match self.obj_mut(target, "SETITEM")? {
            Object::Dict(d) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.insert(k, v);
                }
                Ok(())
            }
            _ => Err(self.err(format!("SETITEM target must be a dict, found {desc}"))),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), FormatError> {
        let g = resolve_global(module, name)?;
        let v = self.alloc(Object::Global(g))?;
        self.push(v)
    }

    pub(super) fn run(&mut self) -> Result<Value, FormatError> {
        if self.data.len() > MAX_PICKLE_BYTES {
            // Only the part up to STOP matters, but a legacy stream passes the whole rest of
            // the file; cap the slice we look at instead of refusing.
            self.data = &self.data[..MAX_PICKLE_BYTES];
        }
        loop {
            self.op_start = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {proto}")));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only.
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(FormatError::limit("open pickle MARKs", MAX_MARKS as u64));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    // POP: a value, or the mark when the top of the stack is one.
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                0x8a => {
                    let n = self.u8()?;
                    self.long(u64::from(n))?;
                }
                0x8b => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(self.err("LONG4 with a negative length"));
                    }
                    self.long(n as u64)?;
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)))?;
                }
                b'X' => {
                    let n = self.u32()?;
                    self.string(u64::from(n))?;
                }
                0x8c => {
                    let n = self.u8()?;
                    self.string(u64::from(n))?;
                }
                0x8d => {
                    let n = self.u64()?;
                    self.string(n)?;
                }
                b'T' => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(self.err("BINSTRING with a negative length"));
                    }
                    self.py2_string(n as u64)?;
                }
                b'U' => {
                    let n = self.u8()?;
                    self.py2_string(u64::from(n))?;
                }
                b'B' => {
                    let n = self.u32()?;
                    self.bytes(u64::from(n))?;
                }
                b'C' => {
                    let n = self.u8()?;
                    self.bytes(u64::from(n))?;
                }
                0x8e => {
                    let n = self.u64()?;
                    self.bytes(n)?;
                }
                b')' => self.tuple(Vec::new())?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.tuple(items)?;
                }
                0x85 => {
                    let a = self.pop()?;
                    self.tuple(vec![a])?;
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.tuple(vec![a, b])?;
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.tuple(vec![a, b, c])?;
                }
                b']' | 0x8f => {
                    // EMPTY_LIST; EMPTY_SET is held as a list (only ever skipped).
                    let v = self.alloc(Object::List(Vec::new()))?;
                    self.push(v)?;
                }
                b'l' | 0x91 => {
                    // LIST; FROZENSET likewise as a list.
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::List(items))?;
                    self.push(v)?;
                }
                b'a' => {
                    let item = self.pop()?;
                    let target = self.top()?.clone();
                    self.extend_list(&target, vec![item])?;
                }
                b'e' | 0x90 => {
                    // APPENDS; ADDITEMS (sets are lists here).
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.extend_list(&target, items)?;
                }
                b'}' => {
                    let v = self.alloc(Object::Dict(Dict::default()))?;
                    self.push(v)?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::Dict(Dict::default()))?;
                    self.set_items(&v, items)?;
                    self.push(v)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, items)?;
                }
                b'q' => {
                    let i = self.u8()?;
                    let v = self.top()?.clone();
                    self.memo_put(u32::from(i), v)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo_put(i, v)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len())
                        .map_err(|_| FormatError::limit("pickle memo entries", MAX_MEMO as u64))?;
                    let v = self.top()?.clone();
                    self.memo_put(i, v)?;
                }
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(u32::from(i))?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push(v)?;
                }
                b'b' => {
                    let _state = self.pop()?;
                    let target = self.top()?.clone();
                    match &target {
                        // OrderedDict state (its attribute dict, usually None) and tensor
                        // state (hooks, `_metadata`) carry nothing we need.
                        Value::Obj(id)
                            if matches!(
                                self.heap.objects[*id],
                                Object::Dict(_) | Object::Tensor(_)
                            ) => {}
                        other => {
                            return Err(self.err(format!(
                                "BUILD on {}, which only a real unpickler could set up",
                                self.heap.describe(other)
                            )));
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.push(v)?;
                }
                other => return Err(self.err(unsupported_opcode(other))),
            }
        }
    }
}

fn unsupported_opcode(op: u8) -> String {
    let name = match op {
        b'I' => "INT (protocol 0)",
        b'L' => "LONG (protocol 0)",
        b'F' => "FLOAT (protocol 0)",
        b'S' => "STRING (protocol 0)",
        b'V' => "UNICODE (protocol 0)",
        b'P' => "PERSID (protocol 0)",
        b'g' => "GET (protocol 0)",
        b'p' => "PUT (protocol 0)",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x82..=0x84 => "EXT",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    };
    format!("opcode 0x{op:02x} ({name}) is not part of what torch.save writes for a state_dict")
}
