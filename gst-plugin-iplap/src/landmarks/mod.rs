//! `iplaplandmarks`: audio + video in, video with per-frame landmark meta out.
//!
//! See [`imp`] for the element documentation.

use gst::glib;
use gst::prelude::*;

mod audio_out;
mod imp;
mod reference;
mod settings;
mod stall;
mod stream;

glib::wrapper! {
    /// The `iplaplandmarks` aggregator (video_sink + audio_sink → src).
    pub struct IplapLandmarks(ObjectSubclass<imp::IplapLandmarks>)
        @extends gst_base::Aggregator, gst::Element, gst::Object;
}

/// How faces are found from frame to frame (`tracking` property).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIplapTracking")]
pub enum Tracking {
    /// Run the face detector on every frame, as the official IP_LAP script does.
    #[default]
    #[enum_value(
        name = "Static: detect on every frame (official script)",
        nick = "static"
    )]
    Static = 0,
    /// Follow the face from the previous frame; detect only when it is lost (cheaper, for live).
    #[enum_value(
        name = "Tracking: follow the previous frame's face, detect when lost",
        nick = "tracking"
    )]
    Tracking = 1,
}

impl From<Tracking> for iplap::face::tracker::Mode {
    fn from(t: Tracking) -> Self {
        match t {
            Tracking::Static => iplap::face::tracker::Mode::Static,
            Tracking::Tracking => iplap::face::tracker::Mode::Tracking,
        }
    }
}

pub use crate::device::Device;

/// Registers `iplaplandmarks` (and its enums as plugin API).
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Tracking::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Device::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "iplaplandmarks",
        gst::Rank::NONE,
        IplapLandmarks::static_type(),
    )
}
