//! Saving and loading a [`ReferenceBank`]: a small versioned binary format of our own, so that a
//! bank enrolled once (or selected from a template, spec §8.5 step 1) can be reused.
//!
//! Layout (all little-endian, fixed-size records, nothing variable but the two counts):
//!
//! ```text
//! magic      8 bytes  "IPLAPBNK"
//! version    u32      1
//! n_landmark u32      <= 64
//! n_image    u32      <= 64
//! crop       u32      128 (side of the stored crops)
//! n_landmark × { pose 2×74 f32, content 2×57 f32 }
//! n_image    × { crop_h u32, crop_w u32, landmarks 2×131 f32, crop 128×128×3 u8 (BGR) }
//! sha256     32 bytes of everything before it
//! ```
//!
//! The reader checks the exact length before looking at any record, the checksum, and that every
//! value is usable (finite coordinates, a crop size the sketch can draw), so a truncated, corrupted
//! or hostile file is an error, never a panic or an unbounded allocation.

use crate::sizes::FACE_SIZE;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::bank::{ImageReference, LandmarkReference, ReferenceBank};
use super::bank_build::BankError;
use crate::face::indices::{CONTENT, FULL_LEN, POSE};
use crate::image::canvas_size;

/// File magic.
pub const BANK_MAGIC: &[u8; 8] = b"IPLAPBNK";
/// Current format version.
pub const BANK_VERSION: u32 = 1;
/// Largest reference count accepted for either list.
pub const MAX_REFERENCES: usize = 64;

const HEADER: usize = 8 + 4 * 4;
const LANDMARK_RECORD: usize = 4 * 2 * (POSE.len() + CONTENT.len());
const CROP_BYTES: usize = FACE_SIZE * FACE_SIZE * 3;
const IMAGE_RECORD: usize = 8 + 4 * 2 * FULL_LEN + CROP_BYTES;
const DIGEST: usize = 32;
/// Largest valid file, read with this bound so a huge file is never loaded whole.
const MAX_FILE: usize = HEADER + MAX_REFERENCES * (LANDMARK_RECORD + IMAGE_RECORD) + DIGEST;

fn put_f32s(out: &mut Vec<u8>, rows: &[&[f32]]) {
    for row in rows {
        for v in row.iter() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

impl ReferenceBank {
    /// The bank in the format above.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BankError> {
        let bad = |message: String| BankError::File {
            path: "(in memory)".into(),
            message,
        };
        if self.landmarks.len() > MAX_REFERENCES || self.images.len() > MAX_REFERENCES {
            return Err(bad(format!("more than {MAX_REFERENCES} references")));
        }
        let mut out = Vec::with_capacity(
            HEADER + self.landmarks.len() * LANDMARK_RECORD + self.images.len() * IMAGE_RECORD,
        );
        out.extend_from_slice(BANK_MAGIC);
        for v in [
            BANK_VERSION,
            self.landmarks.len() as u32,
            self.images.len() as u32,
            FACE_SIZE as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for r in &self.landmarks {
            put_f32s(
                &mut out,
                &[&r.pose[0], &r.pose[1], &r.content[0], &r.content[1]],
            );
        }
        for r in &self.images {
            if r.crop_bgr.len() != CROP_BYTES {
                return Err(bad(format!(
                    "image reference crop has {} bytes, expected {CROP_BYTES}",
                    r.crop_bgr.len()
                )));
            }
            let (h, w) = r.crop_hw;
            for v in [h, w] {
                let v = u32::try_from(v).map_err(|_| bad(format!("crop size {v} too large")))?;
                out.extend_from_slice(&v.to_le_bytes());
            }
            put_f32s(&mut out, &[&r.landmarks[0], &r.landmarks[1]]);
            out.extend_from_slice(&r.crop_bgr);
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Parses [`ReferenceBank::to_bytes`] output; the bank gets a new id.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < HEADER + DIGEST {
            return Err(format!(
                "{} bytes is too short for a bank file",
                bytes.len()
            ));
        }
        if &bytes[..8] != BANK_MAGIC {
            return Err("not an iplap reference bank (bad magic)".into());
        }
        let mut r = Reader(&bytes[8..]);
        let version = r.u32()?;
        if version != BANK_VERSION {
            return Err(format!(
                "format version {version}, this build reads {BANK_VERSION}"
            ));
        }
        let (nl, ni, crop) = (r.u32()? as usize, r.u32()? as usize, r.u32()? as usize);
        if nl > MAX_REFERENCES || ni > MAX_REFERENCES {
            return Err(format!(
                "{nl} landmark / {ni} image references (at most {MAX_REFERENCES} each)"
            ));
        }
        if crop != FACE_SIZE {
            return Err(format!("crop side {crop}, expected {FACE_SIZE}"));
        }
        let want = HEADER + nl * LANDMARK_RECORD + ni * IMAGE_RECORD + DIGEST;
        if bytes.len() != want {
            return Err(format!(
                "{} bytes, expected {want} for {nl} + {ni} references (truncated or padded)",
                bytes.len()
            ));
        }
        let (body, digest) = bytes.split_at(want - DIGEST);
        if Sha256::digest(body).as_slice() != digest {
            return Err("checksum mismatch: the file is corrupted".into());
        }
        let mut landmarks = Vec::with_capacity(nl);
        for _ in 0..nl {
            let mut lr = LandmarkReference {
                pose: [[0.0; POSE.len()]; 2],
                content: [[0.0; CONTENT.len()]; 2],
            };
            for row in lr.pose.iter_mut() {
                r.f32s(row)?;
            }
            for row in lr.content.iter_mut() {
                r.f32s(row)?;
            }
            landmarks.push(lr);
        }
        let mut images = Vec::with_capacity(ni);
        for k in 0..ni {
            let (h, w) = (r.u32()? as usize, r.u32()? as usize);
            canvas_size(w, h).map_err(|e| format!("image reference {k}: {e}"))?;
            let mut full = [[0.0f32; FULL_LEN]; 2];
            for row in full.iter_mut() {
                r.f32s(row)?;
            }
            images.push(ImageReference {
                crop_bgr: r.take(CROP_BYTES)?.to_vec(),
                landmarks: full,
                crop_hw: (h, w),
            });
        }
        Ok(ReferenceBank::new(landmarks, images))
    }

    /// Writes the bank to `path` (through a temporary file, so a crash leaves no half file).
    pub fn save(&self, path: &Path) -> Result<(), BankError> {
        let err = |message: String| BankError::File {
            path: path.display().to_string(),
            message,
        };
        let bytes = self.to_bytes()?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        std::fs::write(&tmp, &bytes).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// Reads a bank written by [`ReferenceBank::save`]; it gets a new [`ReferenceBank::id`].
    pub fn load(path: &Path) -> Result<Self, BankError> {
        let err = |message: String| BankError::File {
            path: path.display().to_string(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(e.to_string()))?;
        if bytes.len() > MAX_FILE {
            return Err(err(format!(
                "larger than the largest bank ({MAX_FILE} bytes)"
            )));
        }
        Self::from_bytes(&bytes).map_err(err)
    }
}

/// Bounds-checked little-endian reader.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("unexpected end of file".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f32s(&mut self, out: &mut [f32]) -> Result<(), String> {
        for o in out.iter_mut() {
            let v = f32::from_bits(self.u32()?);
            if !v.is_finite() {
                return Err("non-finite landmark coordinate".into());
            }
            *o = v;
        }
        Ok(())
    }
}
