//! Decoding any media file GStreamer can read into RGB video frames, one at a time (used by the
//! `iplap` CLI and by `iplaplandmarks`' `reference-location`).
//!
//! `uridecodebin ! videoconvert ! video/x-raw,format=RGB ! appsink`: frames are pulled
//! synchronously (no clock, no dropping), so every decoded frame is seen once, in order.
//! [`VideoDecoder::for_each_frame`] is the one decode loop; [`template_bank`] is the one way a face
//! template file becomes a reference bank, shared by `reference-location` and `iplap sync`.
//!
//! Every pipeline here lives in a [`NullOnDrop`], so that each way out, errors included, takes it
//! to NULL: a pipeline dropped in PAUSED leaves uridecodebin's typefind task running (a process
//! that never exits: `gst-launch-1.0` with `reference-location` on an audio file hung) and
//! GStreamer prints criticals about disposing elements that are not in NULL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use gst::prelude::*;
use gst_video::prelude::*;
use iplap::engine::bank_template::{TemplateBank, TemplateScan};
use iplap::image::{ChannelOrder, ImageError, ImageRef};

/// One decoded frame: packed RGB, `width * 3` bytes per row.
pub struct RgbFrame {
    pub pts: Option<gst::ClockTime>,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// The pixels as the engine takes them.
    pub fn image(&self) -> Result<ImageRef<'_>, ImageError> {
        ImageRef::packed(&self.data, self.width, self.height, ChannelOrder::Rgb)
    }
}

/// A pipeline that is set to NULL when dropped, whichever path drops it.
pub struct NullOnDrop(pub gst::Pipeline);

impl std::ops::Deref for NullOnDrop {
    type Target = gst::Pipeline;

    fn deref(&self) -> &gst::Pipeline {
        &self.0
    }
}

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// The `file://` URI of `path`, after checking that it is a non-empty file: GStreamer's own
/// words for an empty file ("Can't typefind empty stream") do not say what is wrong.
pub fn file_uri(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{}: no such file", path.display()),
        _ => anyhow::anyhow!("{}: {e}", path.display()),
    })?;
    if !meta.is_file() {
        bail!("{}: not a file", path.display());
    }
    if meta.len() == 0 {
        bail!("{}: the file is empty (0 bytes)", path.display());
    }
    let abs = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let uri = gst::glib::filename_to_uri(&abs, None)
        .with_context(|| format!("{}: cannot make a file URI", abs.display()))?;
    Ok(uri.to_string())
}

/// A running decode pipeline.
pub struct VideoDecoder {
    /// The file, named in decoding errors.
    path: PathBuf,
    pipeline: NullOnDrop,
    sink: gst_app::AppSink,
    /// Media duration when the container declares one (for progress bars).
    pub duration: Option<gst::ClockTime>,
    /// Width and height of the video stream, known once prerolled (before any frame is pulled).
    size: Option<(usize, usize)>,
}

