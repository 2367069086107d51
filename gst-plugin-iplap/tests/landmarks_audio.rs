//! `iplaplandmarks`' audio side in whole pipelines (issue 13): the `audio_src` pad forwards the
//! consumed speech in step with the video, a starved `audio_sink` is reported with its fix, and a
//! stream without audio is driven by silence to its end instead of spinning.
//!
//! Pipelines that could hang run as `gst-launch-1.0` child processes under a time limit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstiplap::meta::LandmarkMeta;
use iplap::engine::landmarks::FrameStatus;

fn package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::formula_package("landmarks-audio-package", &["landmark_generator"]))
}

/// Runs `gst-launch-1.0 description` (plugin from the build folder), killed after `limit`.
/// Returns (exit success, timed out, output).
fn gst_launch(description: &str, limit: Duration) -> (bool, bool, String) {
    let args: Vec<&str> = description.split_whitespace().collect();
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(&args).env(
        "GST_PLUGIN_PATH",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"),
    );
    let (out, text, timed_out) = common::output_within(&mut cmd, limit);
    (out.status.success(), timed_out, text)
}

/// The command: `audio_sink` unlinked. It emitted the enrolment frames and then spun at
/// 100 % CPU forever; now the frames follow silence and the stream ends.
#[test]
fn unlinked_audio_sink_runs_on_silence_to_the_end() {
    let video = iplap::require_shared!("media/129.mp4");
    let description = format!(
        "iplaplandmarks name=lm models={} ! fakesink \
         filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=BGRx ! lm.video_sink",
        package().display(),
        video.display()
    );
    let (ok, timed_out, out) = gst_launch(&description, Duration::from_secs(180));
    assert!(!timed_out, "hung (spinning without output):\n{out}");
    assert!(ok && out.contains("Got EOS"), "{out}");
    assert!(out.contains("audio_sink is not linked"), "{out}");
}

/// An audio stream that ends before its first sample (`num-buffers=0`) is the same case.
#[test]
fn audio_that_ends_without_a_sample_runs_on_silence_to_the_end() {
    let video = iplap::require_shared!("media/129.mp4");
    let description = format!(
        "iplaplandmarks name=lm models={} ! fakesink \
         filesrc location={} ! decodebin ! identity eos-after=100 ! videoconvert \
           ! video/x-raw,format=BGRx ! lm.video_sink \
         audiotestsrc num-buffers=0 ! audioconvert ! audioresample ! lm.audio_sink",
        package().display(),
        video.display()
    );
    let (ok, timed_out, out) = gst_launch(&description, Duration::from_secs(120));
    assert!(!timed_out, "hung:\n{out}");
    assert!(ok && out.contains("Got EOS"), "{out}");
}

/// The README's old shape: the speech split by a `tee` whose muxer branch, behind `x264enc`'s
/// frame look-ahead, fills its default queue. The element cannot get the audio it needs; it now
/// says so, naming the fix, within `audio-stall-timeout`.
#[test]
fn a_starved_audio_sink_is_reported_with_the_fix() {
    let video = iplap::require_shared!("media/129.mp4");
    let audio = iplap::require_shared!("media/audio2.wav");
    common::init();
    let out = std::env::temp_dir().join(format!("iplap-starved-{}.mp4", std::process::id()));
    let description = format!(
        "iplaplandmarks name=lm models={pkg} audio-stall-timeout=1000 ! videoconvert \
           ! video/x-raw,format=I420 ! x264enc ! mp4mux name=mux ! filesink location={out} \
         filesrc location={video} ! decodebin ! videoconvert ! video/x-raw,format=BGRx \
           ! lm.video_sink \
         filesrc location={audio} ! decodebin ! tee name=a \
           a. ! queue ! audioconvert ! audioresample ! lm.audio_sink \
           a. ! queue ! audioconvert ! avenc_aac ! mux.",
        pkg = package().display(),
        video = video.display(),
        audio = audio.display(),
        out = out.display()
    );
    let pipeline = gst::parse::launch(&description).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut warning = None;
    while warning.is_none() && Instant::now() < deadline {
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(200),
            &[
                gst::MessageType::Warning,
                gst::MessageType::Error,
                gst::MessageType::Eos,
            ],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Warning(w) if w.error().to_string().contains("audio_src") => {
                warning = Some(w.error().to_string());
            }
            gst::MessageView::Eos(_) => panic!("the starved pipeline unexpectedly completed"),
            gst::MessageView::Error(e) => panic!("error: {}", e.error()),
            _ => {}
        }
    }
    // Stopping a starved pipeline must work (flushing unblocks every thread).
    pipeline.set_state(gst::State::Null).unwrap();
    let _ = std::fs::remove_file(&out);
    let warning = warning.expect("no starvation warning within 90 s");
    assert!(
        warning.contains("tee") && warning.contains("max-size-time=0"),
        "{warning}"
    );
}

