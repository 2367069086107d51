//! The element's per-frame glue that needs no GStreamer object: formats, the engine input built
//! from the landmark meta, the frame access of each format, and which engine errors end the
//! stream.

use gst_video::prelude::*;
use gst_video::{VideoColorMatrix, VideoColorRange, VideoColorimetry, VideoFormat, VideoInfo};
use iplap::engine::compose::{ComposeError, FrameCompositor, FrameInput, FrameStats, MeshPoints};
use iplap::engine::landmarks::SyncedFace;
use iplap::image::{ChannelOrder, ImageError, ImageMut};

use iplap::image::yuv::{Plane, Yuv420Mut, YuvColour, YuvMatrix};

/// The packed formats the engine pastes into in place, with their colour order.
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

/// The 4:2:0 formats, written in place through an RGB copy of the paste region only
/// (`FrameCompositor::render_yuv`).
pub const YUV_FORMATS: [VideoFormat; 2] = [VideoFormat::I420, VideoFormat::Nv12];

/// Every format of the pad templates.
pub fn template_formats() -> impl Iterator<Item = VideoFormat> {
    FORMATS.iter().map(|&(f, _)| f).chain(YUV_FORMATS)
}

/// How the pixels of a negotiated format are reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PixelLayout {
    /// Packed RGB: the engine pastes into the mapped plane directly.
    Packed(ChannelOrder),
    /// Y, U and V planes.
    I420(YuvColour),
    /// Y plane and interleaved UV plane.
    Nv12(YuvColour),
}

/// The layout of a negotiated format (`None`: not in the template).
pub fn pixel_layout(info: &VideoInfo) -> Option<PixelLayout> {
    let colour = || yuv_colour(&info.colorimetry(), info.height());
    match info.format() {
        VideoFormat::I420 => Some(PixelLayout::I420(colour())),
        VideoFormat::Nv12 => Some(PixelLayout::Nv12(colour())),
        format => FORMATS
            .iter()
            .find(|(f, _)| *f == format)
            .map(|&(_, order)| PixelLayout::Packed(order)),
    }
}

/// The YUV encoding the caps announce. Caps without colorimetry already got GStreamer's default
/// for their size in `VideoInfo` (BT.601 up to 576 lines, BT.709 above, BT.2020 from 2160, limited
/// range); an unknown matrix falls back to the same rule and an unknown range to limited, so that
/// the result agrees with what `videoconvert` would assume.
pub fn yuv_colour(colorimetry: &VideoColorimetry, height: u32) -> YuvColour {
    let matrix = match colorimetry.matrix() {
        VideoColorMatrix::Bt601 => YuvMatrix::Bt601,
        VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
        VideoColorMatrix::Bt2020 => YuvMatrix::Bt2020,
        VideoColorMatrix::Smpte240m => YuvMatrix::Smpte240m,
        VideoColorMatrix::Fcc => YuvMatrix::Fcc,
        _ if height >= 2160 => YuvMatrix::Bt2020,
        _ if height > 576 => YuvMatrix::Bt709,
        _ => YuvMatrix::Bt601,
    };
    YuvColour::new(matrix, colorimetry.range() == VideoColorRange::Range0_255)
}

/// Why a frame was not rendered.
#[derive(Debug)]
pub enum FrameError {
    /// The mapped frame could not be read as planes (a GStreamer problem, fatal).
    Map(String),
    /// The engine (or the plane layout) rejected the frame; classify with [`error_kind`].
    Render(ComposeError),
}

/// The compositor, taken out of the element state while a frame renders.
pub struct PlaneCompositor {
    pub engine: FrameCompositor,
}

impl PlaneCompositor {
    pub fn new(engine: FrameCompositor) -> Self {
        PlaneCompositor { engine }
    }

