//! [`DeviceTensor`]: a float32 tensor that lives where a session runs — host memory for the CPU,
//! CUDA device memory for the GPU providers — so that data which several stages read (the
//! reference bank's encoded features, the per-frame SPADE maps) crosses the bus once, not at
//! every run. Sessions take and give them through ONNX Runtime's I/O binding
//! ([`super::ModelSession::run_bound`]); the same code path runs on the CPU with host placement,
//! which is how CI exercises it without a GPU.

use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::value::{DynTensor, Tensor};

use super::device::{Device, DeviceConfig};

/// Where a tensor's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Host memory (the CPU provider, and providers whose memory we do not address).
    Host,
    /// The memory of CUDA device `ordinal` (the CUDA and TensorRT providers).
    Cuda {
        /// The CUDA ordinal.
        ordinal: i32,
    },
}

impl Placement {
    /// Where the sessions of `config` keep their tensors. TensorRT-RTX is a plugin provider with
    /// its own device memory type, which `ort`'s copies (an identity session on the CUDA
    /// provider) do not target: its tensors stay on the host and ONNX Runtime copies them at
    /// each run, as without binding.
    pub fn for_device(config: &DeviceConfig) -> Placement {
        match config.device {
            Device::Cuda | Device::TensorRt => Placement::Cuda {
                ordinal: config.device_id as i32,
            },
            Device::Auto | Device::Cpu | Device::TensorRtRtx => Placement::Host,
        }
    }

    /// ONNX Runtime's description of this memory.
    pub(crate) fn memory_info(self) -> ort::Result<MemoryInfo<'static>> {
        match self {
            Placement::Host => MemoryInfo::new(
                AllocationDevice::CPU,
                0,
                AllocatorType::Device,
                MemoryType::Default,
            ),
            Placement::Cuda { ordinal } => MemoryInfo::new(
                AllocationDevice::CUDA,
                ordinal,
                AllocatorType::Device,
                MemoryType::Default,
            ),
        }
    }

    fn of(value: &DynTensor) -> Placement {
        let info = value.memory_info();
        if info.allocation_device() == AllocationDevice::CUDA {
            Placement::Cuda {
                ordinal: info.device_id(),
            }
        } else {
            Placement::Host
        }
    }
}

/// A float32 tensor on the host or a CUDA device, owned by ONNX Runtime.
#[derive(Debug)]
pub struct DeviceTensor {
    value: DynTensor,
    shape: Vec<usize>,
}

impl DeviceTensor {
    /// Copies row-major `data` of `shape` to `placement`.
    pub fn upload(data: &[f32], shape: &[usize], placement: Placement) -> ort::Result<Self> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let host = Tensor::from_array((dims, data.to_vec()))?.upcast();
        let value = match placement {
            Placement::Host => host,
            Placement::Cuda { ordinal } => host.to(AllocationDevice::CUDA, ordinal)?,
        };
        Ok(DeviceTensor {
            value,
            shape: shape.to_vec(),
        })
    }

    /// Wraps a session output.
    pub(crate) fn from_value(value: DynTensor) -> Self {
        let shape = value.shape().iter().map(|&d| d.max(0) as usize).collect();
        DeviceTensor { value, shape }
    }

    /// The row-major data, copied to the host.
    pub fn download(&self) -> ort::Result<Vec<f32>> {
        match self.placement() {
            Placement::Host => Ok(self.value.try_extract_tensor::<f32>()?.1.to_vec()),
            Placement::Cuda { .. } => {
                let host = self.value.to(AllocationDevice::CPU, 0)?;
                Ok(host.try_extract_tensor::<f32>()?.1.to_vec())
            }
        }
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Where the data lives.
    pub fn placement(&self) -> Placement {
        Placement::of(&self.value)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data's address where it lives (a CUDA device address for [`Placement::Cuda`]), for
    /// our own kernels to read in place. Valid while `self` lives; [`Self::len`] values.
    pub fn data_address(&self) -> u64 {
        self.value.data_ptr() as u64
    }

    pub(crate) fn value(&self) -> &DynTensor {
        &self.value
    }

    pub(crate) fn into_value(self) -> DynTensor {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tensors_round_trip() {
        if crate::runtime::init().is_err() {
            eprintln!("SKIP: ONNX Runtime is not installed (scripts/setup.sh)");
            return;
        }
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
        let t = DeviceTensor::upload(&data, &[2, 3, 4], Placement::Host).unwrap();
        assert_eq!(t.shape(), &[2, 3, 4]);
        assert_eq!(t.placement(), Placement::Host);
        assert_eq!(t.download().unwrap(), data);
    }

    #[test]
    fn placement_follows_the_device() {
        let config = |device| DeviceConfig {
            device,
            device_id: 3,
            ..DeviceConfig::default()
        };
        assert_eq!(
            Placement::for_device(&config(Device::Cuda)),
            Placement::Cuda { ordinal: 3 }
        );
        assert_eq!(
            Placement::for_device(&config(Device::TensorRt)),
            Placement::Cuda { ordinal: 3 }
        );
        assert_eq!(Placement::for_device(&config(Device::Cpu)), Placement::Host);
        assert_eq!(
            Placement::for_device(&config(Device::TensorRtRtx)),
            Placement::Host
        );
    }
}
