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
    // The engine reports through the `log` crate (TensorRT engine builds, cache problems): route
    // it to a GStreamer debug category. A host that set its own logger (the `iplap` CLI) keeps it.
    let engine = gst::DebugCategory::new(
        "iplap-engine",
        gst::DebugColorFlags::empty(),
        Some("IP_LAP engine (sessions, providers, TensorRT engine cache)"),
    );
    if log::set_boxed_logger(Box::new(gst::log::DebugCategoryLogger::new(engine))).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
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
