//! Typed helpers for weight-free `ai.onnx` (opset 17) operators. Each returns the output
//! [`Value`]; semantics are ONNX's (numpy broadcasting for the binary ops).

use super::builder::{Attr, GraphBuilder, Value};
use crate::graph::GraphError;

/// `DepthToSpace` element ordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthToSpaceMode {
    /// Column-row-depth: `out[c, b·h+i, b·w+j] = in[c·b² + i·b + j, h, w]` — PyTorch's
    /// `PixelShuffle` (spec §5.2).
    Crd,
    /// Depth-column-row: `out[c, b·h+i, b·w+j] = in[(i·b + j)·C + c, h, w]` (TensorFlow order).
    Dcr,
}

/// Sampling mode of [`GraphBuilder::grid_sample`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridMode {
    /// Bilinear interpolation.
    Bilinear,
    /// Nearest neighbour.
    Nearest,
}

impl GraphBuilder {
    fn unary(&mut self, op: &str, x: &Value) -> Result<Value, GraphError> {
        self.node(op, &[x], &[])
    }

    fn binary(&mut self, op: &str, a: &Value, b: &Value) -> Result<Value, GraphError> {
        self.node(op, &[a, b], &[])
    }

    /// `max(x, 0)`.
    pub fn relu(&mut self, x: &Value) -> Result<Value, GraphError> {
        self.unary("Relu", x)
    }

    /// `x` if `x ≥ 0` else `alpha·x` (PyTorch default slope 0.01; SPADE blocks use 0.2).
    pub fn leaky_relu(&mut self, x: &Value, alpha: f32) -> Result<Value, GraphError> {
        self.node("LeakyRelu", &[x], &[("alpha", Attr::Float(alpha))])
    }

    /// `tanh(x)`.
    pub fn tanh(&mut self, x: &Value) -> Result<Value, GraphError> {
        self.unary("Tanh", x)
    }

    /// `1 / (1 + exp(-x))`.
    pub fn sigmoid(&mut self, x: &Value) -> Result<Value, GraphError> {
        self.unary("Sigmoid", x)
    }

    /// `sqrt(x)`.
    pub fn sqrt(&mut self, x: &Value) -> Result<Value, GraphError> {
        self.unary("Sqrt", x)
    }

    /// `1 / x`.
    pub fn reciprocal(&mut self, x: &Value) -> Result<Value, GraphError> {
        self.unary("Reciprocal", x)
    }

    /// `x` unchanged under a new name (useful to give an intermediate a readable name).
    pub fn identity(&mut self, x: &Value) -> Result<Value, GraphError> {
        self.unary("Identity", x)
    }

    /// `a + b` (broadcasting).
    pub fn add(&mut self, a: &Value, b: &Value) -> Result<Value, GraphError> {
        self.binary("Add", a, b)
    }

    /// `a - b` (broadcasting).
    pub fn sub(&mut self, a: &Value, b: &Value) -> Result<Value, GraphError> {
        self.binary("Sub", a, b)
    }

    /// `a * b` element-wise (broadcasting).
    pub fn mul(&mut self, a: &Value, b: &Value) -> Result<Value, GraphError> {
        self.binary("Mul", a, b)
    }

    /// `a / b` element-wise (broadcasting).
    pub fn div(&mut self, a: &Value, b: &Value) -> Result<Value, GraphError> {
        self.binary("Div", a, b)
    }

    /// `x * s` for a float32 scalar constant `s`.
    pub fn scale(&mut self, x: &Value, s: f32) -> Result<Value, GraphError> {
        let c = self.scalar_f32("scale", s);
        self.mul(x, &c)
    }

    /// Matrix product with numpy semantics (batched over leading dims).
    pub fn matmul(&mut self, a: &Value, b: &Value) -> Result<Value, GraphError> {
        self.binary("MatMul", a, b)
    }

