//! Device launchers for `kernels/warp.cu`: warp-and-accumulate over the reference bank on the GPU.
//!
//! [`DeviceWarpAccumulator`] is the device twin of [`HostWarpAccumulator`]: it owns the four
//! running sums (zeroed at creation and by [`reset`](DeviceWarpAccumulator::reset)), takes the
//! flow head's outputs one chunk of references at a time (`iplap_warp_accumulate_128` then
//! `iplap_warp_accumulate_64`, in reference order, on the kernels' stream) and divides into the
//! caller's buffers with `iplap_warp_finish`. Chunks come either as cudarc views
//! ([`add`](DeviceWarpAccumulator::add)) or as raw device addresses
//! ([`add_raw`](DeviceWarpAccumulator::add_raw)), since ONNX Runtime hands its CUDA outputs out
//! as bare pointers. Every length is checked by the host build's own validation
//! ([`check_chunk`]) before a launch: the kernels index fixed 128 × 128 / 64 × 64 shapes.
//!
//! The family's GPU check (against the host build) is in [`gpu_check`].
//!
//! [`HostWarpAccumulator`]: crate::kernels::host::warp::HostWarpAccumulator

use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut,
    DeviceSlice, LaunchConfig, PushKernelArg, SyncOnDrop,
};

use crate::kernels::GpuKernels;
use crate::kernels::device::GpuError;
use crate::kernels::host::warp::check_chunk;
use crate::sizes::{FACE_SIZE, HALF_SIZE};
use crate::warp::{H1_CHANNELS, H2_CHANNELS, IMG_CHANNELS, WarpError};

mod gpu_check;

pub use gpu_check::check;

const PLANE: usize = FACE_SIZE * FACE_SIZE;
const PLANE_HALF: usize = HALF_SIZE * HALF_SIZE;
/// Values per reference of each chunk input (contiguous NCHW float32).
const PER_FLOW: usize = 2 * PLANE;
const PER_WEIGHT: usize = PLANE;
const PER_H1: usize = H1_CHANNELS * PLANE;
const PER_H2: usize = H2_CHANNELS * PLANE_HALF;
const PER_REF: usize = IMG_CHANNELS * PLANE;

/// Length of `out_h1` for [`DeviceWarpAccumulator::finish`]: `(1, 32, 128, 128)`.
pub const OUT_H1_LEN: usize = PER_H1;
/// Length of `out_ref`: `(1, 3, 128, 128)`.
pub const OUT_REF_LEN: usize = PER_REF;
/// Length of `out_h2`: `(1, 256, 64, 64)`.
pub const OUT_H2_LEN: usize = PER_H2;

/// `IPLAP_WARP_GROUP`: channels one accumulate thread carries.
const GROUP: usize = 8;
/// `IPLAP_WARP_GROUPS_128`: 4 groups of h1 channels, then the image channels and Σ w.
const GROUPS_128: usize = H1_CHANNELS / GROUP + 1;
/// `IPLAP_WARP_GROUPS_64`: 32 groups of h2 channels.
const GROUPS_64: usize = H2_CHANNELS / GROUP;
/// `IPLAP_WARP_FINISH_TOTAL`: one finish thread per output element, h1 | ref | h2.
const FINISH_TOTAL: usize = OUT_H1_LEN + OUT_REF_LEN + OUT_H2_LEN;
/// The documented blocks: (32, 8, 1) for both accumulate kernels, 256 threads for finish.
const BLOCK_2D: (u32, u32, u32) = (32, 8, 1);
const FINISH_BLOCK: u32 = 256;

/// A grid of [`BLOCK_2D`] blocks covering `side × side × groups` threads (the kernels idle the
/// threads outside, so rounding up is safe).
fn grid_2d(side: usize, groups: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            side.div_ceil(BLOCK_2D.0 as usize) as u32,
            side.div_ceil(BLOCK_2D.1 as usize) as u32,
            groups as u32,
        ),
        block_dim: BLOCK_2D,
        shared_mem_bytes: 0,
    }
}

/// `iplap_warp_accumulate_128`: grid (4, 16, 5).
fn config_128() -> LaunchConfig {
    grid_2d(FACE_SIZE, GROUPS_128)
}

/// `iplap_warp_accumulate_64`: grid (2, 8, 32).
fn config_64() -> LaunchConfig {
    grid_2d(HALF_SIZE, GROUPS_64)
}

