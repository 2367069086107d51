//! Stage (c): the per-reference flow head (spec §5.2 rows `s1` … `w_r`; spec §7.2 "must be computed
//! per (reference, frame)"), batched over the N references.
//!
//! h2 `(N, 256, 64, 64)` → SPADE block `spade_layer_1` → `spade_layer_2` → PixelShuffle(2) →
//! `spade_layer_4` (64 × 128 × 128) → `conv_4` (64 → 2, 7×7) = flow in pixels, and `conv_5`
//! (64 → 32 7×7, ReLU, 32 → 1 7×7, Sigmoid) = weight. The scale/shift maps of the six SPADELayers come
//! from stage (b) with batch 1 and broadcast over N.
//!
//! The four 256-channel 3×3 convolutions of `spade_layer_1` and `spade_layer_2` (76 % of this
//! stage's multiplications) are `ai.iplap.WinogradConv3x3` nodes ([`crate::winograd`]): ~1.5× faster
//! than ONNX Runtime's direct convolution on a 2-core AVX2 CPU at the same rounding level. The
//! 64-channel ones stay direct (Winograd measured slower there). iplap's sessions register the
//! operator. The GPU graph ([`crate::graph::target::GraphTarget::Gpu`]) has plain `Conv` nodes
//! throughout.

use super::flow_modulation::LAYERS;
use super::{
    Conv3x3, N_REF_DIM, RendererGraphOptions, SpadeParams, batched, modulated_block, small_conv,
};
use crate::graph::GraphError;
use crate::graph::onnx::{ConvWeights, DType, Dim, GraphBuilder, OnnxModel, TensorSpec};
use crate::graph::weights::Weights;
use crate::sizes::{FACE_SIZE, HALF_SIZE};

/// Graph name.
pub const NAME: &str = "renderer_flow_head";
/// Input: h2 of the references `(N, 256, 64, 64)` f32 (stage (a)). The other inputs are the scale/shift
/// maps named in [`super::flow_modulation::LAYERS`].
pub const IN_H2: &str = "h2";
/// Output: flow `(N, 2, 128, 128)` f32 in pixels; channel 0 = x, channel 1 = y.
pub const OUT_FLOW: &str = "flow";
/// Output: sigmoid weight `(N, 1, 128, 128)` f32 in (0, 1).
pub const OUT_WEIGHT: &str = "weight";
/// Optional output (with [`RendererGraphOptions::intermediates`]): the `spade_layer_1` block output
/// `(N, 256, 64, 64)` (golden `flow_spade1_ref0` for reference 0).
pub const OUT_SPADE1: &str = "flow_spade1";

/// Builds stage (c) from the `flow_module.spade_layer_{1,2,4}.conv_{1,2}`, `conv_4` and `conv_5`
/// weights.
pub fn build(w: &Weights<'_>, opts: RendererGraphOptions) -> Result<OnnxModel, GraphError> {
    let f = w.pp("flow_module");
    let conv_4 = ConvWeights::load(&f.pp("conv_4"), 2, 64, &[7, 7], true)?;
    let conv_5a = ConvWeights::load(&f.pp("conv_5.0"), 32, 64, &[7, 7], true)?;
    let conv_5b = ConvWeights::load(&f.pp("conv_5.2"), 1, 32, &[7, 7], true)?;

    let mut b = GraphBuilder::new(NAME);
    b.set_doc("IP_LAP renderer stage (c): per-reference flow head, batched over N (spec 5.2, 7.3)");
    let n = Dim::from(N_REF_DIM);
    let h2 = b.input(
        IN_H2,
        DType::Float32,
        &[n.clone(), 256.into(), HALF_SIZE.into(), HALF_SIZE.into()],
    )?;
    let mut params = Vec::with_capacity(LAYERS.len());
    for l in LAYERS {
        let shape = [1, l.channels, l.side, l.side];
        params.push(SpadeParams {
            scale: b.input_f32(l.scale, &shape)?,
            shift: b.input_f32(l.shift, &shape)?,
        });
    }
    let [p11, p12, p21, p22, p41, p42] = params.as_slice() else {
        return Err(GraphError::invalid("flow head: expected six SPADE layers"));
    };

    b.push_scope("flow_module.spade_layer_1");
    let s1 = modulated_block(
        &mut b,
        &f.pp("spade_layer_1"),
        &h2,
        256,
        [p11, p12],
        opts.wide_conv3x3(),
    )?;
    b.pop_scope();
    b.push_scope("flow_module.spade_layer_2");
    let s2 = modulated_block(
        &mut b,
        &f.pp("spade_layer_2"),
        &s1,
        256,
        [p21, p22],
        opts.wide_conv3x3(),
    )?;
    b.pop_scope();
    let ps = b.pixel_shuffle(&s2, 2)?;
    b.push_scope("flow_module.spade_layer_4");
    let s4 = modulated_block(
        &mut b,
        &f.pp("spade_layer_4"),
        &ps,
        64,
        [p41, p42],
        Conv3x3::Direct,
    )?;
    b.pop_scope();

    b.push_scope("flow_module.heads");
    // conv_4 (2 outputs) and conv_5.2 (1 output) in space-to-depth form (same products, faster).
    let flow = small_conv(&mut b, &s4, &conv_4, opts)?;
    let wt = b.conv2d(&s4, &conv_5a, None, (1, 1), (3, 3))?;
    let wt = b.relu(&wt)?;
    let wt = small_conv(&mut b, &wt, &conv_5b, opts)?;
    let wt = b.sigmoid(&wt)?;
    b.pop_scope();

    b.output(
        &flow,
        OUT_FLOW,
        DType::Float32,
        &[n.clone(), 2.into(), FACE_SIZE.into(), FACE_SIZE.into()],
    )?;
    b.output(
        &wt,
        OUT_WEIGHT,
        DType::Float32,
        &[n.clone(), 1.into(), FACE_SIZE.into(), FACE_SIZE.into()],
    )?;
    if opts.intermediates {
        b.output(
            &s1,
            OUT_SPADE1,
            DType::Float32,
            &[n, 256.into(), HALF_SIZE.into(), HALF_SIZE.into()],
        )?;
    }
    b.finish()
}

/// The I/O contract of stage (c) (N symbolic, [`N_REF_DIM`]).
pub fn contract(opts: RendererGraphOptions) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let mut inputs = vec![batched(IN_H2, &[256, HALF_SIZE, HALF_SIZE])];
    for l in LAYERS {
        let shape = [1, l.channels, l.side, l.side];
        inputs.push(TensorSpec::f32(l.scale, &shape));
        inputs.push(TensorSpec::f32(l.shift, &shape));
    }
    let mut outputs = vec![
        batched(OUT_FLOW, &[2, FACE_SIZE, FACE_SIZE]),
        batched(OUT_WEIGHT, &[1, FACE_SIZE, FACE_SIZE]),
    ];
    if opts.intermediates {
        outputs.push(batched(OUT_SPADE1, &[256, HALF_SIZE, HALF_SIZE]));
    }
    (inputs, outputs)
}
