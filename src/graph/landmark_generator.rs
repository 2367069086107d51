//! The IP_LAP Landmark_generator (spec §5.1; `IP_LAP/models/landmark_generator.py`) as one ONNX
//! graph: mel, pose and reference encoders, the shared LayerNorm, the fusion transformer and the
//! two keypoint heads, for one T = 5 window with Nl = 15 references (B = 1).
//!
//! BatchNorm is folded into the convolutions (spec §5 conventions, eval mode); the DataParallel
//! `module.` prefix is not part of the keys (spec §5.3).

use super::GraphError;
use super::onnx::{
    BatchNorm, ConvWeights, DType, GraphBuilder, LayerNorm, Linear, OnnxModel, TensorSpec, Value,
};
use super::weights::{WeightSource, Weights};
use crate::audio::{CHUNK_FRAMES, N_MELS};
use crate::sizes::WINDOW;

/// Input: mel chunks `T_mels` (1, 5, 1, 80, 16) f32 (spec app. D).
pub const T_MELS: &str = "T_mels";
/// Input: POSE landmarks of the window frames `T_pose` (1, 5, 2, 74) f32, crop-normalised.
pub const T_POSE: &str = "T_pose";
/// Input: POSE landmarks of the 15 references `Nl_pose` (1, 15, 2, 74) f32.
pub const NL_POSE: &str = "Nl_pose";
/// Input: CONTENT landmarks of the 15 references `Nl_content` (1, 15, 2, 57) f32.
pub const NL_CONTENT: &str = "Nl_content";
/// Output: predicted CONTENT landmarks `predict_content` (5, 2, 57) f32: row 0 x, row 1 y;
/// points 0–16 jaw, 17–56 lips.
pub const PREDICT_CONTENT: &str = "predict_content";
/// Debug output: mel encoder (5, 512, 1, 1).
pub const MEL_ENCODER_OUT: &str = "mel_encoder_out";
/// Debug output: pose encoder (5, 512, 1).
pub const POSE_ENCODER_OUT: &str = "pose_encoder_out";
/// Debug output: reference encoder (15, 512, 1).
pub const REF_ENCODER_OUT: &str = "ref_encoder_out";
/// Debug output: LayerNorm of the mel embeddings (5, 512).
pub const NORM_MEL_OUT: &str = "norm_mel_out";
/// Debug output: LayerNorm of the pose embeddings (5, 512).
pub const NORM_POSE_OUT: &str = "norm_pose_out";
/// Debug output: LayerNorm of the reference embeddings (15, 512).
pub const NORM_REF_OUT: &str = "norm_ref_out";
/// Debug output: transformer output tokens (1, 25, 512), order [ref | audio | pose].
pub const FUSION_TRANSFORMER_OUT: &str = "fusion_transformer_out";

/// Number of landmark references Nl.
pub const N_REF: usize = 15;
/// Model width.
pub const D_MODEL: usize = 512;
const N_LAYERS: usize = 4;
const N_HEADS: usize = 4;
const D_FF: usize = 1024;

/// Graph options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LandmarkGraphOptions {
    /// Also expose the golden intermediates (`*_encoder_out`, `norm_*_out`,
    /// `fusion_transformer_out`) as graph outputs, after `predict_content`.
    pub intermediates: bool,
}

/// The graph's I/O contract: inputs, then outputs (with or without the intermediates).
pub fn contract(opts: LandmarkGraphOptions) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let inputs = vec![
        TensorSpec::f32(T_MELS, &[1, WINDOW, 1, N_MELS, CHUNK_FRAMES]),
        TensorSpec::f32(T_POSE, &[1, WINDOW, 2, 74]),
        TensorSpec::f32(NL_POSE, &[1, N_REF, 2, 74]),
        TensorSpec::f32(NL_CONTENT, &[1, N_REF, 2, 57]),
    ];
    let mut outputs = vec![TensorSpec::f32(PREDICT_CONTENT, &[WINDOW, 2, 57])];
    if opts.intermediates {
        outputs.extend([
            TensorSpec::f32(MEL_ENCODER_OUT, &[WINDOW, D_MODEL, 1, 1]),
            TensorSpec::f32(POSE_ENCODER_OUT, &[WINDOW, D_MODEL, 1]),
            TensorSpec::f32(REF_ENCODER_OUT, &[N_REF, D_MODEL, 1]),
            TensorSpec::f32(NORM_MEL_OUT, &[WINDOW, D_MODEL]),
            TensorSpec::f32(NORM_POSE_OUT, &[WINDOW, D_MODEL]),
            TensorSpec::f32(NORM_REF_OUT, &[N_REF, D_MODEL]),
            TensorSpec::f32(FUSION_TRANSFORMER_OUT, &[1, N_REF + 2 * WINDOW, D_MODEL]),
        ]);
    }
    (inputs, outputs)
}

