// iplap kernels — crop: the device entry points (NVRTC only; never in the host build).
#include "crop.cuh"

// iplap_crop_face: the renderer's face tensor from a crop rectangle of a frame in its native
// layout (src/image/crop.rs `crop_face` then `bgr_to_chw`, bit for bit).
//
// Parameters, in order (the host twin `iplap_host_crop_face` takes the same list, except that
// `coeffs` is a pointer there):
//   const u8* plane0, long long stride0   packed pixels, or the Y plane (stride in bytes)
//   const u8* plane1, long long stride1   I420: U plane; NV12: interleaved UV plane; packed: unused
//   const u8* plane2, long long stride2   I420: V plane; otherwise unused (may be null, stride 0)
//   int format                            0 packed, 1 I420, 2 NV12 (IPLAP_CROP_*)
//   int bpp, int off_b, int off_g, int off_r
//                                         packed only: bytes per pixel (3 or 4) and the byte
//                                         offsets of B, G, R in a pixel (`ChannelOrder::bgr_offsets`)
//   IplapYuvCoeffs coeffs                 by value, 19 f32, no padding (kernels/yuv.cuh; Rust
//                                         `YuvCoefficients`); read for I420/NV12 only
//   int rect_x, int rect_y, int rect_w, int rect_h
//                                         crop rectangle in frame pixels: non-empty and inside the
//                                         frame (the caller validates — `crop_args` in
//                                         src/kernels/host/crop.rs — the kernel does not)
//   float* out_chw                        3 x 128 x 128 f32, planes B, G, R, values v / 255
//   u8* out_bgr                           128 x 128 packed BGR u8 (the `crop_face` image), or null
//                                         to skip it
//
// Launch: one thread per output pixel; any 2D block shape with a grid covering 128 x 128 (threads
// outside it return), e.g. block (32, 8, 1), grid (4, 16, 1). No shared memory.
extern "C" __global__ void iplap_crop_face(const u8* plane0, i64 stride0, const u8* plane1, i64 stride1,
                                           const u8* plane2, i64 stride2, i32 format, i32 bpp, i32 off_b,
                                           i32 off_g, i32 off_r, IplapYuvCoeffs coeffs, i32 rect_x,
                                           i32 rect_y, i32 rect_w, i32 rect_h, float* out_chw, u8* out_bgr) {
    const i32 dx = (i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const i32 dy = (i32)(blockIdx.y * blockDim.y + threadIdx.y);
    if (dx >= IPLAP_CROP_SIZE || dy >= IPLAP_CROP_SIZE) return;
    const IplapCropSource s =
        iplap_crop_source(plane0, stride0, plane1, stride1, plane2, stride2, format, bpp, off_b, off_g, off_r, coeffs);
    iplap_crop_face_at(s, rect_x, rect_y, rect_w, rect_h, dx, dy, out_chw, out_bgr);
}
