// iplap kernels — warp: per-thread maths of warp-and-accumulate over the reference bank, shared by
// the device kernels (kernels/warp.cu) and the host build (kernels/host/warp.cpp). The twin of
// `src/warp.rs` (spec §5.2, §8.2.1-2), operation for operation, so both give the same bits:
//
// * deformation: corner-aligned base grid `2 (j / 127) - 1` plus `2 (flow / 127)`;
// * `grid_sample`: bilinear, zero padding, align_corners = False (`ix = ((gx + 1) n - 1) / 2`), the
//   official grid / sampler mismatch kept (the trained flow compensates for it);
// * h2 (64 × 64): the deformation reduced by the 2 × 2 mean, written as torch's two-level lerp, the
//   weight by nearest sampling (`w[2i, 2j]`); the denominator likewise (in the finish step);
// * `D = Σ_r w_r + 1e-5`, the epsilon added once, after the sum.
//
// Order of the float operations (why the results are bit-identical to Rust, not merely close): every
// output element has one thread, which loads the running sum, adds reference after reference in
// order (`sum = sum + (top + bottom)` with `top = w0 s00 + w1 s01`, `bottom = w2 s10 + w3 s11`, the
// tap weights `(ay · ax) · w_r`), and stores it. That is the Rust accumulator's per-element sequence;
// Rust's channel threads only change which element is summed when, never the order within one
// element, and chunks continue from the stored sums, so any chunking equals one call. No fused
// multiply-adds on either side (NVRTC --fmad=false, gcc -ffp-contract=off), and the device needs
// IEEE division and denormals (NVRTC's defaults: -prec-div=true, -ftz=false; never --use_fast_math).
#pragma once
#include "common.cuh"

// Sizes (src/sizes.rs, src/warp.rs). The kernels are specialised to them: the networks are.
#define IPLAP_WARP_FACE 128
#define IPLAP_WARP_HALF 64
#define IPLAP_WARP_PLANE (IPLAP_WARP_FACE * IPLAP_WARP_FACE)
#define IPLAP_WARP_PLANE_HALF (IPLAP_WARP_HALF * IPLAP_WARP_HALF)
#define IPLAP_WARP_H1_CHANNELS 32
#define IPLAP_WARP_H2_CHANNELS 256
#define IPLAP_WARP_IMG_CHANNELS 3
// Channels one thread carries: the sampling position and taps are computed once per (reference,
// pixel) and reused for this many channels, whose running sums stay in registers.
#define IPLAP_WARP_GROUP 8
// Channel groups of the 128 × 128 kernel: 4 groups of h1 channels, then one group holding the 3
// reference-image channels and the denominator (Σ w_r), so each sum has exactly one owner thread.
#define IPLAP_WARP_GROUPS_128 (IPLAP_WARP_H1_CHANNELS / IPLAP_WARP_GROUP + 1)
// Channel groups of the 64 × 64 kernel: h2 only.
#define IPLAP_WARP_GROUPS_64 (IPLAP_WARP_H2_CHANNELS / IPLAP_WARP_GROUP)
// Elements the finish step writes: h1, then ref, then h2 (one flat index space).
#define IPLAP_WARP_FINISH_H1 (IPLAP_WARP_H1_CHANNELS * IPLAP_WARP_PLANE)
#define IPLAP_WARP_FINISH_REF (IPLAP_WARP_IMG_CHANNELS * IPLAP_WARP_PLANE)
#define IPLAP_WARP_FINISH_H2 (IPLAP_WARP_H2_CHANNELS * IPLAP_WARP_PLANE_HALF)
#define IPLAP_WARP_FINISH_TOTAL (IPLAP_WARP_FINISH_H1 + IPLAP_WARP_FINISH_REF + IPLAP_WARP_FINISH_H2)
// The official `softmax_denominator + 0.00001` (src/warp.rs DENOMINATOR_EPS).
#define IPLAP_WARP_EPS 1e-5f
// Largest finite float: `|v| <= this` is Rust's `is_finite` (false for NaN and ±inf) without
// depending on isfinite, which the two compilers spell differently.
#define IPLAP_WARP_FLT_MAX 3.40282347e+38f

