//! End-to-end pipeline (issue 8 acceptance): `filesrc 129.mp4 ! decodebin ! … ! iplaplandmarks !
//! iplaprender ! … ! mp4mux` with `audio2.wav` writes a playable MP4 with audio, with the same
//! frame count and timestamps as the input video, and pixels outside the face boxes unchanged.
//!
//! Model: the reference formula weights for both networks, written once as a model package. The
//! video is cut to a few frames with `identity eos-after` to keep the test cheap on 2 cores.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use gstiplap::meta::LandmarkMeta;
use iplap::engine::landmarks::FrameStatus;
use iplap::face::indices::PASTE_CONTOUR;

/// Where `identity eos-after` cuts the input. It lets at least that many buffers through, not
/// exactly that many (GStreamer 1.22 passes 15 decoded frames of 129.mp4 for 13), so the test
/// compares the rendered stream with what the `original` appsink saw rather than with a constant.
const EOS_AFTER: usize = 13;
/// Where the muxed audio stops. `qtdemux` skips a track shorter than 20 % of the file's longest
/// one as a "preview", so the full-length audio would hide the few video frames on playback.
/// (`x264enc` runs with `bframes=0`: with B-frames, GStreamer 1.22's `qtdemux` gives back only 14
/// of the 15 frames `mp4mux` wrote, with or without iplap in the pipeline.)
const AUDIO_CUT: gst::ClockTime = gst::ClockTime::from_seconds(1);
/// The blurred paste mask reaches 10 px around the contour's bounding box; one more for rounding.
const REACH: usize = 11;

use common::init;

/// Both formula-weight networks, written once per test binary run (its own folder).
fn package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        common::formula_package("pipeline-e2e-package", &["landmark_generator", "renderer"])
    })
}

/// One frame as an appsink saw it: timestamps, tightly packed BGRx bytes, and for a synced frame
/// the region the renderer may touch (`x0..x1`, `y0..y1`) and the crop box (same layout).
struct Frame {
    pts: Option<gst::ClockTime>,
    duration: Option<gst::ClockTime>,
    width: usize,
    height: usize,
    bgrx: Vec<u8>,
    synced: Option<([usize; 4], [usize; 4])>,
}

fn frame(sample: &gst::Sample) -> Frame {
    let caps = sample.caps().expect("sample caps");
    let info = gst_video::VideoInfo::from_caps(caps).expect("video caps");
    assert_eq!(info.format(), gst_video::VideoFormat::Bgrx);
    let buffer = sample.buffer().expect("sample buffer");
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = vf.plane_stride()[0] as usize;
    let data = vf.plane_data(0).unwrap();
    let mut bgrx = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        bgrx.extend_from_slice(&data[y * stride..y * stride + w * 4]);
    }
    let synced = buffer
        .meta::<LandmarkMeta>()
        .and_then(|m| match m.status() {
            FrameStatus::Synced(face) => {
                let b = face.face.crop_box;
                let (mut x0, mut y0, mut x1, mut y1) = (b.x1, b.y1, b.x2, b.y2);
                for &i in PASTE_CONTOUR.iter() {
                    let [x, y] = face.face.points_px[i];
                    let (x, y) = (x.max(0.0) as usize, y.max(0.0) as usize);
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
                let reach = [
                    x0.saturating_sub(REACH),
                    y0.saturating_sub(REACH),
                    x1 + REACH,
                    y1 + REACH,
                ];
                Some((reach, [b.x1, b.y1, b.x2, b.y2]))
            }
            _ => None,
        });
    Frame {
        pts: buffer.pts(),
        duration: buffer.duration(),
        width: w,
        height: h,
        bgrx,
        synced,
    }
}

/// Collects every sample of the appsink `name` (copied out, so that no pool buffer is held).
fn collect(pipeline: &gst::Bin, name: &str) -> Arc<Mutex<Vec<Frame>>> {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = pipeline
        .by_name(name)
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let out = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                out.lock().unwrap().push(frame(&sample));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    frames
}

/// Ends the stream leaving `queue` at [`AUDIO_CUT`]: an EOS goes downstream in place of the first
/// later buffer, and the later buffers are dropped. (The real EOS is let through: the pad, at EOS
/// already, refuses it; dropping it in the probe trips a GStreamer 1.22 critical.)
fn cut_audio(queue: &gst::Element) {
    let ended = AtomicBool::new(false);
    queue
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let past = |b: &gst::Buffer| b.pts().is_some_and(|t| t >= AUDIO_CUT);
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) if ended.load(Relaxed) || past(b) => {
                    if !ended.swap(true, Relaxed) {
                        pad.push_event(gst::event::Eos::new());
                    }
                    gst::PadProbeReturn::Drop
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
}

/// Runs `pipeline` to EOS (panicking on an error or after `limit`).
fn run_to_eos(pipeline: &gst::Pipeline, limit: Duration) {
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = pipeline.set_state(gst::State::Null);
            panic!("pipeline did not reach EOS in {limit:?}");
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                let _ = pipeline.set_state(gst::State::Null);
                panic!(
                    "pipeline error from {:?}: {} ({:?})",
                    e.src().map(|s| s.path_string()),
                    e.error(),
                    e.debug()
                );
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// Decodes `file` with `uridecodebin`: (video frames, audio buffers).
fn decode_counts(file: &Path) -> (usize, usize) {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("uridecodebin")
        .property(
            "uri",
            gst::glib::filename_to_uri(file, None).unwrap().as_str(),
        )
        .build()
        .unwrap();
    pipeline.add(&src).unwrap();
    let counts = Arc::new(Mutex::new((0usize, 0usize)));
    let bin = pipeline.clone();
    let c = counts.clone();
    src.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let name = caps.structure(0).unwrap().name().to_string();
        let video = name.starts_with("video/");
        assert!(
            video || name.starts_with("audio/"),
            "unexpected stream {name}"
        );
        let queue = gst::ElementFactory::make("queue").build().unwrap();
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .unwrap();
        bin.add_many([&queue, &sink]).unwrap();
        queue.link(&sink).unwrap();
        let c = c.clone();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let mut c = c.lock().unwrap();
                if video {
                    c.0 += 1;
                } else {
                    c.1 += 1;
                }
                gst::PadProbeReturn::Ok
            });
        queue.sync_state_with_parent().unwrap();
        sink.sync_state_with_parent().unwrap();
        pad.link(&queue.static_pad("sink").unwrap()).unwrap();
    });
    run_to_eos(&pipeline, Duration::from_secs(60));
    *counts.lock().unwrap()
}

