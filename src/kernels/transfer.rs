//! Copies between a frame on the host and its region on the device: one 2-D copy per plane
//! (`cuMemcpy2DAsync`), a block of rows with the host frame's stride on one side and the device
//! buffer's pitch on the other, so a face region crosses the bus in one call per plane instead of
//! one per row, and nothing outside it crosses at all.

use cudarc::driver::sys::{CUDA_MEMCPY2D, CUmemorytype, cuMemcpy2DAsync_v2};
use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut};

use super::GpuError;
use crate::image::ImageError;

/// A block of `rows` rows of `row_bytes` bytes: on the host from `host_offset`, rows
/// `host_stride` apart; on the device from the buffer's start, rows `pitch` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowBlock {
    pub host_offset: usize,
    pub host_stride: usize,
    pub pitch: usize,
    pub row_bytes: usize,
    pub rows: usize,
}

impl RowBlock {
    /// Bytes the host side must hold.
    fn host_end(&self) -> Option<usize> {
        self.end(self.host_offset, self.host_stride)
    }

    /// Bytes the device side must hold.
    pub fn device_len(&self) -> Option<usize> {
        self.end(0, self.pitch)
    }

    fn end(&self, offset: usize, stride: usize) -> Option<usize> {
        match self.rows {
            0 => Some(offset),
            r => (r - 1)
                .checked_mul(stride)?
                .checked_add(self.row_bytes)?
                .checked_add(offset),
        }
    }

    /// Both sides hold the block and rows do not overlap (the checks of every copy below).
    pub fn check(&self, host_len: usize, device_len: usize) -> Result<(), ImageError> {
        let fits = |end: Option<usize>, len| end.is_some_and(|e| e <= len);
        let overlapping = self.rows > 1 && self.host_stride.min(self.pitch) < self.row_bytes;
        if overlapping || !fits(self.host_end(), host_len) || !fits(self.device_len(), device_len) {
            return Err(ImageError::Layout(
                "a frame region's rows do not fit the host frame or the device buffer",
            ));
        }
        Ok(())
    }

    /// [`Self::check`] as a launch error; `false` when there is nothing to copy.
    fn prepare(&self, host_len: usize, device_len: usize) -> Result<bool, GpuError> {
        self.check(host_len, device_len)
            .map_err(|e| GpuError::Input(e.to_string()))?;
        Ok(self.rows > 0 && self.row_bytes > 0)
    }

    fn descriptor(&self) -> CUDA_MEMCPY2D {
        // SAFETY: CUDA_MEMCPY2D is a plain C struct of integers and pointers; all zero is its
        // documented "unused" state for the fields set below.
        let mut d: CUDA_MEMCPY2D = unsafe { std::mem::zeroed() };
        d.WidthInBytes = self.row_bytes;
        d.Height = self.rows;
        d
    }
}

/// Makes the stream's context current on this thread (a raw driver call, unlike cudarc's own
/// operations, does not): elements call from streaming threads that may never have used it.
pub fn bind(stream: &CudaStream) -> Result<(), GpuError> {
    stream
        .context()
        .bind_to_thread()
        .map_err(GpuError::cuda("making the CUDA context current"))
}

/// Enqueues the copy of `block` of `host` to `device` on `stream`. The driver stages pageable
/// host memory before the call returns, so `host` may change afterwards.
pub fn upload_rows<D: DevicePtrMut<u8>>(
    stream: &CudaStream,
    host: &[u8],
    block: RowBlock,
    device: &mut D,
) -> Result<(), GpuError> {
    if !block.prepare(host.len(), device.len())? {
        return Ok(());
    }
    bind(stream)?;
    let (dst, _sync) = device.device_ptr_mut(stream);
    let mut d = block.descriptor();
    d.srcMemoryType = CUmemorytype::CU_MEMORYTYPE_HOST;
    d.srcHost = host[block.host_offset..].as_ptr().cast();
    d.srcPitch = block.host_stride;
    d.dstMemoryType = CUmemorytype::CU_MEMORYTYPE_DEVICE;
    d.dstDevice = dst;
    d.dstPitch = block.pitch;
    // SAFETY: `check` proved both sides hold `rows` rows of `row_bytes` at their strides; the
    // device buffer is a `&mut` borrow on this stream's context and the host slice outlives the
    // call (which stages pageable memory before returning).
    unsafe { cuMemcpy2DAsync_v2(&d, stream.cu_stream()) }
        .result()
        .map_err(GpuError::cuda("uploading a frame region"))
}

/// Enqueues the copy of `block` of `device` back into `host` on `stream` and waits for it
/// (`host` is written when this returns).
pub fn download_rows<D: DevicePtr<u8>>(
    stream: &CudaStream,
    device: &D,
    block: RowBlock,
    host: &mut [u8],
) -> Result<(), GpuError> {
    if !block.prepare(host.len(), device.len())? {
        return Ok(());
    }
    bind(stream)?;
    let (src, _sync) = device.device_ptr(stream);
    let mut d = block.descriptor();
    d.srcMemoryType = CUmemorytype::CU_MEMORYTYPE_DEVICE;
    d.srcDevice = src;
    d.srcPitch = block.pitch;
    d.dstMemoryType = CUmemorytype::CU_MEMORYTYPE_HOST;
    d.dstHost = host[block.host_offset..].as_mut_ptr().cast();
    d.dstPitch = block.host_stride;
    // SAFETY: as in `upload_rows`; `host` is a `&mut` borrow held until the stream has finished
    // the copy (synchronised below, before the borrow ends).
    unsafe { cuMemcpy2DAsync_v2(&d, stream.cu_stream()) }
        .result()
        .map_err(GpuError::cuda("downloading a frame region"))?;
    stream
        .synchronize()
        .map_err(GpuError::cuda("waiting for a frame region"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(rows: usize) -> RowBlock {
        RowBlock {
            host_offset: 10,
            host_stride: 100,
            pitch: 30,
            row_bytes: 30,
            rows,
        }
    }

    #[test]
    fn blocks_are_checked_on_both_sides() {
        let b = block(4);
        assert_eq!(b.device_len(), Some(120));
        assert!(b.check(10 + 300 + 30, 120).is_ok());
        assert!(b.check(10 + 300 + 29, 120).is_err());
        assert!(b.check(10 + 300 + 30, 119).is_err());
        let narrow = RowBlock { pitch: 29, ..b };
        assert!(narrow.check(1000, 1000).is_err());
        let huge = RowBlock {
            rows: usize::MAX,
            ..b
        };
        assert!(huge.check(usize::MAX, usize::MAX).is_err());
        assert!(block(0).check(10, 0).is_ok());
        assert!(block(0).check(9, 0).is_err());
    }
}
