//! SECTION:element-iplaprender
//!
//! `iplaprender` redraws the lower face of each video frame that carries a synced
//! `LandmarkMeta` (written by `iplaplandmarks`) with the IP_LAP renderer, in place: the five
//! target sketches of the frame's window (pose + predicted content), the face crop, the renderer
//! with the reference features cached per bank (recomputed only when the bank or `references`
//! changes), and the paste-back into the crop box with the feathered contour mask.
//!
//! Frames without meta, without a face (`NoFace`) or while the bank is being enrolled
//! (`Enrolling`) pass through untouched, without a copy (the element switches itself to
//! pass-through for them). A frame whose face geometry the renderer cannot use (a crop box outside
//! the frame, a meta computed for another frame size) also passes through, with one warning when
//! this starts and an info line when rendering resumes.
//!
//! Formats: packed RGB with 3 or 4 bytes per pixel (RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA,
//! ARGB, ABGR) and 4:2:0 YUV (I420, NV12), any stride; the same caps in and out, no conversion
//! needed in front. For YUV only the face region is converted to RGB (BT.601/709/2020, limited or
//! full range as the caps' colorimetry says; nearest chroma sample) and written back: Y where the
//! render changed a pixel, U and V for each 2 × 2 block holding such a pixel (block mean). Every
//! other byte of the frame, in every plane, stays as it was. `show-sketch` works in all formats.
//!
//! On a GPU (`device=cuda` or `tensorrt`, the CUDA kernels loaded) the frame is composed on the
//! device: the face region goes up once, sketches, crop, networks, warp, paste and the YUV
//! write-back run on the renderer's CUDA stream, and the region comes back once; `post-stats`
//! then adds each step's GPU time from CUDA events (`gpu-*` fields). Without NVRTC, or with
//! `show-sketch`, frames are composed on the CPU (the networks still run on the GPU).
//!
//! Latency: one frame in, the same frame out; the render time is processing time on the
//! streaming thread (seconds per frame on a CPU at `references=25`, milliseconds on a GPU), and
//! the element adds it to the latency query so that a live pipeline declares a latency that holds:
//! measured (`processing-latency=-1`, the default: when a render takes longer than declared, the
//! slowest so far +20 %, rounded up to 10 ms, and a `latency` message makes the pipeline
//! redistribute it; frames that encode the reference bank do not count) or pinned in ms.
//!
//! The model package (`models`) is loaded when the element goes to PAUSED and freed when it goes
//! back to READY; a missing or unusable package, or a `device` this build cannot run on, fails that
//! state change with an error naming the folder.
//!
//! ## Example launch line
//! ```text
//! gst-launch-1.0 filesrc location=129.mp4 ! decodebin ! videoconvert ! video/x-raw,format=RGB ! \
//!     iplaplandmarks name=lm models=pkg ! iplaprender models=pkg references=5 ! videoconvert ! \
//!     x264enc ! mp4mux ! filesink location=out.mp4 \
//!     filesrc location=audio2.wav ! decodebin ! audioconvert ! audioresample ! lm.audio_sink
//! ```
//!
//! Since: 0.1

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::BaseTransformMode;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use iplap::engine::bank::IMAGE_REFERENCES;
use iplap::engine::compose::CompositorSettings;
use iplap::engine::landmarks::{FrameStatus, SyncedFace};

use super::frame::{
    ErrorKind, FrameError, PixelLayout, PlaneCompositor, error_kind, pixel_layout, template_formats,
};
use super::latency;
use crate::device::DeviceSettings;
use crate::meta::LandmarkMeta;
use iplap::runtime::DeviceConfig;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "iplaprender",
        gst::DebugColorFlags::empty(),
        Some("IP_LAP renderer: lip-synced faces from landmark meta"),
    )
});

const DEFAULT_REFERENCES: u32 = IMAGE_REFERENCES as u32;
const DEFAULT_THREADS: u32 = 0;
const MAX_THREADS: u32 = 256;
const DEFAULT_SHOW_SKETCH: bool = false;
const DEFAULT_BLEND: bool = true;
const DEFAULT_POST_STATS: bool = false;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) models: Option<PathBuf>,
    pub(super) references: u32,
    pub(super) threads: u32,
    pub(super) device: DeviceSettings,
    pub(super) show_sketch: bool,
    pub(super) blend: bool,
    pub(super) post_stats: bool,
    /// `processing-latency`: [`latency::MEASURED`] or pinned milliseconds.
    pub(super) processing_latency: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            models: None,
            references: DEFAULT_REFERENCES,
            threads: DEFAULT_THREADS,
            device: DeviceSettings::default(),
            show_sketch: DEFAULT_SHOW_SKETCH,
            blend: DEFAULT_BLEND,
            post_stats: DEFAULT_POST_STATS,
            processing_latency: latency::MEASURED,
        }
    }
}

