// iplap kernels — paste: the device entry points (NVRTC only; never in the host build).
//
// The paste-back of PasteBack::blend (src/image/paste.rs) as a chain of launches on one stream:
//
//   face_to_u8   generated f32 CHW face          -> face_u8   (128 x 128 packed BGR)
//   resize       face_u8                          -> resized   (rw x rh packed BGR), or straight into
//                                                    the frame for the unblended paste (paste_face)
//   spans        polygon                          -> spans     (2 i32 per window row)
//   mask         polygon, spans                   -> mask      (ww x wh u8, 0 / 255)
//   blur_h       mask                             -> hsum      (ww x wh u16)
//   blur_v       hsum                             -> blurred   (ww x wh u8)
//   blend        blurred, resized                 -> frame, in place
//
// The window (wx, wy, ww, wh) is computed on the CPU from the polygon (host entry point
// iplap_host_paste_window / Rust `kernels::host::paste::polygon_window`); with no window (polygon
// entirely off the frame) the blend leaves the frame as it is and nothing is launched. `pts` is a
// device buffer of n (x, y) vertex pairs as i64 (2 n values). Sizes in pixels, strides in bytes.
//
// Geometry: every kernel is bounds-checked and indexes with blockIdx * blockDim + threadIdx, so
// any covering grid works; the recommended one is given per kernel. 2D kernels: block (32, 8, 1),
// grid (ceil(W / 32), ceil(H / 8), 1) for an W x H output. 1D kernels: block (128, 1, 1),
// grid (ceil(N / 128), 1, 1).
#include "paste.cuh"

__device__ __forceinline__ i32 iplap_paste_gx() { return (i32)(blockIdx.x * blockDim.x + threadIdx.x); }
__device__ __forceinline__ i32 iplap_paste_gy() { return (i32)(blockIdx.y * blockDim.y + threadIdx.y); }

// iplap_paste_face_to_u8(const float* chw, u8* out)
//   chw: 3 x 128 x 128 f32 (BGR planes); out: 128 x 128 x 3 u8 packed BGR.
//   2D over 128 x 128: block (32, 8, 1), grid (4, 16, 1).
extern "C" __global__ void iplap_paste_face_to_u8(const float* chw, u8* out) {
    const i32 x = iplap_paste_gx();
    const i32 y = iplap_paste_gy();
    if (x >= IPLAP_PASTE_FACE || y >= IPLAP_PASTE_FACE) return;
    iplap_paste_face_px(chw, out, y * IPLAP_PASTE_FACE + x);
}

// iplap_paste_resize(const u8* src, i32 sw, i32 sh, i64 sstride, i32 sbpp, i32 sb, i32 sg, i32 sr,
//                    u8* dst, i64 dstride, i32 dbpp, i32 db, i32 dg, i32 dr, i32 dx0, i32 dy0,
//                    i32 dw, i32 dh)
//   The whole src image (sw x sh, B/G/R at byte offsets sb/sg/sr of each sbpp-byte pixel) resized
//   to dw x dh and written to dst pixels (dx0 .. dx0 + dw, dy0 .. dy0 + dh), B/G/R at db/dg/dr;
//   other bytes of dst are not touched. The blend's scratch: dst = resized, dstride = 3 dw, dbpp 3,
//   offsets 0/1/2, dx0 = dy0 = 0. paste_face: dst = frame buffer, (dx0, dy0) = rect origin in that
//   buffer. src and dst must not overlap.
//   2D over dw x dh: block (32, 8, 1), grid (ceil(dw / 32), ceil(dh / 8), 1).
extern "C" __global__ void iplap_paste_resize(const u8* src, i32 sw, i32 sh, i64 sstride, i32 sbpp,
                                              i32 sb, i32 sg, i32 sr, u8* dst, i64 dstride, i32 dbpp,
                                              i32 db, i32 dg, i32 dr, i32 dx0, i32 dy0, i32 dw,
                                              i32 dh) {
    const i32 x = iplap_paste_gx();
    const i32 y = iplap_paste_gy();
    if (x >= dw || y >= dh) return;
    u8 v[3];
    iplap_paste_resize_px(src, sw, sh, sstride, sbpp, sb, sg, sr, dw, dh, x, y, v);
    u8* px = dst + (i64)(dy0 + y) * dstride + (i64)(dx0 + x) * dbpp;
    px[db] = v[0];
    px[dg] = v[1];
    px[dr] = v[2];
}

