//! `iplap sync` (issue 9): the built binary on short cuts of the shared media with the
//! formula-weight models, checked against the official timeline (spec §1.6) and against the
//! engine's direct computation of every output frame.
//!
//! Cheap on purpose (2 cores, ~2 s per rendered frame at `--references 5`): a 6-frame cut of
//! `129.mp4` and well under a second of speech. The expected frames come from the engine alone
//! (`LandmarkEngine` + `FrameRenderer`, no GStreamer pipeline), fed the same decoded pixels and
//! samples in the order the timeline prescribes; the command's frames, dumped before H.264 by the
//! hidden `--dump-frames`, must equal them exactly.

mod common;

#[path = "../src/bin/iplap/sync/timeline.rs"]
#[allow(dead_code)]
mod timeline;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstiplap::decode::{RgbFrame, VideoDecoder};
use iplap::engine::landmarks::{BankMode, FrameStatus, LandmarkEngine, SyncedFace};
use iplap::engine::render::{FrameInput, FrameRenderer, FrameRendererSettings, MeshPoints};
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::graph::package::ModelPackage;
use iplap::image::{ChannelOrder, Image, ImageMut, ImageRef, Resizer};
use iplap::runtime::SessionConfig;
use ndarray::Array3;
use timeline::{FRAME_NS, Plan};

const REFERENCES: usize = 5;
const THREADS: usize = 2;

use common::init;

/// One heavy run at a time: the machine has two cores and each run uses both.
fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Both networks with the formula weights, written once per test binary run.
fn package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        common::formula_package("cli-sync-package", &["landmark_generator", "renderer"])
    })
}

fn face_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/generated/face")
}

/// The converted face models come from scripts/setup.sh; without them nothing here can run.
fn face_models_ready() -> bool {
    let ok = face_models()
        .join("face_landmark_with_attention.onnx")
        .is_file();
    if !ok {
        assert_ne!(
            std::env::var("IPLAP_REQUIRE_SHARED").as_deref(),
            Ok("1"),
            "face models missing in {}: run scripts/setup.sh",
            face_models().display()
        );
        eprintln!("\n!!!!!!!! SKIPPED: face models missing: run scripts/setup.sh !!!!!!!!\n");
    }
    ok
}