impl Settings {
    pub(super) fn compositor_settings(&self, device: DeviceConfig) -> CompositorSettings {
        CompositorSettings {
            references: self.references as usize,
            blend: self.blend,
            show_sketch: self.show_sketch,
            threads: self.threads as usize,
            device,
        }
    }
}

/// Exists between `start()` and `stop()`.
struct State {
    /// `None` while a frame renders: the compositor is taken out so that no lock is held while the
    /// model runs, and put back afterwards (dropped instead if the element stopped meanwhile).
    compositor: Option<PlaneCompositor>,
    /// The negotiated frame layout (`set_info`).
    video: Option<(gst_video::VideoInfo, PixelLayout)>,
    /// The previous synced frame could not be rendered (frame problem): warnings are posted on the
    /// change only.
    skipping: bool,
    /// The render times behind the measured `processing-latency`.
    latency: latency::Measured,
}

#[derive(Default)]
pub struct IplapRender {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl IplapRender {
    /// Sets a property value, logging real changes.
    fn change<T: PartialEq + std::fmt::Debug>(&self, name: &str, slot: &mut T, value: T) {
        if *slot != value {
            gst::info!(
                CAT,
                imp = self,
                "Changing {name} from {slot:?} to {value:?}"
            );
            *slot = value;
        }
    }