/// `iplap_warp_finish`: grid (6336, 1, 1).
fn config_finish() -> LaunchConfig {
    LaunchConfig {
        grid_dim: (FINISH_TOTAL.div_ceil(FINISH_BLOCK as usize) as u32, 1, 1),
        block_dim: (FINISH_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn input(e: WarpError) -> GpuError {
    GpuError::Input(e.to_string())
}

/// A raw device buffer of `f32`: its address in the kernels' CUDA context and its length in
/// elements (the length is what the launchers validate; they never read past it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawF32 {
    pub ptr: CUdeviceptr,
    pub len: usize,
}

/// One chunk of `n` references as raw device buffers, contiguous NCHW float32 with the chunk's
/// first reference at each address: flow `(n, 2, 128, 128)`, weight `(n, 1, 128, 128)`, h1
/// `(n, 32, 128, 128)`, h2 `(n, 256, 64, 64)`, ref_img `(n, 3, 128, 128)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawWarpChunk {
    pub flow: RawF32,
    pub weight: RawF32,
    pub h1: RawF32,
    pub h2: RawF32,
    pub ref_img: RawF32,
}

impl RawWarpChunk {
    fn lens(&self) -> [usize; 5] {
        [self.flow, self.weight, self.h1, self.h2, self.ref_img].map(|b| b.len)
    }

    /// Lengths as the host build checks them, then non-null addresses (a cheap guard against an
    /// unset ORT output); `n` as the kernels' `int`.
    fn validate(&self, n: usize) -> Result<i32, GpuError> {
        let n_c = check_chunk(n, self.lens()).map_err(input)?;
        if n > 0
            && [self.flow, self.weight, self.h1, self.h2, self.ref_img]
                .iter()
                .any(|b| b.ptr == 0)
        {
            return Err(GpuError::Input("warp chunk: null device pointer".into()));
        }
        Ok(n_c)
    }
}

/// One chunk of references as views of device buffers (shapes as in [`RawWarpChunk`]); a
/// [`CudaSlice`] gives one with `as_view()` or `slice(..)`.
#[derive(Debug)]
pub struct DeviceWarpChunk<'a> {
    pub flow: CudaView<'a, f32>,
    pub weight: CudaView<'a, f32>,
    pub h1: CudaView<'a, f32>,
    pub h2: CudaView<'a, f32>,
    pub ref_img: CudaView<'a, f32>,
}

impl DeviceWarpChunk<'_> {
    /// The views' addresses, with guards that record cudarc's read events when dropped: keep them
    /// until the launches are enqueued.
    fn raw<'s>(&'s self, stream: &'s CudaStream) -> (RawWarpChunk, [SyncOnDrop<'s>; 5]) {
        let raw = |v: &'s CudaView<'_, f32>| {
            let (ptr, guard) = v.device_ptr(stream);
            (RawF32 { ptr, len: v.len() }, guard)
        };
        let (flow, g0) = raw(&self.flow);
        let (weight, g1) = raw(&self.weight);
        let (h1, g2) = raw(&self.h1);
        let (h2, g3) = raw(&self.h2);
        let (ref_img, g4) = raw(&self.ref_img);
        let chunk = RawWarpChunk {
            flow,
            weight,
            h1,
            h2,
            ref_img,
        };
        (chunk, [g0, g1, g2, g3, g4])
    }

    fn same_context(&self, kernels: &GpuKernels) -> Result<(), GpuError> {
        for (name, v) in [
            ("flow", &self.flow),
            ("weight", &self.weight),
            ("h1", &self.h1),
            ("h2", &self.h2),
            ("ref_img", &self.ref_img),
        ] {
            same_context(kernels, v.stream(), name)?;
        }
        Ok(())
    }
}

/// A buffer of another CUDA context has no meaning in this one: refuse it before a launch.
fn same_context(kernels: &GpuKernels, stream: &CudaStream, name: &str) -> Result<(), GpuError> {
    if stream.context().cu_ctx() == kernels.context().cu_ctx() {
        Ok(())
    } else {
        Err(GpuError::Input(format!(
            "warp buffer `{name}` belongs to another CUDA context"
        )))
    }
}

/// Exact output lengths, as the host build allocates them.
fn check_outputs(h1: usize, ref_img: usize, h2: usize) -> Result<(), GpuError> {
    for (name, got, want) in [
        ("out_h1", h1, OUT_H1_LEN),
        ("out_ref", ref_img, OUT_REF_LEN),
        ("out_h2", h2, OUT_H2_LEN),
    ] {
        if got != want {
            return Err(GpuError::Input(format!(
                "warp output `{name}`: expected {want} values, got {got}"
            )));
        }
    }
    Ok(())
}

