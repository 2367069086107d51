//! Typed wrappers of the four renderer ONNX stages (graphs in [`crate::graph::renderer`]; STYLE B4).
//!
//! Each wrapper checks its tensors' shapes before running and the session's declared inputs and
//! outputs at load. Stages (a) and (c) have a symbolic reference count N: [`BatchedSession`] keeps one
//! session per batch size actually used (normally one or two: the chunk size and a remainder).

use crate::sizes::{FACE_SIZE, HALF_SIZE};
use ndarray::{Array4, ArrayView4};

use super::RendererError;
use crate::graph::onnx::{Dim, TensorSpec};
use crate::graph::renderer::{
    N_REF_DIM, RendererGraphOptions, flow_head as fh, flow_modulation as fm, ref_encoder as re,
    translation as tr,
};
use crate::runtime::{
    BorrowedTensor, BoundInput, DeviceTensor, ModelSession, Placement, SessionConfig,
};

/// Checks that `a` has `expected` shape; `None` entries match any size.
pub(crate) fn check_shape(
    name: &'static str,
    a: &ArrayView4<'_, f32>,
    expected: [Option<usize>; 4],
) -> Result<(), RendererError> {
    let ok = a
        .shape()
        .iter()
        .zip(expected)
        .all(|(&g, e)| e.is_none_or(|e| e == g));
    if ok {
        Ok(())
    } else {
        Err(RendererError::Shape {
            name,
            expected: expected
                .iter()
                .map(|e| e.map_or("N".into(), |v| v.to_string()))
                .collect(),
            got: a.shape().to_vec(),
        })
    }
}

/// Row-major data of a view (copied only when it is not already contiguous).
fn contiguous<'a>(a: &'a ArrayView4<'a, f32>) -> std::borrow::Cow<'a, [f32]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

/// Wraps a model output as an array of the given shape.
fn array(
    stage: &'static str,
    name: &str,
    data: Vec<f32>,
    shape: [usize; 4],
) -> Result<Array4<f32>, RendererError> {
    let got = data.len();
    Array4::from_shape_vec(shape, data).map_err(|_| RendererError::Output {
        stage,
        name: name.to_owned(),
        got,
        shape: shape.to_vec(),
    })
}

/// A stage with a symbolic first dimension ([`N_REF_DIM`]): one [`ModelSession`] per batch size, each
/// checked against the contract with N fixed to that size.
pub(crate) struct BatchedSession {
    label: String,
    bytes: Vec<u8>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    config: SessionConfig,
    sessions: Vec<(usize, ModelSession)>,
}

impl BatchedSession {
    fn new(
        label: &str,
        bytes: Vec<u8>,
        contract: (Vec<TensorSpec>, Vec<TensorSpec>),
        config: &SessionConfig,
    ) -> Result<Self, RendererError> {
        let mut s = BatchedSession {
            label: label.to_owned(),
            bytes,
            inputs: contract.0,
            outputs: contract.1,
            config: config.clone(),
            sessions: Vec::new(),
        };
        s.session(1)?; // validates the model now rather than at the first frame
        Ok(s)
    }

    /// Where this stage's sessions keep their tensors.
    fn placement(&self) -> Placement {
        Placement::for_device(&self.config.device)
    }

    fn session(&mut self, n: usize) -> Result<&mut ModelSession, RendererError> {
        let index = match self.sessions.iter().position(|(k, _)| *k == n) {
            Some(i) => i,
            None => {
                let fix = |specs: &[TensorSpec]| -> Vec<TensorSpec> {
                    specs
                        .iter()
                        .map(|s| TensorSpec {
                            shape: s
                                .shape
                                .iter()
                                .map(|d| match d {
                                    Dim::Symbolic(name) if name == N_REF_DIM => Dim::Fixed(n),
                                    other => other.clone(),
                                })
                                .collect(),
                            ..s.clone()
                        })
                        .collect()
                };
                let label = format!("{} (n_ref = {n})", self.label);
                let s = ModelSession::from_bytes(
                    &label,
                    &self.bytes,
                    &fix(&self.inputs),
                    &fix(&self.outputs),
                    &self.config,
                )?;
                self.sessions.push((n, s));
                self.sessions.len() - 1
            }
        };
        Ok(&mut self.sessions[index].1)
    }
}

/// h1 and h2 of a batch of references.
#[derive(Debug, Clone, PartialEq)]
pub struct RefFeatures {
    /// `(N, 32, 128, 128)`.
    pub h1: Array4<f32>,
    /// `(N, 256, 64, 64)`.
    pub h2: Array4<f32>,
}

