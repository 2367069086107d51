// iplap kernels — paste: per-pixel maths of the paste-back (src/image/paste.rs `face_to_u8`,
// `paste_face`, `PasteBack::blend_u8`) shared by the device kernels (kernels/paste.cu) and the host
// build (kernels/host/paste.cpp). Every function here computes ONE output element, so the GPU maps a
// thread to it and the host loops over it; both give the bytes the Rust code gives.
//
// The Rust path is sequential in places (the scanline walkers of `fill_convex_poly`, the Bresenham
// walk of `line8`, the run-length horizontal blur); each is recast here as an independent per-row or
// per-pixel computation that yields the same integers (see the comment of each function).
//
// Geometry conventions: frame pixels (x, y); the mask "window" is the rect (wx, wy) + ww x wh of the
// frame that `polygon_window` returns (vertex box clipped to the frame, dilated by the blur radius);
// mask, horizontal sums and blurred mask are packed window-sized buffers (row stride ww). Polygon
// vertices are `n` (x, y) pairs of i64, flattened: pts[2 i] = x, pts[2 i + 1] = y.
#pragma once
#include "common.cuh"
#include "resize.cuh"

#define IPLAP_PASTE_FACE 128
#define IPLAP_PASTE_PLANE (IPLAP_PASTE_FACE * IPLAP_PASTE_FACE)
#define IPLAP_PASTE_RADIUS 10
#define IPLAP_PASTE_TAPS 21
// 16.16 fixed point of the scanline walkers (fill.rs XY_SHIFT / XY_HALF).
#define IPLAP_PASTE_XY_ONE 65536LL
#define IPLAP_PASTE_XY_HALF 32768LL

// The 21 fixed-point Gaussian taps (blur.rs GAUSS_KERNEL, sum 256). A switch rather than an array
// so neither build needs a table in memory (a host global or a __constant__ symbol would differ).
IPLAP_HD u32 iplap_paste_gauss(i32 t) {
    switch (t < IPLAP_PASTE_RADIUS ? t : 2 * IPLAP_PASTE_RADIUS - t) {
    case 0: return 9;
    case 1: return 10;
    case 2: return 11;
    case 3: case 4: case 5: return 12;
    case 6: return 14;
    case 7: return 13;
    case 8: case 9: return 14;
    default: return 14; // centre tap (t == 10)
    }
}

// ---------------------------------------------------------------------------------------------------
// face_to_u8: `(v * 255f32) as u8`, Rust's saturating float -> int cast (NaN -> 0).

IPLAP_HD u8 iplap_paste_unit_to_u8(float v) {
    const float t = v * 255.0f;
    // !(t > 0) also catches NaN, which Rust maps to 0; (-1, 0] truncates to 0 anyway.
    if (!(t > 0.0f)) return 0;
    if (t >= 255.0f) return 255;
    return (u8)(i32)t;
}

// Pixel i (0 .. 128*128) of the CHW f32 face into packed BGR `out`.
IPLAP_HD void iplap_paste_face_px(const float* chw, u8* out, i32 i) {
    for (i32 c = 0; c < 3; ++c) {
        out[3 * i + c] = iplap_paste_unit_to_u8(chw[c * IPLAP_PASTE_PLANE + i]);
    }
}

// ---------------------------------------------------------------------------------------------------
// uint8 INTER_LINEAR (resize.rs `resize_bgr_u8`, whole source onto a dst rect): taps, fixed-point
// weights and the per-sample combine are resize.cuh's.

// Output pixel (dx, dy) of `src` (sw x sh, row stride sstride bytes, sbpp bytes per pixel, B/G/R at
// byte offsets sb/sg/sr) resized to dw x dh; writes B, G, R into out[0..3].
IPLAP_HD void iplap_paste_resize_px(const u8* src, i32 sw, i32 sh, i64 sstride, i32 sbpp, i32 sb,
                                    i32 sg, i32 sr, i32 dw, i32 dh, i32 dx, i32 dy, u8 out[3]) {
    const IplapResizeTap tx = iplap_resize_tap(sw, dw, dx, true);
    const IplapResizeTap ty = iplap_resize_tap(sh, dh, dy, false);
    const i32 a0 = iplap_resize_fixed(tx.w0), a1 = iplap_resize_fixed(tx.w1);
    const i32 b0 = iplap_resize_fixed(ty.w0), b1 = iplap_resize_fixed(ty.w1);
    const u8* r0 = src + (i64)ty.i0 * sstride;
    const u8* r1 = src + (i64)ty.i1 * sstride;
    const i64 c0 = (i64)tx.i0 * sbpp;
    const i64 c1 = (i64)tx.i1 * sbpp;
    const i32 off[3] = {sb, sg, sr};
    for (i32 c = 0; c < 3; ++c) {
        out[c] = iplap_resize_u8(r0[c0 + off[c]], r0[c1 + off[c]], r1[c0 + off[c]], r1[c1 + off[c]], a0,
                                 a1, b0, b1);
    }
}

