//! Warp-and-accumulate on the GPU for a renderer whose sessions run on CUDA: the flow head's flows
//! and weights stay on the device, our warp kernel (`kernels/warp.cu`) sums the N warped
//! references on the renderer's stream, and the translation network reads the averages in place.
//! What crossed the bus per frame before — every chunk's flows and weights down (4.9 MB at N =
//! 25), the three averages up (6.5 MB) — stays on the GPU; the bank's h1 and images go up once
//! per bank. The h2 of each chunk is the reference encoder's own device output, read in place.
//!
//! Same maths as [`crate::warp::WarpAccumulator`] bit for bit (the kernel's host build is held to
//! it in CI); the renderer falls back to the CPU warp when the kernels cannot load (no NVRTC).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

use crate::kernels::launch::warp::{DeviceWarpAccumulator, RawF32, RawWarpChunk};
use crate::kernels::nvrtc::Arch;
use crate::kernels::{GpuError, GpuKernels, KernelCache};
use crate::runtime::{BorrowedTensor, DeviceTensor, Placement};
use crate::sizes::{FACE_SIZE, HALF_SIZE};
use crate::warp::{H1_CHANNELS, H2_CHANNELS, IMG_CHANNELS, WarpOutput};

const PLANE: usize = FACE_SIZE * FACE_SIZE;
const PER_H1: usize = H1_CHANNELS * PLANE;
const PER_H2: usize = H2_CHANNELS * HALF_SIZE * HALF_SIZE;
const PER_REF: usize = IMG_CHANNELS * PLANE;

/// The kernels, the sums and the bank's device copies of one renderer.
pub(super) struct DeviceWarp {
    kernels: Arc<GpuKernels>,
    sums: DeviceWarpAccumulator,
    placement: Placement,
    /// The bank's h1 `(N, 32, 128, 128)` and images `(N, 3, 128, 128)`.
    bank: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    /// The averages, bound as the translation network's inputs.
    out_h1: CudaSlice<f32>,
    out_ref: CudaSlice<f32>,
    out_h2: CudaSlice<f32>,
}

impl DeviceWarp {
    /// Loads the kernels on `stream` (the sessions' stream, so kernels and networks are ordered)
    /// of GPU `ordinal`, compiled for its architecture or taken from the kernel cache.
    pub(super) fn new(stream: Arc<CudaStream>, ordinal: i32) -> Result<Self, GpuError> {
        let gpu = crate::runtime::nvidia::gpu(ordinal.max(0) as u32)
            .map_err(|e| GpuError::Input(e.to_string()))?;
        let (major, minor) = gpu.compute_capability;
        let kernels = GpuKernels::on_stream(
            stream,
            Arch(major, minor),
            &KernelCache::new(KernelCache::default_root()),
        )?;
        let kernels = Arc::new(kernels);
        let sums = DeviceWarpAccumulator::new(&kernels)?;
        let alloc = |len| {
            kernels
                .stream()
                .alloc_zeros::<f32>(len)
                .map_err(GpuError::cuda("allocating the warp outputs"))
        };
        Ok(DeviceWarp {
            out_h1: alloc(PER_H1)?,
            out_ref: alloc(PER_REF)?,
            out_h2: alloc(PER_H2)?,
            kernels,
            sums,
            placement: Placement::Cuda { ordinal },
            bank: None,
        })
    }

    /// The kernels, loaded on the renderer's stream (the compositor's GPU path shares them).
    pub(super) fn kernels(&self) -> &Arc<GpuKernels> {
        &self.kernels
    }

    /// Uploads a bank's h1 and images (row-major, N references each).
    pub(super) fn set_bank(&mut self, h1: &[f32], ref_img: &[f32]) -> Result<(), GpuError> {
        self.bank = None;
        let n = h1.len() / PER_H1;
        if h1.len() != n * PER_H1 || ref_img.len() != n * PER_REF {
            return Err(GpuError::Input("bank h1 and images disagree on N".into()));
        }
        let stream = self.kernels.stream();
        let h1 = stream
            .clone_htod(h1)
            .map_err(GpuError::cuda("uploading the bank's h1"))?;
        let img = stream
            .clone_htod(ref_img)
            .map_err(GpuError::cuda("uploading the bank's images"))?;
        self.bank = Some((h1, img));
        Ok(())
    }

    /// Starts a frame.
    pub(super) fn reset(&mut self) -> Result<(), GpuError> {
        self.sums.reset(&self.kernels)
    }