/// Enqueues a memset to +0.0 (all bytes 0) on the kernels' stream.
fn zero(kernels: &GpuKernels, buf: &mut CudaSlice<f32>) -> Result<(), GpuError> {
    kernels
        .stream()
        .memset_zeros(buf)
        .map_err(GpuError::cuda("zeroing the warp sums"))
}

/// The running sums of warp-and-accumulate on the device, one frame at a time:
/// [`reset`](Self::reset), [`add`](Self::add) per chunk in reference order,
/// [`finish`](Self::finish). Everything is enqueued on the [`GpuKernels`] stream it was made
/// with; nothing here synchronises. After a failed call the sums are unspecified until `reset`.
#[derive(Debug)]
pub struct DeviceWarpAccumulator {
    count: usize,
    /// Σ warp(h1_r) w_r, 32 × 128 × 128.
    acc_h1: CudaSlice<f32>,
    /// Σ warp(ref_r) w_r, 3 × 128 × 128.
    acc_ref: CudaSlice<f32>,
    /// Σ warp(h2_r) ↓w_r, 256 × 64 × 64.
    acc_h2: CudaSlice<f32>,
    /// Σ w_r, 128 × 128.
    denom: CudaSlice<f32>,
    // Looked up once: a frame launches them 2 × chunks + 1 times.
    accumulate_128: CudaFunction,
    accumulate_64: CudaFunction,
    finish: CudaFunction,
}

impl DeviceWarpAccumulator {
    /// Allocates zeroed sums on the kernels' stream.
    pub fn new(kernels: &GpuKernels) -> Result<Self, GpuError> {
        let stream = kernels.stream();
        let alloc = |len: usize| {
            stream
                .alloc_zeros::<f32>(len)
                .map_err(GpuError::cuda("allocating the warp sums"))
        };
        Ok(Self {
            count: 0,
            acc_h1: alloc(PER_H1)?,
            acc_ref: alloc(PER_REF)?,
            acc_h2: alloc(PER_H2)?,
            denom: alloc(PLANE)?,
            accumulate_128: kernels.function("warp", "iplap_warp_accumulate_128")?,
            accumulate_64: kernels.function("warp", "iplap_warp_accumulate_64")?,
            finish: kernels.function("warp", "iplap_warp_finish")?,
        })
    }

    /// References added since the last reset.
    pub fn count(&self) -> usize {
        self.count
    }

    fn same_context(&self, kernels: &GpuKernels) -> Result<(), GpuError> {
        same_context(kernels, self.acc_h1.stream(), "sums")
    }

    /// Zeroes the sums for the next frame (enqueued memsets).
    pub fn reset(&mut self, kernels: &GpuKernels) -> Result<(), GpuError> {
        self.same_context(kernels)?;
        self.count = 0;
        zero(kernels, &mut self.acc_h1)?;
        zero(kernels, &mut self.acc_ref)?;
        zero(kernels, &mut self.acc_h2)?;
        zero(kernels, &mut self.denom)
    }

    /// Adds the chunk's `n` references (the next ones in reference order); `n = 0` with empty
    /// views is a no-op, as on the host.
    pub fn add(
        &mut self,
        kernels: &GpuKernels,
        n: usize,
        chunk: &DeviceWarpChunk<'_>,
    ) -> Result<(), GpuError> {
        chunk.same_context(kernels)?;
        let (raw, _reads) = chunk.raw(kernels.stream());
        // SAFETY: the addresses and lengths are those of live views of this context (checked
        // above), borrowed for this call; cudarc's events order their earlier writes before the
        // launches and `_reads` records the reads after them, so the memory stays valid and
        // unchanged for the kernels. None can alias the sums, which this accumulator owns.
        unsafe { self.add_raw(kernels, n, &raw) }
    }

    /// [`add`](Self::add) for buffers cudarc does not own (ONNX Runtime's CUDA outputs).
    ///
    /// # Safety
    ///
    /// Each `ptr` must be a device address in the kernels' CUDA context, valid for `len` f32
    /// reads (the lengths are checked against `n`; the addresses cannot be), holding the data by
    /// the time the kernels' stream reaches these launches (written earlier on that stream, or
    /// synchronised), and not written or freed until the launches have completed (e.g. another
    /// stream waits on an event recorded on the kernels' stream after this call). The buffers must
    /// not overlap this accumulator's sums.
    pub unsafe fn add_raw(
        &mut self,
        kernels: &GpuKernels,
        n: usize,
        chunk: &RawWarpChunk,
    ) -> Result<(), GpuError> {
        self.same_context(kernels)?;
        let n_c = chunk.validate(n)?;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: lengths validated for n_c references above; the rest is the caller's contract.
        unsafe {
            self.enqueue_128(kernels, n_c, chunk)?;
            self.enqueue_64(kernels, n_c, chunk)?;
        }
        self.count += n;
        Ok(())
    }