/// 129.mp4 and audio2.wav with the face models ready, and the heavy-run lock; `None` (after the
/// shared-data message) when something is missing.
fn media() -> Option<(PathBuf, PathBuf, MutexGuard<'static, ()>)> {
    let video = iplap::testdata::shared_path("media/129.mp4")?;
    let wav = iplap::testdata::shared_path("media/audio2.wav")?;
    if !face_models_ready() {
        return None;
    }
    Some((video, wav, heavy()))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iplap-cli-sync-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sync_command(face: &Path, audio: &Path, out: &Path, extra: &[&std::ffi::OsStr]) -> Command {
    sync_command_with(face, audio, out, package(), extra)
}

fn sync_command_with(
    face: &Path,
    audio: &Path,
    out: &Path,
    models: &Path,
    extra: &[&std::ffi::OsStr],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iplap"));
    cmd.arg("sync")
        .arg("--face")
        .arg(face)
        .arg("--audio")
        .arg(audio)
        .arg("-o")
        .arg(out)
        .arg("--models")
        .arg(models)
        .arg("--face-models")
        .arg(face_models())
        .args(["--references", &REFERENCES.to_string()])
        .args(["--threads", &THREADS.to_string()])
        .args(extra);
    cmd
}

fn sync(face: &Path, audio: &Path, out: &Path, dump: &Path) -> Output {
    sync_with(face, audio, out, dump, &[])
}

fn sync_with(face: &Path, audio: &Path, out: &Path, dump: &Path, extra: &[&str]) -> Output {
    let t = Instant::now();
    let mut args: Vec<&std::ffi::OsStr> = vec!["--dump-frames".as_ref(), dump.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let run = sync_command(face, audio, out, &args).output().unwrap();
    eprintln!(
        "iplap sync in {:.1?}:\n{}",
        t.elapsed(),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "iplap sync failed");
    run
}

/// Runs a GStreamer pipeline to EOS, panicking on an error.
fn run_to_eos(pipeline: &gst::Pipeline) {
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline timed out");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("pipeline error: {} ({:?})", e.error(), e.debug());
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// Every decoded frame of `path`.
fn decode_frames(path: &Path) -> Vec<RgbFrame> {
    let mut decoder = VideoDecoder::open(path).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = decoder.next_frame().unwrap() {
        frames.push(f);
    }
    frames
}

/// The speech as `iplap sync` feeds it to `iplaplandmarks`: 16 kHz mono f32 from GStreamer.
fn decode_16k(path: &Path) -> Vec<f32> {
    let samples = common::pull_samples(&format!(
        "uridecodebin uri={} ! audioconvert ! audioresample ! \
         audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved ! \
         appsink name=sink sync=false",
        common::file_uri(path)
    ));
    let mut out = Vec::new();
    for sample in samples {
        let map = sample.buffer().unwrap().map_readable().unwrap();
        out.extend(
            map.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    out
}

/// A 16 kHz mono 16-bit WAV of `samples`.
fn write_wav(path: &Path, samples: impl IntoIterator<Item = i16>) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for v in samples {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
}

/// Half a second of a 320 Hz sawtooth: valid speech input.
fn write_tone_wav(path: &Path) {
    write_wav(path, (0..8000).map(|i| ((i % 50) * 100) as i16));
}

/// Writes `frames` as an H.264 MP4 with their own timestamps (a cut of a video).
fn write_mp4(frames: &[RgbFrame], path: &Path) {
    init();
    let (w, h) = (frames[0].width, frames[0].height);
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},\
         framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc bframes=0 ! \
         mp4mux ! filesink location={}",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    for (i, f) in frames.iter().enumerate() {
        let mut b = gst::Buffer::from_mut_slice(f.data.clone());
        let pts = f
            .pts
            .unwrap_or(gst::ClockTime::from_nseconds(i as u64 * 33_333_333));
        let buffer = b.get_mut().unwrap();
        buffer.set_pts(pts);
        buffer.set_duration(gst::ClockTime::from_nseconds(33_333_333));
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    run_to_eos(&pipeline);
}

/// Writes one frame as a PNG image.
fn write_png(frame: &RgbFrame, path: &Path) {
    init();
    let (w, h) = (frame.width, frame.height);
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},\
         framerate=0/1 ! videoconvert ! pngenc snapshot=true ! filesink location={}",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    // GStreamer's RGB rows are padded to a multiple of 4 bytes.
    let stride = (w * 3).div_ceil(4) * 4;
    let mut data = vec![0u8; stride * h];
    for (dst, src) in data
        .chunks_exact_mut(stride)
        .zip(frame.data.chunks_exact(w * 3))
    {
        dst[..w * 3].copy_from_slice(src);
    }
    let mut b = gst::Buffer::from_mut_slice(data);
    b.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    src.push_buffer(b).unwrap();
    src.end_of_stream().unwrap();
    run_to_eos(&pipeline);
}

/// The first `seconds` of a WAV file, same format.
fn cut_wav(src: &Path, seconds: f64, out: &Path) {
    let mut reader = hound::WavReader::open(src).unwrap();
    let spec = reader.spec();
    let keep = (seconds * spec.sample_rate as f64) as usize * spec.channels as usize;
    let mut writer = hound::WavWriter::create(out, spec).unwrap();
    for s in reader.samples::<i16>().take(keep) {
        writer.write_sample(s.unwrap()).unwrap();
    }
    writer.finalize().unwrap();
}

/// What a re-demux of the output MP4 shows.
#[derive(Debug, Clone)]
struct Probe {
    video_frames: usize,
    /// End of the last video frame (PTS + duration).
    video_end: Option<gst::ClockTime>,
    caps: Option<gst::Caps>,
    audio_end: Option<gst::ClockTime>,
}

fn probe_mp4(path: &Path) -> Probe {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("uridecodebin")
        .property(
            "uri",
            gst::glib::filename_to_uri(std::fs::canonicalize(path).unwrap(), None)
                .unwrap()
                .as_str(),
        )
        .build()
        .unwrap();
    pipeline.add(&src).unwrap();
    let probe = Arc::new(Mutex::new(Probe {
        video_frames: 0,
        video_end: None,
        caps: None,
        audio_end: None,
    }));
    let bin = pipeline.clone();
    let p = probe.clone();
    src.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap();
        let video = caps.structure(0).unwrap().name().starts_with("video/");
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .unwrap();
        bin.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        let p = p.clone();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let Some(gst::PadProbeData::Buffer(b)) = &info.data else {
                    return gst::PadProbeReturn::Ok;
                };
                let end = b.pts().map(|t| t + b.duration().unwrap_or_default());
                let mut p = p.lock().unwrap();
                if video {
                    p.video_frames += 1;
                    p.video_end = end.max(p.video_end);
                    p.caps = pad.current_caps();
                } else {
                    p.audio_end = end.max(p.audio_end);
                }
                gst::PadProbeReturn::Ok
            });
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
    });
    run_to_eos(&pipeline);
    probe.lock().unwrap().clone()
}

