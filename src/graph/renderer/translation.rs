//! Stage (e): the TranslationNetwork (spec §5.2 "TranslationNetwork (translation)";
//! `IP_LAP/models/video_renderer.py`, `TranslationNetwork`), including its audio encoder.
//!
//! `translation_input` (masked face + driving sketches, 18 ch) → `conv1` 7×7 (no bias) + BN + ReLU →
//! `conv2` 3×3 s2 (no bias) + BN + ReLU → `spade_1` (mod h2_avg) → `adain_1` (audio) → PixelShuffle(2)
//! → `spade_2` (mod h1_avg) → `adain_2` (audio) → `spade_4` (mod ref_avg) → LeakyReLU 0.01 →
//! `conv_last` 7×7 (no bias) → Sigmoid. Runs once per frame with batch 1.

use super::{
    Conv3x3, RendererGraphOptions, SpadeParams, modulated_block, small_conv, spade_params,
};
use crate::audio::{CHUNK_FRAMES, N_MELS};
use crate::graph::GraphError;
use crate::graph::landmark_generator::{AUDIO_ENCODER_BLOCKS, encoder};
use crate::graph::onnx::{
    BatchNorm, ConvWeights, GraphBuilder, Linear, OnnxModel, TensorSpec, Value,
};
use crate::graph::weights::Weights;
use crate::sizes::{FACE_SIZE, HALF_SIZE};

/// Graph name.
pub const NAME: &str = "renderer_translation";
/// Input: `[masked face (3, BGR [0,1], rows 64.. zeroed), driving (15)]`, `(1, 18, 128, 128)` f32.
pub const IN_TRANSLATION_INPUT: &str = "translation_input";
/// Input: warped-and-averaged h1 `(1, 32, 128, 128)` f32 (stage (d)).
pub const IN_H1_AVG: &str = "h1_avg";
/// Input: warped-and-averaged h2 `(1, 256, 64, 64)` f32 (stage (d)).
pub const IN_H2_AVG: &str = "h2_avg";
/// Input: warped-and-averaged reference image `(1, 3, 128, 128)` f32, BGR (stage (d)).
pub const IN_REF_AVG: &str = "ref_avg";
/// Input: the renderer's mel chunk `(1, 1, 80, 16)` f32 (spec §2, chunk s).
pub const IN_AUDIO: &str = "audio";
/// Output: the generated face `(1, 3, 128, 128)` f32, BGR in (0, 1).
pub const OUT_GENERATED: &str = "generated";
/// Optional output: audio encoder `(1, 512, 1, 1)` (golden `audio_encoder_out`).
pub const OUT_AUDIO_FEATURE: &str = "audio_feature";
/// Optional output: after `spade_1` `(1, 256, 64, 64)` (golden `trans_spade1_out`).
pub const OUT_SPADE1: &str = "trans_spade1";
/// Optional output: after `adain_1` `(1, 256, 64, 64)` (golden `trans_adain1_out`).
pub const OUT_ADAIN1: &str = "trans_adain1";
/// Optional output: after `spade_4` `(1, 64, 128, 128)` (golden `trans_spade4_out`).
pub const OUT_SPADE4: &str = "trans_spade4";
/// Optional output: `conv_last` before the Sigmoid `(1, 3, 128, 128)` (golden `trans_conv_last_out`).
pub const OUT_CONV_LAST: &str = "trans_conv_last";
/// Channels of `translation_input`.
pub const INPUT_CHANNELS: usize = 18;
/// Audio feature width.
pub const AUDIO_DIM: usize = 512;

