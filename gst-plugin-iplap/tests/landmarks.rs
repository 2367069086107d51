//! `iplaplandmarks` through `gst_check::Harness`: one harness per pad of the same element
//! (video_sink, audio_sink, src), the two inputs pushed from their own threads so that the
//! aggregator's back-pressure decides the interleaving, as in a pipeline.

use std::path::PathBuf;
use std::sync::{Once, OnceLock};
use std::thread;
use std::time::Duration;

use gst::prelude::*;
use gst_check::Harness;
use gstiplap::meta::LandmarkMeta;
use iplap::engine::landmarks::FrameStatus;
use ndarray::Array4;

const FRAME: gst::ClockTime = gst::ClockTime::from_mseconds(40);
const AUDIO_CHUNK: gst::ClockTime = gst::ClockTime::from_mseconds(100);
const RATE: usize = 16_000;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstiplap::plugin_register_static().expect("static registration of the iplap plugin");
    });
}

/// A model package with the formula-weight landmark generator (written once per test run).
fn package() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("iplap-landmarks-pkg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        iplap::graph::package::write_package(
            &dir,
            &[("landmark_generator", &iplap::weights::FormulaWeights::new())],
            &[],
        )
        .expect("formula-weight package");
        dir
    })
    .clone()
}

fn element() -> gst::Element {
    gst::ElementFactory::make("iplaplandmarks")
        .property("models", package().to_str().unwrap())
        .property("enroll-duration", 0.2f64)
        .build()
        .unwrap()
}

/// The three harnesses: video in, audio in, output.
struct Pads {
    video: Harness,
    audio: Harness,
    out: Harness,
}

fn pads(e: &gst::Element, width: u32, height: u32) -> Pads {
    let mut out = Harness::with_element(e, None, Some("src"));
    let mut video = Harness::with_element(e, Some("video_sink"), None);
    let mut audio = Harness::with_element(e, Some("audio_sink"), None);
    video.set_src_caps(video_caps(width, height));
    audio.set_src_caps(audio_caps(16_000));
    out.play();
    video.play();
    audio.play();
    Pads { video, audio, out }
}

fn video_caps(width: u32, height: u32) -> gst::Caps {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap()
        .to_caps()
        .unwrap()
}

fn audio_caps(rate: u32) -> gst::Caps {
    gst_audio::AudioInfo::builder(gst_audio::AudioFormat::S16le, rate, 1)
        .build()
        .unwrap()
        .to_caps()
        .unwrap()
}

fn stamped(data: Vec<u8>, pts: gst::ClockTime, duration: gst::ClockTime) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(data);
    let r = b.get_mut().unwrap();
    r.set_pts(pts);
    r.set_duration(duration);
    b
}

/// `n` chunks of 100 ms of a 220 Hz tone, S16LE.
fn audio_buffers(n: u64) -> Vec<gst::Buffer> {
    let len = RATE / 10;
    (0..n)
        .map(|c| {
            let data = (0..len)
                .flat_map(|i| {
                    let t = (c as usize * len + i) as f32 / RATE as f32;
                    let v = (8000.0 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()) as i16;
                    v.to_le_bytes()
                })
                .collect();
            stamped(data, c * AUDIO_CHUNK, AUDIO_CHUNK)
        })
        .collect()
}

/// RGB frames of the golden facemesh clip (129.mp4).
fn golden_frames(n: usize) -> Option<(Vec<Vec<u8>>, u32, u32)> {
    let path = iplap::testdata::shared_path("golden/public/facemesh/129/frames_rgb_u8.npy")?;
    let frames: Array4<u8> = ndarray_npy::read_npy(path).unwrap();
    let (_, h, w, _) = frames.dim();
    let data = frames.as_slice().unwrap();
    let frames = (0..n)
        .map(|f| data[f * h * w * 3..(f + 1) * h * w * 3].to_vec())
        .collect();
    Some((frames, w as u32, h as u32))
}

/// Vertical colour bars (no face).
fn bars(width: u32, height: u32) -> Vec<u8> {
    const COLOURS: [[u8; 3]; 4] = [[255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255]];
    (0..height)
        .flat_map(|_| (0..width).flat_map(|x| COLOURS[(x * 4 / width) as usize]))
        .collect()
}

fn video_buffers(frames: Vec<Vec<u8>>) -> Vec<gst::Buffer> {
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| stamped(f, i as u64 * FRAME, FRAME))
        .collect()
}

