//! IP_LAP's fixed sizes (spec §1.1), defined once: the face crop, the sketches, the renderer's
//! images and feature maps, and the window of frames every stage works on.

/// Side of the square face crop, the sketches and the renderer's images (`img_size`).
pub const FACE_SIZE: usize = 128;
/// Side of the renderer's half-resolution feature maps (`h2`, the first SPADE blocks).
pub const HALF_SIZE: usize = FACE_SIZE / 2;
/// Frames in a window (`T`): the landmark generator's input and the renderer's target sketches.
pub const WINDOW: usize = 5;
