//! The element's per-frame glue that needs no GStreamer object: formats, the engine input built
//! from the landmark meta, and which engine errors end the stream.

use gst_video::VideoFormat;
use iplap::engine::landmarks::SyncedFace;
use iplap::engine::render::{FrameInput, FrameRenderError, MeshPoints};
use iplap::image::ChannelOrder;

/// The formats the engine pastes into in place, with their colour order. Planar YUV (I420, NV12)
/// needs a `videoconvert` in front for now.
pub const FORMATS: [(VideoFormat, ChannelOrder); 10] = [
    (VideoFormat::Rgb, ChannelOrder::Rgb),
    (VideoFormat::Bgr, ChannelOrder::Bgr),
    (VideoFormat::Rgbx, ChannelOrder::Rgbx),
    (VideoFormat::Bgrx, ChannelOrder::Bgrx),
    (VideoFormat::Xrgb, ChannelOrder::Xrgb),
    (VideoFormat::Xbgr, ChannelOrder::Xbgr),
    (VideoFormat::Rgba, ChannelOrder::Rgba),
    (VideoFormat::Bgra, ChannelOrder::Bgra),
    (VideoFormat::Argb, ChannelOrder::Argb),
    (VideoFormat::Abgr, ChannelOrder::Abgr),
];

/// The engine's colour order of a negotiated format (`None`: not in the template).
pub fn channel_order(format: VideoFormat) -> Option<ChannelOrder> {
    FORMATS
        .iter()
        .find(|(f, _)| *f == format)
        .map(|&(_, order)| order)
}

/// The renderer's input for a synced frame. The paste polygon comes from the meta's normalised
/// mesh points ([`MeshPoints::Normalised`], bit-exact with the official arithmetic) when it has
/// them, else from its frame-pixel points. The caller checks that the meta's frame size is the
/// frame's.
pub fn frame_input(face: &SyncedFace) -> FrameInput<'_> {
    let mesh = if face.face.points_norm.is_empty() {
        MeshPoints::Pixels(&face.face.points_px)
    } else {
        MeshPoints::Normalised(&face.face.points_norm)
    };
    FrameInput {
        crop_box: face.face.crop_box,
        mesh,
        window_pose: face.window_pose.as_flattened().as_flattened(),
        window_crop_hw: face.window_crop_hw,
        window_content: face.window_content.as_flattened().as_flattened(),
        mel: &face.mel_chunk,
        bank: &face.bank,
    }
}

/// What an engine error means for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// This frame's geometry or sizes are unusable: pass it through untouched and go on.
    Frame,
    /// The bank does not fit the settings (too few references) or is malformed: fatal.
    Bank,
    /// The renderer failed to run: fatal.
    Engine,
}

/// Classifies an error of `FrameRenderer::render_frame` (which leaves the frame untouched on any
/// error).
pub fn error_kind(err: &FrameRenderError) -> ErrorKind {
    match err {
        FrameRenderError::Geometry(_)
        | FrameRenderError::BadBox { .. }
        | FrameRenderError::BadLength { .. }
        | FrameRenderError::Image(_) => ErrorKind::Frame,
        FrameRenderError::TooFewReferences { .. }
        | FrameRenderError::BadReference { .. }
        | FrameRenderError::BadReferenceCount(_) => ErrorKind::Bank,
        FrameRenderError::Render(_) => ErrorKind::Engine,
    }
}