// iplap_paste_spans(const i64* pts, i32 n, i32 wx, i32 wy, i32 ww, i32 wh, i32* spans)
//   spans[2 r], spans[2 r + 1]: the fill span of window row r in window columns (lo > hi: none).
//   1D over wh rows: block (128, 1, 1), grid (ceil(wh / 128), 1, 1).
extern "C" __global__ void iplap_paste_spans(const i64* pts, i32 n, i32 wx, i32 wy, i32 ww, i32 wh,
                                             i32* spans) {
    const i32 r = iplap_paste_gx();
    if (r >= wh) return;
    iplap_paste_span_row(pts, n, (i64)wy + r, wx, ww, &spans[2 * r], &spans[2 * r + 1]);
}

// iplap_paste_mask(const i64* pts, i32 n, const i32* spans, i32 wx, i32 wy, i32 ww, i32 wh,
//                  u8* mask)
//   mask: ww x wh packed, every byte written (0 or 255). Runs after iplap_paste_spans.
//   2D over ww x wh: block (32, 8, 1), grid (ceil(ww / 32), ceil(wh / 8), 1).
extern "C" __global__ void iplap_paste_mask(const i64* pts, i32 n, const i32* spans, i32 wx, i32 wy,
                                            i32 ww, i32 wh, u8* mask) {
    const i32 c = iplap_paste_gx();
    const i32 r = iplap_paste_gy();
    if (c >= ww || r >= wh) return;
    mask[(i64)r * ww + c] = iplap_paste_mask_px(pts, n, spans, wx, wy, c, r);
}

// iplap_paste_blur_h(const u8* mask, i32 wx, i32 ww, i32 wh, i32 fw, u16* hsum)
//   hsum: ww x wh packed horizontal sums; fw is the frame width (the reflection border).
//   2D over ww x wh: block (32, 8, 1), grid (ceil(ww / 32), ceil(wh / 8), 1).
extern "C" __global__ void iplap_paste_blur_h(const u8* mask, i32 wx, i32 ww, i32 wh, i32 fw,
                                              u16* hsum) {
    const i32 c = iplap_paste_gx();
    const i32 r = iplap_paste_gy();
    if (c >= ww || r >= wh) return;
    hsum[(i64)r * ww + c] = iplap_paste_blur_h_px(mask, wx, ww, fw, c, r);
}

// iplap_paste_blur_v(const u16* hsum, i32 wy, i32 ww, i32 wh, i32 fh, u8* blurred)
//   blurred: ww x wh packed; fh is the frame height. Runs after iplap_paste_blur_h.
//   2D over ww x wh: block (32, 8, 1), grid (ceil(ww / 32), ceil(wh / 8), 1).
extern "C" __global__ void iplap_paste_blur_v(const u16* hsum, i32 wy, i32 ww, i32 wh, i32 fh,
                                              u8* blurred) {
    const i32 c = iplap_paste_gx();
    const i32 r = iplap_paste_gy();
    if (c >= ww || r >= wh) return;
    blurred[(i64)r * ww + c] = iplap_paste_blur_v_px(hsum, wy, ww, wh, fh, c, r);
}

// iplap_paste_blend(u8* frame, i64 stride, i32 bpp, i32 ob, i32 og, i32 orr, i32 ox, i32 oy,
//                   const u8* blurred, i32 wx, i32 wy, i32 ww, i32 wh,
//                   const u8* resized, i32 rx, i32 ry, i32 rw, i32 rh)
//   In place on `frame`, a packed buffer (stride bytes per row, bpp = 3 or 4 bytes per pixel, B/G/R
//   at byte offsets ob/og/orr) whose pixel (0, 0) is frame pixel (ox, oy): the whole frame
//   (ox = oy = 0) or e.g. the RGB window of a YUV frame; it must hold the window and the rect.
//   resized: rw x rh packed BGR from iplap_paste_resize, top-left at frame pixel (rx, ry).
//   Bytes other than B/G/R (x, alpha, padding) are never written.
//   2D over ww x wh: block (32, 8, 1), grid (ceil(ww / 32), ceil(wh / 8), 1).
extern "C" __global__ void iplap_paste_blend(u8* frame, i64 stride, i32 bpp, i32 ob, i32 og,
                                             i32 orr, i32 ox, i32 oy, const u8* blurred, i32 wx,
                                             i32 wy, i32 ww, i32 wh, const u8* resized, i32 rx,
                                             i32 ry, i32 rw, i32 rh) {
    const i32 c = iplap_paste_gx();
    const i32 r = iplap_paste_gy();
    if (c >= ww || r >= wh) return;
    iplap_paste_blend_window_px(frame, stride, bpp, ob, og, orr, ox, oy, blurred, wx, wy, ww,
                                resized, rx, ry, rw, rh, c, r);
}
