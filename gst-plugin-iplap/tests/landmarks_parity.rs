//! Issue 7 acceptance: with the formula-weight package and `reference-location` = 129.mp4, the
//! content landmarks `iplaplandmarks` predicts for frames of 129.mp4 + audio2 (16 kHz) equal what
//! the engine pieces give when run directly as the official batch procedure (whole-template mel,
//! chunks `max(0, floor(16 (p − 2) / 5))` for positions `p = f − 2 … f + 2`, `T_pose` from the
//! frames' POSE sets, bank from the template's frames at 25 fps, as the official script selects
//! it after `ffmpeg -r 25`), within 1e-4.

mod common;

use std::path::{Path, PathBuf};
use std::thread;

use gst_check::Harness;
use gst_video::prelude::*;
use gstiplap::meta::LandmarkMeta;
use iplap::audio::ChunkPad;
use iplap::engine::bank_build::{FrameRecord, build_bank};
use iplap::engine::landmarks::FrameStatus;
use iplap::face::crop_box::FaceGeometry;
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::graph::package::{LANDMARK_GENERATOR_STAGE, ModelPackage};
use iplap::image::{ChannelOrder, Image, ImageRef, Resizer};
use iplap::runtime::SessionConfig;
use iplap::runtime::landmark_generator::{LandmarkGenerator, LandmarkInput};

const FRAME: gst::ClockTime = gst::ClockTime::from_mseconds(40);
/// Frames of 129.mp4 pushed through the element.
const N: usize = 30;
const TOL: f32 = 1e-4;

use common::init;

/// Where the element finds the face models by default (its `face-models` default).
fn face_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(iplap::face::prepare::DEFAULT_OUT_DIR)
}

/// Every frame of `path`, decoded to RGB by GStreamer, with its caps.
fn decode(path: &Path) -> Vec<gst::Sample> {
    common::pull_samples(&format!(
        "uridecodebin uri={} ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        common::file_uri(path)
    ))
}

/// Runs `f` on the RGB image of a decoded sample.
fn with_image<R>(s: &gst::Sample, f: impl FnOnce(&ImageRef) -> R) -> R {
    let info = gst_video::VideoInfo::from_caps(s.caps().unwrap()).unwrap();
    let frame =
        gst_video::VideoFrameRef::from_buffer_ref_readable(s.buffer().unwrap(), &info).unwrap();
    let image = ImageRef::new(
        frame.plane_data(0).unwrap(),
        info.width() as usize,
        info.height() as usize,
        frame.plane_stride()[0] as usize,
        ChannelOrder::Rgb,
    )
    .unwrap();
    f(&image)
}

fn stamped(buffer: &gst::BufferRef, pts: gst::ClockTime, duration: gst::ClockTime) -> gst::Buffer {
    let mut b = buffer.copy();
    let r = b.get_mut().unwrap();
    r.set_pts(pts);
    r.set_dts(gst::ClockTime::NONE);
    r.set_duration(duration);
    b
}

/// Pushes `buffers` then EOS from a thread.
fn feed(mut h: Harness, buffers: Vec<gst::Buffer>) -> thread::JoinHandle<Harness> {
    thread::spawn(move || {
        for b in buffers {
            match h.push(b) {
                Ok(_) => {}
                Err(gst::FlowError::Eos) => return h,
                Err(e) => panic!("push failed: {e:?}"),
            }
        }
        h.push_event(gst::event::Eos::new());
        h
    })
}

