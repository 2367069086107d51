//! Launching the kernels on a GPU: one file per family, each with the launchers the engine uses
//! (device buffers in, device buffers out, on the [`GpuKernels`](super::GpuKernels) stream; the
//! arguments validated by the same Rust code that validates the host build's) and the family's
//! GPU check ([`super::check`]): a frame-sized case on the device against the host build.

pub mod crop;
pub mod paste;
pub mod sketch;
pub mod warp;
pub mod yuv;

use super::GpuKernels;
use super::check::StepCheck;
use super::device::GpuError;

/// Every family's GPU check, in frame order.
pub fn check_all(kernels: &GpuKernels, iterations: usize) -> Vec<Result<Vec<StepCheck>, GpuError>> {
    vec![
        sketch::check(kernels, iterations),
        crop::check(kernels, iterations),
        warp::check(kernels, iterations),
        paste::check(kernels, iterations),
        yuv::check(kernels, iterations),
    ]
}
