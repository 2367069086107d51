//! The GStreamer pipeline of `iplap sync` and its run loop:
//!
//! ```text
//! appsrc (template frames in ping-pong order, 25 fps, RGB) ─▶ iplaplandmarks ─▶ iplaprender ─▶
//! appsrc (speech, 16 kHz mono F32) ─────────────────────────▶ ┘ (audio_sink)
//!   ─▶ videorate ─▶ queue ─▶ videobox (pad to even) ─▶ videoconvert ─▶ I420 ─▶ x264enc ─▶ mp4mux
//!   ─▶ filesink (temporary name)
//! uridecodebin (speech file) ─▶ audioconvert ─▶ audioresample ─▶ MP4 rates ─▶ avenc_aac ─▶ queue
//!   ─▶ ┘
//! ```
//!
//! The official timeline (spec §1.6) is made at the edges of the two elements: fed frame `k` is
//! template frame `seq[k]` at `k · 40 ms`, `L + 2` of them so that the last windows reach the
//! frames they officially read; a probe after `iplaplandmarks` drops all but output frames
//! `2 .. L-1`, so only those are rendered; and `videorate` fills the start of the segment with
//! its first buffer, i.e. writes rendered frame 2 also at 0 and 40 ms, which is the official
//! "first result written three times". The muxed audio is the whole speech file with its own
//! channels, not trimmed (spec §1.9), at its own rate unless MP4 cannot declare it
//! ([`MP4_AAC_RATES`]).
//!
//! `iplaplandmarks` and `iplaprender` share one streaming thread (no queue between them), so
//! probes on `iplaprender`'s pads split that thread's time exactly into landmark work (tracking,
//! generator) and rendering; the encoder runs on its own thread behind a queue.

use super::frames::{FrameStore, StoredFrame};
use gstiplap::render::stats::{STATS_FIELDS, STATS_MESSAGE};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gst::prelude::*;
use gst_video::prelude::*;
use indicatif::ProgressBar;

use super::feed::{spawn_audio_feeder, spawn_video_feeder, video_info};
use super::output::PartialOutput;
use super::signals::{Interrupted, interrupted};
use super::timeline::{FRAME_NS, Plan};
use gstiplap::decode::{file_uri, link_first_stream};

/// Video frames the appsrc may hold before `push` blocks (memory stays bounded for any length).
const QUEUED_FRAMES: u64 = 4;
/// Smallest width and height the output can have: x264enc refuses frames narrower or lower than
/// 16 pixels (its sink caps say 1, but 16x14 or 14x16 fail to negotiate; 16x16 encodes; measured
/// with GStreamer 1.22 / x264 164; 16x16 faces go through tracking and rendering). The face is
/// checked before any decoding work (a 15-pixel side would pass once padded to even, but the
/// rule the user reads stays "at least 16x16").
pub const MIN_SIDE: usize = 16;
/// AAC sample rates kept as they are in the MP4; anything else is resampled to the nearest of
/// them (audioresample fixates to the closest rate). AAC itself also has 96000, 88200 and 64000,
/// but the MP4 sample entry stores the rate as 16.16 fixed point: 96000 reads back as 30464 Hz
/// (`qtdemux`), and players differ on rates above 48 kHz anyway. Common rates (48000, 44100,
/// 32000, 22050, 16000, ...) pass through untouched, so ordinary speech is not resampled twice.
const MP4_AAC_RATES: [i32; 9] = [
    48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
];
/// x264 constant quality (CRF). The official ffmpeg call leaves libx264 at its default 23 (its
/// `-q:v 1` does not apply to H.264); 18 keeps the generated mouth detail visible.
const CRF: u32 = 18;

