//! Reading the two inputs before the pipeline starts: the speech as 16 kHz mono samples (their
//! count fixes the output length, spec §1.3) and the face template converted to 25 fps, tracked,
//! with its reference bank (spec §1.2, §1.4, §1.5).
//!
//! Both are read completely up front, as the official script does: the bank needs every template
//! frame, and a broken file or a template without a face should fail in seconds, not after an hour
//! of rendering.

use super::frames::{FrameStore, StoredFrame};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use gst::prelude::*;
use iplap::engine::bank::ReferenceBank;
use iplap::engine::bank_build::{FrameRecord, build_bank};
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::image::{ChannelOrder, Image, ImageRef, Resizer};
use iplap::runtime::SessionConfig;

use super::output::{Interrupted, interrupted};
use super::timeline::{FRAME_NS, may_be_picked, template_frames_25fps};
use gstiplap::decode::VideoDecoder;

/// The speech, as `iplaplandmarks` receives it.
pub struct Speech {
    /// 16 kHz mono samples (GStreamer's `audioconvert ! audioresample`).
    pub samples: Vec<f32>,
}

/// Decodes `path` to 16 kHz mono f32 with `uridecodebin ! audioconvert ! audioresample`.
///
/// Deviation: the official script resamples with resampy `kaiser_best` (spec §2.2); GStreamer's
/// resampler differs at the 1e-4 level (a 16 kHz mono file is passed through unchanged).
pub fn decode_speech(path: &Path) -> anyhow::Result<Speech> {
    let uri = file_uri(path)?;
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri.as_str())
        .build()?;
    let convert = gst::ElementFactory::make("audioconvert").build()?;
    let resample = gst::ElementFactory::make("audioresample").build()?;
    let caps = gst_audio::AudioCapsBuilder::new_interleaved()
        .format(gst_audio::AUDIO_FORMAT_F32)
        .rate(16_000)
        .channels(1)
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    pipeline.add_many([&src, &convert, &resample, sink.upcast_ref()])?;
    gst::Element::link_many([&convert, &resample, sink.upcast_ref()])?;
    let found = Arc::new(AtomicBool::new(false));
    link_first_stream(&pipeline, &src, &convert, "audio/", found.clone());

    pipeline
        .set_state(gst::State::Playing)
        .with_context(|| format!("{}: GStreamer cannot open this file", path.display()))?;
    let mut samples = Vec::new();
    let result = (|| loop {
        if interrupted() {
            bail!(Interrupted);
        }
        check_bus(&pipeline, path)?;
        match sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            Some(sample) => {
                let buffer = sample.buffer().context("decoded audio without a buffer")?;
                let map = buffer.map_readable().context("cannot map decoded audio")?;
                samples.extend(
                    map.chunks_exact(4)
                        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            None if sink.is_eos() => return Ok(()),
            None => {}
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    if !found.load(Ordering::SeqCst) {
        bail!(
            "{}: no audio stream in this file (expected speech: WAV, MP3, AAC, or a video with \
             an audio track)",
            path.display()
        );
    }
    Ok(Speech { samples })
}

/// The face template at 25 fps, what the output needs of it, and its reference bank.
pub struct Template {
    pub width: usize,
    pub height: usize,
    /// Frames decoded from the file.
    pub decoded: usize,
    /// Frames of the 25 fps template (`V`).
    pub frames_25fps: usize,
    /// 25 fps frames with a usable face (the bank's candidates).
    pub face_frames: usize,
    /// Packed RGB pixels (in the [`FrameStore`]) of the first `min(V, fed)` 25 fps frames, the
    /// only ones the ping-pong loop reaches (spec §1.6); a repeated frame shares its pixels.
    pub pixels: Vec<StoredFrame>,
    /// The official reference selection over all 25 fps frames (spec §1.5).
    pub bank: ReferenceBank,
}

/// Decodes the whole template, converts it to 25 fps (`timeline::template_frames_25fps`), tracks
/// every decoded frame once (MediaPipe static mode, as the official script) and builds the bank
/// from the 25 fps frames with a usable face. Only the pixels of the first `fed` 25 fps frames are
/// kept. `on_frame` is called after each decoded frame (progress).
pub fn load_template(
    path: &Path,
    face_models: &Path,
    config: &SessionConfig,
    store: &mut FrameStore,
    fed: usize,
    mut on_frame: impl FnMut(),
) -> anyhow::Result<Template> {
    let mut tracker = FaceTracker::load(face_models, Mode::Static, config)
        .context("cannot start face tracking (--face-models, --device)")?;
    let mut decoder = VideoDecoder::open(path).context("cannot read the face (--face)")?;
    let mut resizer = Resizer::new();
    let mut scratch = Image::new(1, 1, ChannelOrder::Bgr);
    let (mut pts, mut records, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    let mut size = None;
    while let Some(frame) = decoder
        .next_frame()
        .with_context(|| format!("{}: decoding failed", path.display()))?
    {
        if interrupted() {
            bail!(Interrupted);
        }
        let i = pts.len();
        let (w, h) = (frame.width, frame.height);
        match size {
            None => size = Some((w, h)),
            Some(s) if s != (w, h) => bail!(
                "{}: frame {i} is {w}x{h} but frame 0 is {}x{}; the template must keep one size",
                path.display(),
                s.0,
                s.1
            ),
            Some(_) => {}
        }
        // An image (or a frame without timestamp) follows its predecessor by one 25 fps frame.
        let t = frame
            .pts
            .map(|t| t.nseconds())
            .or_else(|| pts.last().map(|p: &u64| p + FRAME_NS))
            .unwrap_or(0);
        let previous_rel = pts.last().map(|&p: &u64| p.saturating_sub(pts[0]));
        pts.push(t);
        let image = ImageRef::packed(&frame.data, w, h, ChannelOrder::Rgb)?;
        let face = tracker
            .process(&image)
            .with_context(|| format!("{}: face tracking failed on frame {i}", path.display()))?;
        // A face whose crop box leaves the frame is unusable, like no face (reference.rs does
        // the same for the element's reference-location). A record is about 50 KB (its 128 x 128
        // crop), so even minutes of template stay far below what the official script holds.
        records.push(face.and_then(|f| {
            FrameRecord::from_frame(&image, &f.normalized, &mut resizer, &mut scratch).ok()
        }));
        let keep = may_be_picked(i, previous_rel, fed);
        kept.push(if keep {
            Some(store.put(frame.data)?)
        } else {
            None
        });
        on_frame();
    }
    drop(decoder);
    let Some((width, height)) = size else {
        bail!("{}: no video frame in this file", path.display());
    };
    let picked = template_frames_25fps(&pts);
    let bank_records: Vec<FrameRecord> =
        picked.iter().filter_map(|&i| records[i].clone()).collect();
    if bank_records.is_empty() {
        bail!(
            "{}: no face found in any of its {} frame(s) (MediaPipe face detector, confidence \
             0.5, face box inside the frame): use a video or image with a clearly visible face",
            path.display(),
            pts.len()
        );
    }
    let face_frames = bank_records.len();
    let (bank, _) = build_bank(&bank_records)
        .with_context(|| format!("{}: cannot build the reference bank", path.display()))?;
    let pixels = picked
        .iter()
        .take(fed)
        .map(|&i| kept[i].clone())
        .collect::<Option<Vec<_>>>()
        .context("internal error: a template frame the output needs was not kept")?;
    Ok(Template {
        width,
        height,
        decoded: pts.len(),
        frames_25fps: picked.len(),
        face_frames,
        pixels,
        bank,
    })
}

/// The `file://` URI of an existing file, or an error naming it.
pub fn file_uri(path: &Path) -> anyhow::Result<String> {
    if !path.is_file() {
        bail!("{}: no such file", path.display());
    }
    let abs = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let uri = gst::glib::filename_to_uri(&abs, None)
        .with_context(|| format!("{}: cannot make a file URI", abs.display()))?;
    Ok(uri.to_string())
}

/// Links the first decoded stream whose caps start with `prefix` to `target`'s sink pad and
/// sends every other stream to a `fakesink` (an unlinked decoder pad can stop the whole file
/// with not-linked). `found` says whether a stream was linked. When the decoder has exposed all
/// its streams without a match, `target` gets an EOS, so the branch ends instead of waiting.
pub fn link_first_stream(
    bin: &gst::Pipeline,
    decoder: &gst::Element,
    target: &gst::Element,
    prefix: &'static str,
    found: Arc<AtomicBool>,
) {
    let bin_weak = bin.downgrade();
    let target_weak = target.downgrade();
    let found_pad = found.clone();
    decoder.connect_pad_added(move |_, pad| {
        let (Some(bin), Some(target)) = (bin_weak.upgrade(), target_weak.upgrade()) else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let matches = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with(prefix));
        if matches && !found_pad.swap(true, Ordering::SeqCst) {
            if let Some(sink) = target.static_pad("sink") {
                let _ = pad.link(&sink);
            }
            return;
        }
        let Ok(fake) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
        else {
            return;
        };
        if bin.add(&fake).is_ok() {
            let _ = fake.sync_state_with_parent();
            if let Some(sink) = fake.static_pad("sink") {
                let _ = pad.link(&sink);
            }
        }
    });
    let target_weak = target.downgrade();
    decoder.connect_no_more_pads(move |_| {
        if !found.load(Ordering::SeqCst)
            && let Some(pad) = target_weak.upgrade().and_then(|t| t.static_pad("sink"))
        {
            pad.send_event(gst::event::Eos::new());
        }
    });
}

/// The first error on `pipeline`'s bus, naming `path`.
fn check_bus(pipeline: &gst::Pipeline, path: &Path) -> anyhow::Result<()> {
    let Some(bus) = pipeline.bus() else {
        return Ok(());
    };
    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
        && let gst::MessageView::Error(e) = msg.view()
    {
        bail!(
            "{}: cannot decode: {} ({})",
            path.display(),
            e.error(),
            e.debug().unwrap_or_default()
        );
    }
    Ok(())
}

/// Seconds of `samples` at 16 kHz.
pub fn seconds(samples: usize) -> f64 {
    samples as f64 / 16_000.0
}
