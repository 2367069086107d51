//! Locating the shared reference data (`shared/`: goldens, media, docs) for tests, benches and examples.
//!
//! Tests find the data through `IPLAP_SHARED` (default: `../shared` next to the workspace). When it
//! is missing they skip *loudly*; with `IPLAP_REQUIRE_SHARED=1` (set by `scripts/test.sh` in CI) a
//! missing folder is a failure instead, so a CI run can never pass by skipping everything.
//!
//! Golden sets that more than one test reads are loaded here, once, so that every test reads the
//! same files the same way ([`CropGolden`], [`PasteGolden`]).

use crate::image::{ChannelOrder, ImageRef, Rect};
use ndarray::{Array, Array2, Array3, Array4, Axis, RemoveAxis};
use ndarray_npy::{ReadableElement, read_npy};
use std::path::{Path, PathBuf};

/// Environment variable naming the shared data folder.
pub const SHARED_ENV: &str = "IPLAP_SHARED";
/// When set to `1`, missing shared data makes tests fail instead of skip.
pub const REQUIRE_ENV: &str = "IPLAP_REQUIRE_SHARED";

/// The shared data folder, if it exists.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(SHARED_ENV) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("shared"),
    };
    dir.is_dir().then_some(dir)
}

/// A path inside the shared folder, or `None` (after a loud message) when it is missing.
///
/// Panics only when `IPLAP_REQUIRE_SHARED=1`, which is what a test run that must not skip wants.
pub fn shared_path(relative: &str) -> Option<PathBuf> {
    let found = shared_dir()
        .map(|d| d.join(relative))
        .filter(|p| p.exists());
    if found.is_none() {
        let msg = format!(
            "shared data `{relative}` not found (set {SHARED_ENV} to the folder holding golden/, media/, docs/)"
        );
        if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
            panic!("{msg}; {REQUIRE_ENV}=1 forbids skipping");
        }
        eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    }
    found
}

/// The checkout's converted face models (`scripts/setup.sh` makes them), or `None` after a loud
/// message; panics instead under `IPLAP_REQUIRE_SHARED=1`.
pub fn face_models_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/generated/face");
    if crate::data_files::DataFile::FaceModels.is_present(&dir) {
        return Some(dir);
    }
    let msg = format!(
        "converted face models not found in {} (run scripts/setup.sh)",
        dir.display()
    );
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{msg}; {REQUIRE_ENV}=1 forbids skipping");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    None
}

/// `let path = require_shared!("golden/public/audio");` — returns from the test when missing.
#[macro_export]
macro_rules! require_shared {
    ($rel:expr) => {
        match $crate::testdata::shared_path($rel) {
            Some(p) => p,
            None => return,
        }
    };
}

/// The face mesh clip the crop and paste goldens are cut from.
const FACEMESH_129: &str = "golden/public/facemesh/129";
/// The crop and paste-back goldens (`golden/public/crop`, golden README "crop/").
const CROP_DIR: &str = "golden/public/crop";

