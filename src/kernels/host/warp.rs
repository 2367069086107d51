//! Host build of `kernels/warp.cuh`: the GPU twin of [`WarpAccumulator`], run on the CPU through
//! the same per-thread functions the device kernels call, with the device's thread layout.
//!
//! [`HostWarpAccumulator`] mirrors the device protocol: zeroed sums, one `add` per chunk of
//! references (in order; the device runs `iplap_warp_accumulate_128` and `_64` per chunk), then
//! `finish` (`iplap_warp_finish`). The C side indexes raw pointers over fixed 128 × 128 / 64 × 64
//! shapes, so every wrapper checks each buffer's length against the reference count first: a
//! wrong size is a [`WarpError`], never an out-of-bounds access.
//!
//! [`WarpAccumulator`]: crate::warp::WarpAccumulator

use crate::sizes::{FACE_SIZE, HALF_SIZE};
use crate::warp::{
    H1_CHANNELS, H2_CHANNELS, IMG_CHANNELS, WarpChunk, WarpError, WarpOutput, WarpSums,
};
use ndarray::Array4;

unsafe extern "C" {
    fn iplap_host_warp_accumulate_128(
        flow: *const f32,
        weight: *const f32,
        h1: *const f32,
        ref_img: *const f32,
        n: i32,
        acc_h1: *mut f32,
        acc_ref: *mut f32,
        denom: *mut f32,
    );
    fn iplap_host_warp_accumulate_64(
        flow: *const f32,
        weight: *const f32,
        h2: *const f32,
        n: i32,
        acc_h2: *mut f32,
    );
    fn iplap_host_warp_finish(
        acc_h1: *const f32,
        acc_ref: *const f32,
        acc_h2: *const f32,
        denom: *const f32,
        out_h1: *mut f32,
        out_ref: *mut f32,
        out_h2: *mut f32,
    );
}

/// Running sums of the device protocol on the host: feed chunks with [`add`](Self::add) (views) or
/// [`add_slices`](Self::add_slices) (the contiguous NCHW buffers the device takes), then
/// [`finish`](Self::finish). Same results, bit for bit, as [`crate::warp::WarpAccumulator`].
#[derive(Debug, Clone)]
pub struct HostWarpAccumulator {
    /// The same sums as the Rust accumulator's, at the sizes the C loops index.
    sums: WarpSums,
}

impl Default for HostWarpAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl HostWarpAccumulator {
    /// Zeroed sums, as the device's buffers are before a frame's first chunk.
    pub fn new() -> Self {
        Self {
            sums: WarpSums::new(),
        }
    }

    /// Number of references added so far.
    pub fn count(&self) -> usize {
        self.sums.count()
    }

    /// Clears the sums for the next frame (the device's memset).
    pub fn reset(&mut self) {
        self.sums.reset();
    }

    /// Adds a chunk given as views (any strides: a strided view is copied to standard layout
    /// first, as the Rust accumulator does); shapes are checked by
    /// [`WarpChunk::check_shapes`], as [`WarpAccumulator::add`] checks them.
    ///
    /// [`WarpAccumulator::add`]: crate::warp::WarpAccumulator::add
    pub fn add(&mut self, chunk: &WarpChunk<'_>) -> Result<(), WarpError> {
        let n = chunk.check_shapes()?;
        let flow = chunk.flow.as_standard_layout();
        let weight = chunk.weight.as_standard_layout();
        let h1 = chunk.h1.as_standard_layout();
        let h2 = chunk.h2.as_standard_layout();
        let ref_img = chunk.ref_img.as_standard_layout();
        // `as_standard_layout` is contiguous, so `as_slice` is `Some`; were it not, the empty
        // fallback would fail the length checks instead of being read.
        self.add_slices(
            n,
            flow.as_slice().unwrap_or(&[]),
            weight.as_slice().unwrap_or(&[]),
            h1.as_slice().unwrap_or(&[]),
            h2.as_slice().unwrap_or(&[]),
            ref_img.as_slice().unwrap_or(&[]),
        )
    }