/// The output the engine computes directly: the timeline of spec §1.6 over the 25 fps template,
/// the bank over all its frames, one `LandmarkEngine` window and one `FrameRenderer` call per
/// rendered frame, frames 0 and 1 copies of frame 2. Returns `(plan, frames)`, RGB `h x w x 3`.
fn expected_output(face: &Path, samples: &[f32]) -> (Plan, Vec<Array3<u8>>) {
    let config = SessionConfig {
        intra_threads: THREADS,
        ..SessionConfig::default()
    };
    let decoded = decode_frames(face);
    let pts: Vec<u64> = decoded
        .iter()
        .map(|f| f.pts.map_or(0, |t| t.nseconds()))
        .collect();
    let picked = timeline::template_frames_25fps(&pts);
    let template: Vec<&RgbFrame> = picked.iter().map(|&i| &decoded[i]).collect();
    let plan = Plan {
        template_frames: template.len(),
        output_frames: timeline::output_frames(samples.len()),
    };
    let mut tracker = FaceTracker::load(&face_models(), Mode::Static, &config).unwrap();
    let mut landmarks = Vec::new();
    let mut records = Vec::new();
    let (mut resizer, mut scratch) = (Resizer::new(), Image::new(1, 1, ChannelOrder::Bgr));
    for f in &template {
        let image = ImageRef::packed(&f.data, f.width, f.height, ChannelOrder::Rgb).unwrap();
        let face = tracker
            .process(&image)
            .unwrap()
            .expect("a face in every frame");
        records.push(
            iplap::engine::bank_build::FrameRecord::from_frame(
                &image,
                &face.normalized,
                &mut resizer,
                &mut scratch,
            )
            .unwrap(),
        );
        landmarks.push(face.normalized);
    }
    let (bank, _) = iplap::engine::bank_build::build_bank(&records).unwrap();
    let package = ModelPackage::open(package()).unwrap();
    let mut engine =
        LandmarkEngine::from_package(&package, &config, BankMode::Fixed(Arc::new(bank))).unwrap();
    engine.push_audio(0, samples).unwrap();
    engine.finish_audio();
    for k in 0..plan.fed_frames() {
        let f = template[plan.source(k)];
        let image = ImageRef::packed(&f.data, f.width, f.height, ChannelOrder::Rgb).unwrap();
        engine
            .push_video(
                k as u64 * FRAME_NS,
                FRAME_NS,
                &image,
                Some(&landmarks[plan.source(k)]),
            )
            .unwrap();
    }
    engine.finish_video().unwrap();
    let mut windows = Vec::new();
    while let Some(r) = engine.pop_ready().unwrap() {
        windows.push(r);
    }
    assert_eq!(windows.len(), plan.fed_frames());

    let mut renderer = FrameRenderer::from_package(
        package.dir(),
        FrameRendererSettings {
            references: REFERENCES,
            blend: true,
            show_sketch: false,
            threads: THREADS,
        },
    )
    .unwrap();
    let mut frames = Vec::new();
    for k in timeline::LEAD_COPIES..plan.output_frames {
        assert_eq!(windows[k].pts_ns, k as u64 * FRAME_NS);
        let FrameStatus::Synced(face) = &windows[k].status else {
            panic!("frame {k} is not synced");
        };
        let f = template[plan.source(k)];
        let (mut rgb, w, h) = (f.data.clone(), f.width, f.height);
        let mut view = ImageMut::new(&mut rgb, w, h, w * 3, ChannelOrder::Rgb).unwrap();
        renderer.render_frame(&mut view, &input(face)).unwrap();
        frames.push(Array3::from_shape_vec((h, w, 3), rgb).unwrap());
    }
    let first = frames[0].clone();
    for _ in 0..timeline::LEAD_COPIES {
        frames.insert(0, first.clone());
    }
    (plan, frames)
}