    /// Renders `face` into `frame`. Returns `Ok(())` also when the frame had to pass through.
    fn render(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        face: &SyncedFace,
    ) -> Result<(), gst::FlowError> {
        let settings = self.settings.lock().unwrap().clone();
        let (mut compositor, layout) = {
            let mut guard = self.state.lock().unwrap();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            let Some((_, layout)) = state.video else {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("No caps yet"));
                return Err(gst::FlowError::NotNegotiated);
            };
            let compositor = state.compositor.take().ok_or_else(|| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Failed,
                    ("The frame compositor is in use")
                );
                gst::FlowError::Error
            })?;
            (compositor, layout)
        };
        // Nothing is locked from here until the compositor is put back.
        let result = self.render_unlocked(&mut compositor, &settings, frame, layout, face);
        // (was skipping, is skipping): warnings and infos are posted on changes only.
        let (was, now, grown) = {
            let mut guard = self.state.lock().unwrap();
            match guard.as_mut() {
                Some(state) => {
                    if state.compositor.is_none() {
                        state.compositor = Some(compositor);
                    }
                    let was = state.skipping;
                    state.skipping = matches!(result, Err(Some(_)));
                    let grown = match &result {
                        Ok(Some(took)) => state.latency.record(*took),
                        _ => None,
                    };
                    (was, state.skipping, grown)
                }
                None => (false, false, None),
            }
        };
        if let (Some(declared), latency::MEASURED) = (grown, settings.processing_latency) {
            gst::info!(CAT, imp = self, "Processing latency now {declared:?}");
            self.post_latency();
        }
        match result {
            Ok(_) => {
                if was {
                    gst::info!(CAT, imp = self, "Face geometry usable again: rendering");
                }
                Ok(())
            }
            Err(Some(err)) => {
                if now && !was {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Decode,
                        ("Cannot render this face, passing frames through: {err}")
                    );
                } else {
                    gst::debug!(CAT, imp = self, "Passing through: {err}");
                }
                Ok(())
            }
            Err(None) => Err(gst::FlowError::Error),
        }
    }

    /// Tells the pipeline to query the latency again.
    fn post_latency(&self) {
        let msg = gst::message::Latency::builder().src(&*self.obj()).build();
        // No bus (a bare element): nobody to tell.
        let _ = self.obj().post_message(msg);
    }

    /// The latency this element adds now.
    fn processing_latency(&self) -> std::time::Duration {
        let pinned = self.settings.lock().unwrap().processing_latency;
        let measured = self
            .state
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.latency)
            .unwrap_or_default();
        latency::current(pinned, &measured)
    }

    /// The render itself, with nothing locked. `Ok(Some(took))`: rendered, and its time counts
    /// for the measured latency (it did not encode the reference bank); `Err(Some(why))`: a
    /// per-frame problem, the frame is untouched; `Err(None)`: a fatal error, already posted.
    fn render_unlocked(
        &self,
        compositor: &mut PlaneCompositor,
        settings: &Settings,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        layout: PixelLayout,
        face: &SyncedFace,
    ) -> Result<Option<std::time::Duration>, Option<String>> {
        // Knobs that may change while playing.
        let current = compositor.engine.settings().clone();
        if current.references != settings.references as usize {
            compositor
                .engine
                .set_references(settings.references as usize)
                .map_err(|err| {
                    gst::element_imp_error!(self, gst::LibraryError::Settings, ("{err}"));
                    None
                })?;
        }
        compositor.engine.set_blend(settings.blend);
        compositor.engine.set_show_sketch(settings.show_sketch);

        let (width, height) = (frame.width() as usize, frame.height() as usize);
        if face.face.frame_size != (width, height) {
            let (w, h) = face.face.frame_size;
            return Err(Some(format!(
                "the landmark meta is for a {w}x{h} frame, this frame is {width}x{height}"
            )));
        }
        match compositor.render(frame, layout, face) {
            Ok(stats) => {
                gst::log!(CAT, imp = self, "Rendered: {stats:?}");
                if settings.post_stats {
                    let s = super::stats::stats_structure(&stats, frame.buffer().pts());
                    let msg = gst::message::Element::builder(s).src(&*self.obj()).build();
                    let _ = self.obj().post_message(msg);
                }
                if stats.encoded_references {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "Encoded {} references of bank {} in {:?}",
                        compositor.engine.settings().references,
                        face.bank.id(),
                        stats.reference_encoding
                    );
                }
                Ok((!stats.encoded_references).then_some(stats.total))
            }
            Err(FrameError::Map(err)) => {
                gst::element_imp_error!(self, gst::CoreError::Failed, ("Cannot map frame: {err}"));
                Err(None)
            }
            Err(FrameError::Render(err)) => match error_kind(&err) {
                ErrorKind::Frame => Err(Some(err.to_string())),
                ErrorKind::Bank => {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        (
                            "the reference bank does not fit the renderer: {err} (bank {}, \
                             references={})",
                            face.bank.id(),
                            settings.references
                        )
                    );
                    Err(None)
                }
                ErrorKind::Engine => {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("rendering failed: {err}")
                    );
                    Err(None)
                }
            },
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for IplapRender {
    const NAME: &'static str = "GstIplapRender";
    type Type = super::IplapRender;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for IplapRender {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("models")
                    .nick("Model Package")
                    .blurb(
                        "Folder with the converted model package (written by `iplap convert`), \
                         loaded when the element starts. Unset: found as for iplaplandmarks' \
                         `models` ($IPLAP_MODELS, models/ip_lap in the data folders).",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("references")
                    .nick("References")
                    .blurb(
                        "Number of reference images the renderer reads, 1-25: fewer is faster \
                         and lower quality; 25 is the official setting. A change re-encodes the \
                         references on the next frame.",
                    )
                    .minimum(1)
                    .maximum(IMAGE_REFERENCES as u32)
                    .default_value(d.references)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb(
                        "Threads of each renderer stage and of the warp; 0 = one per physical \
                         core. Applied when the model package is loaded.",
                    )
                    .minimum(0)
                    .maximum(MAX_THREADS)
                    .default_value(d.threads)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("show-sketch")
                    .nick("Show Sketch")
                    .blurb(
                        "Lighten the target sketch (predicted jaw and lip lines) onto the face \
                         box, for debugging.",
                    )
                    .default_value(d.show_sketch)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("blend")
                    .nick("Blend")
                    .blurb(
                        "Blend the generated face with a feathered mask of the face contour; off \
                         replaces the whole face box (visible box edges).",
                    )
                    .default_value(d.blend)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("post-stats")
                    .nick("Post Stats")
                    .blurb(
                        "Post an `iplaprender-stats` element message per rendered frame with the \
                         nanoseconds of each step (sketches, crop, reference-encoding, \
                         modulation, flow-head, warp, translation, paste, overlay, total) and pts; \
                         on a GPU also each step's GPU time from CUDA events (gpu-upload, \
                         gpu-sketches, gpu-crop, gpu-networks, gpu-paste, gpu-download, \
                         gpu-total) and on-gpu.",
                    )
                    .default_value(d.post_stats)
                    .mutable_playing()
                    .build(),
                latency::param_spec(),
            ]
            .into_iter()
            .chain(DeviceSettings::param_specs())
            .collect()
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        let s = &mut *settings;
        let expect = "type checked upstream";
        match pspec.name() {
            "models" => {
                let models = value.get::<Option<String>>().expect(expect);
                self.change("models", &mut s.models, models.map(PathBuf::from));
            }
            "references" => {
                self.change("references", &mut s.references, value.get().expect(expect))
            }
            "threads" => self.change("threads", &mut s.threads, value.get().expect(expect)),
            "show-sketch" => self.change(
                "show-sketch",
                &mut s.show_sketch,
                value.get().expect(expect),
            ),
            "blend" => self.change("blend", &mut s.blend, value.get().expect(expect)),
            "post-stats" => {
                self.change("post-stats", &mut s.post_stats, value.get().expect(expect))
            }
            latency::PROPERTY => {
                let v = value.get().expect(expect);
                if s.processing_latency != v {
                    self.change(latency::PROPERTY, &mut s.processing_latency, v);
                    drop(settings);
                    self.post_latency();
                }
            }
            name => {
                if !s.device.set(name, value) {
                    unimplemented!("no property {name}");
                }
                gst::info!(CAT, imp = self, "Set {name}: {:?}", s.device);
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "models" => settings
                .models
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value(),
            "references" => settings.references.to_value(),
            "threads" => settings.threads.to_value(),
            "show-sketch" => settings.show_sketch.to_value(),
            "blend" => settings.blend.to_value(),
            "post-stats" => settings.post_stats.to_value(),
            latency::PROPERTY => settings.processing_latency.to_value(),
            name => settings
                .device
                .get(name)
                .unwrap_or_else(|| unimplemented!("no property {name}")),
        }
    }
}

impl GstObjectImpl for IplapRender {}

impl ElementImpl for IplapRender {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "IP_LAP renderer",
                "Filter/Effect/Video",
                "Redraws the lower face of frames with IP_LAP landmark meta (lip-sync), in place",
                "The iplap authors",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // Formats the paste-back writes in place (4:2:0 through a region-sized RGB copy).
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(template_formats())
                .build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for IplapRender {
    const MODE: BaseTransformMode = BaseTransformMode::AlwaysInPlace;
    // Pass-through is decided per buffer in `before_transform`, not from the caps.
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let compositor = self.load(&settings)?;
        *self.state.lock().unwrap() = Some(State {
            compositor: Some(PlaneCompositor::new(compositor)),
            video: None,
            skipping: false,
            latency: latency::Measured::default(),
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // A frame still rendering drops its compositor when it finds no state.
        *self.state.lock().unwrap() = None;
        gst::info!(CAT, imp = self, "Stopped, compositor freed");
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        // Downstream asks for the latency: upstream's plus the time a frame spends here.
        if direction == gst::PadDirection::Src && query.type_() == gst::QueryType::Latency {
            if !BaseTransformImplExt::parent_query(self, direction, query) {
                return false;
            }
            let ours = self.processing_latency();
            if let gst::QueryViewMut::Latency(q) = query.view_mut() {
                latency::add_to_query(q, ours);
                gst::debug!(
                    CAT,
                    imp = self,
                    "Latency query: {:?} (ours {ours:?})",
                    q.result()
                );
            }
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn before_transform(&self, inbuf: &gst::BufferRef) {
        // Only synced frames are written: the others pass through without being made writable
        // (no copy of a shared buffer).
        let render = inbuf
            .meta::<LandmarkMeta>()
            .is_some_and(|m| matches!(m.status(), FrameStatus::Synced(_)));
        let obj = self.obj();
        if obj.is_passthrough() == render {
            gst::trace!(CAT, imp = self, "Pass-through: {}", !render);
            obj.set_passthrough(!render);
        }
    }
}

impl VideoFilterImpl for IplapRender {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "Configured for caps {incaps}");
        let layout = pixel_layout(in_info).ok_or_else(|| {
            gst::loggable_error!(CAT, "Unsupported format {:?}", in_info.format())
        })?;
        gst::debug!(CAT, imp = self, "Pixel layout {layout:?}");
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "Caps before start"))?;
        state.video = Some((in_info.clone(), layout));
        Ok(())
    }

    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        // The meta borrows the buffer the frame writes to: take a copy of the face (small next
        // to a render; the bank is shared through its Arc).
        let face = match frame.buffer().meta::<LandmarkMeta>() {
            Some(meta) => match meta.status() {
                FrameStatus::Synced(face) => Some(face.clone()),
                _ => None,
            },
            None => None,
        };
        match face {
            Some(face) => self.render(frame, &face)?,
            None => gst::trace!(CAT, imp = self, "No synced face: pass-through"),
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
