//! `iplaprender`: landmark meta in, lip-synced video out.
//!
//! See [`imp`] for the element documentation.

use gst::glib;
use gst::prelude::*;

mod frame;
mod imp;
mod latency;
mod load;
pub mod stats;

glib::wrapper! {
    /// The `iplaprender` video filter (in place).
    pub struct IplapRender(ObjectSubclass<imp::IplapRender>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub use crate::device::Device;

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
