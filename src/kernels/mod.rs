//! Hand-written CUDA kernels for the steps between the networks on a GPU: the target sketches,
//! the face crop, warp-and-accumulate over the references, the paste-back and colour conversion.
//!
//! One source, two compilers: each kernel's per-pixel maths lives in a header in `kernels/`
//! (`*.cuh`), compiled by NVRTC for the GPU ([`nvrtc`], entry points in `kernels/*.cu`) and as
//! C++ for the CPU ([`host`], entry points in `kernels/host/*.cpp`), where CI holds it to the
//! bit-exact Rust code. Sources are embedded in the binary ([`source`]), so an installed engine
//! compiles them for the GPU it finds without the checkout.

pub mod cache;
pub mod check;
pub mod device;
pub mod host;
pub mod launch;
pub mod nvrtc;
pub mod source;
pub mod transfer;

pub use cache::KernelCache;
pub use device::{GpuError, GpuKernels};
pub use nvrtc::{Arch, CI_ARCHS, Cubin, Nvrtc, NvrtcError, nvrtc};
pub use source::{KERNELS, KernelSource};
