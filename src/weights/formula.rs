//! The reference formula weights and golden inputs of spec `iplap-ref-v1`
//! (`shared/docs/reference-weights.md`): every tensor of the official models filled from its
//! `state_dict` name by integer hashing plus one float64 multiply-add and one rounding to float32,
//! so tests can rebuild the exact weights behind the goldens without a checkpoint.

use std::borrow::Cow;

use ndarray::Array4;

use crate::audio::{CHUNK_FRAMES, N_MELS};
use crate::graph::GraphError;
use crate::graph::weights::WeightSource;
use crate::sizes::{FACE_SIZE, WINDOW};

/// FNV-1a (32-bit) over the UTF-8 bytes of `s` (reference-weights §1).
pub fn fnv1a32(s: &str) -> u32 {
    s.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// The `mix32` finaliser of reference-weights §1 (all arithmetic mod 2³²).
pub fn mix32(seed: u32, k: u32) -> u32 {
    let mut z = seed.wrapping_add(k.wrapping_mul(0x9E37_79B9));
    z ^= z >> 16;
    z = z.wrapping_mul(0x85EB_CA6B);
    z ^= z >> 13;
    z = z.wrapping_mul(0xC2B2_AE35);
    z ^ (z >> 16)
}

/// `r(seed, k)`: exact uniform value in [-1, 1) (24 bits of `mix32`).
pub fn r(seed: u32, k: u32) -> f64 {
    (mix32(seed, k) >> 8) as f64 / 8_388_608.0 - 1.0
}

/// `float32(offset + scale·r(seed, k))`, evaluated in f64 (multiply, then add; no FMA).
pub fn value(seed: u32, k: u32, offset: f64, scale: f64) -> f32 {
    let p = scale * r(seed, k);
    (offset + p) as f32
}

/// How a tensor is filled (reference-weights §2, first matching rule wins).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// `num_batches_tracked`: int64 constant 0 (not a float tensor).
    ConstantZeroI64,
    /// `.pe` buffers: the official float32 sinusoid, not formula-filled ([`positional_encoding`]).
    PositionalEncoding,
    /// `float32(offset + scale·r)`.
    Formula {
        /// Offset.
        offset: f64,
        /// Scale.
        scale: f64,
    },
}

/// The fill rule for a tensor of the given name (no `module.` prefix) and shape.
pub fn fill_rule(name: &str, shape: &[usize]) -> Fill {
    let formula = |offset, scale| Fill::Formula { offset, scale };
    if name.ends_with(".num_batches_tracked") {
        Fill::ConstantZeroI64
    } else if name.ends_with(".pe") {
        Fill::PositionalEncoding
    } else if name.ends_with(".running_mean") {
        formula(0.0, 0.1)
    } else if name.ends_with(".running_var") {
        formula(1.0, 0.5)
    } else if name.ends_with("modality.weight") {
        formula(0.0, 1.0)
    } else if shape.len() >= 2 {
        let numel: usize = shape.iter().product();
        let fan_in = numel / shape[0].max(1);
        formula(0.0, (3.0f64 / fan_in as f64).sqrt())
    } else if name.ends_with(".weight") {
        formula(1.0, 0.25)
    } else {
        // rule 8 (bias); anything else 1-D falls here too, as in the reference generator.
        formula(0.0, 0.1)
    }
}

/// `numel` formula values of tensor `name` (row-major flat index k = 0..numel).
pub fn formula_values(name: &str, numel: usize, offset: f64, scale: f64) -> Vec<f32> {
    let seed = fnv1a32(name);
    (0..numel)
        .map(|k| value(seed, k as u32, offset, scale))
        .collect()
}

/// The official sinusoidal table `pe (1, max_len, d_model)` computed in float32 like the
/// PyTorch constructor (spec §5.1): `div[i] = exp(f32(2i) · f32(−ln(10000)/d_model))`,
/// `pe[p, 2i] = sin(f32(p)·div[i])`, `pe[p, 2i+1] = cos(f32(p)·div[i])`.
pub fn positional_encoding(max_len: usize, d_model: usize) -> Vec<f32> {
    let step = (-(10000.0f64.ln() / d_model as f64)) as f32;
    let div: Vec<f32> = (0..d_model.div_ceil(2))
        .map(|i| ((2 * i) as f32 * step).exp())
        .collect();
    let mut pe = vec![0f32; max_len * d_model];
    for p in 0..max_len {
        let row = &mut pe[p * d_model..(p + 1) * d_model];
        for (i, &d) in div.iter().enumerate() {
            let a = p as f32 * d;
            row[2 * i] = a.sin();
            if 2 * i + 1 < d_model {
                row[2 * i + 1] = a.cos();
            }
        }
    }
    pe
}

