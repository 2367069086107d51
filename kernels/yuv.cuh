// iplap kernels — yuv: colour conversion between 8-bit YUV 4:2:0 (I420/NV12) and RGB, the twin of
// src/image/yuv/colour.rs. The coefficients are computed once in Rust (`YuvColour`) and passed in,
// so the matrix has one definition; the maths here is only the per-sample dot products and the
// rounding, in the order the Rust code evaluates them.
#pragma once
#include "common.cuh"

// `YuvColour`'s tables, row-major: fwd = RGB (0..255) -> Y, U, V (no offsets); inv = (Y - offset,
// U - 128, V - 128) -> R, G, B. Passed to kernels by value (POD, 19 floats, no padding).
struct IplapYuvCoeffs {
    float fwd[9];
    float inv[9];
    float y_offset;
};

// Round half up and saturate to 0..255, as `quantise` does.
IPLAP_HD u8 iplap_yuv_quantise(float v) {
    float f = iplap_floorf(v + 0.5f);
    f = f < 0.0f ? 0.0f : (f > 255.0f ? 255.0f : f);
    return (u8)f;
}

// R, G, B of one sample (`YuvColour::rgb`).
IPLAP_HD void iplap_yuv_to_rgb(const IplapYuvCoeffs& c, u8 y, u8 u, u8 v, u8 rgb[3]) {
    const float t0 = (float)y - c.y_offset;
    const float t1 = (float)u - 128.0f;
    const float t2 = (float)v - 128.0f;
    for (int r = 0; r < 3; ++r) {
        rgb[r] = iplap_yuv_quantise(c.inv[3 * r] * t0 + c.inv[3 * r + 1] * t1 + c.inv[3 * r + 2] * t2);
    }
}

// ---------------------------------------------------------------------------------------------------
// RGB -> YUV (`YuvColour::luma`, `YuvColour::chroma`), in the Rust evaluation order: the dot product
// left to right, then the offset added to it.

IPLAP_HD float iplap_yuv_dot(const float* row, float a, float b, float c) {
    return row[0] * a + row[1] * b + row[2] * c;
}

// Y of one RGB pixel (`YuvColour::luma`).
IPLAP_HD u8 iplap_yuv_luma(const IplapYuvCoeffs& c, const u8 rgb[3]) {
    return iplap_yuv_quantise(c.y_offset + iplap_yuv_dot(c.fwd, (float)rgb[0], (float)rgb[1], (float)rgb[2]));
}

// U, V of the mean of `n` (> 0) RGB pixels whose channel sums are `sum` (`YuvColour::chroma`): the
// mean is each sum divided by n in f32, as Rust's `s as f32 / n as f32`.
IPLAP_HD void iplap_yuv_chroma(const IplapYuvCoeffs& c, const u32 sum[3], u32 n, u8* u, u8* v) {
    const float fn = (float)n;
    const float m0 = (float)sum[0] / fn;
    const float m1 = (float)sum[1] / fn;
    const float m2 = (float)sum[2] / fn;
    *u = iplap_yuv_quantise(128.0f + iplap_yuv_dot(c.fwd + 3, m0, m1, m2));
    *v = iplap_yuv_quantise(128.0f + iplap_yuv_dot(c.fwd + 6, m0, m1, m2));
}

// ---------------------------------------------------------------------------------------------------
// The RGB window of `RgbWindow::run` (src/image/yuv.rs).
//
// The window is a rect of the frame in frame pixels, (x0, y0) + win_w x win_h, that must already be
// chroma-aligned (`chroma_aligned`: x0, y0 even; x0 + win_w even or the frame width, likewise in y),
// so every 2 x 2 chroma block is either whole inside it or cut only by the frame edge. Its RGB lives
// in packed 3-byte pixels: `rgb` points at the window's top-left pixel and `rgb_pitch` is the byte
// distance between its rows (3 * win_w for a packed window, 3 * frame width for a frame-sized image
// at frame coordinates, as the CPU path uses). `before` is the window's RGB as converted, the
// reference the write-back compares with, in the same form (its own pitch).
//
// The chroma planes are addressed as (plane, stride, step): I420 passes the U and V planes with
// step 1; NV12 passes uv and uv + 1 with the UV stride for both and step 2. Sample (cx, cy) of a
// plane is plane[cy * stride + cx * step]. Offsets are computed in 64 bits.

IPLAP_HD i64 iplap_yuv_at(i32 x, i32 y, i32 stride, i32 step) {
    return (i64)y * (i64)stride + (i64)x * (i64)step;
}