/// Builds stage (e) from the `translation.*` weights.
pub fn build(w: &Weights<'_>, opts: RendererGraphOptions) -> Result<OnnxModel, GraphError> {
    let t = w.pp("translation");
    let mut b = GraphBuilder::new(NAME);
    b.set_doc("IP_LAP renderer stage (e): translation network (spec 5.2)");
    let x_in = b.input_f32(
        IN_TRANSLATION_INPUT,
        &[1, INPUT_CHANNELS, FACE_SIZE, FACE_SIZE],
    )?;
    let h1_avg = b.input_f32(IN_H1_AVG, &[1, 32, FACE_SIZE, FACE_SIZE])?;
    let h2_avg = b.input_f32(IN_H2_AVG, &[1, 256, HALF_SIZE, HALF_SIZE])?;
    let ref_avg = b.input_f32(IN_REF_AVG, &[1, 3, FACE_SIZE, FACE_SIZE])?;
    let audio = b.input_f32(IN_AUDIO, &[1, 1, N_MELS, CHUNK_FRAMES])?;

    b.push_scope("translation.audio_encoder");
    let audio_feature = encoder(
        &mut b,
        &t,
        "audio_encoder",
        &AUDIO_ENCODER_BLOCKS,
        true,
        &audio,
    )?;
    let audio_flat = b.reshape(&audio_feature, &[1, AUDIO_DIM as i64])?;
    b.pop_scope();

    b.push_scope("translation");
    let conv1 = ConvWeights::load(&t.pp("conv1"), 32, INPUT_CHANNELS, &[7, 7], false)?;
    let bn1 = BatchNorm::load(&t.pp("conv1_bn"), 32)?;
    let conv2 = ConvWeights::load(&t.pp("conv2"), 256, 32, &[3, 3], false)?;
    let bn2 = BatchNorm::load(&t.pp("conv2_bn"), 256)?;
    let x = b.conv2d(&x_in, &conv1, Some(&bn1), (1, 1), (3, 3))?;
    let x = b.relu(&x)?;
    let x = b.conv2d(&x, &conv2, Some(&bn2), (2, 2), (1, 1))?;
    let x = b.relu(&x)?;
    b.pop_scope();

    let spade1 = spade_block(
        &mut b,
        &t.pp("spade_1"),
        &x,
        256,
        &h2_avg,
        256,
        "translation.spade_1",
    )?;
    let adain1 = adain_block(
        &mut b,
        &t.pp("adain_1"),
        &spade1,
        256,
        &audio_flat,
        "translation.adain_1",
    )?;
    let x = b.pixel_shuffle(&adain1, 2)?;
    let x = spade_block(
        &mut b,
        &t.pp("spade_2"),
        &x,
        64,
        &h1_avg,
        32,
        "translation.spade_2",
    )?;
    let x = adain_block(
        &mut b,
        &t.pp("adain_2"),
        &x,
        64,
        &audio_flat,
        "translation.adain_2",
    )?;
    let spade4 = spade_block(
        &mut b,
        &t.pp("spade_4"),
        &x,
        64,
        &ref_avg,
        3,
        "translation.spade_4",
    )?;

    b.push_scope("translation.head");
    let x = b.leaky_relu(&spade4, 0.01)?;
    let conv_last = ConvWeights::load(&t.pp("conv_last"), 3, 64, &[7, 7], false)?;
    let conv_last_out = small_conv(&mut b, &x, &conv_last, opts)?;
    let generated = b.sigmoid(&conv_last_out)?;
    b.pop_scope();

    b.output_f32(&generated, OUT_GENERATED, &[1, 3, FACE_SIZE, FACE_SIZE])?;
    if opts.intermediates {
        b.output_f32(&audio_feature, OUT_AUDIO_FEATURE, &[1, AUDIO_DIM, 1, 1])?;
        b.output_f32(&spade1, OUT_SPADE1, &[1, 256, HALF_SIZE, HALF_SIZE])?;
        b.output_f32(&adain1, OUT_ADAIN1, &[1, 256, HALF_SIZE, HALF_SIZE])?;
        b.output_f32(&spade4, OUT_SPADE4, &[1, 64, FACE_SIZE, FACE_SIZE])?;
        b.output_f32(&conv_last_out, OUT_CONV_LAST, &[1, 3, FACE_SIZE, FACE_SIZE])?;
    }
    b.finish()
}