/// One Conv-BN block of an encoder table (spec §5.1): kernel, stride and padding per spatial
/// axis (1-D blocks use the first entry), residual add of the block input, final activation.
#[derive(Clone, Copy)]
pub(crate) struct Block {
    cin: usize,
    cout: usize,
    k: usize,
    stride: (usize, usize),
    pad: usize,
    residual: bool,
    tanh: bool,
}

const fn blk(
    cin: usize,
    cout: usize,
    k: usize,
    stride: (usize, usize),
    pad: usize,
    residual: bool,
) -> Block {
    Block {
        cin,
        cout,
        k,
        stride,
        pad,
        residual,
        tanh: false,
    }
}

const fn last(cin: usize, residual: bool) -> Block {
    Block {
        cin,
        cout: cin,
        k: 1,
        stride: (1, 1),
        pad: 0,
        residual,
        tanh: true,
    }
}

/// mel_encoder, spec §5.1 table (Conv2d, kernel 3 unless stated).
pub(crate) const MEL_BLOCKS: [Block; 13] = [
    blk(1, 32, 3, (1, 1), 1, false),
    blk(32, 32, 3, (1, 1), 1, true),
    blk(32, 32, 3, (1, 1), 1, true),
    blk(32, 64, 3, (3, 1), 1, false),
    blk(64, 64, 3, (1, 1), 1, true),
    blk(64, 64, 3, (1, 1), 1, true),
    blk(64, 128, 3, (3, 3), 1, false),
    blk(128, 128, 3, (1, 1), 1, true),
    blk(128, 128, 3, (1, 1), 1, true),
    blk(128, 256, 3, (3, 2), 1, false),
    blk(256, 256, 3, (1, 1), 1, true),
    blk(256, 512, 3, (1, 1), 0, false),
    last(512, false),
];

/// The renderer's `translation.audio_encoder`: the same 13 blocks as `mel_encoder`, except that
/// block 12 ends in ReLU instead of Tanh (spec §5.2, §8.2 item 4). Defined here so the table
/// exists once.
pub(crate) const AUDIO_ENCODER_BLOCKS: [Block; 13] = {
    let mut blocks = MEL_BLOCKS;
    blocks[12].tanh = false;
    blocks
};

/// ref_encoder, spec §5.1 table (Conv1d).
pub(crate) const REF_BLOCKS: [Block; 20] = [
    blk(2, 4, 3, (1, 1), 1, false),
    blk(4, 8, 3, (2, 2), 1, false),
    blk(8, 8, 3, (1, 1), 1, true),
    blk(8, 8, 3, (1, 1), 1, true),
    blk(8, 16, 3, (2, 2), 1, false),
    blk(16, 16, 3, (1, 1), 1, true),
    blk(16, 16, 3, (1, 1), 1, true),
    blk(16, 32, 3, (2, 2), 1, false),
    blk(32, 32, 3, (1, 1), 1, true),
    blk(32, 32, 3, (1, 1), 1, true),
    blk(32, 64, 3, (2, 2), 1, false),
    blk(64, 64, 3, (1, 1), 1, true),
    blk(64, 64, 3, (1, 1), 1, true),
    blk(64, 128, 3, (2, 2), 1, false),
    blk(128, 128, 3, (1, 1), 1, true),
    blk(128, 128, 3, (1, 1), 1, true),
    blk(128, 256, 3, (2, 2), 1, false),
    blk(256, 256, 3, (1, 1), 1, true),
    blk(256, 512, 3, (1, 1), 0, false),
    last(512, false),
];