// Bilinear taps of one output pixel (src/warp.rs `Tap`): the top-left source index, chosen so the
// 2 × 2 neighbourhood lies inside the image, and the four weights (zero for taps in the padding),
// each already multiplied by the reference weight.
struct IplapWarpTap {
    i32 base;
    float w0, w1, w2, w3;
};

IPLAP_HD bool iplap_warp_is_finite(float v) { return fabsf(v) <= IPLAP_WARP_FLT_MAX; }

// Corner-aligned base grid coordinate of index `i` on the 128 side, in float32 like torch.
IPLAP_HD float iplap_warp_base_grid(i32 i) {
    return 2.0f * ((float)i / (float)(IPLAP_WARP_FACE - 1)) - 1.0f;
}

// Normalised deformation at full-resolution pixel (i, j) of one reference's flow (2 planes, x then y).
IPLAP_HD void iplap_warp_deformation(const float* flow, i32 i, i32 j, float* gx, float* gy) {
    const i32 p = i * IPLAP_WARP_FACE + j;
    const float scale = (float)(IPLAP_WARP_FACE - 1);
    *gx = iplap_warp_base_grid(j) + 2.0f * (flow[p] / scale);
    *gy = iplap_warp_base_grid(i) + 2.0f * (flow[IPLAP_WARP_PLANE + p] / scale);
}

// One axis: the first of two adjacent in-range indices and their weights, for the neighbours
// `lo = floor(pos)` (weight w_lo) and `lo + 1` (weight w_hi); false when both lie outside. The
// float is converted to an integer only once it is known to be in range (no UB on huge values).
IPLAP_HD bool iplap_warp_axis(float lo, float w_lo, float w_hi, i32 n, i32* first, float* a0,
                              float* a1) {
    const float last = (float)(n - 1);
    if (lo >= 0.0f && lo < last) {
        *first = (i32)lo;
        *a0 = w_lo;
        *a1 = w_hi;
        return true;
    }
    if (lo == -1.0f) {
        *first = 0;
        *a0 = w_hi;
        *a1 = 0.0f;
        return true;
    }
    if (lo == last) {
        *first = n - 2;
        *a0 = 0.0f;
        *a1 = w_lo;
        return true;
    }
    return false;
}

// Taps of grid_sample(bilinear, zeros, align_corners = False) at normalised (gx, gy) on an n × n
// source, each multiplied by `scale`. Non-finite positions and positions whose whole neighbourhood
// is in the padding give the all-zero tap at base 0 (which, like Rust, is still read and multiplied).
IPLAP_HD IplapWarpTap iplap_warp_tap(float gx, float gy, i32 n, float scale) {
    IplapWarpTap t;
    t.base = 0;
    t.w0 = 0.0f;
    t.w1 = 0.0f;
    t.w2 = 0.0f;
    t.w3 = 0.0f;
    const float size = (float)n;
    const float ix = ((gx + 1.0f) * size - 1.0f) / 2.0f;
    const float iy = ((gy + 1.0f) * size - 1.0f) / 2.0f;
    if (!(iplap_warp_is_finite(ix) && iplap_warp_is_finite(iy))) {
        return t;
    }
    const float x0 = floorf(ix);
    const float y0 = floorf(iy);
    // torch: nw = (x1 - ix)(y1 - iy), ne = (ix - x0)(y1 - iy), sw = (x1 - ix)(iy - y0), se = ...
    const float wx1 = ix - x0;
    const float wy1 = iy - y0;
    const float wx0 = (x0 + 1.0f) - ix;
    const float wy0 = (y0 + 1.0f) - iy;
    i32 bx = 0;
    i32 by = 0;
    float ax0 = 0.0f, ax1 = 0.0f, ay0 = 0.0f, ay1 = 0.0f;
    if (!iplap_warp_axis(x0, wx0, wx1, n, &bx, &ax0, &ax1) ||
        !iplap_warp_axis(y0, wy0, wy1, n, &by, &ay0, &ay1)) {
        return t;
    }
    t.base = by * n + bx;
    t.w0 = ay0 * ax0 * scale;
    t.w1 = ay0 * ax1 * scale;
    t.w2 = ay1 * ax0 * scale;
    t.w3 = ay1 * ax1 * scale;
    return t;
}