/// What the elements and the encoder are configured with.
pub struct Settings<'a> {
    pub models: &'a Path,
    pub face_models: &'a Path,
    pub threads: u32,
    /// Resolved once by the command (both elements get the same, concrete device).
    pub device: &'a iplap::runtime::DeviceConfig,
    pub references: u32,
    pub show_sketch: bool,
    /// The reference bank file for `iplaplandmarks` (`reference-bank`).
    pub bank_file: &'a Path,
    /// The speech file, muxed as it is.
    pub audio_file: &'a Path,
    pub dump_frames: Option<&'a Path>,
}

/// What the appsrcs push.
pub struct Inputs {
    pub plan: Plan,
    pub width: usize,
    pub height: usize,
    /// Packed RGB of the 25 fps template frames the output reaches.
    pub pixels: Vec<StoredFrame>,
    /// Where `pixels` are kept.
    pub store: Arc<FrameStore>,
    pub samples: Arc<Vec<f32>>,
}

/// Wall-clock time of the streaming part, per stage.
#[derive(Debug, Clone, Default)]
pub struct StreamTimes {
    /// From PLAYING to the first frame reaching the renderer: both elements load their models,
    /// and the first window waits for its audio and video.
    pub start: Duration,
    /// Landmark work between rendered frames (tracking, mel, landmark generator; also the
    /// hand-off of the previous frame to the encoder queue), summed.
    pub landmarks: Duration,
    /// `iplaprender` (sketches, renderer network, paste-back), summed.
    pub render: Duration,
    /// Frames that went through `iplaprender`.
    pub rendered: usize,
    /// `iplaprender`'s own split of [`Self::render`] (its `iplaprender-stats` messages), summed,
    /// in [`STATS_FIELDS`] order.
    pub render_steps: [Duration; STATS_FIELDS.len()],
    /// From the last rendered frame to the finished file (encoder and muxer drain).
    pub finish: Duration,
    /// Frames written (after `videorate`).
    pub written: usize,
    /// Everything from PLAYING to the end.
    pub total: Duration,
}

#[derive(Default)]
struct Clock {
    first_in: Option<Instant>,
    in_at: Option<Instant>,
    last_out: Option<Instant>,
    times: StreamTimes,
}

/// Builds the pipeline, runs it to the end and returns the stage times. The file is complete in
/// `output`'s temporary name when this returns `Ok`.
pub fn run(
    settings: &Settings,
    inputs: Inputs,
    output: &PartialOutput,
    progress: &ProgressBar,
) -> anyhow::Result<StreamTimes> {
    let p = Parts::build(settings, &inputs, output.temp_path())?;
    let clock = Arc::new(Mutex::new(Clock::default()));
    let dump_error = Arc::new(Mutex::new(None));
    p.add_probes(
        &inputs.plan,
        &clock,
        progress,
        settings.dump_frames,
        &dump_error,
    );

    let started = Instant::now();
    let mut render_steps = [Duration::ZERO; STATS_FIELDS.len()];
    let result = (|| {
        if let Err(e) = p.pipeline.set_state(gst::State::Playing) {
            // A failed state change posts its reason (e.g. a model that does not load) first.
            return Err(bus_error(&p.pipeline)
                .unwrap_or_else(|| anyhow::anyhow!("the pipeline cannot start: {e}")));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let feeders = [
            spawn_video_feeder(&p.video_src, p.video_info.clone(), &inputs, stop.clone()),
            spawn_audio_feeder(&p.audio_src, inputs.samples.clone(), stop.clone()),
        ];
        let outcome = watch_bus(&p.pipeline, output, progress, &mut render_steps);
        // Stopping flushes the appsrcs, which unblocks and ends the feeders.
        stop.store(true, Ordering::SeqCst);
        let _ = p.pipeline.set_state(gst::State::Null);
        for f in feeders {
            let _ = f.join();
        }
        outcome
    })();
    if result.is_err() {
        let _ = p.pipeline.set_state(gst::State::Null);
    }
    result?;
    if let Some(e) = dump_error.lock().unwrap().take() {
        bail!("--dump-frames: {e}");
    }
    let ended = Instant::now();
    let mut c = clock.lock().unwrap();
    let mut times = std::mem::take(&mut c.times);
    times.start = c.first_in.map_or(Duration::ZERO, |t| t - started);
    times.finish = c.last_out.map_or(Duration::ZERO, |t| ended - t);
    times.total = ended - started;
    times.render_steps = render_steps;
    Ok(times)
}

/// The elements the run loop and the probes need.
struct Parts {
    pipeline: gst::Pipeline,
    video_info: gst_video::VideoInfo,
    video_src: gst_app::AppSrc,
    audio_src: gst_app::AppSrc,
    landmarks: gst::Element,
    render: gst::Element,
    rate: gst::Element,
}

fn make(factory: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory).build().with_context(|| {
        format!(
            "GStreamer element `{factory}` is missing: install the GStreamer 1.22 plugins \
             (scripts/setup.sh: plugins-base/good/bad/ugly and gstreamer1.0-libav)"
        )
    })
}

