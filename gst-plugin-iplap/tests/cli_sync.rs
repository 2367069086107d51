//! `iplap sync` (issue 9): the built binary on short cuts of the shared media with the
//! formula-weight models, checked against the official timeline (spec §1.6) and against the
//! engine's direct computation of every output frame.
//!
//! Cheap on purpose (2 cores, ~2 s per rendered frame at `--references 5`): a 6-frame cut of
//! `129.mp4` and well under a second of speech. The expected frames come from the engine alone
//! (`LandmarkEngine` + `FrameCompositor`, no GStreamer pipeline), fed the same decoded pixels and
//! samples in the order the timeline prescribes; the command's frames, dumped before H.264 by the
//! hidden `--dump-frames`, must equal them exactly.

mod common;
mod sync_support;

#[path = "../src/bin/iplap/sync/timeline.rs"]
#[allow(dead_code, unused_imports)]
mod timeline;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Instant;

use gst::prelude::*;
use gstiplap::decode::{RgbFrame, VideoDecoder};
use iplap::engine::compose::{CompositorSettings, FrameCompositor, FrameInput, MeshPoints};
use iplap::engine::landmarks::{BankMode, FrameStatus, LandmarkEngine, SyncedFace};
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::graph::package::ModelPackage;
use iplap::image::{ChannelOrder, Image, ImageMut, ImageRef, Resizer};
use iplap::runtime::SessionConfig;
use ndarray::Array3;
use timeline::{FRAME_NS, Plan};

use common::init;
use sync_support::{
    REFERENCES, RUN_LIMIT, THREADS, cut_wav, decode_frames, face_models, face_models_ready,
    has_entries, heavy, media, output_within, package, probe_mp4, resize_canvas, run_to_eos,
    signal_when, sync_command, sync_fails, temp_dir, write_mp4, write_png, write_tone_wav,
    write_wav,
};

fn sync(face: &Path, audio: &Path, out: &Path, dump: &Path) -> Output {
    sync_with(face, audio, out, dump, &[])
}

fn sync_with(face: &Path, audio: &Path, out: &Path, dump: &Path, extra: &[&str]) -> Output {
    let t = Instant::now();
    let mut args: Vec<&std::ffi::OsStr> = vec!["--dump-frames".as_ref(), dump.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let run = output_within(&mut sync_command(face, audio, out, &args), RUN_LIMIT);
    eprintln!(
        "iplap sync in {:.1?}:\n{}",
        t.elapsed(),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "iplap sync failed");
    run
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

/// The output the engine computes directly: the timeline of spec §1.6 over the 25 fps template,
/// the bank over all its frames, one `LandmarkEngine` window and one `FrameCompositor` call per
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
    let picked = iplap::engine::template::template_frames_25fps(&pts);
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

    let mut renderer = FrameCompositor::from_package(
        package.dir(),
        CompositorSettings {
            references: REFERENCES,
            blend: true,
            show_sketch: false,
            threads: THREADS,
            device: iplap::runtime::DeviceConfig::cpu(),
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
    // encode (H.264 4:2:0 needs an even size: a black row and column are added).
    let face = dir.join("frame.png");
    let mut decoder = VideoDecoder::open(&video).unwrap();
    let first = decoder.next_frame().unwrap().unwrap();
    drop(decoder);
    write_png(
        &resize_canvas(&first, first.width - 1, first.height - 1),
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
    assert_eq!((info.width(), info.height()), (256, 256));
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
    let status = signal_when(&mut child, libc::SIGINT, || has_entries(&dump));
    assert_eq!(status.code(), Some(130), "exit status after Ctrl-C");
    assert!(!out.exists(), "no output after Ctrl-C");
    for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".partial"), "left behind: {name}");
    }
}
