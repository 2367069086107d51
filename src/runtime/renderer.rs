//! The renderer runtime: [`RendererModel`] runs the staged renderer of spec §7.3 (graphs in
//! [`crate::graph::renderer`], warp in [`crate::warp`]) for one frame at a time.
//!
//! * [`RendererModel::set_reference_bank`] runs stage (a) once and caches h1, h2 and the reference
//!   images (about 6.2 MiB per reference, spec §7.2).
//! * [`RendererModel::render`] runs stage (b) once, stage (c) over the references in chunks of
//!   [`RendererConfig::chunk`] (bounding the activation memory), accumulates each chunk's warps (d)
//!   as soon as it is ready, then runs the translation network (e).
//!
//! The result equals the official `Renderer.forward` (spec §5.2) up to float32 summation order.

mod device_warp;
mod flow_warp;
mod resident;
mod stages;

use crate::audio::{CHUNK_FRAMES, N_MELS};
use crate::sizes::{FACE_SIZE, HALF_SIZE, WINDOW};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::{Array4, ArrayView4, Axis, s};

pub use resident::{ResidentInput, ResidentOutput};
pub use stages::{
    FlowHead, FlowHeadOutput, FlowModulation, RefEncoder, RefFeatures, SpadeMaps, Translation,
    TranslationInput, TranslationIntermediates, TranslationOutput,
};

use crate::graph::GraphError;
use crate::graph::package::{GraphPrecision, ModelPackage};
use crate::graph::renderer::{
    RendererGraphOptions, RendererGraphs, flow_head, flow_modulation, ref_encoder, stage_names,
    translation,
};
use crate::graph::target::GraphTarget;
use crate::graph::weights::WeightSource;
use crate::runtime::{DeviceTensor, Placement};
use crate::runtime::{SessionConfig, SessionError};
use crate::warp::{WarpAccumulator, WarpError};
use stages::check_shape;

/// First row of the face that is zeroed before the translation network (`128 // 2`, spec §5.2 step 3).
pub const MASK_ROW: usize = FACE_SIZE / 2;
/// Default number of references per flow-head run.
pub const DEFAULT_CHUNK: usize = 5;

