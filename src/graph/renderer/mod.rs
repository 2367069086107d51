//! The IP_LAP Renderer (spec §5.2, `IP_LAP/models/video_renderer.py`) as staged ONNX graphs (spec §7.3).
//!
//! The official forward runs the whole DenseFlowNetwork once per reference (25 times per frame). The
//! stages below evaluate the same operations on the same values, but each part only as often as its
//! inputs change (spec §7.2):
//!
//! | stage | file | runs | in → out |
//! |---|---|---|---|
//! | (a) reference encoder | [`ref_encoder`] | once per reference bank | ref image + sketch → h1, h2 |
//! | (b) flow modulation | [`flow_modulation`] | once per frame | driving sketches → SPADE scale/shift maps |
//! | (c) flow head | [`flow_head`] | per frame, batched over N | h2 + shared scale/shift → flow, weight |
//! | (d) warp-and-accumulate | [`crate::warp`] (Rust) | per frame | flow, weight, h1, h2, refs → averages |
//! | (e) translation network | [`translation`] | per frame | masked face + sketches, averages, audio → face |
//!
//! The number of references N is a symbolic batch dimension ([`N_REF_DIM`]) of stages (a) and (c).
//! BatchNorm layers are folded into the preceding convolution at emission. The SPADE modulation
//! `n + n·γ + β` is evaluated as `n·(1 + γ) + β`, with the `+ 1` folded into the bias of the γ
//! convolution (a different rounding order only, well below the 2e-4 parity tolerance).
//!
//! Weights come from any [`WeightSource`] by Renderer `state_dict` key (spec appendix B, without
//! `module.`); the 32 `perceptual.*` VGG19 keys are training-only and never read.

pub mod flow_head;
pub mod flow_modulation;
pub mod ref_encoder;
pub mod translation;

use crate::graph::GraphError;
use crate::graph::onnx::{
    Attr, ConvWeights, DType, Dim, GraphBuilder, OnnxModel, TORCH_NORM_EPS, TensorSpec, Value,
};
use crate::graph::package::StageDef;
use crate::graph::target::GraphTarget;
use crate::graph::weights::{WeightSource, Weights};

/// Name of the symbolic reference-count dimension of stages (a) and (c).
pub const N_REF_DIM: &str = "n_ref";
/// Slope of the LeakyReLU inside SPADE / AdaIN blocks.
pub const BLOCK_SLOPE: f32 = 0.2;
/// Space-to-depth block of the 7×7 convolutions with 1-3 outputs (see `conv2d_space_to_depth`).
pub const SMALL_CONV_BLOCK: usize = 4;
/// Channels of the SPADE hidden layer (`conv1` of every SPADELayer).
pub const SPADE_HIDDEN: usize = 256;

/// Options for building the renderer graphs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RendererGraphOptions {
    /// Also expose intermediate tensors as extra graph outputs (for parity tests; slower).
    pub intermediates: bool,
    /// Which providers the graphs are for: [`GraphTarget::Cpu`] (Winograd custom operator,
    /// space-to-depth convolutions) or [`GraphTarget::Gpu`] (standard operators only). The
    /// other stages are the same for both.
    pub target: GraphTarget,
}

impl RendererGraphOptions {
    /// Production graphs (no intermediates) for `target`.
    pub const fn production(target: GraphTarget) -> Self {
        RendererGraphOptions {
            intermediates: false,
            target,
        }
    }

    /// How the per-reference 256-channel 3×3 convolutions are emitted.
    pub(crate) fn wide_conv3x3(self) -> Conv3x3 {
        match self.target {
            GraphTarget::Gpu => Conv3x3::Direct,
            GraphTarget::Cpu | GraphTarget::Any => Conv3x3::Winograd,
        }
    }
}

/// The four ONNX stages of the renderer (stage (d) is Rust code, [`crate::warp`]).
#[derive(Debug, Clone)]
pub struct RendererGraphs {
    /// (a) [`ref_encoder::build`].
    pub ref_encoder: OnnxModel,
    /// (b) [`flow_modulation::build`].
    pub flow_modulation: OnnxModel,
    /// (c) [`flow_head::build`].
    pub flow_head: OnnxModel,
    /// (e) [`translation::build`].
    pub translation: OnnxModel,
}

impl RendererGraphs {
    /// Builds all stages from Renderer weights (keys `flow_module.*`, `translation.*`).
    pub fn build(src: &dyn WeightSource, opts: RendererGraphOptions) -> Result<Self, GraphError> {
        let w = Weights::new(src);
        Ok(RendererGraphs {
            ref_encoder: ref_encoder::build(&w)?,
            flow_modulation: flow_modulation::build(&w)?,
            flow_head: flow_head::build(&w, opts)?,
            translation: translation::build(&w, opts)?,
        })
    }
}

