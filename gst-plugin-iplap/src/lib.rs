//! `gstiplap`: GStreamer elements for IP_LAP lip-sync.
//!
//! * `iplaplandmarks` — audio + video in, video with per-frame landmark meta out.
//! * `iplaprender` — landmark meta in, lip-synced video out.
//!
//! Applications, tests and the `iplap` CLI link this crate and call [`plugin_register_static`] once;
//! no `GST_PLUGIN_PATH` is needed.

pub mod data;
pub mod decode;
mod device;
pub mod landmarks;
pub mod meta;
pub mod render;

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    landmarks::register(plugin)?;
    render::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    iplap,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "Apache-2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
