// iplap kernels — crop: per-pixel maths shared by the device kernels (kernels/crop.cu) and the host
// build (kernels/host/crop.cpp). The twin of src/image/crop.rs `crop_face` + `bgr_to_chw`:
// `cv2.resize(frame[y:y+h, x:x+w], (128, 128))` with OpenCV's uint8 INTER_LINEAR fixed point
// (src/image/resize.rs), then f32(v / 255.0 in f64), CHW, BGR.
//
// One output pixel is computed on its own from its two column taps and two row taps, so a GPU
// thread needs no shared rows: the Rust code's row cache and its upscale/downscale branches only
// reorder the same integer arithmetic, which is exact, so evaluating it per pixel gives the same
// bytes.
//
// Source frames: packed 3/4-byte RGB in any channel order (byte offsets of B, G, R passed in, taken
// from Rust's `ChannelOrder::bgr_offsets` so the orders have one definition), or 8-bit 4:2:0 I420 /
// NV12, converted sample by sample the way the CPU path does (src/image/yuv.rs `RgbWindow`: luma
// pixel (x, y) uses chroma sample (x / 2, y / 2), then `YuvColour::rgb`, i.e. iplap_yuv_to_rgb).
#pragma once
#include "common.cuh"
#include "yuv.cuh"

// Side of the square face crop (`sizes::FACE_SIZE`).
#define IPLAP_CROP_SIZE 128
// Source format codes (Rust: src/kernels/host/crop.rs `FORMAT_*`).
#define IPLAP_CROP_PACKED 0
#define IPLAP_CROP_I420 1
#define IPLAP_CROP_NV12 2

// Where the source pixels are: built from the kernel's scalar parameters by iplap_crop_source.
// Packed: plane[0] with `bpp` bytes per pixel, B/G/R at byte offsets off[0..3]. I420: Y, U, V
// planes. NV12: Y plane and interleaved UV plane. Strides in bytes.
struct IplapCropSource {
    const u8* plane[3];
    i64 stride[3];
    i32 format;
    i32 bpp;
    i32 off[3];
    IplapYuvCoeffs coeffs;
};

IPLAP_HD IplapCropSource iplap_crop_source(const u8* p0, i64 s0, const u8* p1, i64 s1, const u8* p2, i64 s2,
                                           i32 format, i32 bpp, i32 off_b, i32 off_g, i32 off_r,
                                           const IplapYuvCoeffs& coeffs) {
    IplapCropSource s;
    s.plane[0] = p0;
    s.plane[1] = p1;
    s.plane[2] = p2;
    s.stride[0] = s0;
    s.stride[1] = s1;
    s.stride[2] = s2;
    s.format = format;
    s.bpp = bpp;
    s.off[0] = off_b;
    s.off[1] = off_g;
    s.off[2] = off_r;
    s.coeffs = coeffs;
    return s;
}

// B, G, R of frame pixel (x, y).
IPLAP_HD void iplap_crop_read_bgr(const IplapCropSource& s, i32 x, i32 y, u8 bgr[3]) {
    if (s.format == IPLAP_CROP_PACKED) {
        const u8* px = s.plane[0] + (i64)y * s.stride[0] + (i64)x * s.bpp;
        bgr[0] = px[s.off[0]];
        bgr[1] = px[s.off[1]];
        bgr[2] = px[s.off[2]];
        return;
    }
    // 4:2:0: nearest chroma sample, the one of the pixel's 2 x 2 block (RgbWindow::run).
    const u8 luma = s.plane[0][(i64)y * s.stride[0] + x];
    const i64 cy = y / 2, cx = x / 2;
    u8 u, v;
    if (s.format == IPLAP_CROP_I420) {
        u = s.plane[1][cy * s.stride[1] + cx];
        v = s.plane[2][cy * s.stride[2] + cx];
    } else {
        const i64 i = cy * s.stride[1] + 2 * cx;
        u = s.plane[1][i];
        v = s.plane[1][i + 1];
    }
    u8 rgb[3];
    iplap_yuv_to_rgb(s.coeffs, luma, u, v, rgb);
    bgr[0] = rgb[2];
    bgr[1] = rgb[1];
    bgr[2] = rgb[0];
}

// One output sample's two source indices and 11-bit fixed-point weights.
struct IplapCropTap {
    i32 i0, i1;
    i32 w0, w1;
};

// `fixed`: round(w * 2048), ties to even. The product is exact (power of two, 0 <= w <= 1) and so
// is v - floor(v), so the explicit tie rule gives the same integer as Rust's round_ties_even
// without relying on the rounding mode (rintf) being the same on both builds. (With 128 outputs
// the fractions lie on a 1/256 grid, so no tie arises for crops up to 8192 pixels: the rule is
// kept to stay the same function as Rust's, not because the tests could tell it apart.)
IPLAP_HD i32 iplap_crop_fixed(float w) {
    const float v = w * 2048.0f;
    const float fl = iplap_floorf(v);
    const float d = v - fl;
    i32 r = (i32)fl;
    if (d > 0.5f || (d == 0.5f && (r & 1) != 0)) r += 1;
    return r;
}

