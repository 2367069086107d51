// iplap kernels — warp: the device entry points (NVRTC only; never in the host build).
//
// Warp-and-accumulate over the reference bank without materialising the N warped tensors: each
// thread owns a few output elements' running sums and loops over the chunk's references, so a frame
// is `accumulate_128` + `accumulate_64` once per chunk of references, then `finish` once.
//
// Buffers (all float32, contiguous NCHW, device pointers):
//   per chunk of n references (the chunk's first reference at the pointer):
//     flow (n, 2, 128, 128)  weight (n, 1, 128, 128)  h1 (n, 32, 128, 128)
//     h2 (n, 256, 64, 64)    ref_img (n, 3, 128, 128)
//   running sums, zeroed (all bytes 0 = +0.0f, e.g. cuMemsetD32 0) before a frame's first chunk:
//     acc_h1 (32 × 128 × 128)  acc_ref (3 × 128 × 128)  acc_h2 (256 × 64 × 64)  denom (128 × 128)
//   outputs: out_h1 (1, 32, 128, 128)  out_ref (1, 3, 128, 128)  out_h2 (1, 256, 64, 64)
// Chunks must be fed in reference order (the sums are order-sensitive in float), each chunk's two
// accumulate launches on the same stream before the next chunk's (they touch disjoint sums, so the
// two of one chunk may also run concurrently). `finish` reads the sums, so it may run any number of
// times; its outputs may be the sums' own buffers (in place) but never `denom`.
#include "warp.cuh"

// iplap_warp_accumulate_128(const float* flow, const float* weight, const float* h1,
//                           const float* ref_img, int n, float* acc_h1, float* acc_ref,
//                           float* denom)
// Adds references 0..n of the chunk to acc_h1, acc_ref and denom (Σ w_r). n >= 0 (0: no change).
// Launch: block (32, 8, 1), grid (4, 16, 5) — x over the 128 columns, y over the 128 rows,
// z over IPLAP_WARP_GROUPS_128 = 5 channel groups (h1 channels 8z..8z+7 for z < 4; z = 4: the
// 3 image channels and the denominator). Any block shape works if the grid covers 128 × 128 × 5;
// threads outside are idle. Registers: 8 running sums + one tap.
extern "C" __global__ void iplap_warp_accumulate_128(const float* __restrict__ flow,
                                                     const float* __restrict__ weight,
                                                     const float* __restrict__ h1,
                                                     const float* __restrict__ ref_img, i32 n,
                                                     float* __restrict__ acc_h1,
                                                     float* __restrict__ acc_ref,
                                                     float* __restrict__ denom) {
    const i32 x = (i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const i32 y = (i32)(blockIdx.y * blockDim.y + threadIdx.y);
    const i32 g = (i32)(blockIdx.z * blockDim.z + threadIdx.z);
    if (x >= IPLAP_WARP_FACE || y >= IPLAP_WARP_FACE || g >= IPLAP_WARP_GROUPS_128) {
        return;
    }
    iplap_warp_accumulate_128_at(x, y, g, flow, weight, h1, ref_img, n, acc_h1, acc_ref, denom);
}

// iplap_warp_accumulate_64(const float* flow, const float* weight, const float* h2, int n,
//                          float* acc_h2)
// Adds references 0..n of the chunk to acc_h2 (deformation 2 × 2-mean reduced, weight w[2i, 2j]).
// flow and weight are the full-resolution (n, 2, 128, 128) / (n, 1, 128, 128) chunk tensors.
// Launch: block (32, 8, 1), grid (2, 8, 32) — x over the 64 columns, y over the 64 rows, z over
// IPLAP_WARP_GROUPS_64 = 32 groups of 8 h2 channels. Any block shape works if the grid covers
// 64 × 64 × 32; threads outside are idle.
extern "C" __global__ void iplap_warp_accumulate_64(const float* __restrict__ flow,
                                                    const float* __restrict__ weight,
                                                    const float* __restrict__ h2, i32 n,
                                                    float* __restrict__ acc_h2) {
    const i32 x = (i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const i32 y = (i32)(blockIdx.y * blockDim.y + threadIdx.y);
    const i32 g = (i32)(blockIdx.z * blockDim.z + threadIdx.z);
    if (x >= IPLAP_WARP_HALF || y >= IPLAP_WARP_HALF || g >= IPLAP_WARP_GROUPS_64) {
        return;
    }
    iplap_warp_accumulate_64_at(x, y, g, flow, weight, h2, n, acc_h2);
}

// iplap_warp_finish(const float* acc_h1, const float* acc_ref, const float* acc_h2,
//                   const float* denom, float* out_h1, float* out_ref, float* out_h2)
// out = sum / (D + 1e-5), D nearest-sampled (D[2i, 2j]) for h2. The caller must have added at least
// one reference (the Rust accumulator refuses to finish an empty sum).
// Launch: block (256, 1, 1), grid (6336, 1, 1) — one thread per output element over the flat
// index space h1 (524288) | ref (49152) | h2 (1048576), IPLAP_WARP_FINISH_TOTAL = 1622016 in all.
// Any 1-D launch covering IPLAP_WARP_FINISH_TOTAL works. No __restrict__: in-place use is allowed.
extern "C" __global__ void iplap_warp_finish(const float* acc_h1, const float* acc_ref,
                                             const float* acc_h2, const float* denom,
                                             float* out_h1, float* out_ref, float* out_h2) {
    const u32 e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (u32)IPLAP_WARP_FINISH_TOTAL) {
        return;
    }
    iplap_warp_finish_at((i32)e, acc_h1, acc_ref, acc_h2, denom, out_h1, out_ref, out_h2);
}