impl Parts {
    fn build(settings: &Settings, inputs: &Inputs, location: &Path) -> anyhow::Result<Parts> {
        let pipeline = gst::Pipeline::with_name("iplap-sync");
        let video_info = video_info(inputs)?;
        let video_caps = video_info.to_caps()?;
        let video_src = gst_app::AppSrc::builder()
            .name("template")
            .caps(&video_caps)
            .format(gst::Format::Time)
            .block(true)
            .max_bytes(QUEUED_FRAMES * video_info.size() as u64)
            .build();
        let audio_caps = gst_audio::AudioInfo::builder(
            gst_audio::AUDIO_FORMAT_F32,
            iplap::audio::SAMPLE_RATE,
            1,
        )
        .build()?
        .to_caps()?;
        let audio_src = gst_app::AppSrc::builder()
            .name("speech")
            .caps(&audio_caps)
            .format(gst::Format::Time)
            .block(true)
            .build();

        let landmarks = make("iplaplandmarks")?;
        landmarks.set_property("models", settings.models.to_string_lossy().as_ref());
        landmarks.set_property(
            "face-models",
            settings.face_models.to_string_lossy().as_ref(),
        );
        landmarks.set_property(
            "reference-bank",
            settings.bank_file.to_string_lossy().as_ref(),
        );
        landmarks.set_property("threads", settings.threads);
        set_device(&landmarks, settings.device);
        let render = make("iplaprender")?;
        render.set_property("models", settings.models.to_string_lossy().as_ref());
        render.set_property("references", settings.references);
        render.set_property("threads", settings.threads);
        set_device(&render, settings.device);
        render.set_property("show-sketch", settings.show_sketch);
        render.set_property("post-stats", true);

        let rate = make("videorate")?;
        let video_queue = make("queue")?;
        // The encoder is far faster than the renderer; a short queue only decouples the threads.
        video_queue.set_property("max-size-buffers", 32u32);
        video_queue.set_property("max-size-bytes", 0u32);
        video_queue.set_property("max-size-time", 0u64);
        // H.264 4:2:0 has no odd widths or heights (even its cropping works in pairs of pixels):
        // add one black column / row rather than lose the picture's last one (negative videobox
        // borders add pixels).
        let even = make("videobox")?;
        even.set_property("right", -((inputs.width % 2) as i32));
        even.set_property("bottom", -((inputs.height % 2) as i32));
        even.set_property_from_str("fill", "black");
        let convert = make("videoconvert")?;
        // Players refuse the High 4:4:4 H.264 x264enc would write from RGB.
        let i420 = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::I420)
                    .build(),
            )
            .build()?;
        let encoder = make("x264enc")?;
        // B-frames: GStreamer 1.22's qtdemux then gives back one frame fewer than was written.
        encoder.set_property("bframes", 0u32);
        encoder.set_property_from_str("pass", "qual");
        encoder.set_property("quantizer", CRF);
        let mux = make("mp4mux")?;
        let sink = make("filesink")?;
        sink.set_property("location", location.to_string_lossy().as_ref());

        let decoder = make("uridecodebin")?;
        decoder.set_property("uri", file_uri(settings.audio_file)?);
        let audio_convert = make("audioconvert")?;
        let audio_resample = make("audioresample")?;
        let mp4_rates = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst_audio::AudioCapsBuilder::for_encoding("audio/x-raw")
                    .rate_list(MP4_AAC_RATES)
                    .build(),
            )
            .build()?;
        let aac = make("avenc_aac")?;
        let audio_queue = make("queue")?;

        pipeline.add_many([
            video_src.upcast_ref(),
            audio_src.upcast_ref(),
            &landmarks,
            &render,
            &rate,
            &video_queue,
            &even,
            &convert,
            &i420,
            &encoder,
            &mux,
            &sink,
            &decoder,
            &audio_convert,
            &audio_resample,
            &mp4_rates,
            &aac,
            &audio_queue,
        ])?;
        let link_pads = |src: &gst::Element, from: &str, dst: &gst::Element, to: &str| {
            src.link_pads(Some(from), dst, Some(to))
                .with_context(|| format!("cannot link {from} to {to}"))
        };
        link_pads(video_src.upcast_ref(), "src", &landmarks, "video_sink")?;
        link_pads(audio_src.upcast_ref(), "src", &landmarks, "audio_sink")?;
        gst::Element::link_many([
            &landmarks,
            &render,
            &rate,
            &video_queue,
            &even,
            &convert,
            &i420,
            &encoder,
            &mux,
            &sink,
        ])
        .context("cannot link the video branch")?;
        gst::Element::link_many([
            &audio_convert,
            &audio_resample,
            &mp4_rates,
            &aac,
            &audio_queue,
            &mux,
        ])
        .context("cannot link the audio branch")?;
        link_first_stream(
            &pipeline,
            &decoder,
            &audio_convert,
            "audio/",
            Arc::new(AtomicBool::new(false)),
        );
        Ok(Parts {
            pipeline,
            video_info,
            video_src,
            audio_src,
            landmarks,
            render,
            rate,
        })
    }

    fn add_probes(
        &self,
        plan: &Plan,
        clock: &Arc<Mutex<Clock>>,
        progress: &ProgressBar,
        dump: Option<&Path>,
        dump_error: &Arc<Mutex<Option<String>>>,
    ) {
        let pad = |e: &gst::Element, name: &str| e.static_pad(name).expect("static pad exists");
        // Only output frames 2 .. L-1 are rendered (module documentation).
        let plan = *plan;
        pad(&self.landmarks, "src").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let k = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => b.pts().map(frame_index),
                _ => None,
            };
            match k {
                Some(k) if !plan.is_rendered(k) => gst::PadProbeReturn::Drop,
                _ => gst::PadProbeReturn::Ok,
            }
        });
        let c = clock.clone();
        pad(&self.render, "sink").add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let now = Instant::now();
            let mut c = c.lock().unwrap();
            match c.last_out {
                Some(last) => c.times.landmarks += now - last,
                None => c.first_in = Some(now),
            }
            c.in_at = Some(now);
            gst::PadProbeReturn::Ok
        });
        let c = clock.clone();
        pad(&self.render, "src").add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let now = Instant::now();
            let mut c = c.lock().unwrap();
            if let Some(t) = c.in_at.take() {
                c.times.render += now - t;
                c.times.rendered += 1;
            }
            c.last_out = Some(now);
            gst::PadProbeReturn::Ok
        });
        let c = clock.clone();
        let bar = progress.clone();
        let dump = dump.map(Path::to_path_buf);
        let dump_error = dump_error.clone();
        pad(&self.rate, "src").add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let written = {
                let mut c = c.lock().unwrap();
                c.times.written += 1;
                c.times.written
            };
            bar.set_position(written as u64);
            if let (Some(dir), Some(gst::PadProbeData::Buffer(b))) = (&dump, &info.data)
                && let Err(e) = dump_frame(dir, pad, b)
            {
                dump_error.lock().unwrap().get_or_insert(e);
            }
            gst::PadProbeReturn::Ok
        });
    }
}

