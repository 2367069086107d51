// iplap kernels — yuv: the device entry points (NVRTC only; never in the host build).
//
// The GPU twin of `RgbWindow::run` (src/image/yuv.rs) for I420 / NV12 frames, in three launches:
//   1. iplap_yuv_to_rgb_window       YUV window -> packed RGB (and its `before` copy);
//   2. (the renderer blends the face into the RGB window)
//   3. iplap_yuv_writeback_luma      Y of every pixel whose RGB changed;
//      iplap_yuv_writeback_chroma    U, V of every 2 x 2 block with a changed pixel.
// The two write-back kernels touch disjoint planes and only read the RGB buffers, so they may run
// in either order or concurrently. The window (x0, y0, win_w, win_h) must be chroma-aligned:
// `chroma_aligned(region, width, height)` on the host (see kernels/yuv.cuh).
//
// Shared parameters:
//   c                   IplapYuvCoeffs by value: 19 f32, fwd[9], inv[9], y_offset, no padding —
//                       `YuvColour::coefficients()` (`YuvCoefficients`, #[repr(C)]), 76 bytes.
//   y, y_stride         luma plane (device pointer) and its row stride in bytes.
//   u, u_stride,        chroma planes and their strides, sample (cx, cy) at u[cy * u_stride +
//   v, v_stride, c_step cx * c_step]: I420 -> U plane, V plane, c_step 1; NV12 -> uv, uv + 1, the UV
//                       stride for both, c_step 2 (u and v then alias one buffer: not restrict).
//   x0, y0, win_w, win_h the window in frame pixels (chroma-aligned, inside the frame).
//   rgb, rgb_pitch      packed RGB of the window: pixel (i, j) at rgb[j * rgb_pitch + 3 * i].
//   before, before_pitch the window's RGB as converted by kernel 1, same form.
// All sizes, strides and pitches are i32 (>= 0); byte offsets are computed in 64 bits.
#include "yuv.cuh"

// void iplap_yuv_to_rgb_window(IplapYuvCoeffs c,
//     const u8* y, i32 y_stride, const u8* u, i32 u_stride, const u8* v, i32 v_stride, i32 c_step,
//     i32 x0, i32 y0, i32 win_w, i32 win_h,
//     u8* rgb, i32 rgb_pitch, u8* before, i32 before_pitch)
// One thread per window pixel (i, j) = (blockIdx.x * blockDim.x + threadIdx.x,
// blockIdx.y * blockDim.y + threadIdx.y). Any 2D block, e.g. (16, 16, 1); grid
// (ceil(win_w / bx), ceil(win_h / by), 1). `before` may be null (then only `rgb` is written).
extern "C" __global__ void iplap_yuv_to_rgb_window(IplapYuvCoeffs c, const u8* y, i32 y_stride,
                                                   const u8* u, i32 u_stride, const u8* v,
                                                   i32 v_stride, i32 c_step, i32 x0, i32 y0,
                                                   i32 win_w, i32 win_h, u8* rgb, i32 rgb_pitch,
                                                   u8* before, i32 before_pitch) {
    const i32 i = (i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const i32 j = (i32)(blockIdx.y * blockDim.y + threadIdx.y);
    if (i >= win_w || j >= win_h) {
        return;
    }
    iplap_yuv_window_pixel(c, y, y_stride, u, u_stride, v, v_stride, c_step, x0, y0, i, j, rgb,
                           rgb_pitch, before, before_pitch);
}

// void iplap_yuv_writeback_luma(IplapYuvCoeffs c,
//     const u8* rgb, i32 rgb_pitch, const u8* before, i32 before_pitch,
//     i32 x0, i32 y0, i32 win_w, i32 win_h, u8* y, i32 y_stride, u32* written)
// One thread per window pixel (i, j), geometry as iplap_yuv_to_rgb_window. `written` may be null;
// else the number of luma samples written is atomically added to *written (zero it first) — the
// count `RgbWindow::run` returns.
extern "C" __global__ void iplap_yuv_writeback_luma(IplapYuvCoeffs c, const u8* rgb, i32 rgb_pitch,
                                                    const u8* before, i32 before_pitch, i32 x0,
                                                    i32 y0, i32 win_w, i32 win_h, u8* y,
                                                    i32 y_stride, u32* written) {
    const i32 i = (i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const i32 j = (i32)(blockIdx.y * blockDim.y + threadIdx.y);
    if (i >= win_w || j >= win_h) {
        return;
    }
    if (iplap_yuv_writeback_luma_pixel(c, rgb, rgb_pitch, before, before_pitch, x0, y0, i, j, y,
                                       y_stride) &&
        written) {
        atomicAdd(written, 1u);
    }
}

// void iplap_yuv_writeback_chroma(IplapYuvCoeffs c,
//     const u8* rgb, i32 rgb_pitch, const u8* before, i32 before_pitch,
//     i32 x0, i32 y0, i32 win_w, i32 win_h,
//     u8* u, i32 u_stride, u8* v, i32 v_stride, i32 c_step)
// One thread per chroma block (bi, bj) of the window = (blockIdx.x * blockDim.x + threadIdx.x,
// blockIdx.y * blockDim.y + threadIdx.y), bi < ceil(win_w / 2), bj < ceil(win_h / 2). Any 2D
// block, e.g. (16, 16, 1); grid (ceil(ceil(win_w / 2) / bx), ceil(ceil(win_h / 2) / by), 1).
extern "C" __global__ void iplap_yuv_writeback_chroma(IplapYuvCoeffs c, const u8* rgb,
                                                      i32 rgb_pitch, const u8* before,
                                                      i32 before_pitch, i32 x0, i32 y0, i32 win_w,
                                                      i32 win_h, u8* u, i32 u_stride, u8* v,
                                                      i32 v_stride, i32 c_step) {
    const i32 bi = (i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const i32 bj = (i32)(blockIdx.y * blockDim.y + threadIdx.y);
    if (bi >= (win_w + 1) / 2 || bj >= (win_h + 1) / 2) {
        return;
    }
    iplap_yuv_writeback_chroma_block(c, rgb, rgb_pitch, before, before_pitch, x0, y0, win_w, win_h,
                                     bi, bj, u, u_stride, v, v_stride, c_step);
}
