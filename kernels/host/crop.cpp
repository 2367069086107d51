// iplap kernels — crop: the host build's entry points (loops over kernels/crop.cuh), for CPU tests.
#include "crop.cuh"

// The twin of `iplap_crop_face` in kernels/crop.cu: same parameters (coefficients by pointer, as
// the Rust FFI passes them), every output pixel in row-major order, each through the same
// per-pixel function a GPU thread runs. The caller (src/kernels/host/crop.rs) has validated every
// pointer, stride and the rectangle.
extern "C" void iplap_host_crop_face(const u8* plane0, i64 stride0, const u8* plane1, i64 stride1,
                                     const u8* plane2, i64 stride2, i32 format, i32 bpp, i32 off_b, i32 off_g,
                                     i32 off_r, const IplapYuvCoeffs* coeffs, i32 rect_x, i32 rect_y, i32 rect_w,
                                     i32 rect_h, float* out_chw, u8* out_bgr) {
    const IplapCropSource s =
        iplap_crop_source(plane0, stride0, plane1, stride1, plane2, stride2, format, bpp, off_b, off_g, off_r, *coeffs);
    for (i32 dy = 0; dy < IPLAP_CROP_SIZE; ++dy) {
        for (i32 dx = 0; dx < IPLAP_CROP_SIZE; ++dx) {
            iplap_crop_face_at(s, rect_x, rect_y, rect_w, rect_h, dx, dy, out_chw, out_bgr);
        }
    }
}
