//! The kernel sources, embedded: one compilation unit (`kernels/<name>.cu`) per kernel family,
//! and the headers they include, resolved here so NVRTC needs no include folder.

use sha2::{Digest, Sha256};

/// One compilation unit: a family of kernels sharing a header.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// Family name (`sketch`, `crop`, ...): the stem of `kernels/<name>.cu`.
    pub name: &'static str,
    /// The `.cu` text as written (includes unresolved).
    pub text: &'static str,
}

macro_rules! unit {
    ($name:literal) => {
        KernelSource {
            name: $name,
            text: include_str!(concat!("../../kernels/", $name, ".cu")),
        }
    };
}
macro_rules! header {
    ($file:literal) => {
        ($file, include_str!(concat!("../../kernels/", $file)))
    };
}

/// Every kernel family, in the order a frame uses them.
pub const KERNELS: [KernelSource; 5] = [
    unit!("sketch"),
    unit!("crop"),
    unit!("warp"),
    unit!("paste"),
    unit!("yuv"),
];

/// The headers a unit may include, by file name.
const HEADERS: [(&str, &str); 7] = [
    header!("common.cuh"),
    header!("resize.cuh"),
    header!("sketch.cuh"),
    header!("crop.cuh"),
    header!("warp.cuh"),
    header!("paste.cuh"),
    header!("yuv.cuh"),
];

/// The family called `name`.
pub fn find(name: &str) -> Option<KernelSource> {
    KERNELS.into_iter().find(|k| k.name == name)
}

impl KernelSource {
    /// The unit with every `#include "x.cuh"` replaced by the header's text (each header once,
    /// as `#pragma once` would), ready for NVRTC.
    pub fn resolved(&self) -> Result<String, String> {
        let mut out = String::new();
        let mut seen = Vec::new();
        expand(self.text, &format!("{}.cu", self.name), &mut seen, &mut out)?;
        Ok(out)
    }

    /// sha256 (hex) of the resolved text: a cache key part that changes with any header.
    pub fn hash(&self) -> Result<String, String> {
        let text = self.resolved()?;
        Ok(Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

fn expand(
    text: &str,
    file: &str,
    seen: &mut Vec<&'static str>,
    out: &mut String,
) -> Result<(), String> {
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#pragma once") {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("#include") {
            let rest = rest.trim();
            let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                // <...> includes are the host build's (guarded by IPLAP_DEVICE_BUILD).
                out.push_str(line);
                out.push('\n');
                continue;
            };
            let Some((header, body)) = HEADERS.iter().find(|(h, _)| *h == name) else {
                return Err(format!(
                    "{file}: unknown include \"{name}\" (not in kernels/)"
                ));
            };
            if !seen.contains(header) {
                seen.push(header);
                expand(body, header, seen, out)?;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_resolves_with_common_once() {
        for k in KERNELS {
            let text = k.resolved().unwrap();
            assert!(!text.contains("#include \""), "{}", k.name);
            assert_eq!(
                text.matches("#define IPLAP_HD __host__").count(),
                1,
                "{}",
                k.name
            );
        }
    }

    #[test]
    fn unknown_include_is_an_error() {
        let mut out = String::new();
        let err = expand("#include \"nope.cuh\"\n", "x.cu", &mut Vec::new(), &mut out).unwrap_err();
        assert!(err.contains("nope.cuh"), "{err}");
    }
}
