//! Stage (b): the modulation branches of the six SPADELayers of the flow network (spec §5.2 rows
//! `m64`, `s1`, `s2`, `s4`; spec §7.2 "independent of the reference index").
//!
//! The modulation input of every flow-network SPADELayer is the driving sketch stack — nearest-
//! downsampled to 64 × 64 for `spade_layer_1` and `spade_layer_2`, full size for `spade_layer_4` — and
//! never the reference, so `conv1`, `gamma` and `beta` of these layers are evaluated once per frame
//! here (30.69 GMAC instead of 767) and broadcast over the references by stage (c).

use super::spade_params;
use crate::graph::GraphError;
use crate::graph::onnx::{GraphBuilder, OnnxModel, TensorSpec};
use crate::graph::weights::Weights;
use crate::sizes::{FACE_SIZE, HALF_SIZE};

/// Graph name.
pub const NAME: &str = "renderer_flow_modulation";
/// Input: the 5 target sketches concatenated along channels, `(1, 15, 128, 128)` f32 (spec §5.2 step 2).
pub const IN_DRIVING: &str = "driving";
/// Channels of the driving sketch stack.
pub const DRIVING_CHANNELS: usize = 15;

/// One flow-network SPADELayer whose scale/shift this stage produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpadeLayer {
    /// Key prefix under `flow_module` (e.g. `spade_layer_1.spade_layer_2`).
    pub key: &'static str,
    /// Channels C of the modulated activation.
    pub channels: usize,
    /// Side of the maps (64 or 128).
    pub side: usize,
    /// Output name of `1 + γ`, `(1, C, side, side)`.
    pub scale: &'static str,
    /// Output name of `β`, `(1, C, side, side)`.
    pub shift: &'static str,
}

/// The six layers, in evaluation order; also the order of stage (c)'s modulation inputs.
pub const LAYERS: [FlowSpadeLayer; 6] = [
    layer(
        "spade_layer_1.spade_layer_1",
        256,
        HALF_SIZE,
        "b1_l1_scale",
        "b1_l1_shift",
    ),
    layer(
        "spade_layer_1.spade_layer_2",
        256,
        HALF_SIZE,
        "b1_l2_scale",
        "b1_l2_shift",
    ),
    layer(
        "spade_layer_2.spade_layer_1",
        256,
        HALF_SIZE,
        "b2_l1_scale",
        "b2_l1_shift",
    ),
    layer(
        "spade_layer_2.spade_layer_2",
        256,
        HALF_SIZE,
        "b2_l2_scale",
        "b2_l2_shift",
    ),
    layer(
        "spade_layer_4.spade_layer_1",
        64,
        FACE_SIZE,
        "b4_l1_scale",
        "b4_l1_shift",
    ),
    layer(
        "spade_layer_4.spade_layer_2",
        64,
        FACE_SIZE,
        "b4_l2_scale",
        "b4_l2_shift",
    ),
];

const fn layer(
    key: &'static str,
    channels: usize,
    side: usize,
    scale: &'static str,
    shift: &'static str,
) -> FlowSpadeLayer {
    FlowSpadeLayer {
        key,
        channels,
        side,
        scale,
        shift,
    }
}

/// Builds stage (b) from the `flow_module.spade_layer_{1,2,4}.spade_layer_{1,2}.*` weights.
pub fn build(w: &Weights<'_>) -> Result<OnnxModel, GraphError> {
    let f = w.pp("flow_module");
    let mut b = GraphBuilder::new(NAME);
    b.set_doc(
        "IP_LAP renderer stage (b): flow-network SPADE modulation, once per frame (spec 5.2, 7.2)",
    );
    let driving = b.input_f32(IN_DRIVING, &[1, DRIVING_CHANNELS, FACE_SIZE, FACE_SIZE])?;
    // downsample(driving, 64): F.interpolate(mode='nearest') = driving[:, :, 2i, 2j].
    let m64 = b.resize_nearest(
        &driving,
        &[
            1,
            DRIVING_CHANNELS as i64,
            HALF_SIZE as i64,
            HALF_SIZE as i64,
        ],
    )?;
    for l in LAYERS {
        b.push_scope(&format!("flow_module.{}", l.key));
        let m = if l.side == HALF_SIZE { &m64 } else { &driving };
        let p = spade_params(&mut b, &f.pp(l.key), m, DRIVING_CHANNELS, l.channels)?;
        b.pop_scope();
        let shape = [1, l.channels, l.side, l.side];
        b.output_f32(&p.scale, l.scale, &shape)?;
        b.output_f32(&p.shift, l.shift, &shape)?;
    }
    b.finish()
}

/// The I/O contract of stage (b).
pub fn contract() -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let outputs = LAYERS
        .iter()
        .flat_map(|l| {
            let shape = [1, l.channels, l.side, l.side];
            [
                TensorSpec::f32(l.scale, &shape),
                TensorSpec::f32(l.shift, &shape),
            ]
        })
        .collect();
    (
        vec![TensorSpec::f32(
            IN_DRIVING,
            &[1, DRIVING_CHANNELS, FACE_SIZE, FACE_SIZE],
        )],
        outputs,
    )
}
