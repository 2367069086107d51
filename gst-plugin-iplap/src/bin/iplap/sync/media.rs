//! Reading the two inputs before the pipeline starts: the speech as 16 kHz mono samples (their
//! count fixes the output length, spec §1.3) and the face template converted to 25 fps, tracked,
//! with its reference bank (spec §1.2, §1.4, §1.5), built as `iplaplandmarks` builds it from the
//! same file.
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
use iplap::engine::bank_template::TemplateScan;
use iplap::engine::template::may_be_picked;
use iplap::runtime::SessionConfig;

use super::pipeline::MIN_SIDE;
use super::signals::{Interrupted, interrupted};
use gstiplap::decode::{NullOnDrop, VideoDecoder, file_uri, link_first_stream, template_bank};

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
    // NULL on every way out (an error while PAUSED would leave uridecodebin's task running).
    let pipeline = NullOnDrop(gst::Pipeline::new());
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

    if pipeline.set_state(gst::State::Playing).is_err() {
        // A failed state change has posted its reason first.
        check_bus(&pipeline, path)?;
        bail!("{}: GStreamer cannot open this file", path.display());
    }
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
    drop(pipeline);
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

/// Decodes the whole template and builds its reference bank as `iplaplandmarks`'
/// `reference-location` does ([`gstiplap::decode::template_bank`]: the 25 fps frames, tracked in
/// static mode as the official script). Only the pixels of the first `fed` 25 fps frames are kept.
/// `on_frame` is called after each decoded frame (progress).
pub fn load_template(
    path: &Path,
    face_models: &Path,
    config: &SessionConfig,
    store: &mut FrameStore,
    fed: usize,
    mut on_frame: impl FnMut(),
) -> anyhow::Result<Template> {
    let mut decoder = VideoDecoder::open(path).context("cannot read the face (--face)")?;
    // Before decoding and tracking everything: a size the encoder refuses fails in a second.
    if let Some((w, h)) = decoder.frame_size()
        && (w < MIN_SIDE || h < MIN_SIDE)
    {
        bail!(
            "{}: the face is {w}x{h}, too small: the output needs at least \
             {MIN_SIDE}x{MIN_SIDE} pixels (the H.264 encoder, x264, refuses smaller frames); \
             scale the video up first",
            path.display()
        );
    }
    let scan = TemplateScan::load(face_models, config)
        .context("cannot start face tracking (--face-models, --device)")?;
    let mut kept = Vec::new();
    let mut previous_rel = None;
    let built = template_bank(&mut decoder, scan, |i, rel_ns, frame| {
        if interrupted() {
            bail!(Interrupted);
        }
        let keep = may_be_picked(i, previous_rel, fed);
        previous_rel = Some(rel_ns);
        kept.push(if keep {
            Some(store.put(frame.data)?)
        } else {
            None
        });
        on_frame();
        Ok(())
    })?;
    drop(decoder);
    let pixels = built
        .picked
        .iter()
        .take(fed)
        .map(|&i| kept[i].clone())
        .collect::<Option<Vec<_>>>()
        .context("internal error: a template frame the output needs was not kept")?;
    Ok(Template {
        width: built.width,
        height: built.height,
        decoded: built.decoded,
        frames_25fps: built.frames_25fps(),
        face_frames: built.face_frames,
        pixels,
        bank: built.bank,
    })
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
