//! Weight-bearing layers: convolution (with BatchNorm folded in at emission), linear, layer norm,
//! instance norm. Parameters are plain structs (`ConvWeights`, `BatchNorm`, `Linear`,
//! `LayerNorm`) with `load` constructors that read PyTorch `state_dict` keys through
//! [`Weights`], so one network definition works with any [`crate::graph::weights::WeightSource`].

use super::builder::{Attr, GraphBuilder, Value};
use crate::graph::GraphError;
use crate::graph::weights::Weights;

/// PyTorch's default epsilon of BatchNorm, LayerNorm and InstanceNorm.
pub const TORCH_NORM_EPS: f64 = 1e-5;

/// Convolution parameters: weight `(cout, cin, k…)` (PyTorch layout) and optional bias `(cout)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvWeights {
    /// Row-major weight values.
    pub weight: Vec<f32>,
    /// Weight shape: `[cout, cin, kh, kw]` (2-D) or `[cout, cin, k]` (1-D).
    pub shape: Vec<usize>,
    /// Bias, `cout` values, if the layer has one.
    pub bias: Option<Vec<f32>>,
}

impl ConvWeights {
    /// Reads `<prefix>.weight` with shape `[cout, cin, kernel…]` and, when `bias`, `<prefix>.bias`.
    pub fn load(
        w: &Weights<'_>,
        cout: usize,
        cin: usize,
        kernel: &[usize],
        bias: bool,
    ) -> Result<Self, GraphError> {
        let mut shape = vec![cout, cin];
        shape.extend_from_slice(kernel);
        let weight = w.get("weight", &shape)?;
        let bias = if bias {
            Some(w.get("bias", &[cout])?)
        } else {
            None
        };
        Ok(ConvWeights {
            weight,
            shape,
            bias,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    fn check(&self) -> Result<(), GraphError> {
        let numel: usize = self.shape.iter().product();
        if self.shape.len() < 3 || numel != self.weight.len() {
            return Err(GraphError::invalid(format!(
                "conv weight shape {:?} does not match {} values",
                self.shape,
                self.weight.len()
            )));
        }
        if let Some(b) = &self.bias
            && b.len() != self.shape[0]
        {
            return Err(GraphError::invalid(format!(
                "conv bias has {} values for {} output channels",
                b.len(),
                self.shape[0]
            )));
        }
        Ok(())
    }
}

/// Eval-mode BatchNorm: `y = (x − mean) / sqrt(var + eps) · gamma + beta` (spec §5 conventions).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// `weight` (γ).
    pub gamma: Vec<f32>,
    /// `bias` (β).
    pub beta: Vec<f32>,
    /// `running_mean`.
    pub mean: Vec<f32>,
    /// `running_var`.
    pub var: Vec<f32>,
    /// Epsilon (PyTorch default [`TORCH_NORM_EPS`]).
    pub eps: f64,
}

impl BatchNorm {
    /// Reads `<prefix>.{weight,bias,running_mean,running_var}` (each `[channels]`), eps 1e-5.
    pub fn load(w: &Weights<'_>, channels: usize) -> Result<Self, GraphError> {
        Ok(BatchNorm {
            gamma: w.get("weight", &[channels])?,
            beta: w.get("bias", &[channels])?,
            mean: w.get("running_mean", &[channels])?,
            var: w.get("running_var", &[channels])?,
            eps: TORCH_NORM_EPS,
        })
    }
}

/// Folds an eval-mode BatchNorm into the preceding convolution, in f64 with one rounding to f32:
/// `s = γ / sqrt(var + eps)`, `w' = w·s` per output channel, `b' = (b − mean)·s + β` (b = 0 when
/// the conv has no bias). The result always has a bias.
pub fn fold_batch_norm(conv: &ConvWeights, bn: &BatchNorm) -> Result<ConvWeights, GraphError> {
    conv.check()?;
    let cout = conv.shape[0];
    if [&bn.gamma, &bn.beta, &bn.mean, &bn.var]
        .iter()
        .any(|v| v.len() != cout)
    {
        return Err(GraphError::invalid(format!(
            "batch norm sizes ({}, {}, {}, {}) do not match {cout} conv output channels",
            bn.gamma.len(),
            bn.beta.len(),
            bn.mean.len(),
            bn.var.len()
        )));
    }
    let per_out = conv.weight.len() / cout.max(1);
    let mut weight = Vec::with_capacity(conv.weight.len());
    let mut bias = Vec::with_capacity(cout);
    for o in 0..cout {
        let s = bn.gamma[o] as f64 / (bn.var[o] as f64 + bn.eps).sqrt();
        let b = conv.bias.as_ref().map_or(0.0, |b| b[o] as f64);
        weight.extend(
            conv.weight[o * per_out..(o + 1) * per_out]
                .iter()
                .map(|&w| (w as f64 * s) as f32),
        );
        bias.push(((b - bn.mean[o] as f64) * s + bn.beta[o] as f64) as f32);
    }
    Ok(ConvWeights {
        weight,
        shape: conv.shape.clone(),
        bias: Some(bias),
    })
}

/// `nn.Linear` parameters: weight `(out, in)`, optional bias `(out)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// Row-major `(out, in)` weight.
    pub weight: Vec<f32>,
    /// Output features.
    pub out_features: usize,
    /// Input features.
    pub in_features: usize,
    /// Bias (`out` values), if any.
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    /// Reads `<prefix>.weight` `[out, in]` and, when `bias`, `<prefix>.bias` `[out]`.
    pub fn load(
        w: &Weights<'_>,
        out_features: usize,
        in_features: usize,
        bias: bool,
    ) -> Result<Self, GraphError> {
        Ok(Linear {
            weight: w.get("weight", &[out_features, in_features])?,
            out_features,
            in_features,
            bias: if bias {
                Some(w.get("bias", &[out_features])?)
            } else {
                None
            },
        })
    }
}

/// `nn.LayerNorm` over the last axis: `gamma`, `beta` and eps.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    /// `weight` (γ).
    pub gamma: Vec<f32>,
    /// `bias` (β).
    pub beta: Vec<f32>,
    /// Epsilon (PyTorch default [`TORCH_NORM_EPS`]).
    pub eps: f64,
}