    /// `iplap_warp_accumulate_128(flow, weight, h1, ref_img, n, acc_h1, acc_ref, denom)`.
    ///
    /// # Safety
    ///
    /// `chunk` holds `n` references at valid device addresses (lengths checked by `validate`).
    unsafe fn enqueue_128(
        &mut self,
        kernels: &GpuKernels,
        n: i32,
        chunk: &RawWarpChunk,
    ) -> Result<(), GpuError> {
        let (flow, weight, h1, ref_img) = (
            chunk.flow.ptr,
            chunk.weight.ptr,
            chunk.h1.ptr,
            chunk.ref_img.ptr,
        );
        let mut b = kernels.stream().launch_builder(&self.accumulate_128);
        b.arg(&flow).arg(&weight).arg(&h1).arg(&ref_img).arg(&n);
        b.arg(&mut self.acc_h1)
            .arg(&mut self.acc_ref)
            .arg(&mut self.denom);
        // SAFETY: arguments in the C order and types (pointers as 64-bit addresses, n as int);
        // every input holds the n references the kernel reads, the sums have their fixed sizes,
        // and the grid is the documented one (threads outside 128 × 128 × 5 return at once).
        unsafe { b.launch(config_128()) }
            .map_err(GpuError::cuda("launching iplap_warp_accumulate_128"))?;
        Ok(())
    }

    /// `iplap_warp_accumulate_64(flow, weight, h2, n, acc_h2)`.
    ///
    /// # Safety
    ///
    /// As [`enqueue_128`](Self::enqueue_128).
    unsafe fn enqueue_64(
        &mut self,
        kernels: &GpuKernels,
        n: i32,
        chunk: &RawWarpChunk,
    ) -> Result<(), GpuError> {
        let (flow, weight, h2) = (chunk.flow.ptr, chunk.weight.ptr, chunk.h2.ptr);
        let mut b = kernels.stream().launch_builder(&self.accumulate_64);
        b.arg(&flow)
            .arg(&weight)
            .arg(&h2)
            .arg(&n)
            .arg(&mut self.acc_h2);
        // SAFETY: as in `enqueue_128`, for the 64 × 64 × 32 grid.
        unsafe { b.launch(config_64()) }
            .map_err(GpuError::cuda("launching iplap_warp_accumulate_64"))?;
        Ok(())
    }

    /// Writes the averages `sum / (Σ w + 1e-5)` into the caller's buffers: h1 `(1, 32, 128, 128)`,
    /// ref `(1, 3, 128, 128)`, h2 `(1, 256, 64, 64)` (exact lengths). Refuses an empty sum like
    /// [`HostWarpAccumulator::finish`](crate::kernels::host::warp::HostWarpAccumulator::finish).
    /// The sums are kept: finishing twice gives the same output.
    pub fn finish(
        &self,
        kernels: &GpuKernels,
        out_h1: &mut CudaViewMut<'_, f32>,
        out_ref: &mut CudaViewMut<'_, f32>,
        out_h2: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), GpuError> {
        same_context(kernels, out_h1.stream(), "out_h1")?;
        same_context(kernels, out_ref.stream(), "out_ref")?;
        same_context(kernels, out_h2.stream(), "out_h2")?;
        let stream = kernels.stream();
        let (l1, lr, l2) = (out_h1.len(), out_ref.len(), out_h2.len());
        let (p1, _w1) = out_h1.device_ptr_mut(stream);
        let (pr, _wr) = out_ref.device_ptr_mut(stream);
        let (p2, _w2) = out_h2.device_ptr_mut(stream);
        let raw = |ptr, len| RawF32 { ptr, len };
        // SAFETY: three live, mutably borrowed views of this context (so disjoint from each other
        // and from the sums this accumulator owns); the guards order them after earlier work and
        // record the writes once the launch is enqueued.
        unsafe { self.finish_raw(kernels, raw(p1, l1), raw(pr, lr), raw(p2, l2)) }
    }

