//! iplap — the IP_LAP talking-face engine (CVPR 2023, "Identity-Preserving Talking Face Generation
//! with Landmark and Appearance Priors", github.com/Weizhi-Zhong/IP_LAP).
//!
//! This crate has no GStreamer dependency: the elements in `gst-plugin-iplap` are thin adapters over
//! it. One module per concern; the behaviour being reproduced is written down in
//! `shared/docs/iplap-spec.md` (cited as "spec §N").

pub mod audio;
pub mod checkpoint;
pub mod data_files;
pub mod engine;
pub mod face;
pub mod graph;
pub mod image;
pub mod runtime;
pub mod sizes;
#[doc(hidden)]
pub mod testdata;
pub mod warp;
pub mod weights;
pub mod winograd;