/// pose_encoder, spec §5.1 table (Conv1d); note the residual on the last (Tanh) block.
pub(crate) const POSE_BLOCKS: [Block; 21] = [
    blk(2, 4, 3, (1, 1), 1, false),
    blk(4, 8, 3, (1, 1), 1, false),
    blk(8, 8, 3, (1, 1), 1, true),
    blk(8, 8, 3, (1, 1), 1, true),
    blk(8, 16, 3, (2, 2), 1, false),
    blk(16, 16, 3, (1, 1), 1, true),
    blk(16, 16, 3, (1, 1), 1, true),
    blk(16, 32, 3, (2, 2), 1, false),
    blk(32, 32, 3, (1, 1), 1, true),
    blk(32, 32, 3, (1, 1), 1, true),
    blk(32, 64, 3, (2, 2), 1, false),
    blk(64, 64, 3, (1, 1), 1, true),
    blk(64, 64, 3, (1, 1), 1, true),
    blk(64, 128, 3, (2, 2), 1, false),
    blk(128, 128, 3, (1, 1), 1, true),
    blk(128, 128, 3, (1, 1), 1, true),
    blk(128, 256, 3, (2, 2), 1, false),
    blk(256, 256, 3, (1, 1), 1, true),
    blk(256, 256, 3, (1, 1), 1, true),
    blk(256, 512, 3, (1, 1), 0, false),
    last(512, true),
];

/// Emits an encoder: `<name>.<i>.conv_block.0` (conv) and `.1` (BatchNorm, folded), then the
/// optional residual add and ReLU/Tanh (spec §5 conventions).
///
/// The Conv1d encoders run as Conv2d over `(N, C, 1, L)` with `(1, k)` kernels (the same
/// weights and sums): ONNX Runtime then keeps the whole encoder in its blocked NCHWc layout,
/// which measured ~10 % faster than 1-D convolutions here. `x` and the result are NCHW for
/// 2-D encoders and NCL for 1-D ones.
pub(crate) fn encoder(
    b: &mut GraphBuilder,
    w: &Weights<'_>,
    name: &str,
    blocks: &[Block],
    two_d: bool,
    x: &Value,
) -> Result<Value, GraphError> {
    let mut x = if two_d {
        x.clone()
    } else {
        b.unsqueeze(x, &[2])?
    };
    for (i, blk) in blocks.iter().enumerate() {
        let cw = w.pp(name).pp(i.to_string()).pp("conv_block");
        let kernel: &[usize] = if two_d { &[blk.k, blk.k] } else { &[blk.k] };
        let mut conv = ConvWeights::load(&cw.pp("0"), blk.cout, blk.cin, kernel, true)?;
        let bn = BatchNorm::load(&cw.pp("1"), blk.cout)?;
        let (stride, pad) = if two_d {
            (blk.stride, (blk.pad, blk.pad))
        } else {
            conv.shape = vec![blk.cout, blk.cin, 1, blk.k];
            ((1, blk.stride.0), (0, blk.pad))
        };
        b.push_scope(&format!("{name}.{i}"));
        let mut y = b.conv2d(&x, &conv, Some(&bn), stride, pad)?;
        if blk.residual {
            y = b.add(&y, &x)?;
        }
        x = if blk.tanh { b.tanh(&y)? } else { b.relu(&y)? };
        b.pop_scope();
    }
    if two_d { Ok(x) } else { b.squeeze(&x, &[2]) }
}

