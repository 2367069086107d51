//! Bounded, verifier-free access to FlatBuffers tables (the encoding of `.tflite` files).
//!
//! Only what the TFLite reader needs: tables through their vtables, scalars, strings, vectors of
//! scalars and vectors of tables. Every read is range-checked against the buffer, so a hostile or
//! truncated file yields a [`TfliteError`] instead of a panic or an out-of-bounds read. Encoding
//! reference: `flatbuffers/docs/source/Internals.md` (github.com/google/flatbuffers).

use super::TfliteError;

/// A table inside a FlatBuffer: the buffer and the table's start position.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

fn bad(what: &str) -> TfliteError {
    TfliteError::Malformed(what.to_owned())
}

/// Reads `N` little-endian bytes at `pos`, checked.
fn read_bytes<const N: usize>(buf: &[u8], pos: usize) -> Result<[u8; N], TfliteError> {
    let end = pos.checked_add(N).ok_or_else(|| bad("offset overflow"))?;
    let s = buf
        .get(pos..end)
        .ok_or_else(|| bad("read past the end of the file"))?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Ok(out)
}

pub(crate) fn read_u32(buf: &[u8], pos: usize) -> Result<u32, TfliteError> {
    read_bytes::<4>(buf, pos).map(u32::from_le_bytes)
}

fn read_u16(buf: &[u8], pos: usize) -> Result<u16, TfliteError> {
    read_bytes::<2>(buf, pos).map(u16::from_le_bytes)
}

/// Follows a `uoffset_t` stored at `pos` (relative to `pos`).
fn follow(buf: &[u8], pos: usize) -> Result<usize, TfliteError> {
    let off = read_u32(buf, pos)? as usize;
    let target = pos.checked_add(off).ok_or_else(|| bad("offset overflow"))?;
    if target >= buf.len() {
        return Err(bad("offset points past the end of the file"));
    }
    Ok(target)
}

/// A vector in the buffer: element start and count (elements not yet checked).
#[derive(Clone, Copy, Debug)]
struct RawVec {
    start: usize,
    len: usize,
}

fn raw_vec(buf: &[u8], pos: usize, elem_size: usize) -> Result<RawVec, TfliteError> {
    let len = read_u32(buf, pos)? as usize;
    let start = pos + 4;
    let bytes = len
        .checked_mul(elem_size)
        .and_then(|b| b.checked_add(start))
        .ok_or_else(|| bad("vector length overflow"))?;
    if bytes > buf.len() {
        return Err(bad("vector extends past the end of the file"));
    }
    Ok(RawVec { start, len })
}

impl<'a> Table<'a> {
    /// The root table of a FlatBuffer.
    pub fn root(buf: &'a [u8]) -> Result<Self, TfliteError> {
        let pos = follow(buf, 0)?;
        Table::at(buf, pos)
    }

    fn at(buf: &'a [u8], pos: usize) -> Result<Self, TfliteError> {
        let soff = i32::from_le_bytes(read_bytes::<4>(buf, pos)?) as i64;
        let vtable = pos as i64 - soff;
        if vtable < 0 || vtable as usize >= buf.len() {
            return Err(bad("vtable offset out of range"));
        }
        let vtable = vtable as usize;
        let vtable_len = read_u16(buf, vtable)? as usize;
        if vtable_len < 4 || vtable + vtable_len > buf.len() {
            return Err(bad("vtable size out of range"));
        }
        Ok(Table {
            buf,
            pos,
            vtable,
            vtable_len,
        })
    }

    /// Absolute position of field `id`, or `None` when the field is absent (default value).
    fn field(&self, id: usize) -> Result<Option<usize>, TfliteError> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        let off = read_u16(self.buf, self.vtable + slot)? as usize;
        Ok((off != 0).then_some(self.pos + off))
    }

    /// An unsigned 8-bit field.
    pub fn u8(&self, id: usize, default: u8) -> Result<u8, TfliteError> {
        match self.field(id)? {
            Some(p) => read_bytes::<1>(self.buf, p).map(|b| b[0]),
            None => Ok(default),
        }
    }

    /// A signed 32-bit field.
    pub fn i32(&self, id: usize, default: i32) -> Result<i32, TfliteError> {
        match self.field(id)? {
            Some(p) => read_bytes::<4>(self.buf, p).map(i32::from_le_bytes),
            None => Ok(default),
        }
    }

    /// An unsigned 32-bit field.
    pub fn u32(&self, id: usize, default: u32) -> Result<u32, TfliteError> {
        match self.field(id)? {
            Some(p) => read_u32(self.buf, p),
            None => Ok(default),
        }
    }

    /// An unsigned 64-bit field.
    pub fn u64(&self, id: usize, default: u64) -> Result<u64, TfliteError> {
        match self.field(id)? {
            Some(p) => read_bytes::<8>(self.buf, p).map(u64::from_le_bytes),
            None => Ok(default),
        }
    }

    /// A 32-bit float field.
    pub fn f32(&self, id: usize, default: f32) -> Result<f32, TfliteError> {
        match self.field(id)? {
            Some(p) => read_bytes::<4>(self.buf, p).map(f32::from_le_bytes),
            None => Ok(default),
        }
    }

    /// A sub-table field.
    pub fn table(&self, id: usize) -> Result<Option<Table<'a>>, TfliteError> {
        match self.field(id)? {
            Some(p) => Table::at(self.buf, follow(self.buf, p)?).map(Some),
            None => Ok(None),
        }
    }

    /// A byte-vector field (also strings, without the terminator); empty when absent.
    pub fn bytes(&self, id: usize) -> Result<&'a [u8], TfliteError> {
        match self.field(id)? {
            Some(p) => {
                let v = raw_vec(self.buf, follow(self.buf, p)?, 1)?;
                Ok(&self.buf[v.start..v.start + v.len])
            }
            None => Ok(&[]),
        }
    }

    /// A string field (lossy UTF-8); empty when absent.
    pub fn string(&self, id: usize) -> Result<String, TfliteError> {
        Ok(String::from_utf8_lossy(self.bytes(id)?).into_owned())
    }

    /// A vector of `i32`; empty when absent.
    pub fn i32s(&self, id: usize) -> Result<Vec<i32>, TfliteError> {
        match self.field(id)? {
            Some(p) => {
                let v = raw_vec(self.buf, follow(self.buf, p)?, 4)?;
                (0..v.len)
                    .map(|i| read_bytes::<4>(self.buf, v.start + 4 * i).map(i32::from_le_bytes))
                    .collect()
            }
            None => Ok(Vec::new()),
        }
    }

    /// A vector of tables; empty when absent. At most `limit` elements are accepted.
    pub fn tables(&self, id: usize, limit: usize) -> Result<Vec<Table<'a>>, TfliteError> {
        match self.field(id)? {
            Some(p) => {
                let v = raw_vec(self.buf, follow(self.buf, p)?, 4)?;
                if v.len > limit {
                    return Err(bad("table vector longer than the reader's limit"));
                }
                (0..v.len)
                    .map(|i| Table::at(self.buf, follow(self.buf, v.start + 4 * i)?))
                    .collect()
            }
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64usize {
            let buf: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            if let Ok(t) = Table::root(&buf) {
                let _ = t.tables(0, 10);
                let _ = t.bytes(1);
                let _ = t.i32s(2);
            }
        }
        let huge = [0xffu8; 16];
        assert!(Table::root(&huge).is_err());
    }
}