// Taps for the 128 × 128 sources (h1, ref) at output pixel (i, j) of one reference.
IPLAP_HD IplapWarpTap iplap_warp_tap_full(const float* flow, float weight, i32 i, i32 j) {
    float gx, gy;
    iplap_warp_deformation(flow, i, j, &gx, &gy);
    return iplap_warp_tap(gx, gy, IPLAP_WARP_FACE, weight);
}

// torch's bilinear 2× reduction (align_corners = False): the 2 × 2 mean as two levels of lerp.
IPLAP_HD float iplap_warp_mix(float a, float b, float c, float d) {
    return 0.5f * (0.5f * a + 0.5f * b) + 0.5f * (0.5f * c + 0.5f * d);
}

// Taps for the 64 × 64 h2 sources at output pixel (i, j): reduced deformation, weight w[2i, 2j].
IPLAP_HD IplapWarpTap iplap_warp_tap_half(const float* flow, const float* weight, i32 i, i32 j) {
    const i32 y0 = 2 * i;
    const i32 x0 = 2 * j;
    float ax, ay, bx, by, cx, cy, dx, dy;
    iplap_warp_deformation(flow, y0, x0, &ax, &ay);
    iplap_warp_deformation(flow, y0, x0 + 1, &bx, &by);
    iplap_warp_deformation(flow, y0 + 1, x0, &cx, &cy);
    iplap_warp_deformation(flow, y0 + 1, x0 + 1, &dx, &dy);
    const float gx = iplap_warp_mix(ax, bx, cx, dx);
    const float gy = iplap_warp_mix(ay, by, cy, dy);
    return iplap_warp_tap(gx, gy, IPLAP_WARP_HALF, weight[y0 * IPLAP_WARP_FACE + x0]);
}

// One tap applied to one channel plane of side `side`: Rust's `top + bottom`, in its order. The
// clamp is Rust's `min(max_base)`; it never changes a valid tap (base <= side² - side - 2).
IPLAP_HD float iplap_warp_sample(const float* plane, i32 side, const IplapWarpTap& t) {
    const i32 b = iplap_min_i32(t.base, side * side - (side + 2));
    const float top = t.w0 * plane[b] + t.w1 * plane[b + 1];
    const float bottom = t.w2 * plane[b + side] + t.w3 * plane[b + side + 1];
    return top + bottom;
}

// Thread (x, y, g) of the 128 × 128 accumulation over references 0..n of one chunk (all NCHW,
// contiguous, the chunk's first reference at the pointers): groups g < 4 carry h1 channels
// 8g..8g+7, group 4 the three ref channels and the denominator. Adds to the running sums in place.
IPLAP_HD void iplap_warp_accumulate_128_at(i32 x, i32 y, i32 g, const float* flow,
                                           const float* weight, const float* h1,
                                           const float* ref_img, i32 n, float* acc_h1,
                                           float* acc_ref, float* denom) {
    const bool img = g == IPLAP_WARP_GROUPS_128 - 1;
    const i32 channels = img ? IPLAP_WARP_IMG_CHANNELS : IPLAP_WARP_H1_CHANNELS;
    const i32 c0 = img ? 0 : g * IPLAP_WARP_GROUP;
    const i32 count = img ? IPLAP_WARP_IMG_CHANNELS : IPLAP_WARP_GROUP;
    const float* src = img ? ref_img : h1;
    float* acc = img ? acc_ref : acc_h1;
    const i32 p = y * IPLAP_WARP_FACE + x;

    float sum[IPLAP_WARP_GROUP];
    for (i32 k = 0; k < IPLAP_WARP_GROUP; ++k) {
        sum[k] = k < count ? acc[(c0 + k) * IPLAP_WARP_PLANE + p] : 0.0f;
    }
    float d = img ? denom[p] : 0.0f;
    for (i32 r = 0; r < n; ++r) {
        const float* fl = flow + (i64)r * 2 * IPLAP_WARP_PLANE;
        const float w = weight[(i64)r * IPLAP_WARP_PLANE + p];
        const IplapWarpTap t = iplap_warp_tap_full(fl, w, y, x);
        d += w;
        const float* s = src + ((i64)r * channels + c0) * IPLAP_WARP_PLANE;
        for (i32 k = 0; k < IPLAP_WARP_GROUP; ++k) {
            if (k < count) {
                sum[k] += iplap_warp_sample(s + k * IPLAP_WARP_PLANE, IPLAP_WARP_FACE, t);
            }
        }
    }
    for (i32 k = 0; k < IPLAP_WARP_GROUP; ++k) {
        if (k < count) {
            acc[(c0 + k) * IPLAP_WARP_PLANE + p] = sum[k];
        }
    }
    if (img) {
        denom[p] = d;
    }
}

