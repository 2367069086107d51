// iplap kernels — resize: cv2 INTER_LINEAR taps, shared by the kernels that resize (crop.cuh,
// paste.cuh, sketch.cuh). The twin of src/image/resize.rs: `taps()` (float weights, used as they
// are by the f64 path `resize_gray_f64`), `fixed()` (11-bit weights of the uint8 path) and the
// uint8 horizontal/vertical fixed-point passes of `Resizer` / `vertical_u8`.
//
// Operation order matters: the results are held bit-exact to the Rust code, so every step is done
// in the same type and order as there (inverse scale inverted in f64, position rounded to f32,
// floor, f32 fraction, no fused multiply-adds on either build). Reordering or widening any of it
// changes which pixels round which way.
#pragma once
#include "common.cuh"

// One output sample's two source indices and their float weights (Rust's `Tap`).
struct IplapResizeTap {
    i32 i0, i1;
    float w0, w1;
};

// `taps(src, dst, clamp)[d]` of src/image/resize.rs: output index `d` of a `src` -> `dst` axis.
// OpenCV inverts the inverse scale; keep that double rounding. `clamp` is the column rule
// (out-of-range positions pinned to the edge with weight 0); rows (`clamp` false) keep their
// fraction and only clip the indices. Requires src >= 1 (Rust's `clamp(0, last)` does too).
IPLAP_HD IplapResizeTap iplap_resize_tap(i32 src, i32 dst, i32 d, bool clamp) {
    const double scale = 1.0 / ((double)dst / (double)src);
    const i64 last = (i64)src - 1;
    const float f = (float)(((double)d + 0.5) * scale - 0.5);
    i64 s = (i64)iplap_floorf(f);
    float frac = f - (float)s;
    if (clamp) {
        if (s < 0) {
            s = 0;
            frac = 0.0f;
        }
        if (s >= last) {
            s = last;
            frac = 0.0f;
        }
    }
    IplapResizeTap t;
    t.i0 = (i32)(s < 0 ? 0 : (s > last ? last : s));
    t.i1 = (i32)(s + 1 < 0 ? 0 : (s + 1 > last ? last : s + 1));
    t.w0 = 1.0f - frac;
    t.w1 = frac;
    return t;
}

// `fixed(w)`: round(w * 2048), ties to even. The product is exact (power of two, 0 <= w <= 1) and so
// is v - floor(v), so the explicit tie rule gives the same integer as Rust's round_ties_even
// without relying on the rounding mode (rintf) being the same on both builds. (With 128 outputs
// the fractions lie on a 1/256 grid, so no tie arises for crops up to 8192 pixels: the rule is
// kept to stay the same function as Rust's, not because the tests could tell it apart.)
IPLAP_HD i32 iplap_resize_fixed(float w) {
    const float v = w * 2048.0f;
    const float fl = iplap_floorf(v);
    const float d = v - fl;
    i32 r = (i32)fl;
    if (d > 0.5f || (d == 0.5f && (r & 1) != 0)) r += 1;
    return r;
}

// One uint8 INTER_LINEAR output sample from its four source samples (pRC: source row tap R, column
// tap C), column weights a0, a1 and row weights b0, b1 (iplap_resize_fixed of the taps' weights).
// Horizontal pass per source row: t = s0 a0 + s1 a1, kept as t >> 4 (at most 32640: fits u16);
// vertical pass: ((b0 h0) >> 16) + ((b1 h1) >> 16) + 2 >> 2, capped at 255 — OpenCV's 16-bit
// multiply-high products, as `Resizer` / `vertical_u8` compute them.
IPLAP_HD u8 iplap_resize_u8(u8 p00, u8 p01, u8 p10, u8 p11, i32 a0, i32 a1, i32 b0, i32 b1) {
    // Rust stores the row weights as u16; they are 0..=2048, so the value is unchanged.
    const u32 ub0 = (u32)b0, ub1 = (u32)b1;
    const u32 h0 = (u32)(u16)(((i32)p00 * a0 + (i32)p01 * a1) >> 4);
    const u32 h1 = (u32)(u16)(((i32)p10 * a0 + (i32)p11 * a1) >> 4);
    // Each high half is at most 2048 * 32640 >> 16 = 1020: no u16 overflow in Rust's sum.
    const u32 v = (((ub0 * h0) >> 16) + ((ub1 * h1) >> 16) + 2) >> 2;
    return (u8)(v > 255 ? 255 : v);
}