#[test]
fn mp4_in_lip_synced_mp4_out() {
    init();
    let video = iplap::require_shared!("media/129.mp4");
    let audio = iplap::require_shared!("media/audio2.wav");
    let pkg = package();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-e2e.mp4");
    let _ = std::fs::remove_file(&out);
    let (pkg, video, audio) = (pkg.display(), video.display(), audio.display());
    let unbounded = "max-size-buffers=0 max-size-bytes=0 max-size-time=0";
    let description = format!(
        "iplaplandmarks name=lm models={pkg} reference-location={video} \
           ! iplaprender models={pkg} references=2 ! tee name=t \
         t. ! queue {unbounded} ! videoconvert ! video/x-raw,format=I420 ! x264enc bframes=0 \
           ! mp4mux name=mux ! filesink location={out} \
         t. ! queue {unbounded} ! appsink name=rendered sync=false max-buffers=0 \
         filesrc location={video} ! decodebin ! identity eos-after={EOS_AFTER} ! videoconvert \
           ! video/x-raw,format=BGRx ! tee name=v \
         v. ! queue {unbounded} ! lm.video_sink \
         v. ! queue {unbounded} ! appsink name=original sync=false max-buffers=0 \
         filesrc location={audio} ! wavparse ! tee name=a \
         a. ! queue {unbounded} ! audioconvert ! audioresample \
           ! audio/x-raw,rate=16000,channels=1,format=F32LE ! lm.audio_sink \
         a. ! queue name=muxed_audio {unbounded} ! audioconvert ! avenc_aac ! mux.",
        out = out.display()
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    cut_audio(&pipeline.by_name("muxed_audio").unwrap());
    let original = collect(pipeline.upcast_ref(), "original");
    let rendered = collect(pipeline.upcast_ref(), "rendered");
    let start = Instant::now();
    run_to_eos(&pipeline, Duration::from_secs(300));
    let elapsed = start.elapsed();
    let original = std::mem::take(&mut *original.lock().unwrap());
    let rendered = std::mem::take(&mut *rendered.lock().unwrap());
    eprintln!(
        "{} frames in {elapsed:.1?}: {:.2?} per frame",
        rendered.len(),
        elapsed / rendered.len().max(1) as u32
    );

    // Frame count and timestamps.
    assert!(
        original.len() >= EOS_AFTER,
        "identity eos-after={EOS_AFTER}: only {} frames",
        original.len()
    );
    assert_eq!(
        rendered.len(),
        original.len(),
        "one rendered frame per input frame"
    );
    for (i, (o, r)) in original.iter().zip(&rendered).enumerate() {
        assert!(o.pts.is_some(), "frame {i}: no PTS");
        assert_eq!((r.pts, r.duration), (o.pts, o.duration), "frame {i}");
        assert_eq!((r.width, r.height), (o.width, o.height), "frame {i}");
    }

    // Pixels outside the face region unchanged; something drawn inside the box.
    let (mut synced, mut changed_frames) = (0, 0);
    for (i, (o, r)) in original.iter().zip(&rendered).enumerate() {
        let Some((reach, b)) = r.synced else {
            assert_eq!(r.bgrx, o.bgrx, "frame {i}: not synced, must pass through");
            continue;
        };
        synced += 1;
        let (mut inside, mut outside) = (0usize, 0usize);
        for y in 0..o.height {
            for x in 0..o.width {
                let p = (y * o.width + x) * 4;
                if r.bgrx[p..p + 3] == o.bgrx[p..p + 3] {
                    continue;
                }
                if (b[0]..b[2]).contains(&x) && (b[1]..b[3]).contains(&y) {
                    inside += 1;
                } else if (reach[0]..reach[2]).contains(&x) && (reach[1]..reach[3]).contains(&y) {
                    outside += 1;
                } else {
                    panic!("frame {i}: ({x}, {y}) changed outside {reach:?} (box {b:?})");
                }
            }
        }
        eprintln!(
            "frame {i}: {inside} pixels changed in box {b:?}, {outside} in the margin {reach:?}"
        );
        if inside > 0 {
            changed_frames += 1;
        }
    }
    eprintln!("{synced} of {} frames synced", rendered.len());
    assert!(synced > 0, "a fixed reference bank: frames must be synced");
    assert!(changed_frames > 0, "no synced frame changed inside its box");

    // A playable MP4 with the same number of video frames and an audio stream.
    assert!(
        std::fs::metadata(&out).unwrap().len() > 0,
        "{out:?} is empty"
    );
    let (video_frames, audio_buffers) = decode_counts(&out);
    eprintln!("{out:?}: {video_frames} video frames, {audio_buffers} audio buffers");
    assert_eq!(video_frames, rendered.len(), "decoded video frames");
    assert!(audio_buffers > 0, "no audio in {out:?}");
}
