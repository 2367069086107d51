// iplap kernels — sketch: the host build's entry points (loops over kernels/sketch.cuh), for CPU
// tests. Each loop visits the same (element, sketch) pairs as the matching kernel in sketch.cu and
// calls the same per-element function; the layout and preconditions are documented there, and
// `src/kernels/host/sketch.rs` checks them before calling.
#include "sketch.cuh"

extern "C" {

// Twin of iplap_sketch_draw. `canvases` must be zeroed by the caller, as on the device.
void iplap_host_sketch_draw(const float* landmarks, const i32* connections, i32 n_connections,
                            const i32* canvas_wh, u8* canvases, u64 canvas_stride,
                            i32 n_sketches) {
    for (i32 s = 0; s < n_sketches; ++s) {
        for (i32 i = 0; i < n_connections; ++i) {
            iplap_sketch_draw_connection(landmarks + (i64)s * 2 * IPLAP_SKETCH_POINTS,
                                         connections, i, canvases + (u64)s * canvas_stride,
                                         canvas_wh[2 * s], canvas_wh[2 * s + 1]);
        }
    }
}

// Twin of iplap_sketch_resize.
void iplap_host_sketch_resize(const u8* canvases, u64 canvas_stride, const i32* canvas_wh,
                              i32 n_sketches, i32 scaling, float* out) {
    for (i32 s = 0; s < n_sketches; ++s) {
        for (i32 y = 0; y < IPLAP_SKETCH_SIZE; ++y) {
            for (i32 x = 0; x < IPLAP_SKETCH_SIZE; ++x) {
                iplap_sketch_resize_pixel(
                    canvases + (u64)s * canvas_stride, canvas_wh[2 * s], canvas_wh[2 * s + 1],
                    scaling, x, y, out + (i64)s * 3 * IPLAP_SKETCH_SIZE * IPLAP_SKETCH_SIZE);
            }
        }
    }
}

// The header's constants, so the Rust side can check they agree with its own definitions:
// out[0] points per set, out[1] output side, out[2] colour, out[3] Reference code, out[4] Target.
void iplap_host_sketch_constants(i32* out) {
    out[0] = IPLAP_SKETCH_POINTS;
    out[1] = IPLAP_SKETCH_SIZE;
    out[2] = IPLAP_SKETCH_COLOUR;
    out[3] = IPLAP_SKETCH_REFERENCE;
    out[4] = IPLAP_SKETCH_TARGET;
}

}  // extern "C"
