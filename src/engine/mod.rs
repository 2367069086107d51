//! The streaming state machines the elements drive (ARCHITECTURE "engine/"): the reference bank,
//! the landmark side (face tracking + mel + landmark generator over the T = 5 window) and the
//! render side (sketches + crop + renderer + paste-back).

pub mod bank;