impl LayerNorm {
    /// Reads `<prefix>.weight` and `<prefix>.bias` (each `[features]`), eps 1e-5.
    pub fn load(w: &Weights<'_>, features: usize) -> Result<Self, GraphError> {
        Ok(LayerNorm {
            gamma: w.get("weight", &[features])?,
            beta: w.get("bias", &[features])?,
            eps: TORCH_NORM_EPS,
        })
    }
}

impl GraphBuilder {
    fn conv(
        &mut self,
        x: &Value,
        conv: &ConvWeights,
        bn: Option<&BatchNorm>,
        stride: &[usize],
        pad: &[usize],
    ) -> Result<Value, GraphError> {
        let folded;
        let conv = match bn {
            Some(bn) => {
                folded = fold_batch_norm(conv, bn)?;
                &folded
            }
            None => {
                conv.check()?;
                conv
            }
        };
        let spatial = conv.shape.len() - 2;
        if stride.len() != spatial || pad.len() != spatial {
            return Err(GraphError::invalid(format!(
                "conv with weight {:?} needs {spatial} strides and pads",
                conv.shape
            )));
        }
        let w = self.initializer_f32("weight", &conv.shape, &conv.weight)?;
        let b = match &conv.bias {
            Some(b) => Some(self.initializer_f32("bias", &[b.len()], b)?),
            None => None,
        };
        let mut pads: Vec<i64> = pad.iter().map(|&p| p as i64).collect();
        pads.extend_from_within(..);
        let attrs = [
            (
                "kernel_shape",
                Attr::Ints(conv.shape[2..].iter().map(|&k| k as i64).collect()),
            ),
            (
                "strides",
                Attr::Ints(stride.iter().map(|&s| s as i64).collect()),
            ),
            ("pads", Attr::Ints(pads)),
        ];
        match &b {
            Some(b) => self.node("Conv", &[x, &w, b], &attrs),
            None => self.node("Conv", &[x, &w], &attrs),
        }
    }