/// What an appsink saw, in arrival order.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// A video frame: (pts, end) in ns, and whether it carried synced landmarks.
    Video(u64, u64, bool),
    /// An audio buffer: (pts, samples).
    Audio(u64, usize),
}

/// Ends the video after `frames` buffers leave element `name`: the rest are dropped and EOS
/// follows the last one. (`identity eos-after` lets late decoder frames through, with timestamps
/// seconds ahead of the cut, which would blur what "in step" measures.)
fn cut_after_frames(pipeline: &gst::Pipeline, name: &str, frames: usize) {
    let pad = pipeline.by_name(name).unwrap().static_pad("src").unwrap();
    let count = std::sync::atomic::AtomicUsize::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        let count = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if count == frames + 1 {
            pad.push_event(gst::event::Eos::new());
        }
        if count > frames {
            gst::PadProbeReturn::Drop
        } else {
            gst::PadProbeReturn::Ok
        }
    });
}

/// `audio_src` carries the speech `audio_sink` received (same samples, same timestamps), ends
/// with the video, and leaves in step with it: no frame leaves before the audio up to its end.
#[test]
fn audio_src_forwards_the_speech_in_step_with_the_video() {
    let video = iplap::require_shared!("media/129.mp4");
    let audio = iplap::require_shared!("media/audio2.wav");
    common::init();
    let description = format!(
        "iplaplandmarks name=lm models={pkg} reference-location={video} \
           ! appsink name=video sync=false \
         lm.audio_src ! appsink name=audio sync=false \
         filesrc location={video} ! decodebin ! identity name=cut ! videoconvert \
           ! video/x-raw,format=BGRx ! lm.video_sink \
         filesrc location={audio} ! decodebin ! audioconvert ! audioresample \
           ! audio/x-raw,rate=16000,channels=1,format=S16LE ! tee name=t \
         t. ! queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! lm.audio_sink \
         t. ! queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 \
           ! appsink name=original sync=false",
        pkg = package().display(),
        video = video.display(),
        audio = audio.display(),
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    cut_after_frames(&pipeline, "cut", 40);
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let original = Arc::new(Mutex::new(Vec::<i16>::new()));
    let forwarded = Arc::new(Mutex::new(Vec::<i16>::new()));
    let sink = |name: &str| {
        pipeline
            .by_name(name)
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap()
    };
    let samples = |b: &gst::BufferRef| -> Vec<i16> {
        let map = b.map_readable().unwrap();
        map.chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    };
    {
        let seen = seen.clone();
        sink("video").set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let b = sample.buffer().unwrap();
                    let pts = b.pts().unwrap().nseconds();
                    let end = pts + b.duration().unwrap().nseconds();
                    let synced = b
                        .meta::<LandmarkMeta>()
                        .is_some_and(|m| matches!(m.status(), FrameStatus::Synced(_)));
                    seen.lock().unwrap().push(Seen::Video(pts, end, synced));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    {
        let (seen, forwarded) = (seen.clone(), forwarded.clone());
        sink("audio").set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let b = sample.buffer().unwrap();
                    let data = samples(b);
                    seen.lock()
                        .unwrap()
                        .push(Seen::Audio(b.pts().unwrap().nseconds(), data.len()));
                    forwarded.lock().unwrap().extend(data);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    {
        let original = original.clone();
        sink("original").set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    original
                        .lock()
                        .unwrap()
                        .extend(samples(sample.buffer().unwrap()));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("no EOS in 120 s");
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{} ({:?})", e.error(), e.debug());
    }

    let seen = seen.lock().unwrap().clone();
    let frames: Vec<(u64, u64, bool)> = seen
        .iter()
        .filter_map(|s| match *s {
            Seen::Video(p, e, f) => Some((p, e, f)),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 40, "frames");
    assert!(frames.iter().any(|f| f.2), "frames must be synced");
    let video_end = frames.last().unwrap().1;

    // The same samples, from the start, up to (at least) the end of the video and not far past.
    let forwarded = forwarded.lock().unwrap().clone();
    let original = original.lock().unwrap().clone();
    assert!(!forwarded.is_empty());
    assert_eq!(
        forwarded[..],
        original[..forwarded.len()],
        "forwarded samples differ"
    );
    let forwarded_s = forwarded.len() as f64 / 16_000.0;
    let video_s = video_end as f64 / 1e9;
    assert!(
        forwarded_s >= video_s - 0.001 && forwarded_s < video_s + 0.3,
        "forwarded {forwarded_s:.3} s of audio for {video_s:.3} s of video"
    );
    // In step: a frame's audio is released just before the frame, so every audio buffer is
    // needed by the next frame to leave: it starts no later than that frame's end plus the
    // element's look-ahead (129.mp4's timestamps have gaps, so "the next frame" matters, not "the
    // last one"). The two appsinks call back on two streaming threads, so the order seen here can
    // lag the order of release by a frame or two; allow 80 ms for that. Audio forwarded as it
    // arrives runs seconds ahead.
    let latency = 312_500_000u64;
    let observation_slack = 80_000_000u64;
    let mut audio_end = 0u64;
    let mut next_video_end = video_end;
    for s in seen.iter().rev() {
        match *s {
            Seen::Audio(pts, n) => {
                audio_end = audio_end.max(pts + n as u64 * 1_000_000_000 / 16_000);
                assert!(
                    pts <= next_video_end + latency + observation_slack,
                    "audio at {pts} ns left {} ms ahead of the frame after it",
                    (pts - next_video_end) / 1_000_000
                );
            }
            Seen::Video(_, end, _) => next_video_end = end,
        }
    }
    assert!(
        audio_end >= video_end,
        "audio ends at {audio_end}, video at {video_end}"
    );
}

/// A flushing seek reaches both branches: both sinks preroll again, the audio restarts at the
/// seek position on `audio_src`, and the stream still ends.
#[test]
fn a_flushing_seek_restarts_audio_src_at_the_new_position() {
    let video = iplap::require_shared!("media/129.mp4");
    let audio = iplap::require_shared!("media/audio2.wav");
    common::init();
    let description = format!(
        "iplaplandmarks name=lm models={pkg} reference-location={video} ! fakesink name=v \
         lm.audio_src ! fakesink name=a \
         filesrc location={video} ! decodebin ! videoconvert ! video/x-raw,format=BGRx \
           ! lm.video_sink \
         filesrc location={audio} ! decodebin ! audioconvert ! audioresample ! lm.audio_sink",
        pkg = package().display(),
        video = video.display(),
        audio = audio.display(),
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let audio_pts = Arc::new(Mutex::new(Vec::<u64>::new()));
    let a = audio_pts.clone();
    pipeline
        .by_name("a")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                a.lock().unwrap().extend(b.pts().map(|t| t.nseconds()));
            }
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline.bus().unwrap();
    let wait = |types: &[gst::MessageType]| {
        let msg = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(60), types)
            .expect("timed out (a hang)");
        if let gst::MessageView::Error(e) = msg.view() {
            panic!("{} ({:?})", e.error(), e.debug());
        }
        msg
    };
    pipeline.set_state(gst::State::Paused).unwrap();
    wait(&[gst::MessageType::AsyncDone, gst::MessageType::Error]);
    audio_pts.lock().unwrap().clear();
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_seconds(5),
        )
        .unwrap();
    wait(&[gst::MessageType::AsyncDone, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = wait(&[gst::MessageType::Eos, gst::MessageType::Error]);
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)));
    pipeline.set_state(gst::State::Null).unwrap();
    let pts = audio_pts.lock().unwrap().clone();
    assert!(!pts.is_empty(), "no audio after the seek");
    assert!(
        pts.iter().all(|&t| t >= 4_900_000_000),
        "audio from before the seek position after the flush: {:?}",
        &pts[..pts.len().min(5)]
    );
}
