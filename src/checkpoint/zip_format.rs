//! The zip checkpoint format (`torch.save` since PyTorch 1.6, and the format of the official
//! IP_LAP checkpoints, spec §5.3).
//!
//! Layout: one top folder of any name (the file stem by default, `archive` when saved to a
//! buffer) holding `data.pkl` (the object, with storages as persistent ids
//! `('storage', torch.<X>Storage, key, location, numel)`), `data/<key>` (each storage's raw
//! bytes), and optionally `byteorder` (`little`/`big`; absent means little), `version`,
//! `.format_version`, `.storage_alignment`, `.data/serialization_id`, which we do not need.

use std::collections::HashMap;
use std::io::{Read, Seek};

use zip::ZipArchive;

use super::error::FormatError;
use super::pickle::{MAX_PICKLE_BYTES, StorageRef, unpickle};
use super::tensor::StateDict;
use super::torch::{ElementBudget, StorageSource, extract_state_dict, materialise_all};

/// Decompressed bytes allowed per input byte. PyTorch stores records uncompressed, so honest
/// files use a ratio of 1; the margin admits re-zipped files while stopping zip bombs.
const MAX_EXPANSION: u64 = 16;

/// Reads a zip checkpoint from `reader` (`len` bytes long).
pub(crate) fn read<R: Read + Seek>(reader: R, len: u64) -> Result<StateDict, FormatError> {
    let mut zip = ZipArchive::new(reader).map_err(|e| FormatError::Zip(e.to_string()))?;
    let prefix = find_prefix(&zip)?;
    let mut read_budget = len.saturating_mul(MAX_EXPANSION).saturating_add(1 << 20);

    let pkl_name = format!("{prefix}data.pkl");
    let pkl = read_record(
        &mut zip,
        &pkl_name,
        None,
        MAX_PICKLE_BYTES as u64,
        &mut read_budget,
    )?;
    let little_endian = match zip.index_for_name(&format!("{prefix}byteorder")) {
        None => true,
        Some(_) => {
            let b = read_record(
                &mut zip,
                &format!("{prefix}byteorder"),
                None,
                16,
                &mut read_budget,
            )?;
            match b.as_slice() {
                b"little" => true,
                b"big" => false,
                other => {
                    return Err(FormatError::structure(
                        format!("record `{prefix}byteorder`"),
                        "\"little\" or \"big\"",
                        format!("{:?}", String::from_utf8_lossy(other)),
                    ));
                }
            }
        }
    };

    let pickled = unpickle(&pkl)?;
    let raw = extract_state_dict(&pickled)?;
    let mut source = ZipStorages {
        zip: &mut zip,
        prefix: &prefix,
        cache: HashMap::new(),
        read_budget,
    };
    let mut budget = ElementBudget::for_input_len(len);
    materialise_all(raw, &mut source, little_endian, &mut budget)
}

/// The folder holding `data.pkl` (with its trailing `/`). Exactly one is allowed.
fn find_prefix<R: Read + Seek>(zip: &ZipArchive<R>) -> Result<String, FormatError> {
    let mut found: Vec<&str> = zip
        .file_names()
        .filter(|n| {
            n.strip_suffix("data.pkl")
                .is_some_and(|dir| dir.ends_with('/') && dir.matches('/').count() == 1)
        })
        .collect();
    found.sort_unstable();
    match found.as_slice() {
        [one] => Ok(one.trim_end_matches("data.pkl").to_string()),
        [] => Err(FormatError::MissingRecord(
            "<folder>/data.pkl (a zip that is not a torch.save checkpoint)".into(),
        )),
        many => Err(FormatError::structure(
            "zip layout",
            "exactly one <folder>/data.pkl",
            format!("{} of them ({})", many.len(), many.join(", ")),
        )),
    }
}

/// Reads one record in full: `exact` bytes when given, otherwise at most `max`. The buffer grows
/// with the data actually decompressed, so a lying size field cannot force a big allocation.
fn read_record<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    exact: Option<u64>,
    max: u64,
    read_budget: &mut u64,
) -> Result<Vec<u8>, FormatError> {
    let mut file = zip.by_name(name).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => FormatError::MissingRecord(name.to_string()),
        e => FormatError::Zip(format!("record `{name}`: {e}")),
    })?;
    let declared = file.size();
    let want = exact.unwrap_or(declared.min(max));
    if exact.is_none() && declared > max {
        return Err(FormatError::limit(
            format!("record `{name}` ({declared} bytes)"),
            max,
        ));
    }
    if declared < want {
        return Err(FormatError::truncated(
            format!("record `{name}`"),
            want,
            declared,
        ));
    }
    if want > *read_budget {
        return Err(FormatError::limit(
            format!("decompressed data (record `{name}` needs {want} bytes)"),
            *read_budget,
        ));
    }
    *read_budget -= want;
    let mut buf = Vec::with_capacity(want.min(1 << 20) as usize);
    (&mut file)
        .take(want)
        .read_to_end(&mut buf)
        .map_err(|e| FormatError::Zip(format!("record `{name}`: {e}")))?;
    if (buf.len() as u64) < want {
        return Err(FormatError::truncated(
            format!("record `{name}`"),
            want,
            buf.len() as u64,
        ));
    }
    // Reading on to the end of the record is what makes the zip reader verify its CRC-32, so a
    // damaged download fails here instead of loading wrong weights. A record longer than the
    // storage it backs is as suspicious as a shorter one.
    let mut extra = [0u8; 1];
    match file.read(&mut extra) {
        Ok(0) => Ok(buf),
        Ok(_) => Err(FormatError::structure(
            format!("record `{name}`"),
            format!("{want} bytes"),
            format!("{declared} bytes"),
        )),
        Err(e) => Err(FormatError::Zip(format!("record `{name}`: {e}"))),
    }
}

struct ZipStorages<'z, R: Read + Seek> {
    zip: &'z mut ZipArchive<R>,
    prefix: &'z str,
    cache: HashMap<String, Vec<u8>>,
    read_budget: u64,
}

impl<R: Read + Seek> StorageSource for ZipStorages<'_, R> {
    fn bytes(&mut self, s: &StorageRef) -> Result<&[u8], FormatError> {
        if !self.cache.contains_key(&s.key) {
            if s.key.contains(['/', '\\']) || s.key.starts_with('.') {
                return Err(FormatError::structure(
                    "storage key",
                    "a plain record name",
                    format!("{:?}", s.key),
                ));
            }
            let need = (s.numel as u64)
                .checked_mul(s.dtype.size() as u64)
                .ok_or_else(|| FormatError::limit("storage byte size", u64::MAX))?;
            let name = format!("{}data/{}", self.prefix, s.key);
            let bytes = read_record(self.zip, &name, Some(need), need, &mut self.read_budget)?;
            self.cache.insert(s.key.clone(), bytes);
        }
        let bytes = &self.cache[&s.key];
        // The same key referenced with a different dtype/size is a corrupt (or hostile) pickle.
        if bytes.len() as u64 != (s.numel as u64).saturating_mul(s.dtype.size() as u64) {
            return Err(FormatError::structure(
                format!("storage `{}`", s.key),
                format!("{} elements of {} as first referenced", s.numel, s.dtype),
                format!("{} bytes", bytes.len()),
            ));
        }
        Ok(bytes)
    }
}