    /// [`finish`](Self::finish) into buffers cudarc does not own (e.g. ONNX Runtime's inputs).
    ///
    /// # Safety
    ///
    /// Each `ptr` must be a device address in the kernels' CUDA context, valid for `len` f32
    /// writes, the three ranges disjoint from each other and from this accumulator's sums, and not
    /// read, written or freed by other streams until the launch has completed.
    pub unsafe fn finish_raw(
        &self,
        kernels: &GpuKernels,
        out_h1: RawF32,
        out_ref: RawF32,
        out_h2: RawF32,
    ) -> Result<(), GpuError> {
        self.same_context(kernels)?;
        if self.count == 0 {
            return Err(input(WarpError::Empty));
        }
        check_outputs(out_h1.len, out_ref.len, out_h2.len)?;
        if [out_h1, out_ref, out_h2].iter().any(|b| b.ptr == 0) {
            return Err(GpuError::Input("warp output: null device pointer".into()));
        }
        let (o1, or, o2) = (out_h1.ptr, out_ref.ptr, out_h2.ptr);
        let mut b = kernels.stream().launch_builder(&self.finish);
        b.arg(&self.acc_h1)
            .arg(&self.acc_ref)
            .arg(&self.acc_h2)
            .arg(&self.denom);
        b.arg(&o1).arg(&or).arg(&o2);
        // SAFETY: arguments in the C order (acc_h1, acc_ref, acc_h2, denom, out_h1, out_ref,
        // out_h2); the sums have their fixed sizes, the outputs the exact lengths checked above
        // (the caller vouches for the addresses), none is `denom`; the 1-D grid covers
        // IPLAP_WARP_FINISH_TOTAL and the kernel idles the rest.
        unsafe { b.launch(config_finish()) }
            .map_err(GpuError::cuda("launching iplap_warp_finish"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_the_documented_one() {
        let c = config_128();
        assert_eq!(
            (c.block_dim, c.grid_dim, c.shared_mem_bytes),
            ((32, 8, 1), (4, 16, 5), 0)
        );
        let c = config_64();
        assert_eq!(
            (c.block_dim, c.grid_dim, c.shared_mem_bytes),
            ((32, 8, 1), (2, 8, 32), 0)
        );
        let c = config_finish();
        assert_eq!(
            (c.block_dim, c.grid_dim, c.shared_mem_bytes),
            ((256, 1, 1), (6336, 1, 1), 0)
        );
        assert_eq!(FINISH_TOTAL, 1_622_016);
        // Odd sizes round up (the kernels idle the excess threads).
        assert_eq!(grid_2d(33, 3).grid_dim, (2, 5, 3));
    }

    fn chunk(n: usize) -> RawWarpChunk {
        let b = |per: usize| RawF32 {
            ptr: 0x1000,
            len: n * per,
        };
        RawWarpChunk {
            flow: b(PER_FLOW),
            weight: b(PER_WEIGHT),
            h1: b(PER_H1),
            h2: b(PER_H2),
            ref_img: b(PER_REF),
        }
    }

    #[test]
    fn chunks_are_validated_like_the_host_build() {
        assert_eq!(chunk(5).validate(5), Ok(5));
        let mut bad = chunk(5);
        bad.h2.len -= 1;
        let err = bad.validate(5).unwrap_err();
        assert!(
            matches!(&err, GpuError::Input(m) if m.contains("`h2`")),
            "{err}"
        );
        assert!(chunk(4).validate(5).is_err());
        let mut null = chunk(2);
        null.ref_img.ptr = 0;
        assert!(null.validate(2).is_err());
        // An empty chunk is a no-op, whatever its (unused) addresses.
        let empty = RawF32 { ptr: 0, len: 0 };
        let none = RawWarpChunk {
            flow: empty,
            weight: empty,
            h1: empty,
            h2: empty,
            ref_img: empty,
        };
        assert_eq!(none.validate(0), Ok(0));
        assert!(chunk(0).validate(i32::MAX as usize + 1).is_err());
    }

    #[test]
    fn outputs_need_their_exact_lengths() {
        assert!(check_outputs(OUT_H1_LEN, OUT_REF_LEN, OUT_H2_LEN).is_ok());
        assert!(check_outputs(OUT_H1_LEN, OUT_REF_LEN + 1, OUT_H2_LEN).is_err());
        assert!(check_outputs(OUT_H1_LEN, OUT_REF_LEN, 0).is_err());
    }
}