    /// Renders `face` into `frame` in place. The caller checks that the meta's frame size is the
    /// frame's. On any error the frame is untouched.
    pub fn render(
        &mut self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        layout: PixelLayout,
        face: &SyncedFace,
    ) -> Result<FrameStats, FrameError> {
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let input = frame_input(face);
        let image_err = |e: ImageError| FrameError::Render(e.into());
        let colour = match layout {
            PixelLayout::Packed(order) => {
                let stride = frame.plane_stride()[0] as usize;
                let data = frame
                    .plane_data_mut(0)
                    .map_err(|e| FrameError::Map(e.to_string()))?;
                let mut image =
                    ImageMut::new(data, width, height, stride, order).map_err(image_err)?;
                return self
                    .engine
                    .render_frame(&mut image, &input)
                    .map_err(FrameError::Render);
            }
            PixelLayout::I420(c) | PixelLayout::Nv12(c) => c,
        };
        let strides = frame.plane_stride();
        // NV12 has two planes: a missing plane reads as stride 0 (and is not used).
        let stride = |i: usize| {
            usize::try_from(strides.get(i).copied().unwrap_or(0))
                .map_err(|_| image_err(ImageError::Layout("negative plane stride")))
        };
        let (s0, s1, s2) = (stride(0)?, stride(1)?, stride(2)?);
        let [p0, p1, p2, _] = frame.planes_data_mut();
        let plane = |data, stride| Plane { data, stride };
        let mut yuv = match layout {
            PixelLayout::Nv12(_) => Yuv420Mut::nv12(width, height, plane(p0, s0), plane(p1, s1)),
            _ => Yuv420Mut::i420(width, height, plane(p0, s0), plane(p1, s1), plane(p2, s2)),
        }
        .map_err(image_err)?;
        self.engine
            .render_yuv(&mut yuv, &colour, &input)
            .map_err(FrameError::Render)
    }
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

/// Classifies an error of `FrameCompositor::render_frame` (which leaves the frame untouched on any
/// error).
pub fn error_kind(err: &ComposeError) -> ErrorKind {
    match err {
        ComposeError::Geometry(_)
        | ComposeError::BadBox { .. }
        | ComposeError::BadLength { .. }
        | ComposeError::Image(_) => ErrorKind::Frame,
        ComposeError::TooFewReferences { .. }
        | ComposeError::BadReference { .. }
        | ComposeError::BadReferenceCount(_) => ErrorKind::Bank,
        ComposeError::Render(_) | ComposeError::Gpu(_) => ErrorKind::Engine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst_video::{VideoColorPrimaries, VideoTransferFunction};

    fn colorimetry(range: VideoColorRange, matrix: VideoColorMatrix) -> VideoColorimetry {
        VideoColorimetry::new(
            range,
            matrix,
            VideoTransferFunction::Unknown,
            VideoColorPrimaries::Unknown,
        )
    }

    #[test]
    fn colorimetry_picks_matrix_and_range() {
        use VideoColorMatrix as M;
        use VideoColorRange as R;
        let cases = [
            (R::Range16_235, M::Bt709, 480, YuvMatrix::Bt709, false),
            (R::Range0_255, M::Bt601, 1080, YuvMatrix::Bt601, true),
            (R::Range0_255, M::Bt2020, 480, YuvMatrix::Bt2020, true),
            // Unknown matrix: GStreamer's default for the height; unknown range: limited.
            (R::Unknown, M::Unknown, 576, YuvMatrix::Bt601, false),
            (R::Unknown, M::Unknown, 720, YuvMatrix::Bt709, false),
            (R::Range16_235, M::Rgb, 2160, YuvMatrix::Bt2020, false),
        ];
        for (range, matrix, height, want, full) in cases {
            assert_eq!(
                yuv_colour(&colorimetry(range, matrix), height),
                YuvColour::new(want, full),
                "{range:?} {matrix:?} {height}"
            );
        }
    }

    #[test]
    fn template_lists_packed_and_yuv_formats() {
        let formats: Vec<_> = template_formats().collect();
        assert_eq!(formats.len(), 12);
        for f in [
            VideoFormat::Rgb,
            VideoFormat::Bgrx,
            VideoFormat::I420,
            VideoFormat::Nv12,
        ] {
            assert!(formats.contains(&f), "{f:?}");
        }
    }
}