/// Pushes `buffers` then EOS from a thread, after `delay`.
fn feed(mut h: Harness, buffers: Vec<gst::Buffer>, delay: Duration) -> thread::JoinHandle<Harness> {
    thread::spawn(move || {
        thread::sleep(delay);
        for b in buffers {
            match h.push(b) {
                Ok(_) => {}
                // The element may end before this input does (video EOS, all frames out).
                Err(gst::FlowError::Eos) => return h,
                Err(e) => panic!("push failed: {e:?}"),
            }
        }
        h.push_event(gst::event::Eos::new());
        h
    })
}

/// Pulls `n` buffers, then expects EOS among the remaining events.
fn pull_all(out: &mut Harness, n: usize) -> Vec<gst::Buffer> {
    let bufs: Vec<_> = (0..n)
        .map(|_| out.pull().expect("an output frame"))
        .collect();
    let mut saw_eos = false;
    while let Ok(ev) = out.pull_event() {
        if ev.type_() == gst::EventType::Eos {
            saw_eos = true;
            break;
        }
    }
    assert!(saw_eos, "EOS after the last frame");
    bufs
}

fn status(b: &gst::Buffer) -> FrameStatus {
    b.meta::<LandmarkMeta>()
        .expect("every output frame carries LandmarkMeta")
        .status()
        .clone()
}

/// The content points of each synced frame, `None` for the others.
fn run_golden(
    e: &gst::Element,
    audio_delay: Duration,
    video_delay: Duration,
) -> Option<Vec<Option<Vec<f32>>>> {
    const N: usize = 12;
    let (frames, w, h) = golden_frames(N)?;
    let enrolling = e.property::<Option<String>>("reference-bank").is_none()
        && e.property::<Option<String>>("reference-location").is_none();
    let p = pads(e, w, h);
    let mut out = p.out;
    let v = feed(p.video, video_buffers(frames), video_delay);
    // 1.2 s of audio: past the last frame's window (0.44 s + 0.2125 s).
    let a = feed(p.audio, audio_buffers(12), audio_delay);
    let bufs = pull_all(&mut out, N);
    v.join().unwrap();
    a.join().unwrap();
    let mut result = Vec::new();
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(b.pts(), Some(i as u64 * FRAME), "frames leave in order");
        assert_eq!(b.duration(), Some(FRAME));
        let roi = b
            .meta::<gst_video::VideoRegionOfInterestMeta>()
            .expect("ROI mirror on face frames");
        assert_eq!(roi.roi_type(), "face");
        let params = roi.param("landmarks").expect("landmarks parameter");
        let points = params.get::<gst::Array>("points").unwrap();
        assert_eq!(points.len(), 478 * 2);
        match status(b) {
            // (owned: the meta borrow ends here)
            FrameStatus::NoFace => panic!("frame {i} of 129.mp4 has a face"),
            FrameStatus::Enrolling(face) => {
                // Enrolment lasts 0.2 s = 5 frames; the 5th completes it.
                assert!(enrolling && i < 4, "frame {i} still enrolling");
                assert_eq!(face.frame_size, (w as usize, h as usize));
                assert_eq!(params.get::<&str>("status").unwrap(), "enrolling");
                result.push(None);
            }
            FrameStatus::Synced(s) => {
                assert!(
                    !enrolling || i >= 4,
                    "frame {i} synced before the bank is ready"
                );
                assert_eq!(s.mel_chunk.len(), 80 * 16);
                assert_eq!(s.face.points_px.len(), 478);
                let content: Vec<f32> = s.content.iter().flatten().copied().collect();
                assert!(content.iter().all(|v| v.is_finite()));
                assert_eq!(params.get::<gst::Array>("content").unwrap().len(), 2 * 57);
                result.push(Some(content));
            }
        }
    }
    Some(result)
}