    /// Adds `n` references given as the contiguous NCHW buffers the device kernels take: flow
    /// `(n, 2, 128, 128)`, weight `(n, 1, 128, 128)`, h1 `(n, 32, 128, 128)`, h2
    /// `(n, 256, 64, 64)`, ref_img `(n, 3, 128, 128)`. Each length must be exactly that, since the
    /// C side reads that many values; `n` must fit the kernels' `int`.
    pub fn add_slices(
        &mut self,
        n: usize,
        flow: &[f32],
        weight: &[f32],
        h1: &[f32],
        h2: &[f32],
        ref_img: &[f32],
    ) -> Result<(), WarpError> {
        let n_c = check_chunk(
            n,
            [flow.len(), weight.len(), h1.len(), h2.len(), ref_img.len()],
        )?;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: every input holds exactly the n references the C loops read (checked above), and
        // the sums have the fixed sizes `WarpSums::new` gave them (never resized); the output
        // buffers are distinct `Vec`s, none aliasing an input.
        unsafe {
            iplap_host_warp_accumulate_128(
                flow.as_ptr(),
                weight.as_ptr(),
                h1.as_ptr(),
                ref_img.as_ptr(),
                n_c,
                self.sums.acc_h1.as_mut_ptr(),
                self.sums.acc_ref.as_mut_ptr(),
                self.sums.denom.as_mut_ptr(),
            );
            iplap_host_warp_accumulate_64(
                flow.as_ptr(),
                weight.as_ptr(),
                h2.as_ptr(),
                n_c,
                self.sums.acc_h2.as_mut_ptr(),
            );
        }
        self.sums.count += n;
        Ok(())
    }

    /// Divides the sums by `D + 1e-5` (nearest-reduced for h2), like
    /// [`WarpAccumulator::finish`](crate::warp::WarpAccumulator::finish); `Empty` before any add.
    pub fn finish(&self) -> Result<WarpOutput, WarpError> {
        if self.sums.count == 0 {
            return Err(WarpError::Empty);
        }
        let mut h1_avg = Array4::<f32>::zeros((1, H1_CHANNELS, FACE_SIZE, FACE_SIZE));
        let mut h2_avg = Array4::<f32>::zeros((1, H2_CHANNELS, HALF_SIZE, HALF_SIZE));
        let mut ref_avg = Array4::<f32>::zeros((1, IMG_CHANNELS, FACE_SIZE, FACE_SIZE));
        let (Some(o1), Some(o2), Some(or)) = (
            h1_avg.as_slice_mut(),
            h2_avg.as_slice_mut(),
            ref_avg.as_slice_mut(),
        ) else {
            // Unreachable: fresh `zeros` arrays are contiguous; refuse rather than hand C a
            // pointer to a non-contiguous array.
            return Err(WarpError::Empty);
        };
        // SAFETY: sums and outputs have the fixed sizes the C loop writes (allocated above and in
        // `WarpSums::new`), and every output is a distinct fresh array.
        unsafe {
            iplap_host_warp_finish(
                self.sums.acc_h1.as_ptr(),
                self.sums.acc_ref.as_ptr(),
                self.sums.acc_h2.as_ptr(),
                self.sums.denom.as_ptr(),
                o1.as_mut_ptr(),
                or.as_mut_ptr(),
                o2.as_mut_ptr(),
            );
        }
        Ok(WarpOutput {
            h1_avg,
            h2_avg,
            ref_avg,
        })
    }
}

/// One-shot host twin of [`crate::warp::warp_accumulate`].
pub fn warp_accumulate(chunk: &WarpChunk<'_>) -> Result<WarpOutput, WarpError> {
    let mut acc = HostWarpAccumulator::new();
    acc.add(chunk)?;
    acc.finish()
}

/// Checks a chunk of `n` references given as the flat lengths of its contiguous NCHW buffers, in
/// the order flow, weight, h1, h2, ref_img, and returns `n` as the kernels' `int`. Shared with the
/// device launchers (`kernels::launch::warp`), whose kernels read the same buffers.
pub(crate) fn check_chunk(n: usize, lens: [usize; 5]) -> Result<i32, WarpError> {
    let n_c = i32::try_from(n).map_err(|_| WarpError::Shape {
        name: "n",
        expected: vec![i32::MAX as usize],
        got: vec![n],
    })?;
    let [flow, weight, h1, h2, ref_img] = lens;
    check_len("flow", flow, [n, 2, FACE_SIZE, FACE_SIZE])?;
    check_len("weight", weight, [n, 1, FACE_SIZE, FACE_SIZE])?;
    check_len("h1", h1, [n, H1_CHANNELS, FACE_SIZE, FACE_SIZE])?;
    check_len("h2", h2, [n, H2_CHANNELS, HALF_SIZE, HALF_SIZE])?;
    check_len("ref_img", ref_img, [n, IMG_CHANNELS, FACE_SIZE, FACE_SIZE])?;
    Ok(n_c)
}

/// A flat buffer must hold exactly the product of `shape` values (overflow counts as a mismatch:
/// no buffer can be that long). The error reports the flat length as a 1-D shape.
fn check_len(name: &'static str, len: usize, shape: [usize; 4]) -> Result<(), WarpError> {
    let want = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if want == Some(len) {
        Ok(())
    } else {
        Err(WarpError::Shape {
            name,
            expected: shape.to_vec(),
            got: vec![len],
        })
    }
}