/// One post-norm `nn.TransformerEncoderLayer` (spec §5.1) on tokens `x` (25, 512).
fn transformer_layer(
    b: &mut GraphBuilder,
    w: &Weights<'_>,
    x: &Value,
) -> Result<Value, GraphError> {
    let d = D_MODEL as i64;
    let dh = (D_MODEL / N_HEADS) as i64;
    let (h, n) = (N_HEADS as i64, -1i64);
    let sa = w.pp("self_attn");
    let in_proj = Linear {
        weight: sa.get("in_proj_weight", &[3 * D_MODEL, D_MODEL])?,
        out_features: 3 * D_MODEL,
        in_features: D_MODEL,
        bias: Some(sa.get("in_proj_bias", &[3 * D_MODEL])?),
    };
    let qkv = b.linear(x, &in_proj)?;
    // Rows 0-511 of in_proj are W_Q, 512-1023 W_K, 1024-1535 W_V; head h uses columns 128h.. .
    let q = b.slice(&qkv, &[1], &[0], &[d])?;
    let k = b.slice(&qkv, &[1], &[d], &[2 * d])?;
    let v = b.slice(&qkv, &[1], &[2 * d], &[3 * d])?;
    let q = b.scale(&q, 1.0 / (dh as f32).sqrt())?;
    let q = b.reshape(&q, &[n, h, dh])?;
    let q = b.transpose(&q, &[1, 0, 2])?; // (4, 25, 128)
    let k = b.reshape(&k, &[n, h, dh])?;
    let k = b.transpose(&k, &[1, 2, 0])?; // (4, 128, 25)
    let v = b.reshape(&v, &[n, h, dh])?;
    let v = b.transpose(&v, &[1, 0, 2])?; // (4, 25, 128)
    let scores = b.matmul(&q, &k)?;
    let attn = b.softmax(&scores, -1)?;
    let o = b.matmul(&attn, &v)?;
    let o = b.transpose(&o, &[1, 0, 2])?;
    let o = b.reshape(&o, &[n, d])?; // heads concatenated in head order
    let o = b.linear(
        &o,
        &Linear::load(&sa.pp("out_proj"), D_MODEL, D_MODEL, true)?,
    )?;
    let x = b.add(x, &o)?;
    let x = b.layer_norm(&x, &LayerNorm::load(&w.pp("norm1"), D_MODEL)?)?;
    let f = b.linear(&x, &Linear::load(&w.pp("linear1"), D_FF, D_MODEL, true)?)?;
    let f = b.relu(&f)?;
    let f = b.linear(&f, &Linear::load(&w.pp("linear2"), D_MODEL, D_FF, true)?)?;
    let x = b.add(&x, &f)?;
    b.layer_norm(&x, &LayerNorm::load(&w.pp("norm2"), D_MODEL)?)
}

/// Tokens, transformer and heads (spec §5.1) on the normalised embeddings `normed` (25, 512),
/// rows [ref 0..14 | audio 15..19 | pose 20..24]. Returns `predict_content` (5, 2, 57) and the
/// transformer output tokens (25, 512).
pub(crate) fn fusion(
    b: &mut GraphBuilder,
    w: &Weights<'_>,
    normed: &Value,
) -> Result<(Value, Value), GraphError> {
    let (t, nr) = (WINDOW as i64, N_REF as i64);
    b.push_scope("fusion");
    // Tokens: ref + E[3]; audio + pe[t] + E[2]; pose + pe[t] + E[1] (added in that order).
    let ft = w.pp("fusion_transformer");
    let pe_a = ft.pp("position_a").get("pe", &[1, 512, D_MODEL])?;
    let pe_v = ft.pp("position_v").get("pe", &[1, 512, D_MODEL])?;
    let emb = ft.pp("modality").get("weight", &[4, D_MODEL])?;
    let mut pos = vec![0f32; N_REF * D_MODEL];
    pos.extend_from_slice(&pe_a[..WINDOW * D_MODEL]);
    pos.extend_from_slice(&pe_v[..WINDOW * D_MODEL]);
    let mut modality = Vec::with_capacity((N_REF + 2 * WINDOW) * D_MODEL);
    for (row, count) in [(3, N_REF), (2, WINDOW), (1, WINDOW)] {
        for _ in 0..count {
            modality.extend_from_slice(&emb[row * D_MODEL..(row + 1) * D_MODEL]);
        }
    }
    let tokens_shape = [N_REF + 2 * WINDOW, D_MODEL];
    let pos = b.initializer_f32("positional", &tokens_shape, &pos)?;
    let modality = b.initializer_f32("modality", &tokens_shape, &modality)?;
    let x = b.add(normed, &pos)?;
    let mut x = b.add(&x, &modality)?;
    b.pop_scope();

    let layers = ft.pp("transformer_encoder").pp("layers");
    for i in 0..N_LAYERS {
        b.push_scope(&format!("transformer.{i}"));
        x = transformer_layer(b, &layers.pp(i.to_string()), &x)?;
        b.pop_scope();
    }

    // Heads: mouth from the audio tokens 15..19, jaw from the pose tokens 20..24; per t the
    // 114 values [jaw 34 | mouth 80] are 57 (x, y) points, transposed to (2, 57).
    b.push_scope("heads");
    let audio_tok = b.slice(&x, &[0], &[nr], &[nr + t])?;
    let pose_tok = b.slice(&x, &[0], &[nr + t], &[nr + 2 * t])?;
    let mouth = b.linear(
        &audio_tok,
        &Linear::load(&w.pp("mouse_keypoint_map"), 80, D_MODEL, true)?,
    )?;
    let jaw = b.linear(
        &pose_tok,
        &Linear::load(&w.pp("jaw_keypoint_map"), 34, D_MODEL, true)?,
    )?;
    let v = b.concat(&[&jaw, &mouth], 1)?;
    let v = b.reshape(&v, &[t, 57, 2])?;
    let content = b.transpose(&v, &[0, 2, 1])?;
    b.pop_scope();

    Ok((content, x))
}