/// Stage (a), [`crate::graph::renderer::ref_encoder`]: in `ref_img`, `ref_sketch` `(N, 3, 128, 128)`;
/// out `h1` `(N, 32, 128, 128)`, `h2` `(N, 256, 64, 64)`.
pub struct RefEncoder {
    stage: BatchedSession,
}

impl RefEncoder {
    /// Loads the stage from `.onnx` bytes.
    pub fn from_bytes(
        label: &str,
        bytes: Vec<u8>,
        config: &SessionConfig,
    ) -> Result<Self, RendererError> {
        Ok(RefEncoder {
            stage: BatchedSession::new(label, bytes, re::contract(), config)?,
        })
    }

    /// Encodes N ≥ 1 references: images BGR [0, 1] and sketches [0, 1], both `(N, 3, 128, 128)`.
    pub fn run(
        &mut self,
        ref_img: ArrayView4<'_, f32>,
        ref_sketch: ArrayView4<'_, f32>,
    ) -> Result<RefFeatures, RendererError> {
        Ok(self.run_keeping_h2(ref_img, ref_sketch)?.0)
    }

    /// [`Self::run`], and h2 also where the session ran when that is a GPU (`None` on the host):
    /// the flow head reads it at every frame, so a bank's h2 goes up once.
    pub fn run_keeping_h2(
        &mut self,
        ref_img: ArrayView4<'_, f32>,
        ref_sketch: ArrayView4<'_, f32>,
    ) -> Result<(RefFeatures, Option<DeviceTensor>), RendererError> {
        let n = ref_img.shape()[0];
        let shape = [Some(n), Some(3), Some(FACE_SIZE), Some(FACE_SIZE)];
        check_shape("ref_img", &ref_img, shape)?;
        check_shape("ref_sketch", &ref_sketch, shape)?;
        if n == 0 {
            return Err(RendererError::EmptyBank);
        }
        let (img, sketch) = (contiguous(&ref_img), contiguous(&ref_sketch));
        let placement = self.stage.placement();
        let out = self.stage.session(n)?.run_bound(
            &[],
            &[
                (re::IN_REF_IMG, BoundInput::Host(&img)),
                (re::IN_REF_SKETCH, BoundInput::Host(&sketch)),
            ],
            &[re::OUT_H1, re::OUT_H2],
            placement,
        )?;
        let [h1, h2]: [DeviceTensor; 2] = out.try_into().map_err(|_| missing("ref_encoder"))?;
        let (h1_host, h2_host) = (download("ref_encoder", &h1)?, download("ref_encoder", &h2)?);
        let resident = (placement != Placement::Host).then_some(h2);
        let (h1, h2) = (h1_host, h2_host);
        let features = RefFeatures {
            h1: array(
                "ref_encoder",
                re::OUT_H1,
                h1,
                [n, re::H1_CHANNELS, FACE_SIZE, FACE_SIZE],
            )?,
            h2: array(
                "ref_encoder",
                re::OUT_H2,
                h2,
                [n, re::H2_CHANNELS, HALF_SIZE, HALF_SIZE],
            )?,
        };
        Ok((features, resident))
    }
}

/// A stage output's data on the host.
fn download(stage: &'static str, t: &DeviceTensor) -> Result<Vec<f32>, RendererError> {
    t.download().map_err(|e| {
        RendererError::Session(crate::runtime::SessionError::Run {
            model: stage.into(),
            message: format!("cannot copy an output to the host: {e}"),
        })
    })
}

fn missing(stage: &'static str) -> RendererError {
    RendererError::Output {
        stage,
        name: "(outputs)".into(),
        got: 0,
        shape: Vec::new(),
    }
}

/// The scale (`1 + γ`) and shift (`β`) maps of the six flow-network SPADELayers, in the order of
/// [`crate::graph::renderer::flow_modulation::LAYERS`] (scale, shift, scale, shift, …).
/// They stay where stage (b) ran: each flow-head chunk of the frame reads them.
#[derive(Debug)]
pub struct SpadeMaps {
    pub(super) maps: Vec<DeviceTensor>,
}

/// Stage (b), [`crate::graph::renderer::flow_modulation`]: in `driving` `(1, 15, 128, 128)`; out the
/// [`SpadeMaps`].
pub struct FlowModulation {
    pub(super) session: ModelSession,
    placement: Placement,
}

impl FlowModulation {
    /// Loads the stage from `.onnx` bytes.
    pub fn from_bytes(
        label: &str,
        bytes: &[u8],
        config: &SessionConfig,
    ) -> Result<Self, RendererError> {
        let (inputs, outputs) = fm::contract();
        Ok(FlowModulation {
            session: ModelSession::from_bytes(label, bytes, &inputs, &outputs, config)?,
            placement: Placement::for_device(&config.device),
        })
    }