// ---------------------------------------------------------------------------------------------------
// The window (paste.rs `polygon_window`): vertex box clipped to the frame, dilated by the radius and
// clipped again. Returns 0 (and leaves out untouched) when no vertex-box pixel is in the frame.
IPLAP_HD i32 iplap_paste_window(const i64* pts, i32 n, i32 fw, i32 fh, i32* wx, i32* wy, i32* ww,
                                i32* wh) {
    if (n <= 0 || fw <= 0 || fh <= 0) return 0;
    i64 x0 = pts[0], y0 = pts[1], x1 = pts[0], y1 = pts[1];
    for (i32 i = 1; i < n; ++i) {
        x0 = iplap_min_i64(x0, pts[2 * i]);
        y0 = iplap_min_i64(y0, pts[2 * i + 1]);
        x1 = iplap_max_i64(x1, pts[2 * i]);
        y1 = iplap_max_i64(y1, pts[2 * i + 1]);
    }
    if (x1 < 0 || y1 < 0 || x0 >= fw || y0 >= fh) return 0;
    const i64 r = IPLAP_PASTE_RADIUS;
    x0 = iplap_max_i64(iplap_max_i64(x0, 0) - r, 0);
    y0 = iplap_max_i64(iplap_max_i64(y0, 0) - r, 0);
    x1 = iplap_min_i64(iplap_min_i64(x1, fw - 1) + r, fw - 1);
    y1 = iplap_min_i64(iplap_min_i64(y1, fh - 1) + r, fh - 1);
    *wx = (i32)x0;
    *wy = (i32)y0;
    *ww = (i32)(x1 - x0 + 1);
    *wh = (i32)(y1 - y0 + 1);
    return 1;
}

// ---------------------------------------------------------------------------------------------------
// The polygon mask (fill.rs `fill_convex_poly`, value 255): outline (line8 of every edge) plus the
// scanline fill of the two edge walkers.

// Fill span of frame row `y` (wy <= y < wy + wh), in window columns: [*lo, *hi], or lo > hi when
// the row gets no span. The Rust walkers advance row by row from ymin; between two edge switches a
// walker's x grows by dx per row, so x at row y is x + dx (y - y_switch), integer-exact. This
// replays only the edge switches (at most n, the shared edge budget) in the Rust order — walker 0
// then walker 1 per row, the budget ending the fill — and evaluates row y in closed form.
IPLAP_HD void iplap_paste_span_row(const i64* pts, i32 n, i64 y_row, i32 wx, i32 ww, i32* lo,
                                   i32* hi) {
    *lo = 0;
    *hi = -1;
    if (n <= 0) return;
    i32 imin = 0;
    i64 ymin = pts[1], ymax = pts[1];
    for (i32 i = 0; i < n; ++i) {
        const i64 py = pts[2 * i + 1];
        if (py < ymin) {
            ymin = py;
            imin = i;
        }
        ymax = iplap_max_i64(ymax, py);
    }
    if (y_row < ymin || y_row > ymax) return;
    i32 idx[2] = {imin, imin};
    const i32 step[2] = {1, n - 1};
    i64 ye[2] = {ymin, ymin};
    i64 x[2] = {0, 0};
    i64 dx[2] = {0, 0};
    i64 edges = n;
    i64 y = ymin;
    for (;;) {
        for (i32 w = 0; w < 2; ++w) {
            if (y < ye[w]) continue;
            i32 idx0 = idx[w];
            i32 id = (idx0 + step[w]) % n;
            for (;;) {
                const i64 budget = edges;
                edges -= 1;
                if (budget <= 0) break;
                const i64 ty = pts[2 * id + 1];
                if (ty > y) {
                    // `<< 16` of fill.rs, written as a product (a negative left shift is UB in C++17).
                    const i64 xs = pts[2 * idx0] * IPLAP_PASTE_XY_ONE;
                    const i64 xe = pts[2 * id] * IPLAP_PASTE_XY_ONE;
                    const i64 dy = ty - y;
                    dx[w] = ((xe - xs) * 2 + dy) / (2 * dy); // truncating, as in Rust
                    x[w] = xs;
                    ye[w] = ty;
                    idx[w] = id;
                    break;
                }
                idx0 = id;
                id = (id + step[w]) % n;
            }
        }
        if (edges < 0) return; // the Rust loop stops before drawing this row
        // Both walkers now end below y: the next switch is at the nearer end.
        const i64 next = iplap_min_i64(ye[0], ye[1]);
        if (y_row < next) {
            const i64 xa = x[0] + dx[0] * (y_row - y);
            const i64 xb = x[1] + dx[1] * (y_row - y);
            const i64 l = xa > xb ? xb : xa;
            const i64 r = xa > xb ? xa : xb;
            // Arithmetic shift = floor division by 2^16, as Rust's `>>` on i64.
            const i64 x1 = iplap_max_i64((l + IPLAP_PASTE_XY_HALF) >> 16, wx);
            const i64 x2 = iplap_min_i64((r + IPLAP_PASTE_XY_HALF) >> 16, (i64)wx + ww - 1);
            if (x1 <= x2) {
                *lo = (i32)(x1 - wx);
                *hi = (i32)(x2 - wx);
            }
            return;
        }
        x[0] += dx[0] * (next - y);
        x[1] += dx[1] * (next - y);
        y = next;
    }
}

