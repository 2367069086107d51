//! iplap — the IP_LAP talking-face engine (CVPR 2023, "Identity-Preserving Talking Face Generation
//! with Landmark and Appearance Priors", github.com/Weizhi-Zhong/IP_LAP).
//!
//! This crate has no GStreamer dependency: the elements in `gst-plugin-iplap` are thin adapters over
//! it. One module per concern; the behaviour being reproduced is written down in
//! `shared/docs/iplap-spec.md` (cited as "spec §N").
//!
//! Names used throughout, one concept each:
//! * **renderer**: IP_LAP's second network (spec §5), nothing else. Its graphs are built in
//!   [`graph::renderer`] (one file per stage, each with its CPU and GPU graph target side by side)
//!   and run by [`runtime::renderer::RendererModel`]; the warp between its stages is [`warp`].
//! * **landmark generator**: the first network: [`graph::landmark_generator`],
//!   [`runtime::LandmarkModel`].
//! * **compositor**: the per-frame pipeline around the renderer (sketches, crop, renderer,
//!   paste-back into the frame): [`engine::compose::FrameCompositor`], what `iplaprender` calls.
//! * **reference bank**: the chosen reference frames ([`engine::bank::ReferenceBank`]); the
//!   renderer keeps its encoding of them (h1/h2) privately.

pub mod audio;
pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod data_files;
pub mod engine;
pub mod face;
pub mod graph;
pub mod image;
pub mod kernels;
pub mod runtime;
pub mod sizes;
#[doc(hidden)]
pub mod testdata;
pub mod warp;
pub mod weights;
pub mod winograd;