/// Errors of the renderer runtime; never a panic on bad input.
#[derive(Debug, thiserror::Error)]
pub enum RendererError {
    /// ONNX Runtime could not load or run a stage.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Building the graphs or opening the model package failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The warp stage rejected its inputs.
    #[error(transparent)]
    Warp(#[from] WarpError),
    /// The GPU warp kernel failed.
    #[error(transparent)]
    Kernels(#[from] crate::kernels::GpuError),
    /// An input tensor has the wrong shape (`N` = any count).
    #[error("renderer input `{name}`: expected shape {expected:?}, got {got:?}")]
    Shape {
        /// Input name.
        name: &'static str,
        /// Expected dims.
        expected: Vec<String>,
        /// Actual dims.
        got: Vec<usize>,
    },
    /// A stage returned fewer values than its contract promises.
    #[error("renderer stage {stage}: output `{name}` has {got} values, expected shape {shape:?}")]
    Output {
        /// Stage.
        stage: &'static str,
        /// Output name.
        name: String,
        /// Values returned.
        got: usize,
        /// Expected shape.
        shape: Vec<usize>,
    },
    /// The reference bank is empty.
    #[error("the reference bank needs at least one reference")]
    EmptyBank,
    /// [`RendererModel::render`] was called before [`RendererModel::set_reference_bank`].
    #[error("no reference bank: call set_reference_bank first")]
    NoReferenceBank,
}

/// Settings of a [`RendererModel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendererConfig {
    /// ONNX Runtime provider and intra-op threads of every stage.
    pub session: SessionConfig,
    /// References per flow-head run (≥ 1): larger batches are slightly faster, smaller ones bound the
    /// memory (about 35 MiB of activations per reference).
    pub chunk: usize,
    /// Threads of the warp stage; 0 = `session.intra_threads`, or the available parallelism.
    pub warp_threads: usize,
    /// Keep every reference's flow and weight in [`RendererOutput`] (tests, debugging).
    pub keep_flow: bool,
    /// Build the graphs with intermediate outputs and for a target (only with
    /// [`RendererModel::from_weights`]; a package's stages are chosen by [`Self::target`]).
    pub graph: RendererGraphOptions,
    /// Which of a package's graphs to run; `None`: the device's ([`GraphTarget::for_device`]).
    /// `Some(Gpu)` on the CPU is how the GPU graphs are checked without a GPU.
    pub target: Option<GraphTarget>,
    /// Which precision of a package's graphs to run; `None`: the device's
    /// ([`GraphPrecision::for_device`]). `Some(Fp16)` on the CPU checks the fp16 graphs without a
    /// GPU (ONNX Runtime's CPU provider computes their fp16 convolutions in fp32).
    pub graph_precision: Option<GraphPrecision>,
}

impl Default for RendererConfig {
    fn default() -> Self {
        RendererConfig {
            session: SessionConfig::default(),
            chunk: DEFAULT_CHUNK,
            warp_threads: 0,
            keep_flow: false,
            graph: RendererGraphOptions::default(),
            target: None,
            graph_precision: None,
        }
    }
}

/// One frame's inputs (spec app. D, batch 1).
#[derive(Debug, Clone, Copy)]
pub struct RendererInput<'a> {
    /// `(1, 3, 128, 128)`: the template face crop, BGR in [0, 1], *unmasked* (the engine zeroes rows
    /// 64..127 itself).
    pub face: ArrayView4<'a, f32>,
    /// `(5, 3, 128, 128)`: the five target sketches of the window, [0, 1].
    pub target_sketches: ArrayView4<'a, f32>,
    /// `(1, 1, 80, 16)`: the renderer's mel chunk.
    pub audio: ArrayView4<'a, f32>,
}

/// Wall-clock time of each per-frame stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RendererTimings {
    /// Stage (b).
    pub modulation: Duration,
    /// Stage (c), all chunks.
    pub flow_head: Duration,
    /// Stage (d), all chunks plus the final division.
    pub warp: Duration,
    /// Stage (e), including building `translation_input`.
    pub translation: Duration,
}

impl RendererTimings {
    /// Sum of the stages.
    pub fn total(&self) -> Duration {
        self.modulation + self.flow_head + self.warp + self.translation
    }
}

/// One frame's outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct RendererOutput {
    /// `(1, 3, 128, 128)`: the generated face, BGR in (0, 1).
    pub generated_face: Array4<f32>,
    /// `(1, 3, 128, 128)`: the weighted warped references (`ref_avg`, the official `wrapped_ref`).
    pub wrapped_ref: Array4<f32>,
    /// `(1, 32, 128, 128)`: `h1_avg`.
    pub wrapped_h1: Array4<f32>,
    /// `(1, 256, 64, 64)`: `h2_avg`.
    pub wrapped_h2: Array4<f32>,
    /// `(N, 2, 128, 128)` per-reference flows, with [`RendererConfig::keep_flow`].
    pub flow: Option<Array4<f32>>,
    /// `(N, 1, 128, 128)` per-reference weights, with [`RendererConfig::keep_flow`].
    pub weight: Option<Array4<f32>>,
    /// Translation-network intermediates, when the graphs were built with intermediates.
    pub intermediates: Option<TranslationIntermediates>,
    /// Per-stage times.
    pub timings: RendererTimings,
}

/// The cached reference bank: features and images of N references, on the host for the warp,
/// and h2 also on the GPU per flow-head chunk when the stages run there.
#[derive(Debug)]
struct EncodedReferences {
    features: RefFeatures,
    ref_img: Array4<f32>,
    /// One tensor per chunk of [`RendererConfig::chunk`] references; empty on the host.
    resident_h2: Vec<DeviceTensor>,
}