/// A SPADE block whose modulation `m` (`cm` channels) varies per frame: both layers' scale/shift are
/// computed in this graph.
fn spade_block(
    b: &mut GraphBuilder,
    w: &Weights<'_>,
    x: &Value,
    c: usize,
    m: &Value,
    cm: usize,
    scope: &str,
) -> Result<Value, GraphError> {
    b.push_scope(scope);
    let l1 = spade_params(b, &w.pp("spade_layer_1"), m, cm, c)?;
    let l2 = spade_params(b, &w.pp("spade_layer_2"), m, cm, c)?;
    let y = modulated_block(b, w, x, c, [&l1, &l2], Conv3x3::Direct)?;
    b.pop_scope();
    Ok(y)
}

/// An AdaIN block (spec §5.2): per layer `a = ReLU(mlp_shared(audio))`, `γ = mlp_gamma(a)`,
/// `β = mlp_beta(a)`, broadcast over H × W as `(1, C, 1, 1)`; the block structure is shared with SPADE.
fn adain_block(
    b: &mut GraphBuilder,
    w: &Weights<'_>,
    x: &Value,
    c: usize,
    audio: &Value,
    scope: &str,
) -> Result<Value, GraphError> {
    b.push_scope(scope);
    let mut layers = Vec::with_capacity(2);
    for name in ["adain_layer_1", "adain_layer_2"] {
        let lw = w.pp(name);
        let shared = Linear::load(&lw.pp("mlp_shared.0"), 128, AUDIO_DIM, true)?;
        let gamma = Linear::load(&lw.pp("mlp_gamma"), c, 128, true)?;
        let beta = Linear::load(&lw.pp("mlp_beta"), c, 128, true)?;
        let a = b.linear(audio, &shared)?;
        let a = b.relu(&a)?;
        let g = b.linear(&a, &gamma)?;
        let one = b.scalar_f32("one", 1.0);
        let scale = b.add(&g, &one)?;
        let shift = b.linear(&a, &beta)?;
        layers.push(SpadeParams {
            scale: b.reshape(&scale, &[1, c as i64, 1, 1])?,
            shift: b.reshape(&shift, &[1, c as i64, 1, 1])?,
        });
    }
    let [l1, l2] = layers.as_slice() else {
        return Err(GraphError::invalid("adain block: expected two layers"));
    };
    let y = modulated_block(b, w, x, c, [l1, l2], Conv3x3::Direct)?;
    b.pop_scope();
    Ok(y)
}

/// The I/O contract of stage (e).
pub fn contract(opts: RendererGraphOptions) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let inputs = vec![
        TensorSpec::f32(
            IN_TRANSLATION_INPUT,
            &[1, INPUT_CHANNELS, FACE_SIZE, FACE_SIZE],
        ),
        TensorSpec::f32(IN_H1_AVG, &[1, 32, FACE_SIZE, FACE_SIZE]),
        TensorSpec::f32(IN_H2_AVG, &[1, 256, HALF_SIZE, HALF_SIZE]),
        TensorSpec::f32(IN_REF_AVG, &[1, 3, FACE_SIZE, FACE_SIZE]),
        TensorSpec::f32(IN_AUDIO, &[1, 1, N_MELS, CHUNK_FRAMES]),
    ];
    let mut outputs = vec![TensorSpec::f32(
        OUT_GENERATED,
        &[1, 3, FACE_SIZE, FACE_SIZE],
    )];
    if opts.intermediates {
        outputs.extend([
            TensorSpec::f32(OUT_AUDIO_FEATURE, &[1, AUDIO_DIM, 1, 1]),
            TensorSpec::f32(OUT_SPADE1, &[1, 256, HALF_SIZE, HALF_SIZE]),
            TensorSpec::f32(OUT_ADAIN1, &[1, 256, HALF_SIZE, HALF_SIZE]),
            TensorSpec::f32(OUT_SPADE4, &[1, 64, FACE_SIZE, FACE_SIZE]),
            TensorSpec::f32(OUT_CONV_LAST, &[1, 3, FACE_SIZE, FACE_SIZE]),
        ]);
    }
    (inputs, outputs)
}
