//! Model preparation: MediaPipe's face detector and attention face mesh, taken from the pinned
//! `mediapipe==0.10.21` wheel and converted to ONNX by [`crate::face::convert`].
//!
//! Downloading is `scripts/setup.sh`'s job:
//! `pip download --no-deps mediapipe==0.10.21 --python-version 3.11 --platform manylinux_2_28_x86_64
//! --only-binary=:all: -d models/cache/`. Only wheels ≤ 0.10.21 ship these legacy `.tflite` files
//! (`shared/docs/mediapipe-models.md`). The `.tflite` files are checked against their sha256 before
//! conversion, so a different wheel is refused rather than silently converted.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::convert::{ConvertError, convert};
use super::tflite::Model;

/// One model to prepare: path inside the wheel, expected sha256, output file name.
#[derive(Clone, Copy, Debug)]
pub struct FaceModelSpec {
    /// Path inside the wheel.
    pub wheel_path: &'static str,
    /// sha256 of the `.tflite` file (mediapipe 0.10.14 and 0.10.21 ship identical bytes).
    pub sha256: &'static str,
    /// File name of the converted model in the output folder.
    pub onnx_name: &'static str,
}

/// The short-range face detector (input `[1, 3, 128, 128]` NCHW in [-1, 1]).
pub const DETECTOR: FaceModelSpec = FaceModelSpec {
    wheel_path: "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    sha256: "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    onnx_name: "face_detection_short_range.onnx",
};

/// The attention face mesh (input `[1, 3, 192, 192]` NCHW in [0, 1]).
pub const MESH: FaceModelSpec = FaceModelSpec {
    wheel_path: "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
    sha256: "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4",
    onnx_name: "face_landmark_with_attention.onnx",
};

/// Where the converted models go, relative to the workspace root.
pub const DEFAULT_OUT_DIR: &str = "models/generated/face";

/// Errors while preparing the face models.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The wheel is not a readable zip or lacks a model.
    #[error("{path}: {message}")]
    Source {
        /// The wheel or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `.tflite` file has unexpected content.
    #[error(
        "{name}: sha256 {found} differs from the pinned {expected} (use the mediapipe==0.10.21 wheel)"
    )]
    Checksum {
        /// Model file.
        name: String,
        /// Pinned hash.
        expected: String,
        /// Hash of the bytes found.
        found: String,
    },
    /// The conversion failed.
    #[error("{name}: {source}")]
    Convert {
        /// Model file.
        name: String,
        /// The cause.
        #[source]
        source: ConvertError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a model's `.tflite` bytes from a wheel (zip) or a folder (flat, or the wheel's layout).
fn read_tflite(source: &Path, spec: &FaceModelSpec) -> Result<Vec<u8>, PrepareError> {
    if source.is_dir() {
        let file_name = Path::new(spec.wheel_path).file_name().unwrap_or_default();
        for candidate in [source.join(file_name), source.join(spec.wheel_path)] {
            if candidate.is_file() {
                return std::fs::read(&candidate).map_err(io(&candidate));
            }
        }
        return Err(PrepareError::Source {
            path: source.to_owned(),
            message: format!("no {} in this folder", file_name.to_string_lossy()),
        });
    }
    let file = std::fs::File::open(source).map_err(io(source))?;
    let bad = |message: String| PrepareError::Source {
        path: source.to_owned(),
        message,
    };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a wheel (zip): {e}")))?;
    let mut entry = zip.by_name(spec.wheel_path).map_err(|e| {
        bad(format!(
            "{}: {e} (only mediapipe ≤ 0.10.21 wheels ship it)",
            spec.wheel_path
        ))
    })?;
    if entry.size() > 64 << 20 {
        return Err(bad(format!("{} is implausibly large", spec.wheel_path)));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut bytes).map_err(io(source))?;
    Ok(bytes)
}

/// Converts one model's `.tflite` bytes (checked against the pinned hash) to ONNX bytes.
pub fn convert_face_model(bytes: &[u8], spec: &FaceModelSpec) -> Result<Vec<u8>, PrepareError> {
    let name = spec
        .wheel_path
        .rsplit('/')
        .next()
        .unwrap_or(spec.wheel_path)
        .to_owned();
    let found: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if found != spec.sha256 {
        return Err(PrepareError::Checksum {
            name,
            expected: spec.sha256.to_owned(),
            found,
        });
    }
    let model = Model::parse(bytes).map_err(|e| PrepareError::Convert {
        name: name.clone(),
        source: e.into(),
    })?;
    let graph_name = spec.onnx_name.trim_end_matches(".onnx");
    let onnx =
        convert(&model, graph_name).map_err(|source| PrepareError::Convert { name, source })?;
    Ok(onnx.to_bytes())
}

/// Reads both face models from `wheel_or_dir` (the mediapipe 0.10.21 wheel, or a folder holding
/// the two `.tflite` files), converts them and writes `out_dir/{DETECTOR,MESH}.onnx_name`.
/// Returns the written paths.
pub fn prepare_face_models(
    wheel_or_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, PrepareError> {
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let mut written = Vec::new();
    for spec in [DETECTOR, MESH] {
        let bytes = read_tflite(wheel_or_dir, &spec)?;
        let onnx = convert_face_model(&bytes, &spec)?;
        let path = out_dir.join(spec.onnx_name);
        let tmp = path.with_extension("onnx.part");
        std::fs::write(&tmp, &onnx).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_bytes_are_refused() {
        let e = convert_face_model(b"not a model", &DETECTOR).unwrap_err();
        assert!(matches!(e, PrepareError::Checksum { .. }), "{e}");
    }

    #[test]
    fn missing_source_is_an_error() {
        let dir = std::env::temp_dir().join("iplap-prepare-missing");
        assert!(prepare_face_models(&dir.join("nope.whl"), &dir).is_err());
    }
}