/// Output frame index of a timestamp on the 25 fps grid.
fn frame_index(pts: gst::ClockTime) -> usize {
    ((pts.nseconds() + FRAME_NS / 2) / FRAME_NS) as usize
}

/// Waits for EOS, an error or Ctrl-C; warnings are printed above the progress bar and the
/// renderer's per-frame step times are added to `render_steps`.
fn watch_bus(
    pipeline: &gst::Pipeline,
    output: &PartialOutput,
    progress: &ProgressBar,
    render_steps: &mut [Duration; STATS_FIELDS.len()],
) -> anyhow::Result<()> {
    let bus = pipeline.bus().context("a pipeline has a bus")?;
    loop {
        if interrupted() {
            // Gone before the pipeline stops, which may take a frame's render time.
            output.discard();
            progress.abandon_with_message("interrupted");
            bail!(Interrupted);
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Warning,
                gst::MessageType::Element,
            ],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == STATS_MESSAGE) {
                    for (sum, name) in render_steps.iter_mut().zip(STATS_FIELDS) {
                        *sum += Duration::from_nanos(s.get::<u64>(name).unwrap_or(0));
                    }
                }
            }
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(_) => return Err(describe(&msg)),
            gst::MessageView::Warning(w) => {
                progress.println(format!("warning: {} ({})", w.error(), source_name(&msg)));
            }
            _ => {}
        }
    }
}