    /// Adds references `a..b` of the bank, with the flow head's device outputs for them and the
    /// chunk's resident h2. The tensors must stay alive until [`Self::finish`] has synchronised.
    pub(super) fn add(
        &mut self,
        (a, b): (usize, usize),
        flow: &DeviceTensor,
        weight: &DeviceTensor,
        h2: &DeviceTensor,
    ) -> Result<(), GpuError> {
        let (h1, img) = self
            .bank
            .as_ref()
            .ok_or_else(|| GpuError::Input("no bank on the device".into()))?;
        let n = b.saturating_sub(a);
        if b * PER_H1 > h1.len() {
            return Err(GpuError::Input(format!(
                "references {a}..{b} beyond the bank"
            )));
        }
        for t in [flow, weight, h2] {
            if t.placement() != self.placement {
                return Err(GpuError::Input(format!(
                    "a flow-head tensor is in {:?}, not {:?}",
                    t.placement(),
                    self.placement
                )));
            }
        }
        let stream = self.kernels.stream();
        let (h1_base, _h1_guard) = h1.device_ptr(stream);
        let (img_base, _img_guard) = img.device_ptr(stream);
        let f32s = std::mem::size_of::<f32>() as u64;
        let tensor = |t: &DeviceTensor| RawF32 {
            ptr: t.data_address(),
            len: t.len(),
        };
        let chunk = RawWarpChunk {
            flow: tensor(flow),
            weight: tensor(weight),
            h1: RawF32 {
                ptr: h1_base + (a * PER_H1) as u64 * f32s,
                len: n * PER_H1,
            },
            h2: tensor(h2),
            ref_img: RawF32 {
                ptr: img_base + (a * PER_REF) as u64 * f32s,
                len: n * PER_REF,
            },
        };
        // SAFETY: flow, weight and h2 are ONNX Runtime tensors on this GPU (placement checked),
        // written by runs on this same stream and kept alive by the caller until `finish` has
        // synchronised; h1/img are our bank buffers, sliced within their lengths (checked).
        unsafe { self.sums.add_raw(&self.kernels, n, &chunk) }
    }

    /// Writes the averages and waits for them; returns them as bindable tensors.
    pub(super) fn finish(&mut self) -> Result<[BorrowedTensor; 3], GpuError> {
        let stream = self.kernels.stream().clone();
        let mut h1 = self.out_h1.as_view_mut();
        let mut img = self.out_ref.as_view_mut();
        let mut h2 = self.out_h2.as_view_mut();
        self.sums
            .finish(&self.kernels, &mut h1, &mut img, &mut h2)?;
        stream
            .synchronize()
            .map_err(GpuError::cuda("waiting for the warp"))?;
        let (p1, _g1) = self.out_h1.device_ptr(&stream);
        let (pr, _gr) = self.out_ref.device_ptr(&stream);
        let (p2, _g2) = self.out_h2.device_ptr(&stream);
        let shape_128 = |c| [1, c, FACE_SIZE, FACE_SIZE];
        // SAFETY: our output buffers, written (and synchronised) above; they live as long as
        // `self` and are only rewritten by the next frame's `finish`, after this frame's
        // translation run has returned.
        Ok(unsafe {
            [
                BorrowedTensor::new(p1, &shape_128(H1_CHANNELS), self.placement),
                BorrowedTensor::new(p2, &[1, H2_CHANNELS, HALF_SIZE, HALF_SIZE], self.placement),
                BorrowedTensor::new(pr, &shape_128(IMG_CHANNELS), self.placement),
            ]
        })
    }

    /// The averages on the host, for [`super::RendererOutput`] (its `wrapped_*` fields).
    pub(super) fn download(&self) -> Result<WarpOutput, GpuError> {
        let stream = self.kernels.stream();
        let get = |buf: &CudaSlice<f32>, what: &str| {
            stream
                .clone_dtoh(buf)
                .map_err(GpuError::cuda(format!("downloading {what}")))
        };
        let shape = |c, side| (1, c, side, side);
        let array = |v, c, side| {
            ndarray::Array4::from_shape_vec(shape(c, side), v)
                .map_err(|e| GpuError::Input(e.to_string()))
        };
        let (h1, h2, img) = (
            get(&self.out_h1, "h1_avg")?,
            get(&self.out_h2, "h2_avg")?,
            get(&self.out_ref, "ref_avg")?,
        );
        stream
            .synchronize()
            .map_err(GpuError::cuda("downloading the averages"))?;
        Ok(WarpOutput {
            h1_avg: array(h1, H1_CHANNELS, FACE_SIZE)?,
            h2_avg: array(h2, H2_CHANNELS, HALF_SIZE)?,
            ref_avg: array(img, IMG_CHANNELS, FACE_SIZE)?,
        })
    }
}