impl VideoDecoder {
    /// Opens `path` and starts decoding its first video stream. A file without one is an error
    /// that says so ("no video stream in …"), not GStreamer's not-linked.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        gst::init().context("cannot initialise GStreamer")?;
        let uri = file_uri(path)?;
        let pipeline = NullOnDrop(gst::Pipeline::new());
        let src = gst::ElementFactory::make("uridecodebin")
            .property("uri", uri.as_str())
            .build()?;
        let convert = gst::ElementFactory::make("videoconvert").build()?;
        let caps = gst_video::VideoCapsBuilder::new()
            .format(gst_video::VideoFormat::Rgb)
            .build();
        let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
        pipeline.add_many([&src, &convert, sink.upcast_ref()])?;
        convert.link(&sink)?;
        let found = Arc::new(AtomicBool::new(false));
        link_first_stream(&pipeline, &src, &convert, "video/", found.clone());
        let mut decoder = VideoDecoder {
            path: path.to_path_buf(),
            pipeline,
            sink,
            duration: None,
            size: None,
        };
        // From here on every `?` drops `decoder`, which takes the pipeline to NULL.
        decoder.preroll(path)?;
        if !found.load(Ordering::SeqCst) {
            bail!(
                "no video stream in {} (expected a video or an image)",
                path.display()
            );
        }
        decoder.pipeline.set_state(gst::State::Playing)?;
        Ok(decoder)
    }

    /// Goes to PAUSED and waits for preroll (or an error), so that errors surface here and the
    /// duration and frame size are known.
    fn preroll(&mut self, path: &Path) -> anyhow::Result<()> {
        let failed = self.pipeline.set_state(gst::State::Paused).is_err();
        let bus = self.pipeline.bus().context("a pipeline has a bus")?;
        // A failed state change has posted its reason already; otherwise preroll may take a while.
        let wait = if failed { 1 } else { 30 };
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(wait),
                &[
                    gst::MessageType::AsyncDone,
                    gst::MessageType::Error,
                    gst::MessageType::Eos,
                ],
            )
            .with_context(|| match failed {
                true => format!("{}: GStreamer cannot open this file", path.display()),
                false => format!("{}: timed out opening the file", path.display()),
            })?;
        if let gst::MessageView::Error(e) = msg.view() {
            bail!(
                "{}: cannot decode: {} ({})",
                path.display(),
                e.error(),
                e.debug().unwrap_or_default()
            );
        }
        self.duration = self.pipeline.query_duration::<gst::ClockTime>();
        self.size = self
            .sink
            .static_pad("sink")
            .and_then(|pad| pad.current_caps())
            .and_then(|caps| gst_video::VideoInfo::from_caps(&caps).ok())
            .map(|info| (info.width() as usize, info.height() as usize));
        Ok(())
    }

    /// Width and height of the first frame, known before it is pulled (`None` for a stream that
    /// ended before its first frame).
    pub fn frame_size(&self) -> Option<(usize, usize)> {
        self.size
    }

    /// The next frame, `None` at end of stream.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<RgbFrame>> {
        let sample = match self.sink.pull_sample() {
            Ok(s) => s,
            Err(_) => {
                self.check_error()?;
                return Ok(None);
            }
        };
        let caps = sample.caps().context("decoded sample without caps")?;
        let info =
            gst_video::VideoInfo::from_caps(caps).context("decoded caps are not raw video")?;
        let buffer = sample.buffer().context("decoded sample without buffer")?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| anyhow::anyhow!("cannot map a decoded frame"))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let plane = frame.plane_data(0)?;
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            data.extend_from_slice(&plane[y * stride..y * stride + w * 3]);
        }
        Ok(Some(RgbFrame {
            pts: buffer.pts(),
            width: w,
            height: h,
            data,
        }))
    }

    /// Hands every remaining frame to `each` with its index (counted from the first frame this
    /// loop pulls), in decode order; returns how many there were. Stops at the first error,
    /// `each`'s included (passed on unchanged).
    pub fn for_each_frame(
        &mut self,
        mut each: impl FnMut(usize, RgbFrame) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        let mut index = 0;
        while let Some(frame) = self.next_frame()? {
            each(index, frame)?;
            index += 1;
        }
        Ok(index)
    }

    fn check_error(&self) -> anyhow::Result<()> {
        let bus = self.pipeline.bus().context("a pipeline has a bus")?;
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                bail!(
                    "{}: decoding failed: {} ({})",
                    self.path.display(),
                    e.error(),
                    e.debug().unwrap_or_default()
                );
            }
        }
        Ok(())
    }
}

/// Reads the face template in `decoder` and builds its reference bank with `scan` (the 25 fps
/// frames, tracked in static mode, official selection: [`iplap::engine::bank_template`]). Each
/// decoded frame goes to the scan, then to `each` with its index and its time from frame 0 in
/// nanoseconds as the scan placed it (`iplap sync` keeps the pixels its output needs, checks for
/// Ctrl-C and shows progress). Errors of decoding and of the scan name the file; `each`'s are
/// passed on unchanged.
pub fn template_bank(
    decoder: &mut VideoDecoder,
    mut scan: TemplateScan,
    mut each: impl FnMut(usize, u64, RgbFrame) -> anyhow::Result<()>,
) -> anyhow::Result<TemplateBank> {
    let path = decoder.path.clone();
    let named = |e: iplap::engine::bank_template::TemplateError| {
        anyhow::Error::new(e).context(path.display().to_string())
    };
    decoder.for_each_frame(|index, frame| {
        let rel_ns = scan.push(frame.pts.map(|t| t.nseconds()), &frame.image()?);
        each(index, rel_ns.map_err(named)?, frame)
    })?;
    scan.finish().map_err(named)
}

/// Links the first decoded stream whose caps start with `prefix` to `target`'s sink pad and
/// sends every other stream to a `fakesink` (an unlinked decoder pad stops the whole file with
/// not-linked). `found` says whether a stream was linked. When the decoder has exposed all its
/// streams without a match, `target` gets an EOS, so the branch ends (and a sink behind it
/// prerolls) instead of waiting for ever; the caller then reads `found`.
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
        if found.load(Ordering::SeqCst) {
            return;
        }
        if let Some(target) = target_weak.upgrade() {
            // From another thread: a sink prerolling on this EOS blocks the sender until
            // PLAYING, and decodebin, which emits no-more-pads, must first finish its own
            // state change (the pipeline would never preroll). Stopping the pipeline flushes
            // the sink, which releases that thread.
            target.call_async(|target| {
                if let Some(pad) = target.static_pad("sink") {
                    pad.send_event(gst::event::Eos::new());
                }
            });
        }
    });
}