    /// Runs on the driving sketch stack: the 5 target sketches `(5, 3, 128, 128)` in [0, 1]
    /// (row-major, identical to the `(1, 15, 128, 128)` channel concatenation of spec §5.2 step 2).
    pub fn run(
        &mut self,
        target_sketches: ArrayView4<'_, f32>,
    ) -> Result<SpadeMaps, RendererError> {
        check_shape(
            "target_sketches",
            &target_sketches,
            [Some(5), Some(3), Some(FACE_SIZE), Some(FACE_SIZE)],
        )?;
        let driving = contiguous(&target_sketches);
        let names: Vec<&str> = fm::LAYERS.iter().flat_map(|l| [l.scale, l.shift]).collect();
        let maps = self.session.run_bound(
            &[],
            &[(fm::IN_DRIVING, BoundInput::Host(&driving))],
            &names,
            self.placement,
        )?;
        Ok(SpadeMaps { maps })
    }
}

/// Flow-head results for a batch of references.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowHeadOutput {
    /// `(N, 2, 128, 128)`: flow in pixels (x, y).
    pub flow: Array4<f32>,
    /// `(N, 1, 128, 128)`: sigmoid weights.
    pub weight: Array4<f32>,
    /// `(N, 256, 64, 64)`: `spade_layer_1` output, only with intermediates.
    pub spade1: Option<Array4<f32>>,
}

/// Stage (c), [`crate::graph::renderer::flow_head`]: in `h2` `(N, 256, 64, 64)` and the [`SpadeMaps`];
/// out `flow` `(N, 2, 128, 128)`, `weight` `(N, 1, 128, 128)` (and `flow_spade1` with intermediates).
pub struct FlowHead {
    stage: BatchedSession,
    intermediates: bool,
}

impl FlowHead {
    /// Loads the stage from `.onnx` bytes; `opts` must match how the graph was built.
    pub fn from_bytes(
        label: &str,
        bytes: Vec<u8>,
        opts: RendererGraphOptions,
        config: &SessionConfig,
    ) -> Result<Self, RendererError> {
        Ok(FlowHead {
            stage: BatchedSession::new(label, bytes, fh::contract(opts), config)?,
            intermediates: opts.intermediates,
        })
    }

    /// Runs on a batch of N ≥ 1 references' h2 with the frame's [`SpadeMaps`].
    pub fn run(
        &mut self,
        h2: ArrayView4<'_, f32>,
        maps: &SpadeMaps,
    ) -> Result<FlowHeadOutput, RendererError> {
        let n = h2.shape()[0];
        check_shape(
            "h2",
            &h2,
            [
                Some(n),
                Some(re::H2_CHANNELS),
                Some(HALF_SIZE),
                Some(HALF_SIZE),
            ],
        )?;
        if n == 0 {
            return Err(RendererError::EmptyBank);
        }
        let h2 = contiguous(&h2);
        self.run_on(n, BoundInput::Host(&h2), maps)
    }

    /// [`Self::run`] on h2 that is already where the stage runs
    /// ([`RefEncoder::run_keeping_h2`]), `(N, 256, 64, 64)`.
    pub fn run_resident(
        &mut self,
        h2: &DeviceTensor,
        maps: &SpadeMaps,
    ) -> Result<FlowHeadOutput, RendererError> {
        let n = h2.shape().first().copied().unwrap_or(0);
        if n == 0 {
            return Err(RendererError::EmptyBank);
        }
        self.run_on(n, BoundInput::Resident(h2), maps)
    }

