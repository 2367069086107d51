// iplap kernels — sketch: the device entry points (NVRTC only; never in the host build).
// The maths is in sketch.cuh (see its header comment for the batch layout); the host twin
// (kernels/host/sketch.cpp) loops over the same per-element functions the same way.
#include "sketch.cuh"

// iplap_sketch_draw(const float* landmarks, const i32* connections, i32 n_connections,
//                   const i32* canvas_wh, u8* canvases, u64 canvas_stride, i32 n_sketches)
//   landmarks      S x 2 x 131 f32: per sketch, row 0 = x, row 1 = y (crop-normalised).
//   connections    n_connections x 2 i32: point columns (each in 0..131) of every edge; upload
//                  `iplap::kernels::host::sketch::CONNECTION_TABLE` (n_connections = 125).
//   canvas_wh      S x 2 i32: (w, h) of each canvas, from Rust's `canvas_size` (`SketchLayout`).
//   canvases       S canvases, sketch s at byte s * canvas_stride, w x h bytes each, packed rows;
//                  MUST be zeroed before the launch (cuMemsetD8): only line pixels are written.
//   canvas_stride  bytes between canvases, >= max w * h of the batch.
//   n_sketches     S >= 1.
// Launch: block (128, 1, 1); grid (ceil(n_connections / 128), S, 1). One thread per
// (connection, sketch) walks that edge's line; overlapping lines write the same value (224).
// A line is at most max(w, h) pixels (the Rust layout caps w * h at 2^26).
extern "C" __global__ void iplap_sketch_draw(const float* landmarks, const i32* connections,
                                             i32 n_connections, const i32* canvas_wh,
                                             u8* canvases, u64 canvas_stride, i32 n_sketches) {
    const i32 i = (i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const i32 s = (i32)blockIdx.y;
    if (i >= n_connections || s >= n_sketches) {
        return;
    }
    iplap_sketch_draw_connection(landmarks + (i64)s * 2 * IPLAP_SKETCH_POINTS, connections, i,
                                 canvases + (u64)s * canvas_stride, canvas_wh[2 * s],
                                 canvas_wh[2 * s + 1]);
}

// iplap_sketch_resize(const u8* canvases, u64 canvas_stride, const i32* canvas_wh,
//                     i32 n_sketches, i32 scaling, float* out)
//   canvases, canvas_stride, canvas_wh, n_sketches: as for iplap_sketch_draw (after it ran).
//   scaling        0 = Reference (f32(v / 255.0), f64 division), 1 = Target (f32(v) / 255.0f).
//   out            S x 3 x 128 x 128 f32: sketch s at element s * 3 * 128 * 128, CHW, three
//                  equal planes.
// Launch: block (16, 16, 1); grid (8, 8, S). One thread per output pixel per sketch (it writes
// the pixel in all three planes). Uses f64 (needed for bit-exactness; the work is tiny).
extern "C" __global__ void iplap_sketch_resize(const u8* canvases, u64 canvas_stride,
                                               const i32* canvas_wh, i32 n_sketches, i32 scaling,
                                               float* out) {
    const i32 x = (i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const i32 y = (i32)(blockIdx.y * blockDim.y + threadIdx.y);
    const i32 s = (i32)blockIdx.z;
    if (x >= IPLAP_SKETCH_SIZE || y >= IPLAP_SKETCH_SIZE || s >= n_sketches) {
        return;
    }
    iplap_sketch_resize_pixel(canvases + (u64)s * canvas_stride, canvas_wh[2 * s],
                              canvas_wh[2 * s + 1], scaling, x, y,
                              out + (i64)s * 3 * IPLAP_SKETCH_SIZE * IPLAP_SKETCH_SIZE);
}
