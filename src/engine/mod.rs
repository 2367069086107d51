//! The streaming state machines the elements drive (ARCHITECTURE "engine/"): the reference bank,
//! the landmark side (face tracking + mel + landmark generator over the T = 5 window) and the
//! compositor (sketches + crop + renderer network + paste-back, [`compose`]).

pub mod bank;
pub mod bank_build;
pub mod bank_io;
pub mod bank_template;
pub mod compose;
pub mod landmarks;
pub mod select;
pub mod template;
pub mod timeline;
pub mod window;
