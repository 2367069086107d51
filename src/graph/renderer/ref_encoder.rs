//! Stage (a): the reference encoder, `DenseFlowNetwork` rows `in`, `h1`, `h2` of spec §5.2
//! (`IP_LAP/models/video_renderer.py`, `DenseFlowNetwork.forward`, first two Conv-BN-ReLU layers).
//!
//! Depends on the reference only, so it runs once per reference bank, batched over the N references
//! (spec §7.2): `[ref_img, ref_sketch]` (6 × 128 × 128) → `conv1` 7×7 + `conv1_bn` + ReLU = h1
//! (32 × 128 × 128) → `conv2` 3×3 stride 2 + `conv2_bn` + ReLU = h2 (256 × 64 × 64).

use super::{N_REF_DIM, batched};
use crate::graph::GraphError;
use crate::graph::onnx::{BatchNorm, ConvWeights, DType, Dim, GraphBuilder, OnnxModel, TensorSpec};
use crate::graph::weights::Weights;
use crate::sizes::{FACE_SIZE, HALF_SIZE};

/// Graph name.
pub const NAME: &str = "renderer_ref_encoder";
/// Input: reference images `(N, 3, 128, 128)` f32, BGR in [0, 1].
pub const IN_REF_IMG: &str = "ref_img";
/// Input: reference sketches `(N, 3, 128, 128)` f32, [0, 1].
pub const IN_REF_SKETCH: &str = "ref_sketch";
/// Output: h1 `(N, 32, 128, 128)` f32 (after BN and ReLU).
pub const OUT_H1: &str = "h1";
/// Output: h2 `(N, 256, 64, 64)` f32 (after BN and ReLU).
pub const OUT_H2: &str = "h2";
/// Channels of h1.
pub const H1_CHANNELS: usize = 32;
/// Channels of h2.
pub const H2_CHANNELS: usize = 256;

/// Builds stage (a) from the `flow_module.conv1*` / `conv2*` weights under the root view `w`.
pub fn build(w: &Weights<'_>) -> Result<OnnxModel, GraphError> {
    let f = w.pp("flow_module");
    let conv1 = ConvWeights::load(&f.pp("conv1"), H1_CHANNELS, 6, &[7, 7], true)?;
    let bn1 = BatchNorm::load(&f.pp("conv1_bn"), H1_CHANNELS)?;
    let conv2 = ConvWeights::load(&f.pp("conv2"), H2_CHANNELS, H1_CHANNELS, &[3, 3], true)?;
    let bn2 = BatchNorm::load(&f.pp("conv2_bn"), H2_CHANNELS)?;

    let mut b = GraphBuilder::new(NAME);
    b.set_doc("IP_LAP renderer stage (a): reference encoder (spec 5.2, 7.3)");
    let n = Dim::from(N_REF_DIM);
    let img_shape = [n.clone(), 3.into(), FACE_SIZE.into(), FACE_SIZE.into()];
    let img = b.input(IN_REF_IMG, DType::Float32, &img_shape)?;
    let sketch = b.input(IN_REF_SKETCH, DType::Float32, &img_shape)?;
    b.push_scope("flow_module");
    let x = b.concat(&[&img, &sketch], 1)?;
    let h1 = b.conv2d(&x, &conv1, Some(&bn1), (1, 1), (3, 3))?;
    let h1 = b.relu(&h1)?;
    let h2 = b.conv2d(&h1, &conv2, Some(&bn2), (2, 2), (1, 1))?;
    let h2 = b.relu(&h2)?;
    b.pop_scope();
    b.output(
        &h1,
        OUT_H1,
        DType::Float32,
        &[
            n.clone(),
            H1_CHANNELS.into(),
            FACE_SIZE.into(),
            FACE_SIZE.into(),
        ],
    )?;
    b.output(
        &h2,
        OUT_H2,
        DType::Float32,
        &[n, H2_CHANNELS.into(), HALF_SIZE.into(), HALF_SIZE.into()],
    )?;
    b.finish()
}

/// The I/O contract of stage (a) (N symbolic, [`N_REF_DIM`]).
pub fn contract() -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let img = [3, FACE_SIZE, FACE_SIZE];
    (
        vec![batched(IN_REF_IMG, &img), batched(IN_REF_SKETCH, &img)],
        vec![
            batched(OUT_H1, &[H1_CHANNELS, FACE_SIZE, FACE_SIZE]),
            batched(OUT_H2, &[H2_CHANNELS, HALF_SIZE, HALF_SIZE]),
        ],
    )
}
