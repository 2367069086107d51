//! Host build of `kernels/sketch.cuh`: the batched twin of [`crate::image::SketchRasteriser`]
//! (canvas, LINE_8 connections, `f64` INTER_LINEAR to 128 x 128, /255 scaling) that the GPU runs.
//!
//! [`SketchLayout`] is the one place the batch geometry is decided (canvas sizes through
//! [`canvas_size`], the canvas stride, the sketch count limit); the GPU launcher uses it too, and
//! [`CONNECTION_TABLE`] is the connection list both builds are given, derived from
//! [`CONNECTION_COLUMNS`] so the table has a single definition.

use crate::face::indices::{CONNECTION_COLUMNS, FULL_LEN};
use crate::image::{ImageError, SketchScaling, canvas_size};
use crate::sizes::FACE_SIZE;

/// Values in one output sketch: 3 x 128 x 128 `f32` (CHW, three equal planes).
pub const SKETCH_VALUES: usize = 3 * FACE_SIZE * FACE_SIZE;

/// Most sketches in one batch: the kernels put the sketch index in `gridDim.y` / `gridDim.z`,
/// whose CUDA limit is 65535.
pub const MAX_SKETCHES: usize = 65_535;

/// Number of connections (edges) in [`CONNECTION_TABLE`].
pub const CONNECTIONS: usize = CONNECTION_COLUMNS.len();

/// [`CONNECTION_COLUMNS`] flattened to `i32` pairs, the `connections` argument of both builds
/// (upload this to the device). Every column is below [`FULL_LEN`] by construction of
/// `CONNECTION_COLUMNS`, which the kernels rely on to index the landmarks.
pub const CONNECTION_TABLE: [i32; 2 * CONNECTIONS] = {
    let mut out = [0i32; 2 * CONNECTIONS];
    let mut i = 0;
    while i < CONNECTIONS {
        assert!(CONNECTION_COLUMNS[i].0 < FULL_LEN && CONNECTION_COLUMNS[i].1 < FULL_LEN);
        out[2 * i] = CONNECTION_COLUMNS[i].0 as i32;
        out[2 * i + 1] = CONNECTION_COLUMNS[i].1 as i32;
        i += 1;
    }
    out
};

unsafe extern "C" {
    fn iplap_host_sketch_draw(
        landmarks: *const f32,
        connections: *const i32,
        n_connections: i32,
        canvas_wh: *const i32,
        canvases: *mut u8,
        canvas_stride: u64,
        n_sketches: i32,
    );
    fn iplap_host_sketch_resize(
        canvases: *const u8,
        canvas_stride: u64,
        canvas_wh: *const i32,
        n_sketches: i32,
        scaling: i32,
        out: *mut f32,
    );
    fn iplap_host_sketch_constants(out: *mut i32);
}

/// The `scaling` argument of the kernels for `scaling` (`IPLAP_SKETCH_REFERENCE` / `_TARGET`).
pub fn scaling_code(scaling: SketchScaling) -> i32 {
    match scaling {
        SketchScaling::Reference => 0,
        SketchScaling::Target => 1,
    }
}

/// The constants `kernels/sketch.cuh` was compiled with: points per set, output side, line colour,
/// Reference code, Target code. Tests compare them with the Rust definitions they duplicate.
pub fn header_constants() -> [i32; 5] {
    let mut out = [0i32; 5];
    // SAFETY: the function writes exactly five i32 into `out`.
    unsafe { iplap_host_sketch_constants(out.as_mut_ptr()) };
    out
}

/// Geometry of a batch of sketches: each canvas's `(w, h)` and the byte stride between canvases
/// in the one canvas buffer (sketch `s` at `s * canvas_stride`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SketchLayout {
    canvas_wh: Vec<i32>,
    canvas_stride: usize,
}

impl SketchLayout {
    /// Layout for crops of `crop_sizes[s] = (crop_w, crop_h)` (the argument order of
    /// [`crate::image::SketchRasteriser::render`]). Errors for an empty batch or more than
    /// [`MAX_SKETCHES`] (no valid launch grid), a crop [`canvas_size`] rejects (zero side,
    /// canvas over 2^26 pixels), or a canvas buffer whose size overflows.
    pub fn new(crop_sizes: &[(usize, usize)]) -> Result<Self, ImageError> {
        if crop_sizes.is_empty() || crop_sizes.len() > MAX_SKETCHES {
            return Err(ImageError::Layout("sketch batch needs 1..=65535 sketches"));
        }
        let mut canvas_wh = Vec::with_capacity(2 * crop_sizes.len());
        let mut canvas_stride = 0usize;
        for &(cw, ch) in crop_sizes {
            let (h, w) = canvas_size(cw, ch)?;
            // canvas_size caps w * h at 2^26, so each side fits i32 and the product cannot wrap.
            let (wi, hi) = (i32::try_from(w), i32::try_from(h));
            let (Ok(wi), Ok(hi)) = (wi, hi) else {
                return Err(ImageError::BadCropSize {
                    width: cw,
                    height: ch,
                });
            };
            canvas_wh.extend([wi, hi]);
            canvas_stride = canvas_stride.max(w * h);
        }
        canvas_stride
            .checked_mul(crop_sizes.len())
            .ok_or(ImageError::Layout("sketch canvases too large"))?;
        Ok(Self {
            canvas_wh,
            canvas_stride,
        })
    }

