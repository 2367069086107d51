// iplap kernels — sketch: per-element maths shared by the device kernels (kernels/sketch.cu) and the
// host build (kernels/host/sketch.cpp). Bit-identical twin of `src/image/sketch.rs`
// (`SketchRasteriser::render`), `src/image/line.rs` (`line8`) and the f64 path of
// `src/image/resize.rs` (`resize_gray_f64`; its `taps` are resize.cuh's).
//
// A batch holds S sketches. Sketch s has
//   * landmarks: 2 x IPLAP_SKETCH_POINTS f32 (row 0 = x, row 1 = y, crop-normalised), sketch after
//     sketch (S x 2 x 131, contiguous);
//   * its canvas size (w, h) as computed by Rust's `canvas_size` (the Rust side owns that formula
//     and its limits, so the kernels never see an unchecked size);
//   * a canvas of w x h bytes (row-major, packed rows) at byte `s * canvas_stride` of one buffer;
//     canvas_stride >= max over the batch of w * h. The canvases must be zero before drawing.
//   * an output sketch: 3 x 128 x 128 f32 (CHW, three equal channels) at `s * 3 * 128 * 128`.
// The connection table (pairs of columns into the 131 points) is passed in by the caller, so the
// only definition is Rust's `CONNECTION_COLUMNS`.
#pragma once
#include "common.cuh"
#include "resize.cuh"

// Points per landmark set (POSE then CONTENT columns); Rust's `FULL_LEN`.
#define IPLAP_SKETCH_POINTS 131
// Output side (Rust's `FACE_SIZE`).
#define IPLAP_SKETCH_SIZE 128
// Line colour (Rust's `SKETCH_COLOUR`).
#define IPLAP_SKETCH_COLOUR 224
// `scaling` codes (Rust's `SketchScaling`).
#define IPLAP_SKETCH_REFERENCE 0
#define IPLAP_SKETCH_TARGET 1

// MediaPipe's `_normalized_to_pixel_coordinates` as Rust's `to_pixel`: -1 for a value outside
// [0, 1] (only exact 0, and 1 within a relative 1e-9, are inside; NaN is outside), else
// `min(floor(v * size), size - 1)` with the product in f64.
IPLAP_HD i64 iplap_sketch_to_pixel(float v, i32 size) {
    const double d = (double)v;
    const bool lower_ok = d >= 0.0;
    const double a = fabs(d);
    // Rust `v.abs().max(1.0)`: NaN gives 1.0 there and here (the comparison is false).
    const double m = a > 1.0 ? a : 1.0;
    const bool upper_ok = d < 1.0 || fabs(d - 1.0) <= 1e-9 * m;
    if (!(lower_ok && upper_ok)) {
        return -1;
    }
    // +inf passes the test above (|inf - 1| <= inf). Rust's `as i64` saturates, then the `min`
    // gives size - 1; a C cast of inf is undefined, so compare before casting. The product is
    // >= 0 here, so only the upper side needs care.
    const double f = floor(d * (double)size);
    if (f >= (double)(size - 1)) {
        return (i64)(size - 1);
    }
    return (i64)f;
}

// Draws connection `i` of `connections` (pairs of point columns) for one sketch: its two endpoints
// converted with `iplap_sketch_to_pixel`, the edge dropped when either coordinate of either
// endpoint is invalid (no clamping), else cv2.line LINE_8 (Rust's `line8`, same walk) in
// IPLAP_SKETCH_COLOUR. Every writer of a pixel writes the same value and nothing reads the canvas
// while drawing, so concurrent threads overlapping on a pixel are benign and order does not matter.
// `lm` is this sketch's 2 x IPLAP_SKETCH_POINTS landmarks; `canvas` its w x h bytes.
IPLAP_HD void iplap_sketch_draw_connection(const float* lm, const i32* connections, i32 i,
                                           u8* canvas, i32 w, i32 h) {
    const i32 a = connections[2 * i];
    const i32 b = connections[2 * i + 1];
    const i64 ax = iplap_sketch_to_pixel(lm[a], w);
    const i64 ay = iplap_sketch_to_pixel(lm[IPLAP_SKETCH_POINTS + a], h);
    const i64 bx = iplap_sketch_to_pixel(lm[b], w);
    const i64 by = iplap_sketch_to_pixel(lm[IPLAP_SKETCH_POINTS + b], h);
    if (ax < 0 || ay < 0 || bx < 0 || by < 0) {
        return;
    }
    // Walk left to right (swap when x1 < x0), which fixes the pixels of ambiguous steps.
    i64 x0 = ax, y0 = ay, x1 = bx, y1 = by;
    if (x1 < x0) {
        x0 = bx;
        y0 = by;
        x1 = ax;
        y1 = ay;
    }
    const i64 dx = x1 - x0;
    const i64 dy = y1 - y0;
    const i64 sy = dy >= 0 ? 1 : -1;
    const i64 ady = dy >= 0 ? dy : -dy;
    const bool steep = ady > dx;
    const i64 major = steep ? ady : dx;
    const i64 minor = steep ? dx : ady;
    i64 x = x0, y = y0;
    i64 err = major - 2 * minor;
    // Endpoints are inside the canvas by construction, so every plotted pixel is too.
    for (i64 k = 0; k <= major; ++k) {
        canvas[y * (i64)w + x] = (u8)IPLAP_SKETCH_COLOUR;
        if (err < 0) {
            x += 1;
            y += sy;
            err += 2 * major - 2 * minor;
        } else {
            if (steep) {
                y += sy;
            } else {
                x += 1;
            }
            err -= 2 * minor;
        }
    }
}

// Output pixel (x, y) of one sketch: f64 INTER_LINEAR of the w x h canvas to 128 x 128 (Rust's
// `resize_gray_f64`: horizontal pass of source rows i0 and i1, then the vertical blend; Rust
// caches the horizontal rows, which changes nothing in the values), then the /255 that `scaling`
// selects, stored in all three planes of `out` (this sketch's 3 x 128 x 128 f32).
IPLAP_HD void iplap_sketch_resize_pixel(const u8* canvas, i32 w, i32 h, i32 scaling, i32 x,
                                        i32 y, float* out) {
    const IplapResizeTap tx = iplap_resize_tap(w, IPLAP_SKETCH_SIZE, x, true);
    const IplapResizeTap ty = iplap_resize_tap(h, IPLAP_SKETCH_SIZE, y, false);
    const i64 x0 = tx.i0, x1 = tx.i1, y0 = ty.i0, y1 = ty.i1;
    const float a0 = tx.w0, a1 = tx.w1, b0 = ty.w0, b1 = ty.w1;
    const u8* r0 = canvas + y0 * (i64)w;
    const u8* r1 = canvas + y1 * (i64)w;
    const double t0 = (double)r0[x0] * (double)a0 + (double)r0[x1] * (double)a1;
    const double t1 = (double)r1[x0] * (double)a0 + (double)r1[x1] * (double)a1;
    const double v = t0 * (double)b0 + t1 * (double)b1;
    // Reference: f32(v / 255.0) with the division in f64; Target: f32(v) / 255 in f32.
    const float o = scaling == IPLAP_SKETCH_REFERENCE ? (float)(v / 255.0) : (float)v / 255.0f;
    const i32 plane = IPLAP_SKETCH_SIZE * IPLAP_SKETCH_SIZE;
    const i32 at = y * IPLAP_SKETCH_SIZE + x;
    out[at] = o;
    out[plane + at] = o;
    out[2 * plane + at] = o;
}
