//! Compiled kernels on disk: one cubin per (kernel family, architecture, NVRTC version, source
//! and options), so a process compiles each family once per GPU kind and later runs load it in
//! microseconds. Next to the TensorRT engine cache (`~/.cache/iplap/kernels` by default).
//!
//! The file name carries the whole key (a hash of the resolved source and options), so a
//! changed header or NVRTC gives a new file and stale ones are never loaded. A cache that cannot
//! be read or written only costs a compile: it is logged, never an error.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::KernelSource;
use super::nvrtc::{Arch, COMPILE_OPTIONS, Cubin, Nvrtc, NvrtcError};

/// The cubin folder.
#[derive(Clone, Debug)]
pub struct KernelCache {
    root: PathBuf,
}

impl KernelCache {
    /// A cache in `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        KernelCache { root: root.into() }
    }

    /// `kernels/` beside the default TensorRT engine cache.
    pub fn default_root() -> PathBuf {
        let engines = crate::runtime::device::default_engine_cache();
        engines
            .parent()
            .map(|p| p.join("kernels"))
            .unwrap_or_else(|| engines.join("kernels"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a cubin is kept in: `{family}_{arch}_nvrtc{version}_{hash}.cubin`.
    pub fn file_name(
        unit: &KernelSource,
        arch: Arch,
        nvrtc_version: &str,
    ) -> Result<String, String> {
        let mut hash = Sha256::new();
        hash.update(unit.resolved()?.as_bytes());
        for option in COMPILE_OPTIONS {
            hash.update([0]);
            hash.update(option.as_bytes());
        }
        let digest: String = hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(format!(
            "{}_{arch}_nvrtc{nvrtc_version}_{digest}.cubin",
            unit.name
        ))
    }

    /// The cubin for `unit` on `arch`: from the cache, else compiled and stored.
    pub fn get_or_compile(
        &self,
        nvrtc: &Nvrtc,
        unit: &KernelSource,
        arch: Arch,
    ) -> Result<Cubin, NvrtcError> {
        let name = Self::file_name(unit, arch, &nvrtc.version_text()).map_err(|log| {
            NvrtcError::Compile {
                family: unit.name,
                arch,
                what: "the source does not resolve",
                log,
            }
        })?;
        let path = self.root.join(&name);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.starts_with(b"\x7fELF") => {
                return Ok(Cubin {
                    family: unit.name,
                    arch,
                    bytes,
                });
            }
            Ok(_) => log::warn!("{}: not a cubin; compiling again", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("{}: {e}; compiling again", path.display()),
        }
        let cubin = nvrtc.compile(unit, arch)?;
        if let Err(e) = self.store(&name, &cubin.bytes) {
            log::warn!(
                "kernel cache {}: {e} (kernels are compiled each run)",
                self.root.display()
            );
        }
        Ok(cubin)
    }

    /// Writes beside and renames, so a reader never sees half a file.
    fn store(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let tmp = self
            .root
            .join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.root.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_carries_family_arch_version_and_source_hash() {
        let sketch = super::super::source::find("sketch").unwrap();
        let warp = super::super::source::find("warp").unwrap();
        let a = KernelCache::file_name(&sketch, Arch(9, 0), "13.0").unwrap();
        assert!(
            a.starts_with("sketch_sm_90_nvrtc13.0_") && a.ends_with(".cubin"),
            "{a}"
        );
        assert_ne!(
            a,
            KernelCache::file_name(&sketch, Arch(8, 6), "13.0").unwrap()
        );
        assert_ne!(
            a,
            KernelCache::file_name(&sketch, Arch(9, 0), "13.1").unwrap()
        );
        let w = KernelCache::file_name(&warp, Arch(9, 0), "13.0").unwrap();
        assert_ne!(
            a.rsplit('_').next(),
            w.rsplit('_').next(),
            "different sources hash apart"
        );
    }
}