#[test]
fn golden_frames_get_landmarks_whatever_the_arrival_order() {
    init();
    let bank = std::env::temp_dir().join(format!("iplap-landmarks-bank-{}", std::process::id()));
    let e = element();
    e.set_property("reference-bank-save", bank.to_str().unwrap());
    // Audio ahead: all audio (and its EOS) before the first frame.
    let Some(ahead) = run_golden(&e, Duration::ZERO, Duration::from_millis(300)) else {
        return;
    };
    assert_eq!(ahead.iter().filter(|c| c.is_some()).count(), 8);
    // Audio behind: every frame (and the video EOS) arrives before any audio.
    let behind = run_golden(&element(), Duration::from_millis(500), Duration::ZERO).unwrap();
    assert_eq!(
        ahead, behind,
        "results depend on timestamps, not arrival order"
    );

    // The enrolled bank was saved; loaded back, every frame is synced from the start, and the
    // frames after the enrolment get the same landmarks.
    let e = element();
    e.set_property("reference-bank", bank.to_str().unwrap());
    let loaded = run_golden(&e, Duration::ZERO, Duration::ZERO).unwrap();
    assert!(loaded.iter().all(|c| c.is_some()));
    assert_eq!(loaded[4..], ahead[4..]);
    let _ = std::fs::remove_file(bank);
}

#[test]
fn latency_is_lookahead_plus_processing_budget() {
    init();
    let e = element();
    e.set_property("processing-latency", 50u32);
    let mut p = pads(&e, 64, 48);
    p.video.set_upstream_latency(10.mseconds());
    p.audio.set_upstream_latency(10.mseconds());
    // 212.5 ms audio look-ahead + 50 ms budget + 10 ms upstream.
    assert_eq!(
        p.out.query_latency(),
        Some(gst::ClockTime::from_nseconds(272_500_000))
    );
    e.set_property("processing-latency", 0u32);
    assert_eq!(
        p.out.query_latency(),
        Some(gst::ClockTime::from_nseconds(222_500_000))
    );
}

#[test]
fn colour_bars_pass_through_with_no_face_meta_after_audio_eos() {
    init();
    let (w, h) = (96, 64);
    let e = element();
    let mut p = pads(&e, w, h);
    // Audio ends at once; video goes on alone.
    assert!(p.audio.push_event(gst::event::Eos::new()));
    let frames = vec![bars(w, h); 4];
    let v = feed(p.video, video_buffers(frames), Duration::ZERO);
    let bufs = pull_all(&mut p.out, 4);
    v.join().unwrap();
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(b.pts(), Some(i as u64 * FRAME));
        assert!(matches!(status(b), FrameStatus::NoFace));
        assert!(b.meta::<gst_video::VideoRegionOfInterestMeta>().is_none());
        assert_eq!(
            &*b.map_readable().unwrap(),
            &bars(w, h)[..],
            "pixels unchanged"
        );
    }
}

#[test]
fn flush_resets_the_stream_and_caps_change_is_passed_on() {
    init();
    let (w, h) = (64, 48);
    let e = element();
    let mut p = pads(&e, w, h);
    assert!(p.audio.push_event(gst::event::Eos::new()));
    for b in video_buffers(vec![bars(w, h); 3]) {
        assert_eq!(p.video.push(b), Ok(gst::FlowSuccess::Ok));
    }
    for i in 0..3 {
        assert_eq!(p.out.pull().unwrap().pts(), Some(i * FRAME));
    }
    // A flushing seek: timestamps start again at 0, which the engine accepts only after a reset.
    // Both pads see the same flush (one seqnum), as from a seek.
    let seqnum = gst::Seqnum::next();
    let start = || gst::event::FlushStart::builder().seqnum(seqnum).build();
    let stop = || gst::event::FlushStop::builder(true).seqnum(seqnum).build();
    assert!(p.video.push_event(start()));
    assert!(p.audio.push_event(start()));
    assert!(p.video.push_event(stop()));
    assert!(p.audio.push_event(stop()));
    p.video.set_src_caps(video_caps(w * 2, h * 2));
    p.audio.set_src_caps(audio_caps(16_000));
    assert!(p.audio.push_event(gst::event::Eos::new()));
    for b in video_buffers(vec![bars(w * 2, h * 2); 2]) {
        assert_eq!(p.video.push(b), Ok(gst::FlowSuccess::Ok));
    }
    for i in 0..2 {
        let b = p.out.pull().unwrap();
        assert_eq!(b.pts(), Some(i * FRAME));
        assert!(matches!(status(&b), FrameStatus::NoFace));
    }
    let caps = p.out.sinkpad().unwrap().current_caps().unwrap();
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((info.width(), info.height()), (w * 2, h * 2));
}

#[test]
fn audio_at_the_wrong_rate_is_refused() {
    init();
    let e = element();
    let mut p = pads(&e, 64, 48);
    p.audio
        .push_event(gst::event::Caps::new(&audio_caps(44_100)));
    let b = audio_buffers(1).remove(0);
    assert_eq!(p.audio.push(b), Err(gst::FlowError::NotNegotiated));
}