/// The staged renderer with a cached reference bank; see the module documentation.
pub struct RendererModel {
    config: RendererConfig,
    ref_encoder: RefEncoder,
    flow_modulation: FlowModulation,
    flow_head: FlowHead,
    translation: Translation,
    bank: Option<EncodedReferences>,
    warp: WarpAccumulator,
    /// The warp on the GPU, when the sessions run on CUDA and the kernels load.
    device_warp: Option<device_warp::DeviceWarp>,
    /// Output tensors of [`Self::render_resident`], made at its first call.
    resident: Option<resident::ResidentBuffers>,
    /// The graphs' stage names (a package's stage files), in run order.
    stages: [String; 4],
}

impl RendererModel {
    /// Builds the graphs from Renderer weights (keys `flow_module.*`, `translation.*`) in memory.
    pub fn from_weights(
        src: &dyn WeightSource,
        config: RendererConfig,
    ) -> Result<Self, RendererError> {
        let graphs = RendererGraphs::build(src, config.graph)?;
        Self::from_graphs(&graphs, config)
    }

    /// Creates the sessions of already built graphs.
    pub fn from_graphs(g: &RendererGraphs, config: RendererConfig) -> Result<Self, RendererError> {
        Self::from_stage_bytes(
            [
                g.ref_encoder.to_bytes(),
                g.flow_modulation.to_bytes(),
                g.flow_head.to_bytes(),
                g.translation.to_bytes(),
            ],
            stage_names(config.graph.target).map(str::to_owned),
            "(in memory)",
            config,
        )
    }

    /// Loads the four renderer stages of a model package for the device's target (or
    /// `config.target`): the CPU or the GPU graphs ([`crate::graph::renderer::stage_names`]).
    /// `config.graph` is ignored: packages hold production graphs. A package from before GPU
    /// graphs existed runs on the CPU and is refused for a GPU with a word to re-run convert.
    pub fn from_package(pkg: &ModelPackage, config: RendererConfig) -> Result<Self, RendererError> {
        // Resolve `auto` once here, so that the target and all four sessions agree.
        let device = crate::runtime::providers::resolve(&config.session.device)
            .map_err(SessionError::from)?
            .config;
        let target = config
            .target
            .unwrap_or(GraphTarget::for_device(device.device));
        // fp16 on the CUDA provider (and TensorRT-RTX) runs the fp16 graphs; TensorRT uses its
        // own fp16 mode on the fp32 graphs (it picks the precision per layer).
        let precision = config
            .graph_precision
            .unwrap_or(GraphPrecision::for_device(device.device, device.precision));
        let stage_file = |base: &str| -> Result<(String, PathBuf), RendererError> {
            let stage = match pkg.stage_for_precision(base, precision) {
                Ok(stage) => stage,
                Err(_) if target == GraphTarget::Gpu && pkg.stage(base).is_err() => {
                    return Err(RendererError::Graph(GraphError::Package {
                        path: pkg.dir().to_owned(),
                        message: format!(
                            "has no GPU graphs (stage `{base}`): it was converted by an older \
                             iplap, whose graphs run on the CPU only"
                        ),
                    }));
                }
                Err(e) => return Err(e.into()),
            };
            Ok((stage.name.clone(), pkg.stage_path(&stage.name)?))
        };
        let mut names: [String; 4] = Default::default();
        let mut bytes: [Vec<u8>; 4] = Default::default();
        for (i, base) in stage_names(target).into_iter().enumerate() {
            let (name, path) = stage_file(base)?;
            bytes[i] = std::fs::read(&path)
                .map_err(|source| RendererError::Graph(GraphError::Io { path, source }))?;
            names[i] = name;
        }
        // One CUDA stream for the four stages: they hand tensors to each other on the device.
        let stream = match (Placement::for_device(&device), &config.session.stream) {
            (Placement::Cuda { .. }, None) => Some(
                crate::runtime::nvidia::ComputeStream::new(device.device_id).map_err(
                    |message| SessionError::Build {
                        model: pkg.dir().display().to_string(),
                        message,
                    },
                )?,
            ),
            (_, stream) => stream.clone(),
        };
        let config = RendererConfig {
            graph: RendererGraphOptions::production(target),
            session: SessionConfig {
                device,
                stream,
                ..config.session
            },
            ..config
        };
        Self::from_stage_bytes(bytes, names, &pkg.dir().display().to_string(), config)
    }