// Window pixel (i, j): frame pixel (x0 + i, y0 + j) to RGB with the chroma sample of its 2 x 2 block
// (nearest neighbour, as `RgbWindow::run` reads it), written to `rgb` and, when not null, `before`.
IPLAP_HD void iplap_yuv_window_pixel(const IplapYuvCoeffs& c, const u8* yp, i32 y_stride, const u8* up,
                                     i32 u_stride, const u8* vp, i32 v_stride, i32 c_step, i32 x0,
                                     i32 y0, i32 i, i32 j, u8* rgb, i32 rgb_pitch, u8* before,
                                     i32 before_pitch) {
    const i32 x = x0 + i;
    const i32 y = y0 + j;
    const u8 luma = yp[iplap_yuv_at(x, y, y_stride, 1)];
    const u8 u = up[iplap_yuv_at(x / 2, y / 2, u_stride, c_step)];
    const u8 v = vp[iplap_yuv_at(x / 2, y / 2, v_stride, c_step)];
    u8 px[3];
    iplap_yuv_to_rgb(c, luma, u, v, px);
    u8* out = rgb + iplap_yuv_at(i, j, rgb_pitch, 3);
    out[0] = px[0];
    out[1] = px[1];
    out[2] = px[2];
    if (before) {
        u8* b = before + iplap_yuv_at(i, j, before_pitch, 3);
        b[0] = px[0];
        b[1] = px[1];
        b[2] = px[2];
    }
}

// Whether window pixel (i, j) differs from its converted RGB in any channel: `RgbWindow::run`
// rewrites only what the renderer changed, comparing RGB after with RGB before (not the YUV it
// would produce with the YUV already there).
IPLAP_HD bool iplap_yuv_changed(const u8* rgb, i32 rgb_pitch, const u8* before, i32 before_pitch, i32 i,
                                i32 j) {
    const u8* a = rgb + iplap_yuv_at(i, j, rgb_pitch, 3);
    const u8* b = before + iplap_yuv_at(i, j, before_pitch, 3);
    return a[0] != b[0] || a[1] != b[1] || a[2] != b[2];
}

// Write-back of window pixel (i, j)'s luma: Y = luma(RGB) when the pixel changed, else its bytes
// stay as they are (no YUV -> RGB -> YUV rounding). Returns whether it wrote.
IPLAP_HD bool iplap_yuv_writeback_luma_pixel(const IplapYuvCoeffs& c, const u8* rgb, i32 rgb_pitch,
                                             const u8* before, i32 before_pitch, i32 x0, i32 y0, i32 i,
                                             i32 j, u8* yp, i32 y_stride) {
    if (!iplap_yuv_changed(rgb, rgb_pitch, before, before_pitch, i, j)) {
        return false;
    }
    yp[iplap_yuv_at(x0 + i, y0 + j, y_stride, 1)] = iplap_yuv_luma(c, rgb + iplap_yuv_at(i, j, rgb_pitch, 3));
    return true;
}

// Write-back of the window's chroma block (bi, bj) (window pixels 2bi.., 2bj.., cut at the window
// edge, which for a chroma-aligned window is the frame edge): when any of its pixels changed, U, V =
// chroma of the block's summed RGB (after the render) over its pixel count, pixels summed row by row
// as the Rust loop does (integer sums: the order cannot change them anyway). Else untouched.
IPLAP_HD void iplap_yuv_writeback_chroma_block(const IplapYuvCoeffs& c, const u8* rgb, i32 rgb_pitch,
                                               const u8* before, i32 before_pitch, i32 x0, i32 y0,
                                               i32 win_w, i32 win_h, i32 bi, i32 bj, u8* up,
                                               i32 u_stride, u8* vp, i32 v_stride, i32 c_step) {
    const i32 i_end = iplap_min_i32(2 * bi + 2, win_w);
    const i32 j_end = iplap_min_i32(2 * bj + 2, win_h);
    u32 sum[3] = {0, 0, 0};
    u32 n = 0;
    bool changed = false;
    for (i32 j = 2 * bj; j < j_end; ++j) {
        for (i32 i = 2 * bi; i < i_end; ++i) {
            const u8* px = rgb + iplap_yuv_at(i, j, rgb_pitch, 3);
            sum[0] += px[0];
            sum[1] += px[1];
            sum[2] += px[2];
            n += 1;
            changed = changed || iplap_yuv_changed(rgb, rgb_pitch, before, before_pitch, i, j);
        }
    }
    if (!changed) {
        return;
    }
    u8 u;
    u8 v;
    iplap_yuv_chroma(c, sum, n, &u, &v);
    // The window origin is even, so the block's chroma sample is (x0 / 2 + bi, y0 / 2 + bj).
    const i32 cx = x0 / 2 + bi;
    const i32 cy = y0 / 2 + bj;
    up[iplap_yuv_at(cx, cy, u_stride, c_step)] = u;
    vp[iplap_yuv_at(cx, cy, v_stride, c_step)] = v;
}
