//! The compositor: [`FrameCompositor`] turns one video frame plus its landmark
//! metadata into the lip-synced frame, in place. It is what the `iplaprender` element calls per
//! buffer (ARCHITECTURE "Data contracts").
//!
//! One call follows spec §1.7 steps 3-9 for the centre frame of the window:
//! 1. the five target sketches (POSE of window frame j then predicted CONTENT j, canvas from crop
//!    f_j's size, `f32` then `/255` in `f32`; spec §1.7 step 3, §4);
//! 2. the face crop at the crop box, 128 × 128 BGR `uint8`, CHW `f32` (step 4; the lower half is
//!    zeroed by [`RendererModel::render`] itself);
//! 3. the renderer ([`RendererModel`], spec §7.3) with the reference encoding cached per bank id and
//!    reference count (stage (a) costs about as much as a whole frame, so it is never redone for
//!    an unchanged bank);
//! 4. the paste-back: `trunc(255 x)`, cv2-exact resize into the box and, with
//!    [`CompositorSettings::blend`], the feathered mask of the 36-point contour polygon
//!    (`(int(w x), int(h y))` of the MediaPipe points; spec §1.7 steps 7-8, §1.8, README "crop").
//!
//! The frame may be in any colour order of [`ChannelOrder`](crate::image::ChannelOrder) with any stride; only the crop box and,
//! with blending, the blurred mask's reach (the contour's bounding box + 10 px) are written.
//! I420 and NV12 frames ([`FrameCompositor::render_yuv`]) are converted to RGB over that region
//! only, and only the samples of changed pixels are written back.
//!
//! When the renderer runs on a GPU with our CUDA kernels loaded, every step runs there (module
//! `device`): the region goes up once, sketches and crop are written into the translation
//! network's input on the device, the networks and the warp kernel follow on the same stream, the
//! paste (and YUV write-back) happens on the device and the region comes down once. The kernels
//! are the CPU steps' bit-exact twins, so the frame differs only by the networks' arithmetic.

mod device;
mod input;
mod overlay;
mod refs;
mod region_plan;

use crate::audio::{CHUNK_FRAMES, N_MELS};
use crate::sizes::{FACE_SIZE, WINDOW};
use std::path::Path;
use std::time::{Duration, Instant};

use ndarray::{Array4, ArrayView4};

pub use device::DeviceStepTimes;
pub use input::paste_region;
pub use refs::reference_subset;

use crate::engine::bank::{IMAGE_REFERENCES, ReferenceBank};
use crate::face::crop_box::{CropBox, CropBoxError, paste_polygon};
use crate::face::indices::{CONTENT, PASTE_CONTOUR, POSE};
use crate::image::yuv::{RgbWindow, Yuv420Mut, YuvColour};
use crate::image::{
    ChannelOrder, Image, ImageError, ImageMut, PasteBack, Resizer, SketchRasteriser, SketchScaling,
    bgr_to_chw, crop_face, face_to_u8, paste_face,
};
use crate::runtime::renderer::{
    RendererConfig, RendererError, RendererInput, RendererModel, RendererTimings, open_package,
};
use crate::runtime::{DeviceConfig, SessionConfig};
use device::{DeviceCompositor, DeviceJob, HostFrame};
use input::{check_input, pixel_polygon, window_landmarks};
use overlay::SketchOverlay;

/// Values of one window's POSE sets, `(5, 2, 74)` row-major (`T_pose`, spec app. D).
pub const WINDOW_POSE_LEN: usize = WINDOW * 2 * POSE.len();
/// Values of one window's predicted CONTENT sets, `(5, 2, 57)` (`predict_content`).
pub const WINDOW_CONTENT_LEN: usize = WINDOW * 2 * CONTENT.len();
/// Values of the renderer's mel chunk, `(80, 16)` (mel bins × time).
pub const MEL_LEN: usize = 80 * 16;
const PLANE: usize = FACE_SIZE * FACE_SIZE;

