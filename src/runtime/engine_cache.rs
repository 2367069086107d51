//! TensorRT engine cache: one folder per (stage graph, GPU, TensorRT version, precision, input
//! shapes), like DeepStream's `model_b{batch}_gpu{id}_{precision}.engine` but keyed on what
//! actually makes an engine reusable. ONNX Runtime writes the engine files into the folder; we
//! name the folder, record the full key in it, and throw away entries that are stale or that
//! fail to load.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::device::Precision;

/// Everything an engine depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineKey {
    /// Short stage name for people (file stem of the graph), e.g. `renderer_flow`.
    pub stage: String,
    /// sha256 of the stage's ONNX bytes (hex).
    pub onnx_sha256: String,
    /// GPU name as the driver reports it.
    pub gpu_name: String,
    /// Compute capability.
    pub compute_capability: (u32, u32),
    /// TensorRT (or TensorRT-RTX) version.
    pub tensorrt_version: String,
    /// Precision of the build.
    pub precision: Precision,
    /// Input shapes, `name:d0xd1x...` in contract order.
    pub input_shapes: Vec<String>,
}

impl EngineKey {
    /// sha256 of ONNX bytes, as hex.
    pub fn hash_onnx(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    /// The full key, one `field=value` per line (written into the entry as `key.txt`).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "stage={}", self.stage);
        let _ = writeln!(s, "onnx_sha256={}", self.onnx_sha256);
        let _ = writeln!(s, "gpu={}", self.gpu_name);
        let (major, minor) = self.compute_capability;
        let _ = writeln!(s, "compute_capability={major}.{minor}");
        let _ = writeln!(s, "tensorrt={}", self.tensorrt_version);
        let _ = writeln!(s, "precision={}", self.precision);
        let _ = writeln!(s, "inputs={}", self.input_shapes.join(","));
        s
    }

    /// The entry's folder name: readable fields first, then a hash of the full key so any change
    /// (graph, GPU, TensorRT, shapes) gives a new folder:
    /// `{stage}_b{batch}_sm{cc}_{precision}_trt{version}-{hash}`.
    pub fn folder_name(&self) -> String {
        let batch = self
            .input_shapes
            .first()
            .and_then(|s| s.split(':').nth(1))
            .and_then(|dims| dims.split('x').next())
            .unwrap_or("1");
        let (major, minor) = self.compute_capability;
        let hash = hex(&Sha256::digest(self.text().as_bytes()));
        sanitize(&format!(
            "{}_b{batch}_sm{major}{minor}_{}_trt{}-{}",
            self.stage,
            self.precision,
            self.tensorrt_version,
            &hash[..16]
        ))
    }
}

/// The state of a cache entry when a session is about to use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// No entry: the provider builds the engine (minutes) and writes it.
    Build,
    /// An entry with the same key: the provider loads it.
    Load,
    /// An entry whose recorded key differs or is unreadable: thrown away and rebuilt.
    Replaced,
}

/// One prepared cache folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineCacheEntry {
    /// The folder the provider reads and writes.
    pub dir: PathBuf,
    /// What was found.
    pub state: EntryState,
}

const KEY_FILE: &str = "key.txt";

impl EngineCacheEntry {
    /// Prepares the entry for `key` under `root`, creating folders as needed.
    pub fn prepare(root: &Path, key: &EngineKey) -> std::io::Result<Self> {
        let dir = root.join(key.folder_name());
        let text = key.text();
        let state = match std::fs::read_to_string(dir.join(KEY_FILE)) {
            Ok(found) if found == text => EntryState::Load,
            Ok(_) | Err(_) if dir.exists() => {
                std::fs::remove_dir_all(&dir)?;
                EntryState::Replaced
            }
            _ => EntryState::Build,
        };
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(KEY_FILE), text)?;
        Ok(EngineCacheEntry { dir, state })
    }

    /// Throws the entry away (its engine failed to load) and starts it again empty.
    pub fn discard(&mut self, key: &EngineKey) -> std::io::Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)?;
        }
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.dir.join(KEY_FILE), key.text())?;
        self.state = EntryState::Replaced;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// File-name-safe: ASCII alphanumerics, `.`, `_` and `-`; anything else becomes `-`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EngineKey {
        EngineKey {
            stage: "renderer_flow".into(),
            onnx_sha256: EngineKey::hash_onnx(b"graph"),
            gpu_name: "NVIDIA H100 80GB HBM3".into(),
            compute_capability: (9, 0),
            tensorrt_version: "10.9.0".into(),
            precision: Precision::Fp16,
            input_shapes: vec!["features:25x256x64x64".into(), "pose:25x3x128x128".into()],
        }
    }

    #[test]
    fn the_folder_name_is_readable_and_changes_with_every_field() {
        let base = key();
        let name = base.folder_name();
        assert!(
            name.starts_with("renderer_flow_b25_sm90_fp16_trt10.9.0-"),
            "{name}"
        );
        let variants = [
            EngineKey {
                onnx_sha256: EngineKey::hash_onnx(b"other graph"),
                ..base.clone()
            },
            EngineKey {
                gpu_name: "NVIDIA H200".into(),
                ..base.clone()
            },
            EngineKey {
                compute_capability: (8, 9),
                ..base.clone()
            },
            EngineKey {
                tensorrt_version: "10.10.0".into(),
                ..base.clone()
            },
            EngineKey {
                precision: Precision::Fp32,
                ..base.clone()
            },
            EngineKey {
                input_shapes: vec!["features:5x256x64x64".into(), "pose:5x3x128x128".into()],
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.folder_name(), name, "{v:?}");
        }
    }

    #[test]
    fn entries_are_built_then_loaded_and_stale_ones_replaced() {
        let root = std::env::temp_dir().join(format!("iplap-engine-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let k = key();
        let first = EngineCacheEntry::prepare(&root, &k).unwrap();
        assert_eq!(first.state, EntryState::Build);
        std::fs::write(first.dir.join("engine.bin"), b"engine").unwrap();
        let second = EngineCacheEntry::prepare(&root, &k).unwrap();
        assert_eq!(second.state, EntryState::Load);
        assert!(second.dir.join("engine.bin").is_file());
        // A damaged key record (or a hash collision) is not trusted: the entry starts again.
        std::fs::write(second.dir.join(KEY_FILE), "garbage").unwrap();
        let third = EngineCacheEntry::prepare(&root, &k).unwrap();
        assert_eq!(third.state, EntryState::Replaced);
        assert!(!third.dir.join("engine.bin").exists());
        // An engine that fails to load is discarded the same way.
        std::fs::write(third.dir.join("engine.bin"), b"corrupt").unwrap();
        let mut fourth = EngineCacheEntry::prepare(&root, &k).unwrap();
        assert_eq!(fourth.state, EntryState::Load);
        fourth.discard(&k).unwrap();
        assert!(!fourth.dir.join("engine.bin").exists());
        assert_eq!(
            EngineCacheEntry::prepare(&root, &k).unwrap().state,
            EntryState::Load
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