/// The renderer stages of a model package (production graphs, no intermediates), in run order,
/// then the GPU forms of the two stages that differ by target. Meant to be appended to
/// [`crate::graph::package::STAGES`]; the stage names are the graph names (`_gpu` added). Every
/// stage a GPU runs also gets an fp16 form in the package ([`StageDef::fp16`]).
pub const STAGES: [StageDef; 6] = [
    StageDef {
        name: ref_encoder::NAME,
        network: "renderer",
        file: "renderer_ref_encoder.onnx",
        target: GraphTarget::Any,
        fp16: true,
        build: |src| ref_encoder::build(&Weights::new(src)),
        contract: ref_encoder::contract,
    },
    StageDef {
        name: flow_modulation::NAME,
        network: "renderer",
        file: "renderer_flow_modulation.onnx",
        target: GraphTarget::Any,
        fp16: true,
        build: |src| flow_modulation::build(&Weights::new(src)),
        contract: flow_modulation::contract,
    },
    StageDef {
        name: flow_head::NAME,
        network: "renderer",
        file: "renderer_flow_head.onnx",
        target: GraphTarget::Cpu,
        fp16: false,
        build: |src| {
            flow_head::build(
                &Weights::new(src),
                RendererGraphOptions::production(GraphTarget::Cpu),
            )
        },
        contract: || flow_head::contract(RendererGraphOptions::production(GraphTarget::Cpu)),
    },
    StageDef {
        name: translation::NAME,
        network: "renderer",
        file: "renderer_translation.onnx",
        target: GraphTarget::Cpu,
        fp16: false,
        build: |src| {
            translation::build(
                &Weights::new(src),
                RendererGraphOptions::production(GraphTarget::Cpu),
            )
        },
        contract: || translation::contract(RendererGraphOptions::production(GraphTarget::Cpu)),
    },
    StageDef {
        name: FLOW_HEAD_GPU,
        network: "renderer",
        file: "renderer_flow_head_gpu.onnx",
        target: GraphTarget::Gpu,
        fp16: true,
        build: |src| {
            flow_head::build(
                &Weights::new(src),
                RendererGraphOptions::production(GraphTarget::Gpu),
            )
        },
        contract: || flow_head::contract(RendererGraphOptions::production(GraphTarget::Gpu)),
    },
    StageDef {
        name: TRANSLATION_GPU,
        network: "renderer",
        file: "renderer_translation_gpu.onnx",
        target: GraphTarget::Gpu,
        fp16: true,
        build: |src| {
            translation::build(
                &Weights::new(src),
                RendererGraphOptions::production(GraphTarget::Gpu),
            )
        },
        contract: || translation::contract(RendererGraphOptions::production(GraphTarget::Gpu)),
    },
];

/// Stage name of the flow head's GPU graph.
pub const FLOW_HEAD_GPU: &str = "renderer_flow_head_gpu";
/// Stage name of the translation network's GPU graph.
pub const TRANSLATION_GPU: &str = "renderer_translation_gpu";

/// The package stage names of the four renderer stages for `target`, in run order.
pub fn stage_names(target: GraphTarget) -> [&'static str; 4] {
    match target {
        GraphTarget::Gpu => [
            ref_encoder::NAME,
            flow_modulation::NAME,
            FLOW_HEAD_GPU,
            TRANSLATION_GPU,
        ],
        GraphTarget::Cpu | GraphTarget::Any => [
            ref_encoder::NAME,
            flow_modulation::NAME,
            flow_head::NAME,
            translation::NAME,
        ],
    }
}

/// A float32 spec `(N, dims…)` with the symbolic reference dimension [`N_REF_DIM`] first.
pub(crate) fn batched(name: &str, dims: &[usize]) -> TensorSpec {
    let mut shape = vec![Dim::from(N_REF_DIM)];
    shape.extend(dims.iter().map(|&d| Dim::Fixed(d)));
    TensorSpec {
        name: name.to_owned(),
        dtype: DType::Float32,
        shape,
    }
}

/// SPADE scale/shift maps of one SPADELayer: `scale = 1 + γ`, `shift = β` (each `(1, C, H, W)`).
pub(crate) struct SpadeParams {
    pub scale: Value,
    pub shift: Value,
}

