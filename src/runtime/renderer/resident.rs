//! The renderer on inputs that are already where it runs: the compositor's GPU path builds
//! `translation_input` (the masked face and the five target sketches) with its own kernels in
//! device memory, and takes the generated face from device memory. Stage (b) reads the sketches
//! in place and writes the SPADE maps into tensors allocated once on the GPU, the flow head and
//! the warp run as in [`RendererModel::render`], and stage (e) reads `translation_input` and the
//! warp's averages in place and writes the face into a tensor allocated once: per frame only
//! the mel chunk (5 KB) goes up and nothing comes down.
//!
//! The same code runs with host placement (the CPU provider), the borrowed inputs then being
//! host memory; that is how CI holds it to [`RendererModel::render`], bit for bit.

use std::time::Instant;

use super::stages::{FlowModulation, SpadeMaps, Translation};
use super::{RendererError, RendererModel, RendererTimings};
use crate::audio::{CHUNK_FRAMES, N_MELS};
use crate::graph::renderer::{flow_modulation as fm, translation as tr};
use crate::runtime::{BorrowedTensor, DeviceTensor, OutputBuffers, Placement, SessionError};
use crate::sizes::{FACE_SIZE, WINDOW};
use crate::warp::IMG_CHANNELS;

/// One frame's inputs in the renderer's memory (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct ResidentInput<'a> {
    /// `(1, 18, 128, 128)`: the face (BGR, rows 64.. zeroed) then the five target sketches.
    pub translation_input: &'a BorrowedTensor,
    /// `(1, 15, 128, 128)`: the five target sketches (channels 3.. of `translation_input`).
    pub driving: &'a BorrowedTensor,
    /// `(1, 1, 80, 16)` row-major: the mel chunk, on the host.
    pub audio: &'a [f32],
}

/// One frame's result of [`RendererModel::render_resident`].
#[derive(Debug)]
pub struct ResidentOutput {
    /// `(1, 3, 128, 128)`: the generated face, BGR in (0, 1), where the renderer runs. It shares
    /// memory with the renderer's output buffer: the next frame overwrites it.
    pub generated: DeviceTensor,
    /// Per-stage wall-clock times (stage (d) is in `flow_head` when the warp runs on the GPU).
    pub timings: RendererTimings,
}

/// Output tensors allocated once, where the sessions run.
#[derive(Debug)]
pub(super) struct ResidentBuffers {
    maps: OutputBuffers,
    generated: OutputBuffers,
}

impl ResidentBuffers {
    fn new(placement: Placement) -> Result<Self, RendererError> {
        let fail = |e: ort::Error| {
            RendererError::Session(SessionError::Run {
                model: "renderer".into(),
                message: format!("cannot allocate the output buffers: {e}"),
            })
        };
        let shapes: Vec<(&str, [usize; 4])> = fm::LAYERS
            .iter()
            .flat_map(|l| {
                let shape = [1, l.channels, l.side, l.side];
                [(l.scale, shape), (l.shift, shape)]
            })
            .collect();
        let maps: Vec<(&str, &[usize])> = shapes.iter().map(|(n, s)| (*n, &s[..])).collect();
        let face = [1, IMG_CHANNELS, FACE_SIZE, FACE_SIZE];
        Ok(ResidentBuffers {
            maps: OutputBuffers::new(&maps, placement).map_err(fail)?,
            generated: OutputBuffers::new(&[(tr::OUT_GENERATED, &face)], placement)
                .map_err(fail)?,
        })
    }
}

impl FlowModulation {
    /// Stage (b) on sketches in the stage's memory, the maps written into `buffers`.
    fn run_borrowed(
        &mut self,
        driving: &BorrowedTensor,
        buffers: &OutputBuffers,
    ) -> Result<SpadeMaps, RendererError> {
        let maps =
            self.session
                .run_borrowed_into(&[], &[], &[(fm::IN_DRIVING, driving)], buffers)?;
        Ok(SpadeMaps { maps })
    }
}