// `taps(src, dst, clamp)[d]` of src/image/resize.rs with the weights made fixed point. The scale
// is inverted from dst / src as OpenCV does, the position computed in double and rounded to float,
// and the fraction taken in float: every step in the same type and order as the Rust code (no
// fused multiply-adds on either build). `clamp` is the column rule (out-of-range positions pinned
// to the edge with weight 0); rows keep their fraction and only clip the indices.
IPLAP_HD IplapCropTap iplap_crop_tap(i32 src, i32 dst, i32 d, bool clamp) {
    const double scale = 1.0 / ((double)dst / (double)src);
    const float f = (float)(((double)d + 0.5) * scale - 0.5);
    i64 s = (i64)iplap_floorf(f);
    float frac = f - (float)s;
    const i64 last = (i64)src - 1;
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
    IplapCropTap t;
    t.i0 = (i32)iplap_max_i64(0, iplap_min_i64(s, last));
    t.i1 = (i32)iplap_max_i64(0, iplap_min_i64(s + 1, last));
    t.w0 = iplap_crop_fixed(1.0f - frac);
    t.w1 = iplap_crop_fixed(frac);
    return t;
}

// Output pixel (dx, dy) of the 128 x 128 crop of rect (rx, ry, rw, rh): B, G, R bytes.
// Horizontal pass per source row: t = s0 a0 + s1 a1, kept as t >> 4 (fits u16); vertical pass:
// ((b0 h0) >> 16) + ((b1 h1) >> 16) + 2 >> 2, capped at 255 — OpenCV's 16-bit multiply-high
// products, as `Resizer` / `vertical_u8` compute them.
IPLAP_HD void iplap_crop_pixel(const IplapCropSource& s, i32 rx, i32 ry, i32 rw, i32 rh, i32 dx, i32 dy,
                               u8 bgr[3]) {
    const IplapCropTap tx = iplap_crop_tap(rw, IPLAP_CROP_SIZE, dx, true);
    const IplapCropTap ty = iplap_crop_tap(rh, IPLAP_CROP_SIZE, dy, false);
    u8 p00[3], p01[3], p10[3], p11[3];
    iplap_crop_read_bgr(s, rx + tx.i0, ry + ty.i0, p00);
    iplap_crop_read_bgr(s, rx + tx.i1, ry + ty.i0, p01);
    iplap_crop_read_bgr(s, rx + tx.i0, ry + ty.i1, p10);
    iplap_crop_read_bgr(s, rx + tx.i1, ry + ty.i1, p11);
    // Rust stores the row weights as u16; they are 0..=2048, so the value is unchanged.
    const u32 b0 = (u32)ty.w0, b1 = (u32)ty.w1;
    for (int c = 0; c < 3; ++c) {
        const u32 h0 = (u32)(u16)(((i32)p00[c] * tx.w0 + (i32)p01[c] * tx.w1) >> 4);
        const u32 h1 = (u32)(u16)(((i32)p10[c] * tx.w0 + (i32)p11[c] * tx.w1) >> 4);
        // Each high half is at most 2048 * 32640 >> 16 = 1020: no u16 overflow in Rust's sum.
        const u32 v = (((b0 * h0) >> 16) + ((b1 * h1) >> 16) + 2) >> 2;
        bgr[c] = (u8)(v > 255 ? 255 : v);
    }
}

// `bgr_to_chw`'s value: f32(v / 255) with the division in double (numpy's uint8 / 255 is float64).
IPLAP_HD float iplap_crop_unit(u8 v) { return (float)((double)v / 255.0); }

// The whole per-pixel step: output pixel (dx, dy) into the 3 x 128 x 128 f32 tensor (CHW, B, G,
// R planes) and, when `out_bgr` is not null, into the packed 128 x 128 BGR u8 image.
IPLAP_HD void iplap_crop_face_at(const IplapCropSource& s, i32 rx, i32 ry, i32 rw, i32 rh, i32 dx, i32 dy,
                                 float* out_chw, u8* out_bgr) {
    u8 bgr[3];
    iplap_crop_pixel(s, rx, ry, rw, rh, dx, dy, bgr);
    const i32 plane = IPLAP_CROP_SIZE * IPLAP_CROP_SIZE;
    const i32 at = dy * IPLAP_CROP_SIZE + dx;
    for (int c = 0; c < 3; ++c) {
        out_chw[c * plane + at] = iplap_crop_unit(bgr[c]);
        if (out_bgr) out_bgr[3 * at + c] = bgr[c];
    }
}
