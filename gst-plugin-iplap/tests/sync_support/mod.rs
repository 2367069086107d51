//! Helpers shared by the `iplap sync` tests (`cli_sync.rs`, `cli_sync_inputs.rs`): the
//! formula-weight package, the face models, the heavy-run lock, the command line, test media
//! written with GStreamer, a re-demux of the output, and running a process under a deadline so
//! that a hang fails the test instead of stalling the whole run.
//! (Each test binary compiles this module; not every binary uses every helper.)
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstiplap::decode::{RgbFrame, VideoDecoder};

use crate::common::{self, init};

/// Reference images for the renderer in the timeline tests.
pub const REFERENCES: usize = 5;
pub const THREADS: usize = 2;
/// The longest any one `iplap sync` of these tests may take: the slowest (the whole 129.mp4
/// tracked, then interrupted) needs well under a minute alone; the rest is headroom for a loaded
/// two-core machine. Past it the process is killed and the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// One heavy run at a time: the machine has two cores and each run uses both.
pub fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Both networks with the formula weights, written once per test binary run.
pub fn package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        common::formula_package("cli-sync-package", &["landmark_generator", "renderer"])
    })
}

pub fn face_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/generated/face")
}

/// The converted face models come from scripts/setup.sh; without them nothing here can run.
pub fn face_models_ready() -> bool {
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
pub fn media() -> Option<(PathBuf, PathBuf, MutexGuard<'static, ()>)> {
    let video = iplap::testdata::shared_path("media/129.mp4")?;
    let wav = iplap::testdata::shared_path("media/audio2.wav")?;
    if !face_models_ready() {
        return None;
    }
    Some((video, wav, heavy()))
}

/// A fresh folder for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iplap-cli-sync-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `iplap sync` with the test package, the face models and [`REFERENCES`] references.
pub fn sync_command(face: &Path, audio: &Path, out: &Path, extra: &[&OsStr]) -> Command {
    sync_command_with(face, audio, out, package(), REFERENCES, extra)
}

pub fn sync_command_with(
    face: &Path,
    audio: &Path,
    out: &Path,
    models: &Path,
    references: usize,
    extra: &[&OsStr],
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
        .args(["--references", &references.to_string()])
        .args(["--threads", &THREADS.to_string()])
        .args(extra);
    cmd
}

/// Waits for `child` until `limit`; past it the child is killed and `None` returned.
pub fn wait_until(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Like [`Command::output`], but a process still running after `limit` is killed and the test
/// fails with what it printed so far.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Read both pipes while waiting: a child blocked on a full pipe would look like a hang.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = wait_until(&mut child, limit);
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!(
            "{cmd:?} still running after {limit:?}: killed (a hang). Its stderr:\n{}",
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs a GStreamer pipeline to EOS, panicking on an error.
pub fn run_to_eos(pipeline: &gst::Pipeline) {
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    // To NULL before any panic: a pipeline dropped in PLAYING aborts the test binary.
    let _ = pipeline.set_state(gst::State::Null);
    let msg = msg.expect("pipeline timed out");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("pipeline error: {} ({:?})", e.error(), e.debug());
    }
}

/// Runs the `gst-launch` style `description` (a writer ending in a filesink) to EOS.
pub fn launch_to_eos(description: &str) {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    run_to_eos(&pipeline);
}

/// Every decoded frame of `path`.
pub fn decode_frames(path: &Path) -> Vec<RgbFrame> {
    let mut decoder = VideoDecoder::open(path).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = decoder.next_frame().unwrap() {
        frames.push(f);
    }
    frames
}

/// A 16 kHz mono 16-bit WAV of `samples`.
pub fn write_wav(path: &Path, samples: impl IntoIterator<Item = i16>) {
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
pub fn write_tone_wav(path: &Path) {
    write_wav(path, (0..8000).map(|i| ((i % 50) * 100) as i16));
}

/// The first `seconds` of a WAV file, same format.
pub fn cut_wav(src: &Path, seconds: f64, out: &Path) {
    let mut reader = hound::WavReader::open(src).unwrap();
    let spec = reader.spec();
    let keep = (seconds * spec.sample_rate as f64) as usize * spec.channels as usize;
    let mut writer = hound::WavWriter::create(out, spec).unwrap();
    for s in reader.samples::<i16>().take(keep) {
        writer.write_sample(s.unwrap()).unwrap();
    }
    writer.finalize().unwrap();
}

/// Writes `frames` as an H.264 MP4 with their own timestamps (a cut of a video).
pub fn write_mp4(frames: &[RgbFrame], path: &Path) {
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
pub fn write_png(frame: &RgbFrame, path: &Path) {
    write_png_scaled(frame, frame.width, frame.height, path);
}

/// Writes one frame as a PNG image scaled to `out_w x out_h`.
pub fn write_png_scaled(frame: &RgbFrame, out_w: usize, out_h: usize, path: &Path) {
    init();
    let (w, h) = (frame.width, frame.height);
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},\
         framerate=0/1 ! videoscale ! video/x-raw,width={out_w},height={out_h} ! videoconvert ! \
         pngenc snapshot=true ! filesink location={}",
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

/// `frame` cut or padded to `w x h` (padding: black), from its top left corner.
pub fn resize_canvas(frame: &RgbFrame, w: usize, h: usize) -> RgbFrame {
    let mut data = vec![0u8; w * h * 3];
    let (cw, ch) = (w.min(frame.width), h.min(frame.height));
    for y in 0..ch {
        let src = &frame.data[y * frame.width * 3..][..cw * 3];
        data[y * w * 3..][..cw * 3].copy_from_slice(src);
    }
    RgbFrame {
        pts: None,
        width: w,
        height: h,
        data,
    }
}

/// What a re-demux of the output MP4 shows.
#[derive(Debug, Clone)]
pub struct Probe {
    pub video_frames: usize,
    /// End of the last video frame (PTS + duration).
    pub video_end: Option<gst::ClockTime>,
    /// Decoded video caps.
    pub caps: Option<gst::Caps>,
    pub audio_end: Option<gst::ClockTime>,
    /// Decoded audio caps.
    pub audio_caps: Option<gst::Caps>,
}

/// Decodes `path` completely (video to RGB, audio raw) and records what came out.
pub fn probe_mp4(path: &Path) -> Probe {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("uridecodebin")
        .property("uri", common::file_uri(path).as_str())
        .build()
        .unwrap();
    pipeline.add(&src).unwrap();
    let probe = Arc::new(Mutex::new(Probe {
        video_frames: 0,
        video_end: None,
        caps: None,
        audio_end: None,
        audio_caps: None,
    }));
    let bin = pipeline.downgrade();
    let p = probe.clone();
    src.connect_pad_added(move |_, pad| {
        let Some(bin) = bin.upgrade() else {
            return;
        };
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
                    p.audio_caps = pad.current_caps();
                }
                gst::PadProbeReturn::Ok
            });
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
    });
    run_to_eos(&pipeline);
    probe.lock().unwrap().clone()
}

/// The caps `qtdemux` gives each stream of an MP4: what the container itself declares (e.g. the
/// audio sample rate of the MP4 sample entry, before any parser or decoder corrects it).
pub fn demuxed_caps(path: &Path) -> Vec<gst::Caps> {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let demux = gst::ElementFactory::make("qtdemux").build().unwrap();
    pipeline.add_many([&src, &demux]).unwrap();
    src.link(&demux).unwrap();
    let caps = Arc::new(Mutex::new(Vec::new()));
    let bin = pipeline.downgrade();
    let found = caps.clone();
    demux.connect_pad_added(move |_, pad| {
        let Some(bin) = bin.upgrade() else {
            return;
        };
        found.lock().unwrap().extend(pad.current_caps());
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .unwrap();
        bin.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
    });
    run_to_eos(&pipeline);
    caps.lock().unwrap().clone()
}

/// Waits (up to [`RUN_LIMIT`]) until `ready()` holds while `child` runs, sends it `signal` and
/// waits (again up to [`RUN_LIMIT`]) for its exit status. A child that exits first, or is not
/// ready in time, fails the test (and is killed).
pub fn signal_when(child: &mut Child, signal: libc::c_int, ready: impl Fn() -> bool) -> ExitStatus {
    let deadline = Instant::now() + RUN_LIMIT;
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the command ended ({status}) before the moment for signal {signal}");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("not ready for signal {signal} after {RUN_LIMIT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill() only sends a signal, to our own child (not yet waited for, so its PID is
    // still ours).
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({}, {signal})", child.id());
    wait_until(child, RUN_LIMIT)
        .unwrap_or_else(|| panic!("still running {RUN_LIMIT:?} after signal {signal}: killed"))
}

/// Whether `dir` exists and holds anything.
pub fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Runs `iplap sync` expecting failure; returns stderr. The failure must be a clean exit 1 with
/// no GStreamer or GLib critical on the way (they abort under `G_DEBUG=fatal-criticals`), and
/// no output or temporary file may remain.
pub fn sync_fails(face: &Path, audio: &Path, out: &Path, models: Option<&Path>) -> String {
    let models = models.unwrap_or(package());
    let mut cmd = sync_command_with(face, audio, out, models, REFERENCES, &[]);
    let err = failure_stderr(cmd.env("G_DEBUG", "fatal-criticals"));
    assert!(!out.is_file(), "{} must not exist", out.display());
    if let Some(dir) = out.parent().filter(|d| d.is_dir()) {
        for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".partial"), "left behind: {name}");
        }
    }
    err
}

/// Runs `cmd` expecting exit status 1 without any critical warning; returns stderr.
pub fn failure_stderr(cmd: &mut Command) -> String {
    let run = output_within(cmd, RUN_LIMIT);
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    eprintln!("{err}");
    assert_eq!(run.status.code(), Some(1), "{cmd:?} should fail cleanly");
    assert!(!err.contains("CRITICAL"), "criticals on the way out: {err}");
    err
}