// Whether line8(a, b) (line.rs) plots pixel (x, y). line8 walks left to right; after k steps along
// the major axis its error term is major - 2 minor (k + 1) + 2 major D_k, kept in
// [-2 minor, 2 major - 2 minor), where D_k counts the diagonal steps so far. That pins
// D_k = ceil((2 minor k - major) / (2 major)), so pixel k is (x0 + k, y0 + sy D_k) (shallow) or
// (x0 + D_k, y0 + sy k) (steep), and membership is a range check plus one division.
IPLAP_HD bool iplap_paste_on_line8(i64 ax, i64 ay, i64 bx, i64 by, i64 x, i64 y) {
    if (bx < ax) {
        i64 t = ax;
        ax = bx;
        bx = t;
        t = ay;
        ay = by;
        by = t;
    }
    const i64 dx = bx - ax;
    const i64 dy = by - ay;
    const i64 sy = dy >= 0 ? 1 : -1;
    const i64 ady = dy >= 0 ? dy : -dy;
    const bool steep = ady > dx;
    const i64 major = steep ? ady : dx;
    const i64 minor = steep ? dx : ady;
    const i64 k = steep ? (y - ay) * sy : x - ax;
    if (k < 0 || k > major) return false;
    const i64 d = major == 0 ? 0 : (2 * minor * k + major - 1) / (2 * major);
    return steep ? x == ax + d : y == ay + sy * d;
}

