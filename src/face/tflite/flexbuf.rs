//! A minimal FlexBuffers reader for the custom options of MediaPipe's TFLite operators.
//!
//! MediaPipe stores the attributes of `Landmarks2TransformMatrix`, `TransformTensorBilinear` and
//! `TransformLandmarks` as a FlexBuffer map (parsed upstream by the TFLite GPU delegate's
//! `Parse*Attributes`). Only a root map with numbers and vectors of numbers is supported; every
//! read is bounds-checked. Format: `flatbuffers/docs/source/FlexBuffers.md`.

use std::collections::BTreeMap;

use super::TfliteError;

/// A value from a FlexBuffer map.
#[derive(Clone, Debug, PartialEq)]
pub enum FlexValue {
    /// An integer (signed, unsigned or bool).
    Int(i64),
    /// A float.
    Float(f64),
    /// A vector of numbers (integers are converted exactly, floats kept).
    Numbers(Vec<f64>),
    /// Anything this reader does not decode (strings, nested maps, ...).
    Unsupported,
}

impl FlexValue {
    /// The value as a float (integers converted).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FlexValue::Int(i) => Some(*i as f64),
            FlexValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as an integer (floats only when integral).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            FlexValue::Int(i) => Some(*i),
            FlexValue::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }
}

fn bad(what: &str) -> TfliteError {
    TfliteError::Malformed(format!("custom options: {what}"))
}

fn read_uint(buf: &[u8], pos: usize, width: usize) -> Result<u64, TfliteError> {
    let s = buf
        .get(pos..pos.checked_add(width).ok_or_else(|| bad("overflow"))?)
        .ok_or_else(|| bad("read past the end"))?;
    let mut b = [0u8; 8];
    match width {
        1 | 2 | 4 | 8 => b[..width].copy_from_slice(s),
        _ => return Err(bad("invalid byte width")),
    }
    Ok(u64::from_le_bytes(b))
}

fn read_int(buf: &[u8], pos: usize, width: usize) -> Result<i64, TfliteError> {
    let u = read_uint(buf, pos, width)?;
    let shift = 64 - 8 * width as u32;
    Ok(((u << shift) as i64) >> shift)
}

fn read_float(buf: &[u8], pos: usize, width: usize) -> Result<f64, TfliteError> {
    match width {
        4 => Ok(f32::from_bits(read_uint(buf, pos, 4)? as u32) as f64),
        8 => Ok(f64::from_bits(read_uint(buf, pos, 8)?)),
        _ => Err(bad("float of unsupported width")),
    }
}

/// Follows the offset stored at `pos` (backwards, as FlexBuffers stores it).
fn indirect(buf: &[u8], pos: usize, width: usize) -> Result<usize, TfliteError> {
    let off = read_uint(buf, pos, width)?;
    usize::try_from(off)
        .ok()
        .and_then(|o| pos.checked_sub(o))
        .ok_or_else(|| bad("offset out of range"))
}

/// Decodes the value stored at `pos` with slot width `width` and packed type byte `packed`.
fn value(buf: &[u8], pos: usize, width: usize, packed: u8) -> Result<FlexValue, TfliteError> {
    let ty = packed >> 2;
    let child = 1usize << (packed & 3);
    Ok(match ty {
        1 => FlexValue::Int(read_int(buf, pos, width)?),
        2 | 26 => FlexValue::Int(read_uint(buf, pos, width)? as i64),
        3 => FlexValue::Float(read_float(buf, pos, width)?),
        6 => FlexValue::Int(read_int(buf, indirect(buf, pos, width)?, child)?),
        7 => FlexValue::Int(read_uint(buf, indirect(buf, pos, width)?, child)? as i64),
        8 => FlexValue::Float(read_float(buf, indirect(buf, pos, width)?, child)?),
        // Untyped vector: elements, then one packed type byte per element.
        10 => {
            let at = indirect(buf, pos, width)?;
            let len = read_uint(
                buf,
                at.checked_sub(child).ok_or_else(|| bad("vector"))?,
                child,
            )? as usize;
            if len > buf.len() {
                return Err(bad("vector too long"));
            }
            let mut out = Vec::with_capacity(len);
            for i in 0..len {
                let t = *buf
                    .get(at + len * child + i)
                    .ok_or_else(|| bad("vector types"))?;
                match value(buf, at + i * child, child, t)? {
                    v @ (FlexValue::Int(_) | FlexValue::Float(_)) => {
                        out.push(v.as_f64().unwrap_or(0.0))
                    }
                    _ => return Ok(FlexValue::Unsupported),
                }
            }
            FlexValue::Numbers(out)
        }
        // Typed vectors (VECTOR_INT, VECTOR_UINT, VECTOR_FLOAT) and fixed ones (INT2..FLOAT4).
        11..=13 | 16..=24 => {
            let at = indirect(buf, pos, width)?;
            let (elem, len) = match ty {
                11..=13 => (
                    ty - 11,
                    read_uint(
                        buf,
                        at.checked_sub(child).ok_or_else(|| bad("vector"))?,
                        child,
                    )? as usize,
                ),
                _ => ((ty - 16) % 3, 2 + ((ty - 16) / 3) as usize),
            };
            if len > buf.len() {
                return Err(bad("vector too long"));
            }
            let mut out = Vec::with_capacity(len);
            for i in 0..len {
                let p = at + i * child;
                out.push(match elem {
                    0 => read_int(buf, p, child)? as f64,
                    1 => read_uint(buf, p, child)? as f64,
                    _ => read_float(buf, p, child)?,
                });
            }
            FlexValue::Numbers(out)
        }
        _ => FlexValue::Unsupported,
    })
}

/// Parses a FlexBuffer whose root is a map of string keys; returns key → value.
pub fn parse_map(buf: &[u8]) -> Result<BTreeMap<String, FlexValue>, TfliteError> {
    let n = buf.len();
    if n < 3 {
        return Err(bad("buffer too short"));
    }
    let root_width = buf[n - 1] as usize;
    let packed = buf[n - 2];
    let root_pos = (n - 2).checked_sub(root_width).ok_or_else(|| bad("root"))?;
    if packed >> 2 != 9 {
        return Err(bad("root is not a map"));
    }
    let child = 1usize << (packed & 3);
    let map = indirect(buf, root_pos, root_width)?;
    let len = read_uint(
        buf,
        map.checked_sub(child).ok_or_else(|| bad("map"))?,
        child,
    )? as usize;
    if len > n {
        return Err(bad("map too long"));
    }
    let keys_slot = map.checked_sub(3 * child).ok_or_else(|| bad("map keys"))?;
    let keys = indirect(buf, keys_slot, child)?;
    let keys_width = read_uint(buf, keys_slot + child, child)? as usize;
    let mut out = BTreeMap::new();
    for i in 0..len {
        let kpos = indirect(buf, keys + i * keys_width, keys_width)?;
        let end = buf[kpos.min(n)..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("unterminated key"))?;
        let key = String::from_utf8_lossy(&buf[kpos..kpos + end]).into_owned();
        let t = *buf
            .get(map + len * child + i)
            .ok_or_else(|| bad("map types"))?;
        out.insert(key, value(buf, map + i * child, child, t)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_bytes_do_not_panic() {
        for len in 0..80usize {
            for seed in 0..8u32 {
                let buf: Vec<u8> = (0..len)
                    .map(|i| ((i as u32 * 97 + seed * 31) % 251) as u8)
                    .collect();
                let _ = parse_map(&buf);
            }
        }
    }
}