/// Errors of [`FrameCompositor`]; bad input is reported, never a panic. On any error the frame is
/// left untouched (everything is validated before the first write).
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// Loading or running the renderer failed.
    #[error(transparent)]
    Render(#[from] RendererError),
    /// A kernel or transfer of the GPU path failed.
    #[error(transparent)]
    Gpu(#[from] crate::kernels::GpuError),
    /// An image primitive rejected its input (e.g. a grey frame, a window crop size of 0).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The mesh points cannot give a paste polygon.
    #[error(transparent)]
    Geometry(#[from] CropBoxError),
    /// `references` outside `1..=25`.
    #[error("references must be 1..={IMAGE_REFERENCES}, got {0}")]
    BadReferenceCount(usize),
    /// The bank holds fewer image references than requested.
    #[error("the reference bank holds {available} image references, {requested} requested")]
    TooFewReferences { requested: usize, available: usize },
    /// A bank image reference is malformed (wrong crop length, unsketchable crop size).
    #[error("image reference {index} of the bank: {source}")]
    BadReference { index: usize, source: ImageError },
    /// The crop box is empty or does not lie inside the frame.
    #[error("crop box {crop_box:?} is empty or outside the {width}x{height} frame")]
    BadBox {
        crop_box: CropBox,
        width: usize,
        height: usize,
    },
    /// An input slice has the wrong number of values.
    #[error("{what}: expected {expected} values, got {got}")]
    BadLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Settings of a [`FrameCompositor`] (the element's properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompositorSettings {
    /// Number of image references, `1..=25`; which ones: [`reference_subset`]. Fewer is faster
    /// (stages (c) and (d) scale with it), 25 is the official setting.
    pub references: usize,
    /// Feathered blend inside the contour polygon (spec §1.8). Off: the resized face replaces the
    /// whole crop box (the official "pasted frame" of spec §1.7 step 8).
    pub blend: bool,
    /// Lay the centre target sketch over the crop box (debugging): the sketch resized into the box
    /// and "lightened" onto the face (per-channel maximum), so the predicted jaw and lip lines show
    /// in light grey where the renderer was asked to put them. The official side-by-side view
    /// (spec §1.7 steps 10-11) would change the frame size, which a video filter cannot do.
    pub show_sketch: bool,
    /// Intra-op threads of every renderer stage and of the warp; 0 = ONNX Runtime's choice (one per
    /// physical core). Fixed when the renderer is built.
    pub threads: usize,
    /// Where the networks run. `auto` is resolved when the renderer is built; the caller that
    /// wants to log the choice resolves first ([`crate::runtime::providers::resolve`]).
    pub device: DeviceConfig,
}

impl Default for CompositorSettings {
    fn default() -> Self {
        CompositorSettings {
            references: IMAGE_REFERENCES,
            blend: true,
            show_sketch: false,
            threads: 0,
            device: DeviceConfig::default(),
        }
    }
}

impl CompositorSettings {
    /// The [`RendererConfig`] these settings build an engine with.
    pub fn render_config(&self) -> RendererConfig {
        RendererConfig {
            session: SessionConfig {
                device: self.device.clone(),
                intra_threads: self.threads,
                ..SessionConfig::default()
            },
            warp_threads: self.threads,
            ..RendererConfig::default()
        }
    }
}

/// Where the 478 (or 468) MediaPipe points of the rendered frame are given; read only for the
/// paste polygon, i.e. only with [`CompositorSettings::blend`].
#[derive(Debug, Clone, Copy)]
pub enum MeshPoints<'a> {
    /// MediaPipe's normalised `(x / width, y / height)`: the polygon is `(int(w x), int(h y))` with
    /// the products in `f64`, bit-exact with the official arithmetic. Preferred.
    Normalised(&'a [[f32; 2]]),
    /// Frame pixels: the polygon is their truncation toward zero. Equal to the normalised form
    /// unless `f32` rounding of `w x` crossed an integer.
    Pixels(&'a [[f32; 2]]),
}

/// One frame's inputs (the landmark meta of ARCHITECTURE "Data contracts").
#[derive(Debug, Clone, Copy)]
pub struct FrameInput<'a> {
    /// Crop box of this frame (spec §1.4), inside the frame.
    pub crop_box: CropBox,
    /// Mesh points of this frame, for the paste polygon.
    pub mesh: MeshPoints<'a>,
    /// POSE sets of the five window frames, crop-normalised, `(5, 2, 74)` row-major (row 0 = x).
    pub window_pose: &'a [f32],
    /// Crop size `(height, width)` of each window frame: the sketch canvas of spec §4 step 1.
    pub window_crop_hw: [(usize, usize); WINDOW],
    /// Predicted CONTENT sets (landmark generator output), `(5, 2, 57)` row-major.
    pub window_content: &'a [f32],
    /// The renderer's mel chunk, `(80, 16)` row-major (chunk f − 2 for frame f, spec §1.3).
    pub mel: &'a [f32],
    /// The reference bank (an `Arc<ReferenceBank>` derefs to it). Its encoding is cached by
    /// [`ReferenceBank::id`], so a bank must not be mutated in place once rendered with.
    pub bank: &'a ReferenceBank,
}

/// Time of each step of [`FrameCompositor::render_frame`]: wall-clock on the CPU; on the GPU
/// path the steps the kernels run (sketches, crop, paste) are their GPU times, and [`Self::device`]
/// has every step's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameStats {
    /// The five target sketches.
    pub sketches: Duration,
    /// Face crop and tensor (on the GPU: with the region's upload and colour conversion).
    pub crop: Duration,
    /// Packing and encoding the reference bank (zero when the cached encoding was used).
    pub reference_encoding: Duration,
    /// Whether this frame (re-)encoded the reference bank.
    pub encoded_references: bool,
    /// The renderer's per-frame stages (b)-(e).
    pub render: RendererTimings,
    /// `trunc(255 x)`, resize, mask, blur and blend.
    pub paste: Duration,
    /// The `show_sketch` overlay.
    pub overlay: Duration,
    /// The whole call.
    pub total: Duration,
    /// The GPU time of each step (CUDA events), when the frame was rendered on the GPU.
    pub device: Option<DeviceStepTimes>,
}

/// Renders frames in place; see the module documentation. Holds the renderer sessions, the cached
/// reference encoding and per-frame scratch (no large allocation per frame once warmed up,
/// apart from the renderer's own tensors).
pub struct FrameCompositor {
    engine: RendererModel,
    settings: CompositorSettings,
    /// `(bank id, references, bank image count)` of the encoding the engine holds.
    cached: Option<(u64, usize, usize)>,
    rasteriser: SketchRasteriser,
    resizer: Resizer,
    crop: Image,
    face_u8: Image,
    paste: PasteBack,
    overlay: SketchOverlay,
    face: Array4<f32>,
    sketches: Array4<f32>,
    audio: Array4<f32>,
    generated: Array4<f32>,
    /// YUV frames on the CPU: the paste region as RGB.
    rgb_window: RgbWindow,
    /// The GPU path, when the renderer runs on a GPU with our kernels loaded.
    device: Option<DeviceCompositor>,
}

impl FrameCompositor {
    /// A renderer from a model package folder (`iplap convert` output), with sessions configured
    /// by `settings` ([`CompositorSettings::render_config`]).
    pub fn from_package(dir: &Path, settings: CompositorSettings) -> Result<Self, ComposeError> {
        check_reference_count(settings.references)?;
        let engine = open_package(dir, settings.render_config())?;
        Self::new(engine, settings)
    }

    /// A renderer around an existing engine (its bank, if any, is replaced on the first frame;
    /// `settings.threads` is not applied to it).
    pub fn new(engine: RendererModel, settings: CompositorSettings) -> Result<Self, ComposeError> {
        check_reference_count(settings.references)?;
        let tensor = || Array4::<f32>::zeros((1, 3, FACE_SIZE, FACE_SIZE));
        let ordinal = engine.config().session.device.device_id as i32;
        let device = match engine.gpu_kernels() {
            Some(kernels) => match DeviceCompositor::new(kernels.clone(), ordinal) {
                Ok(d) => Some(d),
                Err(e) => {
                    log::warn!("frames are composed on the CPU: the GPU path cannot start: {e}");
                    None
                }
            },
            None => None,
        };
        Ok(FrameCompositor {
            engine,
            settings,
            cached: None,
            rasteriser: SketchRasteriser::new(),
            resizer: Resizer::new(),
            crop: Image::default(),
            face_u8: Image::default(),
            paste: PasteBack::new(),
            overlay: SketchOverlay::default(),
            face: tensor(),
            sketches: Array4::zeros((WINDOW, 3, FACE_SIZE, FACE_SIZE)),
            audio: Array4::zeros((1, 1, N_MELS, CHUNK_FRAMES)),
            generated: tensor(),
            rgb_window: RgbWindow::default(),
            device,
        })
    }

    /// Whether frames are composed on the GPU (module `device`): the renderer runs on CUDA or
    /// TensorRT and the kernels loaded. The `show_sketch` overlay is drawn by the CPU path.
    pub fn on_device(&self) -> bool {
        self.device.is_some()
    }

    /// The current settings.
    pub fn settings(&self) -> &CompositorSettings {
        &self.settings
    }

    /// Changes the number of references; the bank is re-encoded on the next frame.
    pub fn set_references(&mut self, references: usize) -> Result<(), ComposeError> {
        check_reference_count(references)?;
        self.settings.references = references;
        Ok(())
    }

    /// Turns the feathered blend on or off (takes effect on the next frame).
    pub fn set_blend(&mut self, blend: bool) {
        self.settings.blend = blend;
    }

    /// Turns the sketch overlay on or off (takes effect on the next frame).
    pub fn set_show_sketch(&mut self, show: bool) {
        self.settings.show_sketch = show;
    }

    /// The generated face of the last frame composed on the CPU, `(1, 3, 128, 128)`, BGR in
    /// (0, 1) (the GPU path keeps it on the device).
    pub fn generated_face(&self) -> ArrayView4<'_, f32> {
        self.generated.view()
    }

    /// The target sketches of the last frame composed on the CPU, `(5, 3, 128, 128)` in
    /// `[0, 224/255]`.
    pub fn target_sketches(&self) -> ArrayView4<'_, f32> {
        self.sketches.view()
    }

    /// Renders `input` into `frame` in place (spec §1.7 steps 3-9; module documentation): on the
    /// GPU when [`Self::on_device`] (and no sketch overlay), else on the CPU.
    pub fn render_frame(
        &mut self,
        frame: &mut ImageMut,
        input: &FrameInput,
    ) -> Result<FrameStats, ComposeError> {
        if self.device.is_some() && !self.settings.show_sketch {
            return self.render_on_device(HostFrame::Packed(frame), input);
        }
        self.render_on_host(frame, input)
    }

    /// [`Self::render_frame`] for an I420 or NV12 frame encoded with `colour`: only the paste
    /// region ([`paste_region`]) is converted to RGB and only the samples whose pixel changed
    /// are written back (on the GPU the same, by the YUV kernels).
    pub fn render_yuv(
        &mut self,
        frame: &mut Yuv420Mut,
        colour: &YuvColour,
        input: &FrameInput,
    ) -> Result<FrameStats, ComposeError> {
        if self.device.is_some() && !self.settings.show_sketch {
            return self.render_on_device(HostFrame::Yuv(frame, *colour), input);
        }
        let (width, height) = (frame.width, frame.height);
        let polygon = self.polygon(input, width, height)?;
        let region = paste_region(input.crop_box.rect(), polygon.as_ref(), width, height);
        let mut window = std::mem::take(&mut self.rgb_window);
        let result = window.run(frame, colour, region, |image| {
            self.render_on_host(image, input)
        });
        self.rgb_window = window;
        result.map(|(stats, _)| stats)
    }

    /// The paste polygon of the settings' blend (`None` without blending).
    fn polygon(
        &self,
        input: &FrameInput,
        width: usize,
        height: usize,
    ) -> Result<Option<[(i64, i64); PASTE_CONTOUR.len()]>, ComposeError> {
        Ok(match (self.settings.blend, input.mesh) {
            (false, _) => None,
            (true, MeshPoints::Normalised(p)) => Some(paste_polygon(p, width, height)?),
            (true, MeshPoints::Pixels(p)) => Some(pixel_polygon(p)?),
        })
    }

    /// The GPU path (module `device`), checked as the CPU path checks its input.
    fn render_on_device(
        &mut self,
        frame: HostFrame,
        input: &FrameInput,
    ) -> Result<FrameStats, ComposeError> {
        let start = Instant::now();
        let (width, height, order) = match &frame {
            HostFrame::Packed(f) => (f.width(), f.height(), f.order()),
            HostFrame::Yuv(f, _) => (f.width, f.height, ChannelOrder::Rgb),
        };
        let rect = check_input(width, height, order, input)?;
        reference_subset(input.bank.images.len(), self.settings.references)?;
        let polygon = self.polygon(input, width, height)?;
        let mut stats = FrameStats::default();
        let t = Instant::now();
        stats.encoded_references = self.ensure_references(input.bank)?;
        stats.reference_encoding = t.elapsed();
        let job = DeviceJob {
            landmarks: std::array::from_fn(|j| window_landmarks(input, j)),
            crops: input.window_crop_hw.map(|(h, w)| (w, h)),
            rect,
            region: paste_region(rect, polygon.as_ref(), width, height),
            polygon,
            audio: input.mel,
        };
        let Some(device) = self.device.as_mut() else {
            return Err(
                crate::kernels::GpuError::Input("no GPU path on this compositor".into()).into(),
            );
        };
        let (render, times) = device.render(&mut self.engine, frame, &job)?;
        stats.sketches = times.sketches;
        stats.crop = times.upload + times.crop;
        stats.render = render;
        stats.paste = times.paste + times.download;
        stats.device = Some(times);
        stats.total = start.elapsed();
        Ok(stats)
    }

    /// The CPU path of [`Self::render_frame`].
    fn render_on_host(
        &mut self,
        frame: &mut ImageMut,
        input: &FrameInput,
    ) -> Result<FrameStats, ComposeError> {
        let start = Instant::now();
        let mut stats = FrameStats::default();
        let rect = check_input(frame.width(), frame.height(), frame.order(), input)?;
        reference_subset(input.bank.images.len(), self.settings.references)?;
        let polygon = self.polygon(input, frame.width(), frame.height())?;

        let t = Instant::now();
        self.draw_target_sketches(input)?;
        stats.sketches = t.elapsed();

        let t = Instant::now();
        crop_face(&frame.as_ref(), rect, &mut self.crop, &mut self.resizer)?;
        let face = self.face.as_slice_mut().expect("standard layout");
        bgr_to_chw(&self.crop.view(), face)?;
        let audio = self.audio.as_slice_mut().expect("standard layout");
        audio.copy_from_slice(input.mel);
        stats.crop = t.elapsed();

        let t = Instant::now();
        stats.encoded_references = self.ensure_references(input.bank)?;
        stats.reference_encoding = t.elapsed();

        let out = self.engine.render(&RendererInput {
            face: self.face.view(),
            target_sketches: self.sketches.view(),
            audio: self.audio.view(),
        })?;
        stats.render = out.timings;
        self.generated.assign(&out.generated_face);

        let t = Instant::now();
        let generated = self.generated.as_slice().expect("standard layout");
        match polygon {
            Some(polygon) => self.paste.blend(frame, generated, rect, &polygon)?,
            None => {
                face_to_u8(generated, &mut self.face_u8)?;
                paste_face(frame, &self.face_u8.view(), rect, &mut self.resizer)?;
            }
        }
        stats.paste = t.elapsed();

        if self.settings.show_sketch {
            let t = Instant::now();
            self.overlay.draw(frame, rect, &mut self.resizer)?;
            stats.overlay = t.elapsed();
        }
        stats.total = start.elapsed();
        Ok(stats)
    }

    /// Spec §1.7 step 3 for j = 0..4 into `self.sketches`; keeps the centre one for the overlay.
    fn draw_target_sketches(&mut self, input: &FrameInput) -> Result<(), ComposeError> {
        let out = self.sketches.as_slice_mut().expect("standard layout");
        for (j, out) in out.chunks_exact_mut(3 * PLANE).enumerate() {
            let full = window_landmarks(input, j);
            let (h, w) = input.window_crop_hw[j];
            self.rasteriser
                .render(&full, w, h, SketchScaling::Target, out)?;
            if j == WINDOW / 2 && self.settings.show_sketch {
                self.overlay
                    .set_sketch(self.rasteriser.resized_f64(), FACE_SIZE);
            }
        }
        Ok(())
    }

    /// Encodes the bank's reference subset unless the engine already holds it. Returns whether it
    /// encoded. The cache key is dropped first, so a failed encoding is retried next frame.
    fn ensure_references(&mut self, bank: &ReferenceBank) -> Result<bool, ComposeError> {
        let n = self.settings.references;
        let key = (bank.id(), n, bank.images.len());
        if self.cached == Some(key) {
            return Ok(false);
        }
        self.cached = None;
        let indices = reference_subset(bank.images.len(), n)?;
        let (imgs, sketches) = refs::pack_references(bank, &indices, &mut self.rasteriser)?;
        self.engine
            .set_reference_bank(imgs.view(), sketches.view())?;
        self.cached = Some(key);
        Ok(true)
    }
}

// The element keeps its renderer behind a mutex and renders on a streaming thread.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<FrameCompositor>();
};

fn check_reference_count(n: usize) -> Result<(), ComposeError> {
    if n == 0 || n > IMAGE_REFERENCES {
        return Err(ComposeError::BadReferenceCount(n));
    }
    Ok(())
}