    fn from_stage_bytes(
        bytes: [Vec<u8>; 4],
        names: [String; 4],
        origin: &str,
        config: RendererConfig,
    ) -> Result<Self, RendererError> {
        let [a, b, c, e] = bytes;
        let label = |name: &str| format!("{name} {origin}");
        let s = &config.session;
        let warp_threads = match (config.warp_threads, s.intra_threads) {
            (0, 0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            (0, t) => t,
            (w, _) => w,
        };
        let ref_encoder = RefEncoder::from_bytes(&label(ref_encoder::NAME), a, s)?;
        let flow_modulation = FlowModulation::from_bytes(&label(flow_modulation::NAME), &b, s)?;
        let flow_head = FlowHead::from_bytes(&label(flow_head::NAME), c, config.graph, s)?;
        let translation = Translation::from_bytes(&label(translation::NAME), &e, config.graph, s)?;
        let device_warp = match (Placement::for_device(&s.device), &s.stream) {
            (Placement::Cuda { ordinal }, Some(stream)) => {
                match device_warp::DeviceWarp::new(stream.cuda().clone(), ordinal) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        log::warn!("the warp runs on the CPU: its GPU kernel cannot load: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(RendererModel {
            config: RendererConfig {
                chunk: config.chunk.max(1),
                ..config
            },
            ref_encoder,
            flow_modulation,
            flow_head,
            translation,
            bank: None,
            warp: WarpAccumulator::new(warp_threads),
            device_warp,
            resident: None,
            stages: names,
        })
    }

    /// The engine's settings.
    pub fn config(&self) -> &RendererConfig {
        &self.config
    }

    /// The stages' graph names (their package stage names), in run order: which target and
    /// precision actually run.
    pub fn stages(&self) -> &[String; 4] {
        &self.stages
    }

    /// Number of references in the cached bank (`None` before [`Self::set_reference_bank`]).
    pub fn reference_count(&self) -> Option<usize> {
        self.bank.as_ref().map(|b| b.ref_img.len_of(Axis(0)))
    }

    /// The cached h1/h2 of the reference bank.
    pub fn reference_features(&self) -> Option<&RefFeatures> {
        self.bank.as_ref().map(|b| &b.features)
    }

    /// Encodes and caches a reference bank: images BGR [0, 1] and their sketches, both
    /// `(N, 3, 128, 128)`, N ≥ 1 (25 in the official inference). Runs stage (a) in chunks. After an
    /// error the engine has no bank (the previous one is dropped first, to bound memory).
    pub fn set_reference_bank(
        &mut self,
        ref_imgs: ArrayView4<'_, f32>,
        ref_sketches: ArrayView4<'_, f32>,
    ) -> Result<(), RendererError> {
        let n = ref_imgs.len_of(Axis(0));
        let shape = [Some(n), Some(3), Some(FACE_SIZE), Some(FACE_SIZE)];
        check_shape("ref_imgs", &ref_imgs, shape)?;
        check_shape("ref_sketches", &ref_sketches, shape)?;
        if n == 0 {
            return Err(RendererError::EmptyBank);
        }
        self.bank = None; // free the old bank before allocating the new one
        let mut h1 = Array4::<f32>::zeros((n, ref_encoder::H1_CHANNELS, FACE_SIZE, FACE_SIZE));
        let mut h2 = Array4::<f32>::zeros((n, ref_encoder::H2_CHANNELS, HALF_SIZE, HALF_SIZE));
        let mut resident_h2 = Vec::new();
        for (a, b) in chunks(n, self.config.chunk) {
            let (f, resident) = self.ref_encoder.run_keeping_h2(
                ref_imgs.slice(s![a..b, .., .., ..]),
                ref_sketches.slice(s![a..b, .., .., ..]),
            )?;
            h1.slice_mut(s![a..b, .., .., ..]).assign(&f.h1);
            h2.slice_mut(s![a..b, .., .., ..]).assign(&f.h2);
            resident_h2.extend(resident);
        }
        let ref_img = ref_imgs.as_standard_layout().into_owned();
        if let Some(warp) = self.device_warp.as_mut() {
            let (h1, img) = (h1.as_slice(), ref_img.as_slice());
            warp.set_bank(h1.unwrap_or_default(), img.unwrap_or_default())?;
        }
        self.bank = Some(EncodedReferences {
            features: RefFeatures { h1, h2 },
            ref_img,
            resident_h2,
        });
        Ok(())
    }

    /// Renders one frame with the cached reference bank (stages (b)-(e)).
    pub fn render(&mut self, x: &RendererInput<'_>) -> Result<RendererOutput, RendererError> {
        check_shape(
            "face",
            &x.face,
            [Some(1), Some(3), Some(FACE_SIZE), Some(FACE_SIZE)],
        )?;
        check_shape(
            "target_sketches",
            &x.target_sketches,
            [Some(WINDOW), Some(3), Some(FACE_SIZE), Some(FACE_SIZE)],
        )?;
        check_shape(
            "audio",
            &x.audio,
            [Some(1), Some(1), Some(N_MELS), Some(CHUNK_FRAMES)],
        )?;
        let bank = self.bank.as_ref().ok_or(RendererError::NoReferenceBank)?;
        let n = bank.ref_img.len_of(Axis(0));
        let mut timings = RendererTimings::default();

        let t = Instant::now();
        let maps = self.flow_modulation.run(x.target_sketches)?;
        timings.modulation = t.elapsed();

        // The GPU warp: flows stay on the device, the averages go to the translation in place.
        let t = Instant::now();
        let plain = !self.config.keep_flow && !self.config.graph.intermediates;
        if let Some(averages) = plain
            .then(|| self.warp_on_device(&maps))
            .transpose()?
            .flatten()
        {
            timings.flow_head = t.elapsed();
            let t = Instant::now();
            let translation_input = translation_input(x.face, x.target_sketches)?;
            let audio = x.audio.as_standard_layout();
            let generated = self.translation.run_on_device_averages(
                translation_input.as_slice().unwrap_or_default(),
                audio.as_slice().unwrap_or_default(),
                [&averages[0], &averages[1], &averages[2]],
            )?;
            timings.translation = t.elapsed();
            let avg = self
                .device_warp
                .as_ref()
                .ok_or_else(|| crate::kernels::GpuError::Input("no device warp".into()))?
                .download()?;
            return Ok(RendererOutput {
                generated_face: generated,
                wrapped_ref: avg.ref_avg,
                wrapped_h1: avg.h1_avg,
                wrapped_h2: avg.h2_avg,
                flow: None,
                weight: None,
                intermediates: None,
                timings,
            });
        }

        let mut kept = self.config.keep_flow.then(|| {
            (
                Array4::<f32>::zeros((n, 2, FACE_SIZE, FACE_SIZE)),
                Array4::<f32>::zeros((n, 1, FACE_SIZE, FACE_SIZE)),
            )
        });
        let avg = self.warp_on_host(&maps, &mut timings, kept.as_mut())?;

        let t = Instant::now();
        let translation_input = translation_input(x.face, x.target_sketches)?;
        let out = self.translation.run(&TranslationInput {
            translation_input: translation_input.view(),
            h1_avg: avg.h1_avg.view(),
            h2_avg: avg.h2_avg.view(),
            ref_avg: avg.ref_avg.view(),
            audio: x.audio,
        })?;
        timings.translation = t.elapsed();

        let (flow, weight) = kept.unzip();
        Ok(RendererOutput {
            generated_face: out.generated,
            wrapped_ref: avg.ref_avg,
            wrapped_h1: avg.h1_avg,
            wrapped_h2: avg.h2_avg,
            flow,
            weight,
            intermediates: out.intermediates,
            timings,
        })
    }

    /// The CUDA kernels on the sessions' stream, when the renderer runs on a GPU and they loaded
    /// (its warp then runs on the GPU): a caller's kernels on this stream are ordered with the
    /// networks, and [`Self::render_resident`] can read and write their buffers in place.
    pub fn gpu_kernels(&self) -> Option<&std::sync::Arc<crate::kernels::GpuKernels>> {
        self.device_warp.as_ref().map(|w| w.kernels())
    }

    /// Stage (e) alone (e.g. to inspect intermediates with golden inputs).
    pub fn translation(&mut self) -> &mut Translation {
        &mut self.translation
    }

    /// Stage (c) alone.
    pub fn flow_head(&mut self) -> &mut FlowHead {
        &mut self.flow_head
    }

    /// Stage (b) alone.
    pub fn flow_modulation(&mut self) -> &mut FlowModulation {
        &mut self.flow_modulation
    }
}

/// `translation_input` (spec §5.2 steps 2-4): `[face with rows 64.. zeroed (3), sketches (15)]`,
/// `(1, 18, 128, 128)`, from the unmasked face `(1, 3, 128, 128)` and the sketches `(5, 3, 128, 128)`.
pub fn translation_input(
    face: ArrayView4<'_, f32>,
    target_sketches: ArrayView4<'_, f32>,
) -> Result<Array4<f32>, RendererError> {
    check_shape(
        "face",
        &face,
        [Some(1), Some(3), Some(FACE_SIZE), Some(FACE_SIZE)],
    )?;
    let sketches = [Some(WINDOW), Some(3), Some(FACE_SIZE), Some(FACE_SIZE)];
    check_shape("target_sketches", &target_sketches, sketches)?;
    let mut out = Array4::<f32>::zeros((1, translation::INPUT_CHANNELS, FACE_SIZE, FACE_SIZE));
    out.slice_mut(s![0, 0..3, 0..MASK_ROW, ..])
        .assign(&face.slice(s![0, .., 0..MASK_ROW, ..]));
    for (k, sketch) in target_sketches.outer_iter().enumerate() {
        out.slice_mut(s![0, 3 + 3 * k..6 + 3 * k, .., ..])
            .assign(&sketch);
    }
    Ok(out)
}

/// `[a, b)` ranges of at most `chunk` references covering `0..n`.
fn chunks(n: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    let chunk = chunk.max(1);
    (0..n).step_by(chunk).map(move |a| (a, (a + chunk).min(n)))
}

/// Loads a renderer from a model package folder (convenience for [`RendererModel::from_package`]).
pub fn open_package(dir: &Path, config: RendererConfig) -> Result<RendererModel, RendererError> {
    RendererModel::from_package(&ModelPackage::open(dir)?, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_bank() {
        assert_eq!(chunks(25, 5).collect::<Vec<_>>().len(), 5);
        assert_eq!(
            chunks(7, 3).collect::<Vec<_>>(),
            vec![(0, 3), (3, 6), (6, 7)]
        );
        assert_eq!(chunks(2, 0).collect::<Vec<_>>(), vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn translation_input_masks_the_lower_half() {
        let face = Array4::<f32>::from_elem((1, 3, FACE_SIZE, FACE_SIZE), 0.5);
        let sk = Array4::from_shape_fn((5, 3, FACE_SIZE, FACE_SIZE), |(k, c, _, _)| {
            (k * 3 + c) as f32
        });
        let t = translation_input(face.view(), sk.view()).unwrap();
        assert!(translation_input(sk.view(), face.view()).is_err());
        assert_eq!(t[[0, 2, MASK_ROW - 1, 7]], 0.5);
        assert_eq!(t[[0, 0, MASK_ROW, 7]], 0.0);
        assert_eq!(t[[0, 3 + 7, 100, 3]], 7.0);
    }
}