// Mask byte of window pixel (c, r): 255 inside the row's fill span or on any outline edge, else 0.
// `spans` holds the (lo, hi) pairs of iplap_paste_span_row per window row.
IPLAP_HD u8 iplap_paste_mask_px(const i64* pts, i32 n, const i32* spans, i32 wx, i32 wy, i32 c,
                                i32 r) {
    if (c >= spans[2 * r] && c <= spans[2 * r + 1]) return 255;
    const i64 x = (i64)wx + c;
    const i64 y = (i64)wy + r;
    for (i32 i = 0; i < n; ++i) {
        const i32 j = i == 0 ? n - 1 : i - 1; // edge i runs from vertex i - 1 (cyclic) to i
        if (iplap_paste_on_line8(pts[2 * j], pts[2 * j + 1], pts[2 * i], pts[2 * i + 1], x, y)) {
            return 255;
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// cv2.GaussianBlur 21x21 sigma 11 with BORDER_REFLECT_101 (blur.rs `gaussian_blur_region`): a plain
// separable sum per pixel. The frame mask is zero outside the window, so taps that reflect outside
// it read 0; all sums are exact integers, so the result is blur.rs's whatever order it adds in.

IPLAP_HD i64 iplap_paste_reflect101(i64 i, i64 n) {
    if (n == 1) return 0;
    // Loops only when the frame is narrower than the kernel; one step otherwise.
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

// Horizontal sum (<= 255 * 256 = 65280, fits u16) of window pixel (c, r) of `mask`.
IPLAP_HD u16 iplap_paste_blur_h_px(const u8* mask, i32 wx, i32 ww, i32 fw, i32 c, i32 r) {
    const u8* row = mask + (i64)r * ww;
    u32 s = 0;
    for (i32 t = 0; t < IPLAP_PASTE_TAPS; ++t) {
        const i64 fx = iplap_paste_reflect101((i64)wx + c + t - IPLAP_PASTE_RADIUS, fw);
        if (fx >= wx && fx < (i64)wx + ww) s += iplap_paste_gauss(t) * row[fx - wx];
    }
    return (u16)s;
}

// Blurred mask of window pixel (c, r) from the horizontal sums `h`: (sum + 2^15) >> 16.
IPLAP_HD u8 iplap_paste_blur_v_px(const u16* h, i32 wy, i32 ww, i32 wh, i32 fh, i32 c, i32 r) {
    u32 s = 32768;
    for (i32 t = 0; t < IPLAP_PASTE_TAPS; ++t) {
        const i64 fy = iplap_paste_reflect101((i64)wy + r + t - IPLAP_PASTE_RADIUS, fh);
        if (fy >= wy && fy < (i64)wy + wh) s += iplap_paste_gauss(t) * h[(fy - wy) * ww + c];
    }
    s >>= 16;
    return (u8)(s > 255 ? 255 : s);
}

// ---------------------------------------------------------------------------------------------------
// The blend (PasteBack::blend_u8): trunc(p a + o (1 - a)), a = m / 255, in f64 as numpy forms it.

IPLAP_HD u8 iplap_paste_mix(u8 p, u8 o, u8 m) {
    const double a = (double)m / 255.0;
    const double b = 1.0 - a;
    const double v = (double)p * a + (double)o * b;
    return iplap_saturate_u8((i32)v); // v >= 0: truncation is Rust's `as u8`
}

// Frame pixel (x, y) in place. `px` is its first byte, B/G/R at byte offsets ob/og/orr; `m` its
// blurred mask; `p` the resized face's B, G, R there, or null outside the crop rect (the pasted
// frame is the original there). m == 0 leaves the pixel alone; outside the rect so does m == 255
// (o a + o (1 - a) = o exactly); the formula gives the same bytes in both cases, so this only
// mirrors which bytes the Rust code writes.
IPLAP_HD void iplap_paste_blend_px(u8* px, i32 ob, i32 og, i32 orr, const u8* p, u8 m) {
    if (m == 0) return;
    const i32 off[3] = {ob, og, orr};
    if (p) {
        for (i32 c = 0; c < 3; ++c) px[off[c]] = iplap_paste_mix(p[c], px[off[c]], m);
    } else if (m != 255) {
        for (i32 c = 0; c < 3; ++c) px[off[c]] = iplap_paste_mix(px[off[c]], px[off[c]], m);
    }
}

// Window pixel (c, r) of the blend: frame pixel (wx + c, wy + r) lives in `frame` (row stride
// `stride` bytes, `bpp` bytes per pixel) at ((wy + r - oy), (wx + c - ox)): `frame` may be the whole
// frame (ox = oy = 0) or any packed buffer holding a part of it that contains the window and the
// rect, e.g. the RGB window of a YUV frame. `resized` is the face resized to the rect (rw x rh packed
// BGR) whose top-left is frame pixel (rx, ry).
IPLAP_HD void iplap_paste_blend_window_px(u8* frame, i64 stride, i32 bpp, i32 ob, i32 og, i32 orr,
                                          i32 ox, i32 oy, const u8* blurred, i32 wx, i32 wy, i32 ww,
                                          const u8* resized, i32 rx, i32 ry, i32 rw, i32 rh, i32 c,
                                          i32 r) {
    const u8 m = blurred[(i64)r * ww + c];
    if (m == 0) return;
    const i32 x = wx + c;
    const i32 y = wy + r;
    u8* px = frame + (i64)(y - oy) * stride + (i64)(x - ox) * bpp;
    const bool in_rect = x >= rx && x < rx + rw && y >= ry && y < ry + rh;
    const u8* p = in_rect ? resized + ((i64)(y - ry) * rw + (x - rx)) * 3 : (const u8*)0;
    iplap_paste_blend_px(px, ob, og, orr, p, m);
}