/// What `iplaprender` builds from the landmark meta (gstiplap's render/frame.rs).
fn input(face: &SyncedFace) -> FrameInput<'_> {
    FrameInput {
        crop_box: face.face.crop_box,
        mesh: MeshPoints::Normalised(&face.face.points_norm),
        window_pose: face.window_pose.as_flattened().as_flattened(),
        window_crop_hw: face.window_crop_hw,
        window_content: face.window_content.as_flattened().as_flattened(),
        mel: &face.mel_chunk,
        bank: &face.bank,
    }
}

/// Frame count and duration as the timeline predicts, H.264 in I420, an AAC track as long as
/// the speech, and every dumped frame equal to the engine's.
fn check_output(out: &Path, dump: &Path, plan: &Plan, expected: &[Array3<u8>], speech_s: f64) {
    let probe = probe_mp4(out);
    eprintln!("{out:?}: {probe:?}");
    assert_eq!(probe.video_frames, plan.output_frames, "video frames = L");
    assert_eq!(
        probe.video_end,
        Some(gst::ClockTime::from_nseconds(plan.duration_ns())),
        "video duration = L / 25 s"
    );
    let caps = probe.caps.expect("video caps");
    assert_eq!(
        caps.structure(0).unwrap().get::<&str>("format").unwrap(),
        "I420"
    );
    let audio_end = probe.audio_end.expect("an audio track").nseconds() as f64 / 1e9;
    assert!(
        (audio_end - speech_s).abs() < 0.05,
        "audio lasts {audio_end} s, the speech {speech_s} s (not trimmed, spec §1.9)"
    );

    assert_eq!(expected.len(), plan.output_frames);
    for (k, want) in expected.iter().enumerate() {
        let path = dump.join(format!("frame_{k:05}.npy"));
        let got: Array3<u8> =
            ndarray_npy::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let diff = got.iter().zip(want.iter()).filter(|(a, b)| a != b).count();
        assert_eq!(
            diff, 0,
            "output frame {k}: {diff} values differ from the engine's"
        );
    }
}