    /// `Gemm`: `alpha·A'·B' + beta·C` on 2-D tensors, `A' = Aᵀ` when `trans_a`, likewise B.
    pub fn gemm(
        &mut self,
        a: &Value,
        b: &Value,
        c: Option<&Value>,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<Value, GraphError> {
        let attrs = [
            ("transA", Attr::Int(trans_a as i64)),
            ("transB", Attr::Int(trans_b as i64)),
        ];
        match c {
            Some(c) => self.node("Gemm", &[a, b, c], &attrs),
            None => self.node("Gemm", &[a, b], &attrs),
        }
    }

    /// Softmax along `axis` (negative counts from the end).
    pub fn softmax(&mut self, x: &Value, axis: i64) -> Result<Value, GraphError> {
        self.node("Softmax", &[x], &[("axis", Attr::Int(axis))])
    }

    /// Reshape to `shape` (ONNX rules: `0` copies the input dim, one `-1` is inferred).
    pub fn reshape(&mut self, x: &Value, shape: &[i64]) -> Result<Value, GraphError> {
        let s = self.const_i64("shape", shape);
        self.node("Reshape", &[x, &s], &[])
    }

    /// Permutes the axes: output axis `i` is input axis `perm[i]`.
    pub fn transpose(&mut self, x: &Value, perm: &[i64]) -> Result<Value, GraphError> {
        self.node("Transpose", &[x], &[("perm", Attr::Ints(perm.to_vec()))])
    }

    /// Concatenates along `axis`.
    pub fn concat(&mut self, xs: &[&Value], axis: i64) -> Result<Value, GraphError> {
        if xs.is_empty() {
            return Err(GraphError::invalid("concat of nothing"));
        }
        self.node("Concat", xs, &[("axis", Attr::Int(axis))])
    }

    /// `x[starts..ends]` on the given axes with step 1 (ends are clamped, may be `i64::MAX`).
    pub fn slice(
        &mut self,
        x: &Value,
        axes: &[i64],
        starts: &[i64],
        ends: &[i64],
    ) -> Result<Value, GraphError> {
        if axes.len() != starts.len() || axes.len() != ends.len() {
            return Err(GraphError::invalid(format!(
                "slice: {} axes, {} starts, {} ends",
                axes.len(),
                starts.len(),
                ends.len()
            )));
        }
        let s = self.const_i64("starts", starts);
        let e = self.const_i64("ends", ends);
        let a = self.const_i64("axes", axes);
        self.node("Slice", &[x, &s, &e, &a], &[])
    }

    /// Takes the entries `indices` along `axis` (the axis keeps its rank, with `indices.len()`).
    pub fn gather(&mut self, x: &Value, indices: &[i64], axis: i64) -> Result<Value, GraphError> {
        let i = self.const_i64("indices", indices);
        self.node("Gather", &[x, &i], &[("axis", Attr::Int(axis))])
    }

    /// Removes the given size-1 axes.
    pub fn squeeze(&mut self, x: &Value, axes: &[i64]) -> Result<Value, GraphError> {
        let a = self.const_i64("axes", axes);
        self.node("Squeeze", &[x, &a], &[])
    }

    /// Inserts size-1 axes at the given output positions.
    pub fn unsqueeze(&mut self, x: &Value, axes: &[i64]) -> Result<Value, GraphError> {
        let a = self.const_i64("axes", axes);
        self.node("Unsqueeze", &[x, &a], &[])
    }

    /// Mean over `axes` (opset 17: axes is an attribute).
    pub fn reduce_mean(
        &mut self,
        x: &Value,
        axes: &[i64],
        keep_dims: bool,
    ) -> Result<Value, GraphError> {
        self.node(
            "ReduceMean",
            &[x],
            &[
                ("axes", Attr::Ints(axes.to_vec())),
                ("keepdims", Attr::Int(keep_dims as i64)),
            ],
        )
    }

    /// Sum over `axes` (opset 13+: axes is an input).
    pub fn reduce_sum(
        &mut self,
        x: &Value,
        axes: &[i64],
        keep_dims: bool,
    ) -> Result<Value, GraphError> {
        let a = self.const_i64("axes", axes);
        self.node(
            "ReduceSum",
            &[x, &a],
            &[("keepdims", Attr::Int(keep_dims as i64))],
        )
    }

    /// `DepthToSpace` on NCHW: `(N, C·b², H, W) → (N, C, b·H, b·W)`.
    pub fn depth_to_space(
        &mut self,
        x: &Value,
        block: usize,
        mode: DepthToSpaceMode,
    ) -> Result<Value, GraphError> {
        let mode = match mode {
            DepthToSpaceMode::Crd => "CRD",
            DepthToSpaceMode::Dcr => "DCR",
        };
        self.node(
            "DepthToSpace",
            &[x],
            &[
                ("blocksize", Attr::Int(block as i64)),
                ("mode", Attr::Str(mode.into())),
            ],
        )
    }

    /// PyTorch `PixelShuffle(r)`: `out[c, r·h+i, r·w+j] = in[c·r² + r·i + j, h, w]` (spec §5.2),
    /// i.e. `DepthToSpace` in CRD mode.
    pub fn pixel_shuffle(&mut self, x: &Value, r: usize) -> Result<Value, GraphError> {
        self.depth_to_space(x, r, DepthToSpaceMode::Crd)
    }

    fn resize(
        &mut self,
        x: &Value,
        sizes: &[i64],
        attrs: &[(&str, Attr)],
    ) -> Result<Value, GraphError> {
        let empty = self.initializer_f32("roi", &[0], &[])?;
        let no_scales = self.initializer_f32("scales", &[0], &[])?;
        let s = self.const_i64("sizes", sizes);
        self.node("Resize", &[x, &empty, &no_scales, &s], attrs)
    }

    /// PyTorch `F.interpolate(mode='nearest')` to the full output shape `sizes` (all axes, e.g.
    /// `[1, 15, 64, 64]`): `out[i] = in[floor(i·in/out)]` (asymmetric, floor). For an exact 2×
    /// reduction this is `out[i, j] = in[2i, 2j]` (spec §5.2 `downsample`).
    pub fn resize_nearest(&mut self, x: &Value, sizes: &[i64]) -> Result<Value, GraphError> {
        self.resize(
            x,
            sizes,
            &[
                ("mode", Attr::Str("nearest".into())),
                (
                    "coordinate_transformation_mode",
                    Attr::Str("asymmetric".into()),
                ),
                ("nearest_mode", Attr::Str("floor".into())),
            ],
        )
    }

    /// PyTorch `F.interpolate(mode='bilinear', align_corners=False)` (no antialias) to the full
    /// output shape `sizes`; for an exact 2× reduction each output is the mean of a 2×2 block.
    pub fn resize_bilinear(&mut self, x: &Value, sizes: &[i64]) -> Result<Value, GraphError> {
        self.resize(
            x,
            sizes,
            &[
                ("mode", Attr::Str("linear".into())),
                (
                    "coordinate_transformation_mode",
                    Attr::Str("pytorch_half_pixel".into()),
                ),
            ],
        )
    }

    /// `GridSample` (opset 16): `x` (N, C, H, W) sampled at `grid` (N, Ho, Wo, 2) with (x, y) in
    /// [-1, 1], zero padding. PyTorch's `F.grid_sample` defaults are `Bilinear`,
    /// `align_corners = false`.
    pub fn grid_sample(
        &mut self,
        x: &Value,
        grid: &Value,
        mode: GridMode,
        align_corners: bool,
    ) -> Result<Value, GraphError> {
        let mode = match mode {
            GridMode::Bilinear => "bilinear",
            GridMode::Nearest => "nearest",
        };
        self.node(
            "GridSample",
            &[x, grid],
            &[
                ("mode", Attr::Str(mode.into())),
                ("padding_mode", Attr::Str("zeros".into())),
                ("align_corners", Attr::Int(align_corners as i64)),
            ],
        )
    }
}