/// The modulation branch of a SPADELayer (spec §5.2): `c = conv1(m)` (Cm → 256, 3×3, no activation),
/// then `γ = gamma(c)`, `β = beta(c)` (256 → C, 3×3). γ and β are one convolution with 2C outputs
/// (output channels are independent, so this is the same arithmetic), split afterwards; the
/// `+ 1` of `1 + γ` is folded into γ's bias.
pub(crate) fn spade_params(
    b: &mut GraphBuilder,
    w: &Weights<'_>,
    m: &Value,
    cm: usize,
    c: usize,
) -> Result<SpadeParams, GraphError> {
    let conv1 = ConvWeights::load(&w.pp("conv1"), SPADE_HIDDEN, cm, &[3, 3], true)?;
    let gamma = ConvWeights::load(&w.pp("gamma"), c, SPADE_HIDDEN, &[3, 3], true)?;
    let beta = ConvWeights::load(&w.pp("beta"), c, SPADE_HIDDEN, &[3, 3], true)?;
    let hidden = b.conv2d(m, &conv1, None, (1, 1), (1, 1))?;
    let mut weight = gamma.weight;
    weight.extend_from_slice(&beta.weight);
    let mut bias: Vec<f32> = gamma
        .bias
        .unwrap_or_default()
        .iter()
        .map(|&v| (v as f64 + 1.0) as f32)
        .collect();
    bias.extend(beta.bias.unwrap_or_default());
    let both = ConvWeights {
        weight,
        shape: vec![2 * c, SPADE_HIDDEN, 3, 3],
        bias: Some(bias),
    };
    let y = b.conv2d(&hidden, &both, None, (1, 1), (1, 1))?;
    let mut parts = b.node_multi("Split", &[&y], 2, &[("axis", Attr::Int(1))])?;
    let shift = parts.pop();
    let scale = parts.pop();
    match (scale, shift) {
        (Some(scale), Some(shift)) => Ok(SpadeParams { scale, shift }),
        _ => Err(GraphError::invalid("Split returned fewer than two outputs")),
    }
}

/// `IN(x)·scale + shift` (the SPADELayer / AdaINLayer output), `x` with `c` channels.
pub(crate) fn modulate(
    b: &mut GraphBuilder,
    x: &Value,
    c: usize,
    p: &SpadeParams,
) -> Result<Value, GraphError> {
    let n = b.instance_norm(x, c, TORCH_NORM_EPS)?;
    let y = b.mul(&n, &p.scale)?;
    b.add(&y, &p.shift)
}

/// How a block's 3×3 convolutions are emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conv3x3 {
    /// ONNX `Conv` (direct convolution).
    Direct,
    /// iplap's `ai.iplap.WinogradConv3x3` ([`crate::winograd`], F(2×2, 3×3)): 2.25× fewer
    /// multiplications, same rounding level; worth it for the per-reference batch, where the
    /// operator spreads images over threads.
    Winograd,
}

/// A 3×3 "same" convolution as `ai.iplap.WinogradConv3x3` with weights transformed at emission.
pub(crate) fn winograd_conv3x3(
    b: &mut GraphBuilder,
    x: &Value,
    conv: &ConvWeights,
) -> Result<Value, GraphError> {
    let [k, c, 3, 3] = conv.shape[..] else {
        return Err(GraphError::invalid(format!(
            "winograd_conv3x3: needs a 3x3 kernel, got {:?}",
            conv.shape
        )));
    };
    let u = crate::winograd::transform_weights(&conv.weight, k, c)
        .map_err(|e| GraphError::invalid(e.to_string()))?;
    let u = b.initializer_f32("winograd_u", &[16, k, c], &u)?;
    let bias = conv.bias.clone().unwrap_or_else(|| vec![0.0; k]);
    let bias = b.initializer_f32("winograd_bias", &[k], &bias)?;
    b.custom_node(
        crate::runtime::winograd_op::DOMAIN,
        crate::runtime::winograd_op::OP,
        &[x, &u, &bias],
    )
}

/// The main path of a SPADE / AdaIN block (spec §5.2) given the scale/shift of its two layers:
/// modulate, LeakyReLU 0.2, `conv_1`, modulate, LeakyReLU 0.2, `conv_2` (C → C, 3×3); no skip.
pub(crate) fn modulated_block(
    b: &mut GraphBuilder,
    w: &Weights<'_>,
    x: &Value,
    c: usize,
    layers: [&SpadeParams; 2],
    conv3x3: Conv3x3,
) -> Result<Value, GraphError> {
    let mut x = x.clone();
    for (layer, conv) in layers.into_iter().zip(["conv_1", "conv_2"]) {
        let y = modulate(b, &x, c, layer)?;
        let y = b.leaky_relu(&y, BLOCK_SLOPE)?;
        let weights = ConvWeights::load(&w.pp(conv), c, c, &[3, 3], true)?;
        x = match conv3x3 {
            Conv3x3::Direct => b.conv2d(&y, &weights, None, (1, 1), (1, 1))?,
            Conv3x3::Winograd => winograd_conv3x3(b, &y, &weights)?,
        };
    }
    Ok(x)
}

