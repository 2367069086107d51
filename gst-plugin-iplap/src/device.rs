//! The `device` property shared by both elements: where the networks run.

use gst::glib;

/// Where the networks run (`device` property of `iplaplandmarks` and `iplaprender`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIplapDevice")]
pub enum Device {
    /// ONNX Runtime on the CPU.
    #[default]
    #[enum_value(name = "CPU (ONNX Runtime)", nick = "cpu")]
    Cpu = 0,
    /// ONNX Runtime's CUDA execution provider (not in this build).
    #[enum_value(name = "CUDA (not available in this build)", nick = "cuda")]
    Cuda = 1,
    /// ONNX Runtime's TensorRT execution provider (not in this build).
    #[enum_value(name = "TensorRT (not available in this build)", nick = "tensorrt")]
    TensorRt = 2,
}

impl From<Device> for iplap::runtime::Provider {
    fn from(d: Device) -> Self {
        match d {
            Device::Cpu => iplap::runtime::Provider::Cpu,
            Device::Cuda => iplap::runtime::Provider::Cuda,
            Device::TensorRt => iplap::runtime::Provider::TensorRt,
        }
    }
}
