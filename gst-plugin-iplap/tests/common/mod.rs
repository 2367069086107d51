//! Set-up shared by the element and CLI tests: GStreamer with the plugin registered statically,
//! formula-weight model packages, and the golden frames with their landmarks and official bank.
//! (Each test binary compiles this module; not every binary uses every helper.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

use iplap::engine::bank::ReferenceBank;
use iplap::engine::bank_build::{FrameRecord, build_bank};
use iplap::face::crop_box::{CropBox, FaceGeometry, NormalisedSets};
use iplap::graph::package::write_package;
use iplap::image::{ChannelOrder, Image, ImageRef, Resizer};
use iplap::weights::FormulaWeights;
use ndarray::{Array3, Array4, s};
use ndarray_npy::read_npy;

/// Side of the golden frames (`golden/public/facemesh/129`).
pub const GOLDEN_SIDE: usize = 256;

/// `gst::init` and the static registration of the iplap elements, once per test binary.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstiplap::plugin_register_static().expect("static registration of the iplap plugin");
    });
}

/// A model package of `networks` with the reference formula weights in its own folder `tag` (so
/// that test binaries running at the same time do not write the same files).
pub fn formula_package(tag: &str, networks: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(tag);
    let w = FormulaWeights::new();
    let sources: Vec<(&str, &dyn iplap::graph::weights::WeightSource)> =
        networks.iter().map(|&n| (n, &w as _)).collect();
    write_package(&dir, &sources, &[]).unwrap();
    dir
}

/// The golden frames with their landmarks, boxes and the official bank over all of them.
pub struct Golden {
    /// Packed RGB frames, [`GOLDEN_SIDE`] square.
    pub frames: Vec<Vec<u8>>,
    /// Normalised MediaPipe points.
    pub mesh: Vec<Vec<[f32; 2]>>,
    pub boxes: Vec<CropBox>,
    pub sets: Vec<NormalisedSets>,
    /// The official bank over all 60 frames.
    pub bank: Arc<ReferenceBank>,
}

/// [`Golden`], loaded once; `None` (with the shared-data message) when the data is missing.
pub fn golden() -> Option<&'static Golden> {
    static G: OnceLock<Option<Golden>> = OnceLock::new();
    G.get_or_init(|| {
        let side = GOLDEN_SIDE;
        let dir = iplap::testdata::shared_path("golden/public/facemesh/129")?;
        let frames: Array4<u8> = read_npy(dir.join("frames_rgb_u8.npy")).unwrap();
        let lm: Array3<f32> = read_npy(dir.join("landmarks_refined_f32.npy")).unwrap();
        assert_eq!(&frames.shape()[1..], &[side, side, 3]);
        let (mut fr, mut mesh, mut boxes, mut sets, mut records) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut rz, mut scratch) = (Resizer::new(), Image::default());
        for f in 0..frames.shape()[0] {
            let rgb: Vec<u8> = frames.slice(s![f, .., .., ..]).iter().copied().collect();
            let m: Vec<[f32; 2]> = (0..lm.shape()[1])
                .map(|i| [lm[[f, i, 0]], lm[[f, i, 1]]])
                .collect();
            let geo = FaceGeometry::from_landmarks(&m, side, side).unwrap();
            sets.push(geo.crop_box.normalised_sets(&m, side, side).unwrap());
            boxes.push(geo.crop_box);
            let img = ImageRef::packed(&rgb, side, side, ChannelOrder::Rgb).unwrap();
            records.push(FrameRecord::from_frame(&img, &m, &mut rz, &mut scratch).unwrap());
            fr.push(rgb);
            mesh.push(m);
        }
        let (bank, _) = build_bank(&records).unwrap();
        Some(Golden {
            frames: fr,
            mesh,
            boxes,
            sets,
            bank: Arc::new(bank),
        })
    })
    .as_ref()
}

/// Runs the `gst-launch` style `description`, whose end is an appsink named `sink`, to its end
/// and returns every sample it received.
pub fn pull_samples(description: &str) -> Vec<gst::Sample> {
    use gst::prelude::*;
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut samples = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        samples.push(s);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    samples
}

/// The `file://` URI of an existing file.
pub fn file_uri(path: &Path) -> String {
    gst::glib::filename_to_uri(path.canonicalize().unwrap(), None)
        .unwrap()
        .to_string()
}

/// Runs `cmd` in its own process group with piped output, killing the whole group after
/// `limit` (a hang becomes a failure, and nothing it started outlives the test). Returns the
/// output, text (stdout then stderr) and whether it was killed.
pub fn output_within(
    cmd: &mut std::process::Command,
    limit: std::time::Duration,
) -> (std::process::Output, String, bool) {
    use std::os::unix::process::CommandExt;
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let done = Arc::new(std::sync::Mutex::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < limit {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if *done.lock().unwrap() {
                    return false;
                }
            }
            // SAFETY: kill() on our own child's process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            true
        })
    };
    let out = child.wait_with_output().unwrap();
    *done.lock().unwrap() = true;
    let timed_out = watchdog.join().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text, timed_out)
}