/// Builds the Landmark_generator graph from `src` (keys of spec appendix A).
pub fn build(src: &dyn WeightSource, opts: LandmarkGraphOptions) -> Result<OnnxModel, GraphError> {
    build_with(&Weights::new(src), opts)
}

/// As [`build`], reading through a prepared [`Weights`] view (e.g. under an extra key prefix).
pub fn build_with(w: &Weights<'_>, opts: LandmarkGraphOptions) -> Result<OnnxModel, GraphError> {
    let (t, nr, d) = (WINDOW as i64, N_REF as i64, D_MODEL as i64);
    let mut b = GraphBuilder::new("landmark_generator");
    b.set_doc("IP_LAP Landmark_generator (spec §5.1), BatchNorm folded; written by iplap");
    let (inputs, outputs) = contract(opts);
    let ins = inputs
        .iter()
        .map(|s| b.input(&s.name, s.dtype, &s.shape))
        .collect::<Result<Vec<_>, _>>()?;
    let [mels, pose, nl_pose, nl_content] = ins.as_slice() else {
        return Err(GraphError::invalid(
            "landmark generator: expected four inputs",
        ));
    };

    // Batch and time axes merged (B·T = 5, B·Nl = 15); Nl_ref = [POSE | CONTENT] (15, 2, 131).
    let mels = b.reshape(mels, &[t, 1, N_MELS as i64, CHUNK_FRAMES as i64])?;
    let pose = b.reshape(pose, &[t, 2, 74])?;
    let nl_pose = b.reshape(nl_pose, &[nr, 2, 74])?;
    let nl_content = b.reshape(nl_content, &[nr, 2, 57])?;
    let nl_ref = b.concat(&[&nl_pose, &nl_content], 2)?;

    let mel_out = encoder(&mut b, w, "mel_encoder", &MEL_BLOCKS, true, &mels)?; // (5, 512, 1, 1)
    let ref_out = encoder(&mut b, w, "ref_encoder", &REF_BLOCKS, false, &nl_ref)?; // (15, 512, 1)
    let pose_out = encoder(&mut b, w, "pose_encoder", &POSE_BLOCKS, false, &pose)?; // (5, 512, 1)

    // One shared LayerNorm ("Norm") per embedding vector: applied once to the stacked
    // [ref | mel | pose] rows, which is the token order of the transformer input.
    b.push_scope("fusion");
    let mel_e = b.reshape(&mel_out, &[t, d])?;
    let ref_e = b.reshape(&ref_out, &[nr, d])?;
    let pose_e = b.reshape(&pose_out, &[t, d])?;
    let stacked = b.concat(&[&ref_e, &mel_e, &pose_e], 0)?;
    let normed = b.layer_norm(&stacked, &LayerNorm::load(&w.pp("Norm"), D_MODEL)?)?;

    b.pop_scope();
    let (content, x) = fusion(&mut b, w, &normed)?;

    let mut values = vec![content];
    if opts.intermediates {
        let norm_ref = b.slice(&normed, &[0], &[0], &[nr])?;
        let norm_mel = b.slice(&normed, &[0], &[nr], &[nr + t])?;
        let norm_pose = b.slice(&normed, &[0], &[nr + t], &[nr + 2 * t])?;
        let tokens = b.unsqueeze(&x, &[0])?;
        values.extend([
            mel_out, pose_out, ref_out, norm_mel, norm_pose, norm_ref, tokens,
        ]);
    }
    for (v, spec) in values.iter().zip(&outputs) {
        b.output(v, &spec.name, DType::Float32, &spec.shape)?;
    }
    b.finish()
}
