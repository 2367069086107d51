//! `iplaprender`: landmark meta in, lip-synced video out.
//!
//! See [`imp`] for the element documentation.

use gst::glib;
use gst::prelude::*;

mod frame;
mod imp;

glib::wrapper! {
    /// The `iplaprender` video filter (in place).
    pub struct IplapRender(ObjectSubclass<imp::IplapRender>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Where the renderer runs (`device` property).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIplapRenderDevice")]
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

/// Registers `iplaprender` (and its enum as plugin API).
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Device::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "iplaprender",
        gst::Rank::NONE,
        IplapRender::static_type(),
    )
}