#[test]
fn video_and_wav_follow_the_official_timeline() {
    let Some((video, wav, _heavy)) = media() else {
        return;
    };
    let dir = temp_dir("video");
    // 6 frames at 30 fps -> 5 at 25 fps; 0.6 s of speech -> L = 11 > 5: the template loops
    // forward, backward and forward again (seq 0 1 2 3 4 4 3 2 1 0 0 1 2).
    let face = dir.join("129-cut.mp4");
    let decoded = decode_frames(&video);
    write_mp4(&decoded[..6], &face);
    let audio = dir.join("audio2-cut.wav");
    cut_wav(&wav, 0.6, &audio);
    let (out, dump) = (dir.join("out.mp4"), dir.join("frames"));
    // No frame memory: every template frame goes through the temporary file and back.
    let run = sync_with(&face, &audio, &out, &dump, &["--frame-memory-mib", "0"]);
    // The summary splits the renderer's time with the element's `iplaprender-stats` messages.
    let summary = String::from_utf8_lossy(&run.stderr);
    for step in ["flow-head", "translation", "modulation", "paste"] {
        assert!(summary.contains(step), "{step} missing from:\n{summary}");
    }

    let samples = decode_16k(&audio);
    let (plan, expected) = expected_output(&face, &samples);
    assert_eq!(plan.template_frames, 5);
    assert_eq!(plan.output_frames, 11);
    check_output(&out, &dump, &plan, &expected, 0.6);
    assert_ne!(
        expected[2], expected[3],
        "consecutive rendered frames differ"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn still_image_works() {
    let Some((video, wav, _heavy)) = media() else {
        return;
    };
    let dir = temp_dir("still");
    // 255 x 255 (the first frame without its last row and column): the odd size must still
    // encode (H.264 4:2:0 drops the odd last row and column).
    let face = dir.join("frame.png");
    let mut decoder = VideoDecoder::open(&video).unwrap();
    let first = decoder.next_frame().unwrap().unwrap();
    drop(decoder);
    let (w, h) = (first.width - 1, first.height - 1);
    let data = (0..h)
        .flat_map(|y| first.data[y * first.width * 3..(y * first.width + w) * 3].to_vec())
        .collect();
    write_png(
        &RgbFrame {
            pts: None,
            width: w,
            height: h,
            data,
        },
        &face,
    );
    let audio = dir.join("audio2-cut.wav");
    cut_wav(&wav, 0.3, &audio);
    let (out, dump) = (dir.join("still.mp4"), dir.join("frames"));
    sync(&face, &audio, &out, &dump);

    let samples = decode_16k(&audio);
    let (plan, expected) = expected_output(&face, &samples);
    assert_eq!((plan.template_frames, plan.output_frames), (1, 4));
    check_output(&out, &dump, &plan, &expected, 0.3);
    let caps = probe_mp4(&out).caps.unwrap();
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((info.width(), info.height()), (254, 254));
}

#[test]
fn mp3_speech_works() {
    let Some(video) = iplap::testdata::shared_path("media/129.mp4") else {
        return;
    };
    let Some(mp3) = iplap::testdata::shared_path("media/abstract.mp3") else {
        return;
    };
    if !face_models_ready() {
        return;
    }
    let _heavy = heavy();
    let dir = temp_dir("mp3");
    // The first 20 MP3 frames (192 kbit/s, 48 kHz: 576 bytes, 24 ms each), cut at frame
    // boundaries without re-encoding.
    let audio = dir.join("abstract-cut.mp3");
    std::fs::write(&audio, &std::fs::read(&mp3).unwrap()[..20 * 576]).unwrap();
    let face = dir.join("129-cut.mp4");
    write_mp4(&decode_frames(&video)[..6], &face);
    let out = dir.join("mp3.mp4");
    sync(&face, &audio, &out, &dir.join("frames"));

    let samples = decode_16k(&audio);
    let l = timeline::output_frames(samples.len());
    assert!(l >= 3, "{} samples", samples.len());
    let probe = probe_mp4(&out);
    assert_eq!(probe.video_frames, l);
    assert_eq!(
        probe.video_end,
        Some(gst::ClockTime::from_nseconds(l as u64 * FRAME_NS))
    );
    assert!(probe.audio_end.is_some(), "no audio track");
}

/// Runs `iplap sync` expecting failure; returns stderr. No output or temporary file may remain.
fn sync_fails(face: &Path, audio: &Path, out: &Path, models: Option<&Path>) -> String {
    let run = sync_command_with(face, audio, out, models.unwrap_or(package()), &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    eprintln!("{err}");
    assert!(!run.status.success(), "iplap sync should fail");
    assert!(!out.is_file(), "{} must not exist", out.display());
    if let Some(dir) = out.parent().filter(|d| d.is_dir()) {
        for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".partial"), "left behind: {name}");
        }
    }
    err
}