    /// 2-D convolution on NCHW with zero padding `pad = (ph, pw)` on both sides and
    /// `stride = (sh, sw)`. With `bn`, the BatchNorm is folded into weight and bias at emission
    /// ([`fold_batch_norm`]); no BatchNorm node is emitted.
    pub fn conv2d(
        &mut self,
        x: &Value,
        conv: &ConvWeights,
        bn: Option<&BatchNorm>,
        stride: (usize, usize),
        pad: (usize, usize),
    ) -> Result<Value, GraphError> {
        self.conv(x, conv, bn, &[stride.0, stride.1], &[pad.0, pad.1])
    }

    /// 1-D convolution on NCL; otherwise as [`GraphBuilder::conv2d`].
    pub fn conv1d(
        &mut self,
        x: &Value,
        conv: &ConvWeights,
        bn: Option<&BatchNorm>,
        stride: usize,
        pad: usize,
    ) -> Result<Value, GraphError> {
        self.conv(x, conv, bn, &[stride], &[pad])
    }

    /// `nn.Linear` on the last axis of `x` (any rank): `x·Wᵀ + b`, emitted as `MatMul` with the
    /// weight stored transposed `(in, out)`, then `Add`.
    pub fn linear(&mut self, x: &Value, lin: &Linear) -> Result<Value, GraphError> {
        let (o, i) = (lin.out_features, lin.in_features);
        if lin.weight.len() != o * i || lin.bias.as_ref().is_some_and(|b| b.len() != o) {
            return Err(GraphError::invalid(format!(
                "linear {i}->{o}: parameter sizes do not match"
            )));
        }
        let mut wt = vec![0f32; o * i];
        for r in 0..o {
            for c in 0..i {
                wt[c * o + r] = lin.weight[r * i + c];
            }
        }
        let w = self.initializer_f32("weight_t", &[i, o], &wt)?;
        let y = self.matmul(x, &w)?;
        match &lin.bias {
            Some(b) => {
                let b = self.initializer_f32("bias", &[o], b)?;
                self.add(&y, &b)
            }
            None => Ok(y),
        }
    }

    /// `nn.LayerNorm` over the last axis (opset 17 `LayerNormalization`, biased variance).
    pub fn layer_norm(&mut self, x: &Value, ln: &LayerNorm) -> Result<Value, GraphError> {
        if ln.gamma.len() != ln.beta.len() {
            return Err(GraphError::invalid(
                "layer norm gamma and beta differ in length",
            ));
        }
        let g = self.initializer_f32("gamma", &[ln.gamma.len()], &ln.gamma)?;
        let b = self.initializer_f32("beta", &[ln.beta.len()], &ln.beta)?;
        self.node(
            "LayerNormalization",
            &[x, &g, &b],
            &[
                ("axis", Attr::Int(-1)),
                ("epsilon", Attr::Float(ln.eps as f32)),
            ],
        )
    }