// Thread (x, y, g) of the 64 × 64 accumulation: h2 channels 8g..8g+7 over references 0..n.
IPLAP_HD void iplap_warp_accumulate_64_at(i32 x, i32 y, i32 g, const float* flow,
                                          const float* weight, const float* h2, i32 n,
                                          float* acc_h2) {
    const i32 c0 = g * IPLAP_WARP_GROUP;
    const i32 p = y * IPLAP_WARP_HALF + x;
    float sum[IPLAP_WARP_GROUP];
    for (i32 k = 0; k < IPLAP_WARP_GROUP; ++k) {
        sum[k] = acc_h2[(c0 + k) * IPLAP_WARP_PLANE_HALF + p];
    }
    for (i32 r = 0; r < n; ++r) {
        const float* fl = flow + (i64)r * 2 * IPLAP_WARP_PLANE;
        const float* wt = weight + (i64)r * IPLAP_WARP_PLANE;
        const IplapWarpTap t = iplap_warp_tap_half(fl, wt, y, x);
        const float* s = h2 + ((i64)r * IPLAP_WARP_H2_CHANNELS + c0) * IPLAP_WARP_PLANE_HALF;
        for (i32 k = 0; k < IPLAP_WARP_GROUP; ++k) {
            sum[k] += iplap_warp_sample(s + k * IPLAP_WARP_PLANE_HALF, IPLAP_WARP_HALF, t);
        }
    }
    for (i32 k = 0; k < IPLAP_WARP_GROUP; ++k) {
        acc_h2[(c0 + k) * IPLAP_WARP_PLANE_HALF + p] = sum[k];
    }
}

// Element `e` (0 <= e < IPLAP_WARP_FINISH_TOTAL) of the finish step: flat index over h1 (32 × 128²),
// then ref (3 × 128²), then h2 (256 × 64²); each sum divided by its pixel's `D + 1e-5`, for h2 the
// denominator at (2i, 2j). Reads only the sums and the denominator, so an output may be the same
// buffer as its own sums (in place); the denominator must not be an output.
IPLAP_HD void iplap_warp_finish_at(i32 e, const float* acc_h1, const float* acc_ref,
                                   const float* acc_h2, const float* denom, float* out_h1,
                                   float* out_ref, float* out_h2) {
    if (e < IPLAP_WARP_FINISH_H1) {
        const float dd = denom[e % IPLAP_WARP_PLANE] + IPLAP_WARP_EPS;
        out_h1[e] = acc_h1[e] / dd;
    } else if (e < IPLAP_WARP_FINISH_H1 + IPLAP_WARP_FINISH_REF) {
        const i32 f = e - IPLAP_WARP_FINISH_H1;
        const float dd = denom[f % IPLAP_WARP_PLANE] + IPLAP_WARP_EPS;
        out_ref[f] = acc_ref[f] / dd;
    } else {
        const i32 f = e - (IPLAP_WARP_FINISH_H1 + IPLAP_WARP_FINISH_REF);
        const i32 q = f % IPLAP_WARP_PLANE_HALF;
        const i32 i = q / IPLAP_WARP_HALF;
        const i32 j = q % IPLAP_WARP_HALF;
        const float dd = denom[(2 * i) * IPLAP_WARP_FACE + 2 * j] + IPLAP_WARP_EPS;
        out_h2[f] = acc_h2[f] / dd;
    }
}