/// The formula weights as a [`WeightSource`].
///
/// The formula is defined for every name, so this source has no key list: a misspelt key
/// silently yields (different) formula values. Graph tests against the goldens catch that.
#[derive(Clone, Copy, Debug, Default)]
pub struct FormulaWeights;

impl FormulaWeights {
    /// The formula source.
    pub fn new() -> Self {
        FormulaWeights
    }

    /// The float32 values of tensor `name` with `shape`, or an error for the int64 counters and
    /// for a `.pe` buffer whose shape is not `[1, max_len, d_model]`.
    pub fn fill(name: &str, shape: &[usize]) -> Result<Vec<f32>, GraphError> {
        let numel: usize = shape.iter().product();
        match fill_rule(name, shape) {
            Fill::ConstantZeroI64 => Err(GraphError::WeightDtype {
                key: name.to_owned(),
                found: "int64".into(),
            }),
            Fill::PositionalEncoding => match shape {
                [1, max_len, d_model] => Ok(positional_encoding(*max_len, *d_model)),
                _ => Err(GraphError::WeightShape {
                    key: name.to_owned(),
                    expected: shape.to_vec(),
                    found: vec![1, 512, 512],
                }),
            },
            Fill::Formula { offset, scale } => Ok(formula_values(name, numel, offset, scale)),
        }
    }
}

impl WeightSource for FormulaWeights {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>, GraphError> {
        Self::fill(name, shape).map(Cow::Owned)
    }
}

/// A golden input filled with `float32(offset + scale·r(fnv1a32(name), k))` (reference-weights §4).
pub fn golden_input(name: &str, shape: &[usize], offset: f64, scale: f64) -> Vec<f32> {
    formula_values(name, shape.iter().product(), offset, scale)
}

/// Golden `T_mels` (1, 5, 1, 80, 16): `4·r`, in [-4, 4).
pub fn golden_t_mels() -> Vec<f32> {
    golden_input("T_mels", &[1, WINDOW, 1, N_MELS, CHUNK_FRAMES], 0.0, 4.0)
}

/// Golden `T_pose` (1, 5, 2, 74): `0.5 + 0.5·r`, in [0, 1).
pub fn golden_t_pose() -> Vec<f32> {
    golden_input("T_pose", &[1, 5, 2, 74], 0.5, 0.5)
}

/// Golden `Nl_pose` (1, 15, 2, 74): `0.5 + 0.5·r`.
pub fn golden_nl_pose() -> Vec<f32> {
    golden_input("Nl_pose", &[1, 15, 2, 74], 0.5, 0.5)
}

/// Golden `Nl_content` (1, 15, 2, 57): `0.5 + 0.5·r`.
pub fn golden_nl_content() -> Vec<f32> {
    golden_input("Nl_content", &[1, 15, 2, 57], 0.5, 0.5)
}

/// Golden image input (`face_frame_img`, `ref_N_frame_img`): `0.5 + 0.5·r` over `shape`.
pub fn golden_image(name: &str, shape: &[usize]) -> Vec<f32> {
    golden_input(name, shape, 0.5, 0.5)
}