#[test]
fn element_content_equals_the_official_batch_procedure() {
    init();
    let video = iplap::require_shared!("media/129.mp4");
    let wav = iplap::require_shared!("golden/public/audio/audio2/wav16k_f32.npy");
    let wav: ndarray::Array1<f32> = ndarray_npy::read_npy(wav).unwrap();
    let wav = wav.to_vec();

    // The package (formula weights).
    let pkg = std::env::temp_dir().join(format!("iplap-parity-pkg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pkg);
    iplap::graph::package::write_package(
        &pkg,
        &[("landmark_generator", &iplap::weights::FormulaWeights::new())],
        &[],
    )
    .unwrap();

    // All frames of the template, tracked in static mode (as the element and the official
    // script do), with their POSE sets; the bank takes the 25 fps frames among them.
    let samples = decode(&video);
    assert!(samples.len() >= N, "129.mp4 has {} frames", samples.len());
    let config = SessionConfig::default();
    let mut tracker = FaceTracker::load(&face_models(), Mode::Static, &config).unwrap();
    let mut resizer = Resizer::new();
    let mut scratch = Image::new(1, 1, ChannelOrder::Bgr);
    let mut records: Vec<Option<FrameRecord>> = Vec::new();
    let mut poses: Vec<Option<Vec<f32>>> = Vec::new();
    for s in &samples {
        with_image(s, |image| {
            let (w, h) = (image.width(), image.height());
            let face = tracker.process(image).unwrap();
            records.push(face.as_ref().and_then(|face| {
                FrameRecord::from_frame(image, &face.normalized, &mut resizer, &mut scratch).ok()
            }));
            let pose = face.as_ref().and_then(|face| {
                let g = FaceGeometry::from_landmarks(&face.normalized, w, h).ok()?;
                let sets = g.crop_box.normalised_sets(&face.normalized, w, h).ok()?;
                Some(sets.pose.iter().flatten().map(|&v| v as f32).collect())
            });
            poses.push(pose);
        });
    }
    let pts: Vec<u64> = samples
        .iter()
        .map(|s| s.buffer().unwrap().pts().unwrap().nseconds())
        .collect();
    let picked = iplap::engine::template::template_frames_25fps(&pts);
    assert_eq!(
        picked.len(),
        225,
        "129.mp4: 270 frames at 30 fps -> 225 at 25 fps"
    );
    let records: Vec<FrameRecord> = picked.iter().filter_map(|&i| records[i].clone()).collect();
    let (bank, _) = build_bank(&records).unwrap();
    let (nl_pose, nl_content) = (bank.nl_pose(), bank.nl_content());

    // The element: the first N frames at 25 fps and audio2 (16 kHz F32LE, 100 ms buffers, 3 s:
    // well past the last frame's window, so the streaming mel equals the whole-template one).
    let e = gst::ElementFactory::make("iplaplandmarks")
        .property("models", pkg.to_str().unwrap())
        .property("reference-location", video.to_str().unwrap())
        .build()
        .unwrap();
    let mut out = Harness::with_element(&e, None, Some("src"));
    let mut vh = Harness::with_element(&e, Some("video_sink"), None);
    let mut ah = Harness::with_element(&e, Some("audio_sink"), None);
    let mut caps = samples[0].caps().unwrap().to_owned();
    caps.get_mut()
        .unwrap()
        .set("framerate", gst::Fraction::new(25, 1));
    vh.set_src_caps(caps);
    ah.set_src_caps(
        gst_audio::AudioInfo::builder(gst_audio::AudioFormat::F32le, 16_000, 1)
            .build()
            .unwrap()
            .to_caps()
            .unwrap(),
    );
    out.play();
    vh.play();
    ah.play();
    let video_buffers = samples[..N]
        .iter()
        .enumerate()
        .map(|(i, s)| stamped(s.buffer().unwrap(), i as u64 * FRAME, FRAME))
        .collect();
    let chunk = 1600;
    let audio_buffers = wav[..wav.len().min(3 * 16_000)]
        .chunks(chunk)
        .enumerate()
        .map(|(c, samples)| {
            let data: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
            let pts = gst::ClockTime::from_nseconds((c * chunk) as u64 * 1_000_000_000 / 16_000);
            let dur = gst::ClockTime::from_nseconds(samples.len() as u64 * 1_000_000_000 / 16_000);
            stamped(gst::Buffer::from_mut_slice(data).as_ref(), pts, dur)
        })
        .collect();
    let v = feed(vh, video_buffers);
    let a = feed(ah, audio_buffers);
    let outputs: Vec<gst::Buffer> = (0..N).map(|_| out.pull().unwrap()).collect();
    v.join().unwrap();
    a.join().unwrap();

    // The batch reference: whole-template mel, official chunks, official window.
    let mel = iplap::audio::melspectrogram(&wav);
    let mut generator = LandmarkGenerator::from_file(
        &ModelPackage::open(&pkg)
            .unwrap()
            .stage_path(LANDMARK_GENERATOR_STAGE.name)
            .unwrap(),
        &config,
    )
    .unwrap();
    let mut max_diff = 0f32;
    let mut distinct = std::collections::BTreeSet::new();
    for (f, b) in outputs.iter().enumerate().take(N - 2).skip(2) {
        assert_eq!(b.pts(), Some(f as u64 * FRAME));
        let meta = b.meta::<LandmarkMeta>().expect("LandmarkMeta");
        let FrameStatus::Synced(s) = meta.status() else {
            panic!("frame {f} not synced");
        };
        let mut t_mels = Vec::new();
        let mut t_pose = Vec::new();
        for (p, pose) in poses.iter().enumerate().take(f + 3).skip(f - 2) {
            let start = (16 * (p as i64 - 2)).div_euclid(5).max(0);
            t_mels.extend(mel.chunk(start, ChunkPad::Silence).iter().copied());
            t_pose.extend(pose.as_ref().expect("a face in every frame"));
        }
        let want = generator
            .run(&LandmarkInput {
                t_mels: &t_mels,
                t_pose: &t_pose,
                nl_pose: &nl_pose,
                nl_content: &nl_content,
            })
            .unwrap()
            .predict_content;
        let got: Vec<f32> = s.content.iter().flatten().copied().collect();
        let want = &want[2 * got.len()..3 * got.len()];
        distinct.insert(format!("{got:?}"));
        for (g, w) in got.iter().zip(want) {
            max_diff = max_diff.max((g - w).abs());
        }
    }
    println!(
        "max |element - batch| over frames 2..={}: {max_diff:e}",
        N - 3
    );
    assert!(max_diff <= TOL, "max diff {max_diff} > {TOL}");
    assert!(distinct.len() > 1, "the predictions depend on the window");
    let _ = std::fs::remove_dir_all(&pkg);
}
