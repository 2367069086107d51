//! The host build of the kernels' maths: the same `kernels/*.cuh` the GPU runs, compiled as C++
//! by `build.rs` with loops around each per-pixel function. Safe wrappers here check every size
//! and stride before calling across, so bad input is an error, never out-of-bounds access.
//!
//! Used by the tests that hold the kernels to the Rust implementations in `src/image/` and
//! `src/warp.rs`, and by the GPU check, which runs each kernel on the device against this build.

pub mod crop;
pub mod paste;
pub mod sketch;
pub mod warp;
pub mod yuv;
