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
#include "resize.cuh"
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

// Output pixel (dx, dy) of the 128 x 128 crop of rect (rx, ry, rw, rh): B, G, R bytes, each the
// uint8 INTER_LINEAR fixed-point combine (iplap_resize_u8) of its four source samples.
IPLAP_HD void iplap_crop_pixel(const IplapCropSource& s, i32 rx, i32 ry, i32 rw, i32 rh, i32 dx, i32 dy,
                               u8 bgr[3]) {
    const IplapResizeTap tx = iplap_resize_tap(rw, IPLAP_CROP_SIZE, dx, true);
    const IplapResizeTap ty = iplap_resize_tap(rh, IPLAP_CROP_SIZE, dy, false);
    const i32 a0 = iplap_resize_fixed(tx.w0), a1 = iplap_resize_fixed(tx.w1);
    const i32 b0 = iplap_resize_fixed(ty.w0), b1 = iplap_resize_fixed(ty.w1);
    u8 p00[3], p01[3], p10[3], p11[3];
    iplap_crop_read_bgr(s, rx + tx.i0, ry + ty.i0, p00);
    iplap_crop_read_bgr(s, rx + tx.i1, ry + ty.i0, p01);
    iplap_crop_read_bgr(s, rx + tx.i0, ry + ty.i1, p10);
    iplap_crop_read_bgr(s, rx + tx.i1, ry + ty.i1, p11);
    for (int c = 0; c < 3; ++c) {
        bgr[c] = iplap_resize_u8(p00[c], p01[c], p10[c], p11[c], a0, a1, b0, b1);
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
