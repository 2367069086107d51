// iplap kernels — warp: the host build's entry points, for the CPU tests. Each loops over exactly the
// threads its device twin in kernels/warp.cu launches (same per-thread function from warp.cuh, same
// (x, y, group) space), so the sums see the same operations in the same order; the loops add no
// maths of their own. Pointers and sizes are checked by the Rust wrappers (src/kernels/host/warp.rs).
#include "warp.cuh"

extern "C" {

// Twin of iplap_warp_accumulate_128: threads (x, y, g) over 128 × 128 × IPLAP_WARP_GROUPS_128.
void iplap_host_warp_accumulate_128(const float* flow, const float* weight, const float* h1,
                                    const float* ref_img, i32 n, float* acc_h1, float* acc_ref,
                                    float* denom) {
    for (i32 g = 0; g < IPLAP_WARP_GROUPS_128; ++g) {
        for (i32 y = 0; y < IPLAP_WARP_FACE; ++y) {
            for (i32 x = 0; x < IPLAP_WARP_FACE; ++x) {
                iplap_warp_accumulate_128_at(x, y, g, flow, weight, h1, ref_img, n, acc_h1,
                                             acc_ref, denom);
            }
        }
    }
}

// Twin of iplap_warp_accumulate_64: threads (x, y, g) over 64 × 64 × IPLAP_WARP_GROUPS_64.
void iplap_host_warp_accumulate_64(const float* flow, const float* weight, const float* h2, i32 n,
                                   float* acc_h2) {
    for (i32 g = 0; g < IPLAP_WARP_GROUPS_64; ++g) {
        for (i32 y = 0; y < IPLAP_WARP_HALF; ++y) {
            for (i32 x = 0; x < IPLAP_WARP_HALF; ++x) {
                iplap_warp_accumulate_64_at(x, y, g, flow, weight, h2, n, acc_h2);
            }
        }
    }
}

// Twin of iplap_warp_finish: threads e over IPLAP_WARP_FINISH_TOTAL.
void iplap_host_warp_finish(const float* acc_h1, const float* acc_ref, const float* acc_h2,
                            const float* denom, float* out_h1, float* out_ref, float* out_h2) {
    for (i32 e = 0; e < IPLAP_WARP_FINISH_TOTAL; ++e) {
        iplap_warp_finish_at(e, acc_h1, acc_ref, acc_h2, denom, out_h1, out_ref, out_h2);
    }
}

}  // extern "C"