/// Reads `dir/name`; a folder that exists but lacks one of its files is broken data, not a skip.
fn npy<T: ReadableElement, D: ndarray::Dimension>(dir: &Path, name: &str) -> Array<T, D> {
    let path = dir.join(name);
    read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sample `s` of a golden array as one contiguous slice (npy files are C order).
fn sample<T, D: RemoveAxis>(a: &Array<T, D>, s: usize) -> &[T] {
    a.index_axis(Axis(0), s)
        .to_slice()
        .expect("golden arrays are in C order")
}

/// Face mesh clip 129: its RGB frames and refined landmarks, the source of the crop and paste
/// goldens.
pub struct FacemeshGolden {
    /// `(N, h, w, 3)` RGB frames.
    pub frames: Array4<u8>,
    /// `(N, 478, 3)` refined landmarks, normalised `(x, y, z)`.
    pub landmarks: Array3<f32>,
}

impl FacemeshGolden {
    fn load_from(dir: &Path) -> Self {
        FacemeshGolden {
            frames: npy(dir, "frames_rgb_u8.npy"),
            landmarks: npy(dir, "landmarks_refined_f32.npy"),
        }
    }

    /// Frame width and height.
    pub fn frame_size(&self) -> (usize, usize) {
        (self.frames.shape()[2], self.frames.shape()[1])
    }

    /// Frame `f` as packed RGB bytes.
    pub fn frame_rgb(&self, f: usize) -> Vec<u8> {
        sample(&self.frames, f).to_vec()
    }

    /// The landmarks of frame `f`.
    pub fn marks(&self, f: usize) -> Vec<[f32; 3]> {
        self.landmarks
            .index_axis(Axis(0), f)
            .outer_iter()
            .map(|p| [p[0], p[1], p[2]])
            .collect()
    }
}

/// The crop golden set: crop boxes, 128 x 128 BGR crops and their CHW tensors for some frames of
/// face mesh clip 129.
pub struct CropGolden {
    pub facemesh: FacemeshGolden,
    /// `(K, 4)` crop boxes `(y1, y2, x1, x2)`, one per sample.
    pub boxes: Array2<i32>,
    /// `(K, 128, 128, 3)` BGR crops.
    pub crops: Array4<u8>,
    /// `(K, 3, 128, 128)` the crops as the renderer's f32 input.
    pub chw: Array4<f32>,
}

impl CropGolden {
    /// The face mesh frame of each sample: the sketch samples (golden README).
    pub const SAMPLE_FRAMES: [usize; 6] = [0, 12, 24, 36, 48, 59];

    /// The set, or `None` after a loud message when the shared data is missing (a panic under
    /// `IPLAP_REQUIRE_SHARED=1`), as [`shared_path`].
    pub fn load() -> Option<Self> {
        let facemesh = FacemeshGolden::load_from(&shared_path(FACEMESH_129)?);
        let dir = shared_path(CROP_DIR)?;
        Some(CropGolden {
            facemesh,
            boxes: npy(&dir, "boxes_i32.npy"),
            crops: npy(&dir, "crop_bgr_u8.npy"),
            chw: npy(&dir, "crop_chw_f32.npy"),
        })
    }

    /// Sample `k`'s box as stored, `[y1, y2, x1, x2]`.
    pub fn crop_box(&self, k: usize) -> [i32; 4] {
        sample(&self.boxes, k).try_into().unwrap()
    }

    /// Sample `k`'s crop as packed BGR bytes.
    pub fn crop_bgr(&self, k: usize) -> Vec<u8> {
        sample(&self.crops, k).to_vec()
    }

    /// Sample `k`'s crop as the `3 x 128 x 128` tensor.
    pub fn crop_chw(&self, k: usize) -> Vec<f32> {
        sample(&self.chw, k).to_vec()
    }
}

/// The paste-back golden set: a generated face pasted and blended into some frames of face mesh
/// clip 129, with every intermediate (golden README "crop/").
pub struct PasteGolden {
    /// The clip whose frames, channels reversed, are the paste frames.
    pub facemesh: FacemeshGolden,
    /// `(P, h, w, 3)` BGR background frames.
    pub frames: Array4<u8>,
    /// `(P, 4)` paste boxes `(y1, y2, x1, x2)`.
    pub boxes: Array2<i32>,
    /// `(P, 36, 2)` blend polygons `(x, y)` in frame pixels.
    pub polygons: Array3<i32>,
    /// The 128 x 128 generated face as packed BGR bytes.
    pub face_bgr: Vec<u8>,
    /// `(P, h, w, 3)` frames with the resized face written into the box, unblended.
    pub pasted: Array4<u8>,
    /// `(P, h, w)` polygon masks (0 / 255).
    pub masks: Array3<u8>,
    /// `(P, h, w)` feathered masks.
    pub blurs: Array3<u8>,
    /// `(P, h, w, 3)` blended BGR results.
    pub results: Array4<u8>,
}

impl PasteGolden {
    /// The face mesh frame of each sample (golden README).
    pub const SAMPLE_FRAMES: [usize; 3] = [0, 24, 48];

    /// The set, or `None` after a loud message when the shared data is missing (a panic under
    /// `IPLAP_REQUIRE_SHARED=1`), as [`shared_path`].
    pub fn load() -> Option<Self> {
        let facemesh = FacemeshGolden::load_from(&shared_path(FACEMESH_129)?);
        let dir = shared_path(CROP_DIR)?;
        let face: Array3<u8> = npy(&dir, "paste_gen_face_bgr_u8.npy");
        Some(PasteGolden {
            facemesh,
            frames: npy(&dir, "paste_frame_bgr_u8.npy"),
            boxes: npy(&dir, "paste_boxes_i32.npy"),
            polygons: npy(&dir, "paste_polygon_i32.npy"),
            face_bgr: face.iter().copied().collect(),
            pasted: npy(&dir, "paste_pasted_bgr_u8.npy"),
            masks: npy(&dir, "paste_mask_u8.npy"),
            blurs: npy(&dir, "paste_mask_blur_u8.npy"),
            results: npy(&dir, "paste_result_bgr_u8.npy"),
        })
    }

    /// Paste frame width and height.
    pub fn frame_size(&self) -> (usize, usize) {
        (self.frames.shape()[2], self.frames.shape()[1])
    }

    /// Sample `s`'s background frame as packed BGR bytes.
    pub fn frame_bgr(&self, s: usize) -> Vec<u8> {
        sample(&self.frames, s).to_vec()
    }

    /// Sample `s`'s box as stored, `[y1, y2, x1, x2]`.
    pub fn paste_box(&self, s: usize) -> [i32; 4] {
        sample(&self.boxes, s).try_into().unwrap()
    }

    /// Sample `s`'s box as the engine's rectangle.
    pub fn rect(&self, s: usize) -> Rect {
        let [y1, y2, x1, x2] = self.paste_box(s).map(|v| v as usize);
        Rect::new(x1, y1, x2 - x1, y2 - y1)
    }

    /// Sample `s`'s stored polygon.
    pub fn polygon(&self, s: usize) -> Vec<(i64, i64)> {
        sample(&self.polygons, s)
            .chunks_exact(2)
            .map(|p| (p[0] as i64, p[1] as i64))
            .collect()
    }

    /// Sample `s`'s unblended paste, packed BGR.
    pub fn pasted(&self, s: usize) -> &[u8] {
        sample(&self.pasted, s)
    }

    /// Sample `s`'s polygon mask.
    pub fn mask(&self, s: usize) -> &[u8] {
        sample(&self.masks, s)
    }

    /// Sample `s`'s feathered mask.
    pub fn blurred(&self, s: usize) -> &[u8] {
        sample(&self.blurs, s)
    }

    /// Sample `s`'s blended result, packed BGR.
    pub fn result(&self, s: usize) -> &[u8] {
        sample(&self.results, s)
    }

    /// A mask computed only over `window` (as the paste-back keeps it) placed in a zero frame,
    /// the form the golden masks are stored in.
    pub fn full_mask(&self, part: &[u8], window: Rect) -> Vec<u8> {
        let (w, h) = self.frame_size();
        let mut full = vec![0u8; w * h];
        for y in 0..window.height {
            let o = (window.y + y) * w + window.x;
            full[o..o + window.width]
                .copy_from_slice(&part[y * window.width..(y + 1) * window.width]);
        }
        full
    }
}

/// Packed 3-byte pixels with the first and last channel swapped (RGB <-> BGR).
pub fn swap_red_blue(packed: &[u8]) -> Vec<u8> {
    packed
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect()
}

/// `img`'s pixels laid out in `order` with rows `stride` bytes apart, every other byte (filler
/// channel, row padding) set to `fill`: the same picture as a mapped frame of another format, so
/// a test can check that channel order and padding are data, not code.
pub fn relayout(img: &ImageRef, order: ChannelOrder, stride: usize, fill: u8) -> Vec<u8> {
    let (src, dst) = (img.order(), order);
    let (so, sb) = (
        src.bgr_offsets().expect("colour source"),
        src.bytes_per_pixel(),
    );
    let (d_off, db) = (
        dst.bgr_offsets().expect("colour target"),
        dst.bytes_per_pixel(),
    );
    let mut out = vec![fill; stride * img.height()];
    for y in 0..img.height() {
        let row = &mut out[y * stride..][..img.width() * db];
        for (px, dp) in img.row(y).chunks_exact(sb).zip(row.chunks_exact_mut(db)) {
            for c in 0..3 {
                dp[d_off[c]] = px[so[c]];
            }
        }
    }
    out
}