    /// Sketches in the batch (S).
    pub fn len(&self) -> usize {
        self.canvas_wh.len() / 2
    }

    /// Always false: a layout holds at least one sketch.
    pub fn is_empty(&self) -> bool {
        self.canvas_wh.is_empty()
    }

    /// `(w, h)` of every canvas, flattened (the `canvas_wh` argument, S x 2 `i32`).
    pub fn canvas_wh(&self) -> &[i32] {
        &self.canvas_wh
    }

    /// Bytes between consecutive canvases (the `canvas_stride` argument): the largest `w * h`.
    pub fn canvas_stride(&self) -> usize {
        self.canvas_stride
    }

    /// Bytes of the whole canvas buffer (S x stride); cannot overflow ([`SketchLayout::new`]).
    pub fn canvas_bytes(&self) -> usize {
        self.canvas_stride * self.len()
    }

    /// `f32` values of the output buffer (S x 3 x 128 x 128).
    pub fn output_len(&self) -> usize {
        SKETCH_VALUES * self.len()
    }

    pub(crate) fn n_sketches(&self) -> i32 {
        // At most MAX_SKETCHES by construction.
        self.len() as i32
    }
}

/// The draw step on the host: zeroes `canvases` (the device launcher memsets instead) and draws
/// the [`CONNECTION_TABLE`] edges of every sketch, as `iplap_sketch_draw` does. `landmarks[s]` is
/// sketch `s`'s full 2 x 131 set; `canvases` must hold [`SketchLayout::canvas_bytes`] bytes.
/// Errors when a length disagrees with the layout (checked because the C side trusts them).
pub fn draw_canvases(
    landmarks: &[[[f32; FULL_LEN]; 2]],
    layout: &SketchLayout,
    canvases: &mut [u8],
) -> Result<(), ImageError> {
    check_len(layout.len(), landmarks.len())?;
    check_len(layout.canvas_bytes(), canvases.len())?;
    canvases.fill(0);
    // SAFETY: `landmarks` is S x 2 x FULL_LEN contiguous f32; the table's columns are < FULL_LEN;
    // every canvas_wh pair came from canvas_size with w * h <= canvas_stride, and `canvases` holds
    // S x canvas_stride bytes, so every pixel a line plots (inside its w x h canvas) is in bounds.
    unsafe {
        iplap_host_sketch_draw(
            landmarks.as_ptr().cast(),
            CONNECTION_TABLE.as_ptr(),
            CONNECTIONS as i32,
            layout.canvas_wh.as_ptr(),
            canvases.as_mut_ptr(),
            layout.canvas_stride as u64,
            layout.n_sketches(),
        );
    }
    Ok(())
}

/// The resize step on the host, as `iplap_sketch_resize`: every drawn canvas to a 3 x 128 x 128
/// `f32` sketch in `out` (S of them, [`SketchLayout::output_len`] values), scaled as `scaling`
/// says. Errors when a length disagrees with the layout.
pub fn resize_canvases(
    canvases: &[u8],
    layout: &SketchLayout,
    scaling: SketchScaling,
    out: &mut [f32],
) -> Result<(), ImageError> {
    check_len(layout.canvas_bytes(), canvases.len())?;
    check_len(layout.output_len(), out.len())?;
    // SAFETY: taps index rows < h and columns < w of each w x h canvas, which lies inside its
    // canvas_stride bytes of `canvases`; `out` holds S x 3 x 128 x 128 f32.
    unsafe {
        iplap_host_sketch_resize(
            canvases.as_ptr(),
            layout.canvas_stride as u64,
            layout.canvas_wh.as_ptr(),
            layout.n_sketches(),
            scaling_code(scaling),
            out.as_mut_ptr(),
        );
    }
    Ok(())
}

/// Both steps: the batched equivalent of calling [`crate::image::SketchRasteriser::render`] for
/// each `(landmarks[s], crop_sizes[s])`, into `out` (S x 3 x 128 x 128 `f32`). Allocates the
/// canvas buffer; for tests and the GPU check's reference, not the per-frame path.
pub fn render_sketches(
    landmarks: &[[[f32; FULL_LEN]; 2]],
    crop_sizes: &[(usize, usize)],
    scaling: SketchScaling,
    out: &mut [f32],
) -> Result<(), ImageError> {
    let layout = SketchLayout::new(crop_sizes)?;
    check_len(layout.output_len(), out.len())?;
    let mut canvases = vec![0u8; layout.canvas_bytes()];
    draw_canvases(landmarks, &layout, &mut canvases)?;
    resize_canvases(&canvases, &layout, scaling, out)
}

fn check_len(expected: usize, got: usize) -> Result<(), ImageError> {
    if expected == got {
        Ok(())
    } else {
        Err(ImageError::BadLength { expected, got })
    }
}