fn start_error(e: &gst::Element) -> String {
    let pipeline = gst::Pipeline::new();
    pipeline.add(e).unwrap();
    assert!(pipeline.set_state(gst::State::Paused).is_err());
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message");
    let _ = pipeline.set_state(gst::State::Null);
    match msg.view() {
        gst::MessageView::Error(err) => err.error().to_string(),
        _ => unreachable!(),
    }
}

#[test]
fn missing_or_bad_models_fail_at_state_change() {
    init();
    let e = gst::ElementFactory::make("iplaplandmarks").build().unwrap();
    let err = start_error(&e);
    assert!(err.contains("`models`"), "{err}");

    let e = element();
    e.set_property("models", "/nonexistent/iplap-package");
    assert!(start_error(&e).contains("/nonexistent/iplap-package"));

    let e = element();
    e.set_property("face-models", "/nonexistent/face");
    let err = start_error(&e);
    assert!(err.contains("face-models"), "{err}");

    let e = element();
    e.set_property_from_str("device", "cuda");
    let err = start_error(&e);
    // Names the device and the missing piece (here: no GPU build of ONNX Runtime, or no driver).
    assert!(err.contains("device=cuda cannot run here"), "{err}");
    assert!(
        err.contains("CPU-only build") || err.contains("NVIDIA driver"),
        "{err}"
    );
}

#[test]
fn reference_location_builds_the_bank_at_start() {
    init();
    let video = iplap::require_shared!("media/129.mp4");
    let e = element();
    e.set_property("reference-location", video.to_str().unwrap());
    let Some(synced) = run_golden(&e, Duration::ZERO, Duration::ZERO) else {
        return;
    };
    assert!(
        synced.iter().all(|c| c.is_some()),
        "a fixed bank: synced from frame 0"
    );
}

#[test]
fn unlinked_audio_sink_is_treated_as_silence() {
    init();
    let (w, h) = (64, 48);
    let e = element();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    // No harness on audio_sink: it has no peer, and would never get data nor EOS.
    let mut out = Harness::with_element(&e, None, Some("src"));
    let mut video = Harness::with_element(&e, Some("video_sink"), None);
    video.set_src_caps(video_caps(w, h));
    out.play();
    video.play();
    let v = feed(video, video_buffers(vec![bars(w, h); 3]), Duration::ZERO);
    let bufs = pull_all(&mut out, 3);
    v.join().unwrap();
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(b.pts(), Some(i as u64 * FRAME));
    }
    // (Other warnings may come first: device=auto on a machine with a GPU runtime and no GPU.)
    let warning = std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .find(|w| w.contains("audio_sink is not linked"));
    assert!(warning.is_some(), "a warning says the audio is missing");
}

#[test]
fn factory_metadata_pads_and_property_blurbs() {
    init();
    let factory = gst::ElementFactory::find("iplaplandmarks").expect("registered");
    for key in [
        gst::ELEMENT_METADATA_LONGNAME,
        gst::ELEMENT_METADATA_DESCRIPTION,
        gst::ELEMENT_METADATA_KLASS,
        gst::ELEMENT_METADATA_AUTHOR,
    ] {
        let v = factory.metadata(key).unwrap_or_default();
        assert!(!v.trim().is_empty(), "metadata {key} is empty");
    }
    let templates: Vec<_> = factory
        .static_pad_templates()
        .iter()
        .map(|t| (t.name_template().to_string(), t.direction()))
        .collect();
    for (name, dir) in [
        ("video_sink", gst::PadDirection::Sink),
        ("audio_sink", gst::PadDirection::Sink),
        ("src", gst::PadDirection::Src),
        ("audio_src", gst::PadDirection::Src),
    ] {
        assert!(
            templates.iter().any(|(n, d)| n == name && *d == dir),
            "pad template {name} in {templates:?}"
        );
    }
    let e = factory.create().build().unwrap();
    for p in e.list_properties() {
        let blurb = p.blurb().unwrap_or_default();
        assert!(
            !blurb.trim().is_empty(),
            "property {} has no blurb",
            p.name()
        );
    }
    // The element's own properties are listed too (not only the inherited ones).
    assert!(e.find_property("reference-location").is_some());
    assert!(e.find_property("audio-stall-timeout").is_some());
    assert!(
        e.static_pad("audio_src").is_some(),
        "audio_src is an always pad"
    );
}
