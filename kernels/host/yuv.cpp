// iplap kernels — yuv: the host build's entry points (loops over kernels/yuv.cuh), for CPU tests.
// Each loop visits the elements the matching kernel in kernels/yuv.cu gives one thread each, and
// calls the same per-element function; parameters mean what they mean there. The callers
// (src/kernels/host/yuv.rs) have checked every size, stride and buffer length.
#include "yuv.cuh"

extern "C" void iplap_host_yuv_to_rgb_window(const IplapYuvCoeffs* c, const u8* y, i32 y_stride,
                                             const u8* u, i32 u_stride, const u8* v, i32 v_stride,
                                             i32 c_step, i32 x0, i32 y0, i32 win_w, i32 win_h,
                                             u8* rgb, i32 rgb_pitch, u8* before, i32 before_pitch) {
    for (i32 j = 0; j < win_h; ++j) {
        for (i32 i = 0; i < win_w; ++i) {
            iplap_yuv_window_pixel(*c, y, y_stride, u, u_stride, v, v_stride, c_step, x0, y0, i, j,
                                   rgb, rgb_pitch, before, before_pitch);
        }
    }
}

// Returns the number of luma samples written (the device kernel's optional `written` counter).
extern "C" u32 iplap_host_yuv_writeback_luma(const IplapYuvCoeffs* c, const u8* rgb, i32 rgb_pitch,
                                             const u8* before, i32 before_pitch, i32 x0, i32 y0,
                                             i32 win_w, i32 win_h, u8* y, i32 y_stride) {
    u32 written = 0;
    for (i32 j = 0; j < win_h; ++j) {
        for (i32 i = 0; i < win_w; ++i) {
            if (iplap_yuv_writeback_luma_pixel(*c, rgb, rgb_pitch, before, before_pitch, x0, y0, i,
                                               j, y, y_stride)) {
                written += 1;
            }
        }
    }
    return written;
}

extern "C" void iplap_host_yuv_writeback_chroma(const IplapYuvCoeffs* c, const u8* rgb,
                                                i32 rgb_pitch, const u8* before, i32 before_pitch,
                                                i32 x0, i32 y0, i32 win_w, i32 win_h, u8* u,
                                                i32 u_stride, u8* v, i32 v_stride, i32 c_step) {
    for (i32 bj = 0; bj < (win_h + 1) / 2; ++bj) {
        for (i32 bi = 0; bi < (win_w + 1) / 2; ++bi) {
            iplap_yuv_writeback_chroma_block(*c, rgb, rgb_pitch, before, before_pitch, x0, y0,
                                             win_w, win_h, bi, bj, u, u_stride, v, v_stride,
                                             c_step);
        }
    }
}