    /// [`Self::run_resident`] with the flow and weight left on the device, for the warp kernel:
    /// `(flow (N, 2, 128, 128), weight (N, 1, 128, 128))`. No intermediates.
    pub fn run_on_device(
        &mut self,
        h2: &DeviceTensor,
        maps: &SpadeMaps,
    ) -> Result<(DeviceTensor, DeviceTensor), RendererError> {
        let n = h2.shape().first().copied().unwrap_or(0);
        if n == 0 {
            return Err(RendererError::EmptyBank);
        }
        let mut inputs: Vec<(&str, BoundInput<'_>)> = vec![(fh::IN_H2, BoundInput::Resident(h2))];
        let names = fm::LAYERS.iter().flat_map(|l| [l.scale, l.shift]);
        inputs.extend(names.zip(maps.maps.iter().map(BoundInput::Resident)));
        let mut out = self
            .stage
            .session(n)?
            .run_bound(
                &[],
                &inputs,
                &[fh::OUT_FLOW, fh::OUT_WEIGHT],
                h2.placement(),
            )?
            .into_iter();
        let mut next = |c: usize| match out.next() {
            Some(t) if t.shape() == [n, c, FACE_SIZE, FACE_SIZE] => Ok(t),
            Some(t) => Err(RendererError::Output {
                stage: "flow_head",
                name: if c == 2 { fh::OUT_FLOW } else { fh::OUT_WEIGHT }.into(),
                got: t.len(),
                shape: vec![n, c, FACE_SIZE, FACE_SIZE],
            }),
            None => Err(missing("flow_head")),
        };
        let flow = next(2)?;
        let weight = next(1)?;
        Ok((flow, weight))
    }

    fn run_on(
        &mut self,
        n: usize,
        h2: BoundInput<'_>,
        maps: &SpadeMaps,
    ) -> Result<FlowHeadOutput, RendererError> {
        let mut inputs: Vec<(&str, BoundInput<'_>)> = vec![(fh::IN_H2, h2)];
        let names = fm::LAYERS.iter().flat_map(|l| [l.scale, l.shift]);
        inputs.extend(names.zip(maps.maps.iter().map(BoundInput::Resident)));
        let mut wanted = vec![fh::OUT_FLOW, fh::OUT_WEIGHT];
        if self.intermediates {
            wanted.push(fh::OUT_SPADE1);
        }
        // The flows and weights come down for the CPU warp (the GPU warp uses `run_on_device`).
        let mut out = self
            .stage
            .session(n)?
            .run_bound(&[], &inputs, &wanted, Placement::Host)?
            .into_iter();
        let mut next = |name: &str, c: usize, side: usize| match out.next() {
            Some(t) => array(
                "flow_head",
                name,
                download("flow_head", &t)?,
                [n, c, side, side],
            ),
            None => Err(missing("flow_head")),
        };
        let flow = next(fh::OUT_FLOW, 2, FACE_SIZE)?;
        let weight = next(fh::OUT_WEIGHT, 1, FACE_SIZE)?;
        let spade1 = match self.intermediates {
            true => Some(next(fh::OUT_SPADE1, 256, HALF_SIZE)?),
            false => None,
        };
        Ok(FlowHeadOutput {
            flow,
            weight,
            spade1,
        })
    }
}

/// Inputs of the translation network, all batch 1 (spec §5.2 "TranslationNetwork").
#[derive(Debug, Clone, Copy)]
pub struct TranslationInput<'a> {
    /// `(1, 18, 128, 128)`: masked face (BGR, rows 64.. zeroed) then the 15 driving channels.
    pub translation_input: ArrayView4<'a, f32>,
    /// `(1, 32, 128, 128)`.
    pub h1_avg: ArrayView4<'a, f32>,
    /// `(1, 256, 64, 64)`.
    pub h2_avg: ArrayView4<'a, f32>,
    /// `(1, 3, 128, 128)`, BGR.
    pub ref_avg: ArrayView4<'a, f32>,
    /// `(1, 1, 80, 16)`: the mel chunk.
    pub audio: ArrayView4<'a, f32>,
}

/// Translation-network intermediates (graphs built with intermediates only).
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationIntermediates {
    /// `(1, 512, 1, 1)`.
    pub audio_feature: Array4<f32>,
    /// `(1, 256, 64, 64)`.
    pub spade1: Array4<f32>,
    /// `(1, 256, 64, 64)`.
    pub adain1: Array4<f32>,
    /// `(1, 64, 128, 128)`.
    pub spade4: Array4<f32>,
    /// `(1, 3, 128, 128)`, before the Sigmoid.
    pub conv_last: Array4<f32>,
}

/// Stage (e) output.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationOutput {
    /// `(1, 3, 128, 128)`: generated face, BGR in (0, 1).
    pub generated: Array4<f32>,
    /// Present when the graph was built with intermediates.
    pub intermediates: Option<TranslationIntermediates>,
}

/// Stage (e), [`crate::graph::renderer::translation`].
pub struct Translation {
    pub(super) session: ModelSession,
    intermediates: bool,
}

impl Translation {
    /// Loads the stage from `.onnx` bytes; `opts` must match how the graph was built.
    pub fn from_bytes(
        label: &str,
        bytes: &[u8],
        opts: RendererGraphOptions,
        config: &SessionConfig,
    ) -> Result<Self, RendererError> {
        let (inputs, outputs) = tr::contract(opts);
        Ok(Translation {
            session: ModelSession::from_bytes(label, bytes, &inputs, &outputs, config)?,
            intermediates: opts.intermediates,
        })
    }

