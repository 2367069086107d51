//! The offline reference bank of the `reference-location` property: every frame of a video or
//! image file is decoded, tracked (static mode, as the official script) and the official
//! selection (spec §1.5) runs over all of them (`iplap::engine::bank_build::build_bank`).

use std::path::Path;

use gst::prelude::*;
use gst_video::prelude::*;
use iplap::engine::bank::ReferenceBank;
use iplap::engine::bank_build::{FrameRecord, build_bank};
use iplap::face::tracker::FaceTracker;
use iplap::image::{ChannelOrder, Image, ImageRef, Resizer};

/// Frames read from the file, and how many of them had a usable face.
#[derive(Debug)]
pub struct BuiltBank {
    pub bank: ReferenceBank,
    pub frames: usize,
    pub face_frames: usize,
}

/// Decodes `path` (`uridecodebin ! videoconvert ! RGB appsink`, pulled synchronously so every
/// frame is seen once) and builds the bank from all face frames with `tracker`.
pub fn build_from_file(path: &Path, tracker: &mut FaceTracker) -> Result<BuiltBank, String> {
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()));
    }
    let abs = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let uri = gst::glib::filename_to_uri(&abs, None)
        .map_err(|e| format!("{}: cannot make a file URI: {e}", abs.display()))?;
    let pipeline = gst::Pipeline::new();
    let guard = PipelineGuard(pipeline.clone());
    let make = |name: &str| {
        gst::ElementFactory::make(name)
            .build()
            .map_err(|e| format!("GStreamer element `{name}` missing: {e}"))
    };
    let src = make("uridecodebin")?;
    src.set_property("uri", uri.as_str());
    let convert = make("videoconvert")?;
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgb)
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    pipeline
        .add_many([&src, &convert, sink.upcast_ref()])
        .map_err(|e| e.to_string())?;
    convert.link(&sink).map_err(|e| e.to_string())?;
    let convert_weak = convert.downgrade();
    src.connect_pad_added(move |_, pad| {
        let Some(convert) = convert_weak.upgrade() else {
            return;
        };
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if let Some(sink_pad) = convert.static_pad("sink")
            && is_video
            && !sink_pad.is_linked()
        {
            let _ = pad.link(&sink_pad);
        }
    });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| format!("{}: GStreamer cannot open this file", path.display()))?;

    let mut resizer = Resizer::new();
    let mut scratch = Image::new(1, 1, ChannelOrder::Bgr);
    let mut records = Vec::new();
    let mut frames = 0usize;
    while let Ok(sample) = sink.pull_sample() {
        let caps = sample.caps().ok_or("decoded sample without caps")?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
        let buffer = sample.buffer().ok_or("decoded sample without buffer")?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| "cannot map a decoded frame".to_owned())?;
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).map_err(|e| e.to_string())?;
        let image = ImageRef::new(
            data,
            info.width() as usize,
            info.height() as usize,
            stride,
            ChannelOrder::Rgb,
        )
        .map_err(|e| e.to_string())?;
        frames += 1;
        let face = tracker
            .process(&image)
            .map_err(|e| format!("face tracking: {e}"))?;
        if let Some(face) = face {
            // A face whose crop box leaves the frame is skipped, like a frame without a face.
            if let Ok(rec) =
                FrameRecord::from_frame(&image, &face.normalized, &mut resizer, &mut scratch)
            {
                records.push(rec);
            }
        }
    }
    if let Some(bus) = pipeline.bus()
        && let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
        && let gst::MessageView::Error(e) = msg.view()
    {
        return Err(format!("{}: cannot decode: {}", path.display(), e.error()));
    }
    drop(guard);
    let face_frames = records.len();
    let (bank, _) = build_bank(&records).map_err(|e| {
        format!(
            "{}: {e} ({frames} frames decoded, {face_frames} with a usable face)",
            path.display()
        )
    })?;
    Ok(BuiltBank {
        bank,
        frames,
        face_frames,
    })
}

/// Sets the decode pipeline to NULL however `build_from_file` returns.
struct PipelineGuard(gst::Pipeline);

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}