    /// `nn.InstanceNorm2d` / `1d` with PyTorch defaults (no affine, no running stats): per sample
    /// and channel `(x − mean) / sqrt(var + eps)` with the biased variance over all spatial
    /// positions. `channels` is C of the NC… input.
    pub fn instance_norm(
        &mut self,
        x: &Value,
        channels: usize,
        eps: f64,
    ) -> Result<Value, GraphError> {
        let s = self.initializer_f32("ones", &[channels], &vec![1.0; channels])?;
        let b = self.initializer_f32("zeros", &[channels], &vec![0.0; channels])?;
        self.node(
            "InstanceNormalization",
            &[x, &s, &b],
            &[("epsilon", Attr::Float(eps as f32))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive f64 2-D convolution, one image, zero padding `pad`, stride 1.
    fn conv_ref(
        x: &[f64],
        cin: usize,
        h: usize,
        w: usize,
        c: &ConvWeights,
        pad: usize,
    ) -> Vec<f64> {
        let (cout, k) = (c.shape[0], c.shape[2]);
        let (ho, wo) = (h + 2 * pad - k + 1, w + 2 * pad - k + 1);
        let mut y = vec![0f64; cout * ho * wo];
        for o in 0..cout {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = c.bias.as_ref().map_or(0.0, |b| b[o] as f64);
                    for ci in 0..cin {
                        for di in 0..k {
                            for dj in 0..k {
                                let (yi, xj) = (
                                    (i + di) as isize - pad as isize,
                                    (j + dj) as isize - pad as isize,
                                );
                                if yi < 0 || xj < 0 || yi >= h as isize || xj >= w as isize {
                                    continue;
                                }
                                let wv = c.weight[((o * cin + ci) * k + di) * k + dj] as f64;
                                acc += wv * x[(ci * h + yi as usize) * w + xj as usize];
                            }
                        }
                    }
                    y[(o * ho + i) * wo + j] = acc;
                }
            }
        }
        y
    }

    #[test]
    fn folded_batch_norm_equals_conv_then_batch_norm() {
        let (cin, cout, h, w) = (2, 3, 5, 4);
        let v = |n: usize, s: f32, o: f32| {
            (0..n)
                .map(|i| o + s * (((i * 7919) % 23) as f32 / 23.0 - 0.5))
                .collect::<Vec<f32>>()
        };
        for bias in [true, false] {
            let conv = ConvWeights {
                weight: v(cout * cin * 9, 1.0, 0.0),
                shape: vec![cout, cin, 3, 3],
                bias: bias.then(|| v(cout, 0.4, 0.1)),
            };
            let bn = BatchNorm {
                gamma: v(cout, 0.5, 1.0),
                beta: v(cout, 0.3, -0.1),
                mean: v(cout, 0.2, 0.05),
                var: v(cout, 0.6, 1.0),
                eps: TORCH_NORM_EPS,
            };
            let x: Vec<f64> = v(cin * h * w, 2.0, 0.0).iter().map(|&a| a as f64).collect();
            let plain = conv_ref(&x, cin, h, w, &conv, 1);
            let folded = conv_ref(&x, cin, h, w, &fold_batch_norm(&conv, &bn).unwrap(), 1);
            let per = plain.len() / cout;
            for (idx, (p, f)) in plain.iter().zip(&folded).enumerate() {
                let o = idx / per;
                let want = (p - bn.mean[o] as f64) / (bn.var[o] as f64 + bn.eps).sqrt()
                    * bn.gamma[o] as f64
                    + bn.beta[o] as f64;
                assert!(
                    (want - f).abs() < 1e-6,
                    "bias {bias} idx {idx}: {want} vs {f}"
                );
            }
        }
    }

    #[test]
    fn bad_sizes_are_errors_not_panics() {
        let conv = ConvWeights {
            weight: vec![0.0; 10],
            shape: vec![2, 1, 3, 3],
            bias: None,
        };
        let bn = BatchNorm {
            gamma: vec![1.0; 2],
            beta: vec![0.0; 2],
            mean: vec![0.0; 2],
            var: vec![1.0; 2],
            eps: 1e-5,
        };
        assert!(fold_batch_norm(&conv, &bn).is_err());
        let mut b = GraphBuilder::new("t");
        let x = b.input_f32("x", &[1, 1, 4, 4]).unwrap();
        assert!(b.conv2d(&x, &conv, None, (1, 1), (1, 1)).is_err());
        let lin = Linear {
            weight: vec![0.0; 5],
            out_features: 2,
            in_features: 3,
            bias: None,
        };
        assert!(b.linear(&x, &lin).is_err());
        let mut other = GraphBuilder::new("other");
        assert!(other.relu(&x).is_err());
    }
}