/// Golden sketch input (`target_sketches`, `ref_N_frame_sketch`) of shape `(…, 3, H, W)`:
/// 12 pseudo-random lines per image (reference-weights §4), values in {0, 1}.
pub fn golden_sketch(name: &str, shape: &[usize]) -> Result<Vec<f32>, GraphError> {
    let [lead @ .., c, h, w] = shape else {
        return Err(GraphError::invalid(format!(
            "sketch shape {shape:?} needs (…, C, H, W)"
        )));
    };
    let (c, h, w) = (*c, *h, *w);
    if h == 0 || w == 0 {
        return Err(GraphError::invalid(format!(
            "sketch shape {shape:?} has an empty image"
        )));
    }
    let images: usize = lead.iter().product();
    let seed = fnv1a32(name);
    let mut out = vec![0f32; images * c * h * w];
    for n in 0..images {
        for j in 0..12 {
            let u = mix32(seed, (n * 12 + j) as u32);
            let y0 = (u % h as u32) as i64;
            let s = ((u >> 8) % 65) as i64 - 32;
            let cm = 1 + (u >> 16) % 7;
            for x in 0..w as i64 {
                let y = y0 + (s * x).div_euclid(32);
                if !(0..h as i64).contains(&y) {
                    continue;
                }
                for ch in 0..c.min(3) {
                    if cm & (1 << ch) != 0 {
                        out[((n * c + ch) * h + y as usize) * w + x as usize] = 1.0;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The renderer's golden inputs (reference-weights §4) for `n` references, in the shapes
/// [`crate::runtime::renderer::RendererModel`] takes; `n = 25` gives the golden `inputs/` folder's
/// values, and fewer references are its first `n`.
#[derive(Debug, Clone)]
pub struct RendererGoldenInputs {
    /// `ref_N_frame_img`, `(n, 3, 128, 128)`.
    pub ref_img: Array4<f32>,
    /// `ref_N_frame_sketch`, `(n, 3, 128, 128)`.
    pub ref_sketch: Array4<f32>,
    /// `face_frame_img`, `(1, 3, 128, 128)`.
    pub face: Array4<f32>,
    /// `target_sketches`, `(5, 3, 128, 128)`.
    pub target_sketches: Array4<f32>,
    /// `audio_mels`, `(1, 1, 80, 16)` (N_MELS × CHUNK_FRAMES).
    pub audio: Array4<f32>,
}

impl RendererGoldenInputs {
    /// The inputs for `n` references.
    pub fn new(n: usize) -> Result<Self, GraphError> {
        const S: usize = FACE_SIZE;
        let arr = |shape: [usize; 4], data: Vec<f32>| {
            Array4::from_shape_vec(shape, data).map_err(|e| GraphError::invalid(e.to_string()))
        };
        Ok(RendererGoldenInputs {
            ref_img: arr(
                [n, 3, S, S],
                golden_image("ref_N_frame_img", &[1, n, 3, S, S]),
            )?,
            ref_sketch: arr(
                [n, 3, S, S],
                golden_sketch("ref_N_frame_sketch", &[1, n, 3, S, S])?,
            )?,
            face: arr(
                [1, 3, S, S],
                golden_image("face_frame_img", &[1, 1, 3, S, S]),
            )?,
            target_sketches: arr(
                [WINDOW, 3, S, S],
                golden_sketch("target_sketches", &[1, WINDOW, 3, S, S])?,
            )?,
            audio: arr(
                [1, 1, N_MELS, CHUNK_FRAMES],
                golden_input("audio_mels", &[1, 1, 1, N_MELS, CHUNK_FRAMES], 0.0, 4.0),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(fnv1a32("T_mels"), 0x196f_ddc3);
        assert_eq!(mix32(0, 0), 0);
        assert_eq!(mix32(0x1234_5678, 7), 0x1a27_26bc);
        let w = FormulaWeights::fill("mel_encoder.0.conv_block.0.weight", &[32, 1, 3, 3]).unwrap();
        assert_eq!(w[0].to_bits(), 0xbe93_723b);
        assert_eq!(w[1].to_bits(), 0xbd74_84f7);
        let key = "fusion_transformer.transformer_encoder.layers.0.self_attn.in_proj_weight";
        let w = FormulaWeights::fill(key, &[1536, 512]).unwrap();
        assert_eq!(w[12345].to_bits(), 0x3d3f_e2a2);
    }

    #[test]
    fn positional_encoding_check_values() {
        let pe = positional_encoding(512, 512);
        let row1 = &pe[512..516];
        let expect = [0.841_470_96f32, 0.540_302_34, 0.821_856_2, 0.569_695_06];
        for (a, e) in row1.iter().zip(expect) {
            assert!((a - e).abs() <= 1e-7, "{row1:?}");
        }
        assert_eq!(&pe[..4], &[0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn int64_counter_is_not_a_float_tensor() {
        let e = FormulaWeights::fill("a.num_batches_tracked", &[]).unwrap_err();
        assert!(e.to_string().contains("a.num_batches_tracked"));
    }
}