    /// Runs the translation network on averages our warp kernel left on the device (`h1_avg`
    /// `(1, 32, 128, 128)`, `h2_avg` `(1, 256, 64, 64)`, `ref_avg` `(1, 3, 128, 128)`) and the
    /// host `translation_input` `(1, 18, 128, 128)` and `audio` `(1, 1, 80, 16)`; the generated
    /// face comes down. No intermediates.
    pub fn run_on_device_averages(
        &mut self,
        translation_input: &[f32],
        audio: &[f32],
        averages: [&BorrowedTensor; 3],
    ) -> Result<Array4<f32>, RendererError> {
        let [h1, h2, ref_avg] = averages;
        let host = [
            (tr::IN_TRANSLATION_INPUT, translation_input),
            (tr::IN_AUDIO, audio),
        ];
        let borrowed = [
            (tr::IN_H1_AVG, h1),
            (tr::IN_H2_AVG, h2),
            (tr::IN_REF_AVG, ref_avg),
        ];
        let mut out = self
            .session
            .run_f32_borrowed(&[], &host, &borrowed, &[tr::OUT_GENERATED])?;
        let generated = out.pop().ok_or_else(|| missing("translation"))?;
        array(
            "translation",
            tr::OUT_GENERATED,
            generated,
            [1, 3, FACE_SIZE, FACE_SIZE],
        )
    }

    /// Runs the translation network once.
    pub fn run(&mut self, x: &TranslationInput<'_>) -> Result<TranslationOutput, RendererError> {
        let one = Some(1);
        check_shape(
            tr::IN_TRANSLATION_INPUT,
            &x.translation_input,
            [
                one,
                Some(tr::INPUT_CHANNELS),
                Some(FACE_SIZE),
                Some(FACE_SIZE),
            ],
        )?;
        check_shape(
            tr::IN_H1_AVG,
            &x.h1_avg,
            [one, Some(32), Some(FACE_SIZE), Some(FACE_SIZE)],
        )?;
        check_shape(
            tr::IN_H2_AVG,
            &x.h2_avg,
            [one, Some(256), Some(HALF_SIZE), Some(HALF_SIZE)],
        )?;
        check_shape(
            tr::IN_REF_AVG,
            &x.ref_avg,
            [one, Some(3), Some(FACE_SIZE), Some(FACE_SIZE)],
        )?;
        check_shape(tr::IN_AUDIO, &x.audio, [one, one, Some(80), Some(16)])?;
        let (ti, h1, h2) = (
            contiguous(&x.translation_input),
            contiguous(&x.h1_avg),
            contiguous(&x.h2_avg),
        );
        let (ra, au) = (contiguous(&x.ref_avg), contiguous(&x.audio));
        let inputs = [
            (tr::IN_TRANSLATION_INPUT, &*ti),
            (tr::IN_H1_AVG, &*h1),
            (tr::IN_H2_AVG, &*h2),
            (tr::IN_REF_AVG, &*ra),
            (tr::IN_AUDIO, &*au),
        ];
        let mut wanted = vec![tr::OUT_GENERATED];
        if self.intermediates {
            wanted.extend([
                tr::OUT_AUDIO_FEATURE,
                tr::OUT_SPADE1,
                tr::OUT_ADAIN1,
                tr::OUT_SPADE4,
                tr::OUT_CONV_LAST,
            ]);
        }
        let mut out = self.session.run_f32(&inputs, &wanted)?.into_iter();
        let mut next = |name: &str, shape: [usize; 4]| match out.next() {
            Some(v) => array("translation", name, v, shape),
            None => Err(missing("translation")),
        };
        let generated = next(tr::OUT_GENERATED, [1, 3, FACE_SIZE, FACE_SIZE])?;
        let intermediates = if self.intermediates {
            Some(TranslationIntermediates {
                audio_feature: next(tr::OUT_AUDIO_FEATURE, [1, tr::AUDIO_DIM, 1, 1])?,
                spade1: next(tr::OUT_SPADE1, [1, 256, HALF_SIZE, HALF_SIZE])?,
                adain1: next(tr::OUT_ADAIN1, [1, 256, HALF_SIZE, HALF_SIZE])?,
                spade4: next(tr::OUT_SPADE4, [1, 64, FACE_SIZE, FACE_SIZE])?,
                conv_last: next(tr::OUT_CONV_LAST, [1, 3, FACE_SIZE, FACE_SIZE])?,
            })
        } else {
            None
        };
        Ok(TranslationOutput {
            generated,
            intermediates,
        })
    }
}