impl Translation {
    /// Stage (e) with `translation_input` and, when the warp ran on the GPU, the averages read
    /// in place; the face written into `buffers`.
    fn run_borrowed(
        &mut self,
        host: &[(&str, &[f32])],
        borrowed: &[(&str, &BorrowedTensor)],
        buffers: &OutputBuffers,
    ) -> Result<DeviceTensor, RendererError> {
        let mut out = self
            .session
            .run_borrowed_into(&[], host, borrowed, buffers)?;
        out.pop().ok_or_else(|| RendererError::Output {
            stage: "translation",
            name: tr::OUT_GENERATED.into(),
            got: 0,
            shape: vec![1, IMG_CHANNELS, FACE_SIZE, FACE_SIZE],
        })
    }
}

/// `t` must have `shape` (the caller's contract with the stages).
fn check_borrowed(
    name: &'static str,
    t: &BorrowedTensor,
    shape: [usize; 4],
) -> Result<(), RendererError> {
    if t.shape() == shape {
        Ok(())
    } else {
        Err(RendererError::Shape {
            name,
            expected: shape.iter().map(|d| d.to_string()).collect(),
            got: t.shape().to_vec(),
        })
    }
}

impl RendererModel {
    /// Renders one frame from inputs in the renderer's memory (module documentation): stages
    /// (b)-(e) as [`Self::render`], without intermediates or kept flows. The borrowed tensors
    /// must be where the sessions run ([`Placement::for_device`] of the session device).
    pub fn render_resident(
        &mut self,
        x: &ResidentInput<'_>,
    ) -> Result<ResidentOutput, RendererError> {
        let plane = [FACE_SIZE, FACE_SIZE];
        check_borrowed(
            "translation_input",
            x.translation_input,
            [1, tr::INPUT_CHANNELS, plane[0], plane[1]],
        )?;
        check_borrowed("driving", x.driving, [1, 3 * WINDOW, plane[0], plane[1]])?;
        if x.audio.len() != N_MELS * CHUNK_FRAMES {
            return Err(RendererError::Shape {
                name: "audio",
                expected: ["1", "1", "80", "16"].map(String::from).to_vec(),
                got: vec![x.audio.len()],
            });
        }
        if self.config.keep_flow || self.config.graph.intermediates {
            return Err(RendererError::Shape {
                name: "render_resident (needs a renderer without kept flows or intermediates)",
                expected: Vec::new(),
                got: Vec::new(),
            });
        }
        let placement = Placement::for_device(&self.config.session.device);
        if self.resident.is_none() {
            self.resident = Some(ResidentBuffers::new(placement)?);
        }
        let buffers = self.resident.as_ref().expect("just set");
        if self.bank.is_none() {
            return Err(RendererError::NoReferenceBank);
        }
        let mut timings = RendererTimings::default();

        let t = Instant::now();
        let maps = self
            .flow_modulation
            .run_borrowed(x.driving, &buffers.maps)?;
        timings.modulation = t.elapsed();

        let audio = [(tr::IN_AUDIO, x.audio)];
        let t = Instant::now();
        if let Some([h1, h2, img]) = self.warp_on_device(&maps)? {
            timings.flow_head = t.elapsed();
            let buffers = self.resident.as_ref().expect("made above");
            let t = Instant::now();
            let borrowed = [
                (tr::IN_TRANSLATION_INPUT, x.translation_input),
                (tr::IN_H1_AVG, &h1),
                (tr::IN_H2_AVG, &h2),
                (tr::IN_REF_AVG, &img),
            ];
            let generated = self
                .translation
                .run_borrowed(&audio, &borrowed, &buffers.generated)?;
            timings.translation = t.elapsed();
            return Ok(ResidentOutput { generated, timings });
        }

        // The CPU warp (host placement, or kernels that could not load): flows come down.
        let avg = self.warp_on_host(&maps, &mut timings, None)?;
        let buffers = self.resident.as_ref().expect("made above");
        let t = Instant::now();
        fn data(a: &ndarray::Array4<f32>) -> &[f32] {
            a.as_slice().unwrap_or_default()
        }
        let (h1, h2, img) = (data(&avg.h1_avg), data(&avg.h2_avg), data(&avg.ref_avg));
        let host = [
            (tr::IN_AUDIO, x.audio),
            (tr::IN_H1_AVG, h1),
            (tr::IN_H2_AVG, h2),
            (tr::IN_REF_AVG, img),
        ];
        let generated = self.translation.run_borrowed(
            &host,
            &[(tr::IN_TRANSLATION_INPUT, x.translation_input)],
            &buffers.generated,
        )?;
        timings.translation = t.elapsed();
        Ok(ResidentOutput { generated, timings })
    }
}