/// The error waiting on the bus, if any (a failed state change posts its reason there).
fn bus_error(pipeline: &gst::Pipeline) -> Option<anyhow::Error> {
    let bus = pipeline.bus()?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(500),
        &[gst::MessageType::Error],
    )?;
    Some(describe(&msg))
}

fn source_name(msg: &gst::Message) -> String {
    msg.src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into())
}

/// An error message as an actionable error: the element's own text first (the iplap elements
/// say what to fix), then where it came from.
fn describe(msg: &gst::Message) -> anyhow::Error {
    let gst::MessageView::Error(e) = msg.view() else {
        return anyhow::anyhow!("unexpected message {:?}", msg.type_());
    };
    let debug = e
        .debug()
        .map(|d| format!("; details: {d}"))
        .unwrap_or_default();
    anyhow::anyhow!("{} (from {}{debug})", e.error(), source_name(msg))
}

/// Writes `buffer` as `frame_NNNNN.npy`, `(height, width, 3)` RGB `u8`.
fn dump_frame(dir: &Path, pad: &gst::Pad, buffer: &gst::Buffer) -> Result<(), String> {
    let caps = pad.current_caps().ok_or("no caps")?;
    let info = gst_video::VideoInfo::from_caps(&caps).map_err(|e| e.to_string())?;
    if info.format() != gst_video::VideoFormat::Rgb {
        return Err(format!("expected RGB frames, got {:?}", info.format()));
    }
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
        .map_err(|e| e.to_string())?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let plane = frame.plane_data(0).map_err(|e| e.to_string())?;
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        rgb.extend_from_slice(&plane[y * stride..y * stride + w * 3]);
    }
    let k = buffer.pts().map_or(0, frame_index);
    let array = ndarray::Array3::from_shape_vec((h, w, 3), rgb).map_err(|e| e.to_string())?;
    let path: PathBuf = dir.join(format!("frame_{k:05}.npy"));
    ndarray_npy::write_npy(&path, &array).map_err(|e| format!("{}: {e}", path.display()))
}

/// The device properties of either element, from the command's resolved device.
fn set_device(element: &gst::Element, device: &iplap::runtime::DeviceConfig) {
    element.set_property_from_str("device", device.device.nick());
    element.set_property("device-id", device.device_id);
    element.set_property_from_str("precision", device.precision.nick());
    element.set_property(
        "engine-cache",
        iplap::cli::device_args::engine_cache_property(device),
    );
}
