//! ONNX writer (opset 17, IR version 8) and the graph builder every IP_LAP network is written with.
//!
//! * [`proto`]: hand-declared `prost` messages for the subset of `onnx.proto` we write.
//! * [`GraphBuilder`]: inputs/outputs (fixed or symbolic dims), initializers from f32 data,
//!   unique names, a generic [`GraphBuilder::node`] escape hatch and typed helpers:
//!   - activations and arithmetic: `relu`, `leaky_relu`, `tanh`, `sigmoid`, `sqrt`, `reciprocal`,
//!     `add`, `sub`, `mul`, `div`, `scale`, `identity`;
//!   - linear algebra: `matmul`, `gemm`, [`GraphBuilder::linear`] (PyTorch `nn.Linear`);
//!   - convolution: [`GraphBuilder::conv2d`], [`GraphBuilder::conv1d`], with an optional
//!     [`BatchNorm`] **folded into the weights at emission** ([`fold_batch_norm`]);
//!   - normalisation: [`GraphBuilder::layer_norm`] (opset 17 `LayerNormalization`),
//!     [`GraphBuilder::instance_norm`] (PyTorch `InstanceNorm2d` defaults), `softmax`,
//!     `reduce_mean`, `reduce_sum`;
//!   - shapes: `reshape`, `transpose`, `concat`, `slice`, `gather`, `squeeze`, `unsqueeze`;
//!   - images: [`GraphBuilder::pixel_shuffle`] (= `DepthToSpace` CRD, spec §5.2),
//!     `depth_to_space`, `resize_nearest`, `resize_bilinear` (PyTorch `F.interpolate`
//!     semantics), `grid_sample` (opset 16 `GridSample`).
//! * [`OnnxModel`]: the finished model (`to_bytes`, `write`) and its I/O contract
//!   ([`TensorSpec`] lists), which the model package manifest records.
//!
//! Weights are read through [`crate::graph::weights::Weights`] (a key-prefix view of any
//! [`crate::graph::weights::WeightSource`]) by the `load` constructors of [`ConvWeights`],
//! [`BatchNorm`], [`Linear`] and [`LayerNorm`], which take PyTorch `state_dict` keys and shapes.
//!
//! All helpers return `Result<Value, GraphError>`: a [`Value`] from another builder or parameter
//! sizes that do not fit give [`crate::graph::GraphError::Invalid`], never a panic. Shapes of
//! intermediate values are not tracked; ONNX Runtime infers them when it loads the model.
//!
//! # Example: a Conv-BN-ReLU block with a residual, as in spec §5.1
//!
//! ```
//! use iplap::graph::onnx::{BatchNorm, ConvWeights, GraphBuilder};
//! use iplap::graph::weights::Weights;
//! use iplap::weights::FormulaWeights;
//!
//! # fn main() -> Result<(), iplap::graph::GraphError> {
//! let src = FormulaWeights::new();
//! let w = Weights::new(&src).pp("mel_encoder").pp("1").pp("conv_block");
//! let conv = ConvWeights::load(&w.pp("0"), 32, 32, &[3, 3], true)?;
//! let bn = BatchNorm::load(&w.pp("1"), 32)?;
//!
//! let mut b = GraphBuilder::new("block");
//! let x = b.input_f32("x", &[5, 32, 80, 16])?;
//! b.push_scope("mel_encoder.1");
//! let y = b.conv2d(&x, &conv, Some(&bn), (1, 1), (1, 1))?; // BN folded, no BatchNorm node
//! let y = b.add(&y, &x)?; // residual
//! let y = b.relu(&y)?;
//! b.pop_scope();
//! b.output_f32(&y, "y", &[5, 32, 80, 16])?;
//! let model = b.finish()?;
//! let bytes: Vec<u8> = model.to_bytes(); // an .onnx file, ready for ONNX Runtime
//! assert!(!bytes.is_empty());
//! assert_eq!(model.outputs()[0].name, "y");
//! # Ok(())
//! # }
//! ```

mod builder;
mod layers;
mod ops;
pub mod proto;
mod spec;

pub use builder::{Attr, GraphBuilder, IR_VERSION, OPSET, OnnxModel, Value};
pub use layers::{BatchNorm, ConvWeights, LayerNorm, Linear, TORCH_NORM_EPS, fold_batch_norm};
pub use ops::{DepthToSpaceMode, GridMode};
pub use spec::{DType, Dim, TensorSpec};
