//! Builds the host twin of the CUDA kernels: the per-pixel maths in `kernels/*.cuh`, compiled as
//! C++17 with `kernels/host/*.cpp` as loops around it, so the CPU tests (and the GPU check's
//! parity step) can hold the very code the GPU runs to the bit-exact Rust implementations. The
//! device side is compiled at run time by NVRTC from the same headers (`src/kernels/`).

use std::path::Path;

fn main() {
    let host = Path::new("kernels/host");
    println!("cargo:rerun-if-changed=kernels");
    let mut sources: Vec<_> = std::fs::read_dir(host)
        .expect("kernels/host exists")
        .map(|e| e.expect("readable kernels/host entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cpp"))
        .collect();
    sources.sort();
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include("kernels")
        .files(&sources)
        // The device build runs with --fmad=false; the host must not fuse either.
        .flag("-ffp-contract=off")
        .flag_if_supported("-fno-fast-math")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .opt_level(2)
        .compile("iplap_kernels_host");
}
