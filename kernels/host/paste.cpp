// iplap kernels — paste: the host build's entry points (loops over kernels/paste.cuh), for CPU tests.
//
// Each entry point mirrors one kernel of kernels/paste.cu with the same parameters: the loops
// visit the elements a kernel's threads would, in any order (no element depends on another of the
// same launch), and call the same per-element function. No maths lives here.
// Callers (src/kernels/host/paste.rs) validate every size, stride and buffer length first.
#include "paste.cuh"

extern "C" {

void iplap_host_paste_face_to_u8(const float* chw, u8* out) {
    for (i32 i = 0; i < IPLAP_PASTE_PLANE; ++i) iplap_paste_face_px(chw, out, i);
}

void iplap_host_paste_resize(const u8* src, i32 sw, i32 sh, i64 sstride, i32 sbpp, i32 sb, i32 sg,
                             i32 sr, u8* dst, i64 dstride, i32 dbpp, i32 db, i32 dg, i32 dr,
                             i32 dx0, i32 dy0, i32 dw, i32 dh) {
    for (i32 y = 0; y < dh; ++y) {
        for (i32 x = 0; x < dw; ++x) {
            u8 v[3];
            iplap_paste_resize_px(src, sw, sh, sstride, sbpp, sb, sg, sr, dw, dh, x, y, v);
            u8* px = dst + (i64)(dy0 + y) * dstride + (i64)(dx0 + x) * dbpp;
            px[db] = v[0];
            px[dg] = v[1];
            px[dr] = v[2];
        }
    }
}

// The launcher's CPU step: returns 1 and the window, or 0 when the polygon misses the frame.
i32 iplap_host_paste_window(const i64* pts, i32 n, i32 fw, i32 fh, i32* out) {
    return iplap_paste_window(pts, n, fw, fh, &out[0], &out[1], &out[2], &out[3]);
}

void iplap_host_paste_spans(const i64* pts, i32 n, i32 wx, i32 wy, i32 ww, i32 wh, i32* spans) {
    for (i32 r = 0; r < wh; ++r) {
        iplap_paste_span_row(pts, n, (i64)wy + r, wx, ww, &spans[2 * r], &spans[2 * r + 1]);
    }
}

void iplap_host_paste_mask(const i64* pts, i32 n, const i32* spans, i32 wx, i32 wy, i32 ww, i32 wh,
                           u8* mask) {
    for (i32 r = 0; r < wh; ++r) {
        for (i32 c = 0; c < ww; ++c) {
            mask[(i64)r * ww + c] = iplap_paste_mask_px(pts, n, spans, wx, wy, c, r);
        }
    }
}

void iplap_host_paste_blur_h(const u8* mask, i32 wx, i32 ww, i32 wh, i32 fw, u16* hsum) {
    for (i32 r = 0; r < wh; ++r) {
        for (i32 c = 0; c < ww; ++c) {
            hsum[(i64)r * ww + c] = iplap_paste_blur_h_px(mask, wx, ww, fw, c, r);
        }
    }
}

void iplap_host_paste_blur_v(const u16* hsum, i32 wy, i32 ww, i32 wh, i32 fh, u8* blurred) {
    for (i32 r = 0; r < wh; ++r) {
        for (i32 c = 0; c < ww; ++c) {
            blurred[(i64)r * ww + c] = iplap_paste_blur_v_px(hsum, wy, ww, wh, fh, c, r);
        }
    }
}

void iplap_host_paste_blend(u8* frame, i64 stride, i32 bpp, i32 ob, i32 og, i32 orr, i32 ox, i32 oy,
                            const u8* blurred, i32 wx, i32 wy, i32 ww, i32 wh, const u8* resized,
                            i32 rx, i32 ry, i32 rw, i32 rh) {
    for (i32 r = 0; r < wh; ++r) {
        for (i32 c = 0; c < ww; ++c) {
            iplap_paste_blend_window_px(frame, stride, bpp, ob, og, orr, ox, oy, blurred, wx, wy, ww,
                                        resized, rx, ry, rw, rh, c, r);
        }
    }
}

} // extern "C"