#[test]
fn missing_models_say_where_checkpoints_come_from() {
    let dir = temp_dir("models");
    let (face, audio) = (dir.join("face.mp4"), dir.join("speech.wav"));
    std::fs::write(&face, b"x").unwrap();
    std::fs::write(&audio, b"x").unwrap();
    let missing = dir.join("no-such-package");
    let err = sync_fails(&face, &audio, &dir.join("out.mp4"), Some(&missing));
    for needle in [
        "no-such-package",
        "iplap convert",
        "renderer_checkpoint.pth",
        "github.com/Weizhi-Zhong/IP_LAP",
    ] {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
}

#[test]
fn unreadable_media_is_named() {
    if !face_models_ready() {
        return;
    }
    let dir = temp_dir("unreadable");
    let bogus = dir.join("not-media.mp4");
    std::fs::write(&bogus, b"this is not a video").unwrap();
    let wav = dir.join("speech.wav");
    write_tone_wav(&wav);
    let out = dir.join("out.mp4");
    let err = sync_fails(&bogus, &wav, &out, None);
    assert!(err.contains("not-media.mp4"), "{err}");
    let err = sync_fails(&wav, &bogus, &out, None);
    assert!(err.contains("not-media.mp4"), "{err}");
    let err = sync_fails(&dir.join("missing.mp4"), &wav, &out, None);
    assert!(
        err.contains("missing.mp4") && err.contains("no such file"),
        "{err}"
    );
    // Audio too short for three frames.
    let short = dir.join("short.wav");
    write_wav(&short, std::iter::repeat_n(0, 1000));
    let err = sync_fails(&wav, &short, &out, None);
    assert!(err.contains("too short"), "{err}");
}

#[test]
fn unwritable_output_fails_before_work() {
    let dir = temp_dir("unwritable");
    let (face, audio) = (dir.join("face.mp4"), dir.join("speech.wav"));
    std::fs::write(&face, b"x").unwrap();
    std::fs::write(&audio, b"x").unwrap();
    let err = sync_fails(&face, &audio, &dir.join("no-folder").join("out.mp4"), None);
    assert!(
        err.contains("no-folder") && err.contains("does not exist"),
        "{err}"
    );
    let err = sync_fails(&face, &audio, &dir, None);
    assert!(err.contains("is a folder"), "{err}");
    // Not even root may create files in /proc.
    let err = sync_fails(&face, &audio, Path::new("/proc/iplap-out.mp4"), None);
    assert!(err.contains("not writable"), "{err}");
}

#[test]
fn image_without_a_face_is_refused() {
    if !face_models_ready() {
        return;
    }
    init();
    let dir = temp_dir("noface");
    let bars = dir.join("bars.png");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=320,height=240 ! pngenc ! \
         filesink location={}",
        bars.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    run_to_eos(&pipeline);
    let wav = dir.join("speech.wav");
    write_tone_wav(&wav);
    let err = sync_fails(&bars, &wav, &dir.join("out.mp4"), None);
    assert!(err.contains("no face") && err.contains("bars.png"), "{err}");
}

#[test]
fn ctrl_c_leaves_no_file() {
    let Some((video, wav, _heavy)) = media() else {
        return;
    };
    let dir = temp_dir("ctrlc");
    let (out, dump) = (dir.join("out.mp4"), dir.join("frames"));
    let mut child = sync_command(
        &video,
        &wav,
        &out,
        &["--dump-frames".as_ref(), dump.as_os_str()],
    )
    .spawn()
    .unwrap();
    // Interrupt once frames are being written, i.e. while the MP4 is half done.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut started = false;
    while Instant::now() < deadline {
        if std::fs::read_dir(&dump).is_ok_and(|mut d| d.next().is_some()) {
            started = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(started, "no frame written in time");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit status after Ctrl-C");
    assert!(!out.exists(), "no output after Ctrl-C");
    for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".partial"), "left behind: {name}");
    }
}
