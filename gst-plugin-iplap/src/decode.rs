//! Decoding any media file GStreamer can read into RGB video frames, one at a time (used by the
//! `iplap` CLI and by `iplaplandmarks`' `reference-location`).
//!
//! `uridecodebin ! videoconvert ! video/x-raw,format=RGB ! appsink`: frames are pulled
//! synchronously (no clock, no dropping), so every decoded frame is seen once, in order.

use std::path::Path;

use anyhow::{Context, bail};
use gst::prelude::*;
use gst_video::prelude::*;

/// One decoded frame: packed RGB, `width * 3` bytes per row.
pub struct RgbFrame {
    pub pts: Option<gst::ClockTime>,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// A running decode pipeline.
pub struct VideoDecoder {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    /// Media duration when the container declares one (for progress bars).
    pub duration: Option<gst::ClockTime>,
}

impl VideoDecoder {
    /// Opens `path` and starts decoding its first video stream.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        gst::init().context("cannot initialise GStreamer")?;
        if !path.is_file() {
            bail!("{}: no such file", path.display());
        }
        let abs = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
        let uri = gst::glib::filename_to_uri(&abs, None)
            .with_context(|| format!("{}: cannot make a file URI", abs.display()))?;
        let pipeline = gst::Pipeline::new();
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
        let convert_weak = convert.downgrade();
        src.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let is_video = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            let sink_pad = convert
                .static_pad("sink")
                .expect("videoconvert has a sink pad");
            if is_video && !sink_pad.is_linked() {
                let _ = pad.link(&sink_pad);
            }
        });
        pipeline
            .set_state(gst::State::Paused)
            .with_context(|| format!("{}: GStreamer cannot open this file", path.display()))?;
        // Wait for preroll (or an error) so that the duration is known and errors surface here.
        let bus = pipeline.bus().expect("a pipeline has a bus");
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[
                    gst::MessageType::AsyncDone,
                    gst::MessageType::Error,
                    gst::MessageType::Eos,
                ],
            )
            .with_context(|| format!("{}: timed out opening the file", path.display()))?;
        if let gst::MessageView::Error(e) = msg.view() {
            bail!(
                "{}: cannot decode: {} ({})",
                path.display(),
                e.error(),
                e.debug().unwrap_or_default()
            );
        }
        let duration = pipeline.query_duration::<gst::ClockTime>();
        pipeline.set_state(gst::State::Playing)?;
        Ok(VideoDecoder {
            pipeline,
            sink,
            duration,
        })
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

    fn check_error(&self) -> anyhow::Result<()> {
        let bus = self.pipeline.bus().expect("a pipeline has a bus");
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                bail!(
                    "decoding failed: {} ({})",
                    e.error(),
                    e.debug().unwrap_or_default()
                );
            }
        }
        Ok(())
    }
}

impl Drop for VideoDecoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