/// A stride-1 "same" convolution with 1-3 outputs (the 7×7 heads): on the CPU in space-to-depth
/// form ([`conv2d_space_to_depth`], same products, faster there); on a GPU as a plain `Conv`.
pub(crate) fn small_conv(
    b: &mut GraphBuilder,
    x: &Value,
    conv: &ConvWeights,
    opts: RendererGraphOptions,
) -> Result<Value, GraphError> {
    match opts.target {
        GraphTarget::Gpu => {
            let pad = conv.shape.get(2).copied().unwrap_or(1) / 2;
            b.conv2d(x, conv, None, (1, 1), (pad, pad))
        }
        GraphTarget::Cpu | GraphTarget::Any => conv2d_space_to_depth(b, x, conv, SMALL_CONV_BLOCK),
    }
}

/// A stride-1 "same" convolution with few output channels, evaluated on a space-to-depth view.
///
/// ONNX Runtime's CPU convolution is fast only for output channels in blocks of 8; a 7×7 conv with
/// 1-3 outputs (`conv_4`, `conv_5.2`, `conv_last`) falls back to an im2col path that is ~3× slower
/// than its FLOP count suggests. Here `x` is rearranged with `SpaceToDepth(r)` (`(C, H, W)` →
/// `(C r², H/r, W/r)`), convolved with an equivalent `(Cout r², Cin r², 2Q+1, 2Q+1)` kernel and put
/// back with `DepthToSpace(r, CRD)`. Every output sums exactly the products of the original
/// convolution plus products with zero weights, so only the summation order differs. Needs `H`, `W`
/// divisible by `r`.
pub(crate) fn conv2d_space_to_depth(
    b: &mut GraphBuilder,
    x: &Value,
    conv: &ConvWeights,
    r: usize,
) -> Result<Value, GraphError> {
    let [cout, cin, k, kw] = conv.shape[..] else {
        return Err(GraphError::invalid(format!(
            "conv2d_space_to_depth: weight shape {:?}",
            conv.shape
        )));
    };
    if k != kw || k % 2 == 0 || r == 0 || conv.weight.len() != cout * cin * k * k {
        return Err(GraphError::invalid(format!(
            "conv2d_space_to_depth: needs an odd square kernel, got {:?} (block {r})",
            conv.shape
        )));
    }
    let (p, ri) = ((k / 2) as i64, r as i64);
    // Block offsets reached by output phase o ∈ [0, r) and tap d ∈ [-p, p]: floor((o + d) / r).
    let q = ((-p).div_euclid(ri)).abs().max((ri - 1 + p).div_euclid(ri)) as usize;
    let ks = 2 * q + 1;
    let (co_n, ci_n) = (cout * r * r, cin * r * r);
    let mut weight = vec![0f32; co_n * ci_n * ks * ks];
    for o in 0..cout {
        for c in 0..cin {
            for dy in -p..=p {
                for dx in -p..=p {
                    let w = conv.weight
                        [((o * cin + c) * k + (dy + p) as usize) * k + (dx + p) as usize];
                    for oy in 0..ri {
                        for ox in 0..ri {
                            let (ty, tx) = (oy + dy, ox + dx);
                            let (ky, kx) = (ty.div_euclid(ri), tx.div_euclid(ri));
                            let (iy, ix) = (ty.rem_euclid(ri), tx.rem_euclid(ri));
                            // DepthToSpace CRD output channel; SpaceToDepth input channel.
                            let co = o * r * r + (oy * ri + ox) as usize;
                            let ci = (iy * ri + ix) as usize * cin + c;
                            let (y, xk) = ((ky + q as i64) as usize, (kx + q as i64) as usize);
                            weight[((co * ci_n + ci) * ks + y) * ks + xk] = w;
                        }
                    }
                }
            }
        }
    }
    let bias = conv
        .bias
        .as_ref()
        .map(|bias| (0..co_n).map(|co| bias[co / (r * r)]).collect());
    let blocked = ConvWeights {
        weight,
        shape: vec![co_n, ci_n, ks, ks],
        bias,
    };
    let xs = b.node("SpaceToDepth", &[x], &[("blocksize", Attr::Int(ri))])?;
    let y = b.conv2d(&xs, &blocked, None, (1, 1), (q, q))?;
    b.pixel_shuffle(&y, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::FormulaWeights;

    #[test]
    fn every_stage_matches_its_contract() {
        let src = FormulaWeights::new();
        for intermediates in [false, true] {
            let opts = RendererGraphOptions {
                intermediates,
                ..Default::default()
            };
            let g = RendererGraphs::build(&src, opts).unwrap();
            let pairs = [
                (&g.ref_encoder, ref_encoder::contract()),
                (&g.flow_modulation, flow_modulation::contract()),
                (&g.flow_head, flow_head::contract(opts)),
                (&g.translation, translation::contract(opts)),
            ];
            for (model, (inputs, outputs)) in pairs {
                assert_eq!(model.inputs(), inputs.as_slice());
                assert_eq!(model.outputs(), outputs.as_slice());
            }
        }
    }
}
