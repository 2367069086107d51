//! Paste-back of the generated face (spec §1.7 steps 7-8) and the feathered blend of
//! `merge_face_contour_only` / `swap_masked_region` (spec §1.8), in place on the frame.
//!
//! The official code builds three full-frame images (pasted copy, mask, blurred mask) and blends
//! all pixels in `f64`. The result only differs from the original frame where the blurred mask is
//! non-zero, which lies within 10 px of the contour polygon, so everything here is computed over
//! that window only; `tests/image_golden.rs` checks that the outcome equals the full-frame
//! procedure pixel for pixel.

use super::blur::{BlurScratch, GAUSS_RADIUS, gaussian_blur_region};
use super::fill::fill_convex_poly;
use super::resize::{Resizer, resize_bgr_u8};
use super::{ChannelOrder, Image, ImageError, ImageMut, ImageRef, Rect};
use crate::sizes::FACE_SIZE;

/// Vertex coordinates beyond this are rejected: far outside any frame, and the 16.16 scanline
/// arithmetic (in `i64`) stays exact well past it.
const MAX_COORD: i64 = 1 << 24;

/// The renderer's output (3 x 128 x 128 `f32`, BGR, CHW) as a 128 x 128 BGR `uint8` image:
/// `trunc(255 x)` with the product in `f32` (spec §1.7 step 7; the tensor is `float32`).
/// Out-of-range values saturate (NaN -> 0) instead of numpy's undefined wrap-around.
pub fn face_to_u8(chw: &[f32], out: &mut Image) -> Result<(), ImageError> {
    const PLANE: usize = FACE_SIZE * FACE_SIZE;
    if chw.len() != 3 * PLANE {
        return Err(ImageError::BadLength {
            expected: 3 * PLANE,
            got: chw.len(),
        });
    }
    out.reset(FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr);
    for (i, px) in out.data_mut().chunks_exact_mut(3).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            // `as u8` truncates toward zero and saturates, which is the documented behaviour.
            *v = (chw[c * PLANE + i] * 255.0f32) as u8;
        }
    }
    Ok(())
}

/// Writes `face` resized to `rect` into `frame` (spec §1.7 step 8, without the blend): the
/// "pasted frame" of the official script.
pub fn paste_face(
    frame: &mut ImageMut,
    face: &ImageRef,
    rect: Rect,
    resizer: &mut Resizer,
) -> Result<(), ImageError> {
    let full = Rect::new(0, 0, face.width(), face.height());
    resize_bgr_u8(face, full, frame, rect, resizer)
}

/// Paste-back state: scratch buffers reused from frame to frame, and the last frame's mask and
/// blurred mask (over [`PasteBack::window`]) for inspection.
#[derive(Debug, Default)]
pub struct PasteBack {
    resizer: Resizer,
    face_u8: Image,
    resized: Image,
    window: Rect,
    mask: Vec<u8>,
    blurred: Vec<u8>,
    spans: Vec<(usize, usize)>,
    blur: BlurScratch,
}

impl PasteBack {
    pub fn new() -> Self {
        Self::default()
    }

    /// The frame window covered by [`PasteBack::mask`] and [`PasteBack::blurred`]; every pixel
    /// outside it is 0 in both.
    pub fn window(&self) -> Rect {
        self.window
    }
    /// The polygon mask (0 / 255) over [`PasteBack::window`], row stride `window.width`.
    pub fn mask(&self) -> &[u8] {
        &self.mask
    }
    /// The feathered mask over [`PasteBack::window`].
    pub fn blurred(&self) -> &[u8] {
        &self.blurred
    }

    /// Blends the renderer output `face_chw` (3 x 128 x 128 `f32`, BGR) into `frame` at `rect`
    /// inside the `polygon` (vertices `(x, y)` in frame pixels), see [`PasteBack::blend_u8`].
    pub fn blend(
        &mut self,
        frame: &mut ImageMut,
        face_chw: &[f32],
        rect: Rect,
        polygon: &[(i64, i64)],
    ) -> Result<(), ImageError> {
        let mut face = std::mem::take(&mut self.face_u8);
        let result = face_to_u8(face_chw, &mut face)
            .and_then(|()| self.blend_u8(frame, &face.view(), rect, polygon));
        self.face_u8 = face;
        result
    }

    /// Spec §1.7 step 8 and §1.8 in place: `face` (any colour order and size) is resized to `rect`,
    /// the polygon is filled (C.4) and blurred (C.3), and each pixel becomes
    /// `trunc(pasted * a + original * (1 - a))`, `a = blurred / 255`, all in `f64`.
    ///
    /// A polygon entirely outside the frame leaves it unchanged (the official mask would be empty).
    pub fn blend_u8(
        &mut self,
        frame: &mut ImageMut,
        face: &ImageRef,
        rect: Rect,
        polygon: &[(i64, i64)],
    ) -> Result<(), ImageError> {
        let (fw, fh) = (frame.width(), frame.height());
        if rect.is_empty() || !rect.fits_in(fw, fh) {
            return Err(ImageError::BadRegion {
                rect,
                width: fw,
                height: fh,
            });
        }
        let off = frame.order().bgr_offsets().ok_or(ImageError::NeedsColour {
            what: "paste-back frame",
            order: frame.order(),
        })?;
        for (index, &(x, y)) in polygon.iter().enumerate() {
            if x.abs() > MAX_COORD || y.abs() > MAX_COORD {
                return Err(ImageError::BadVertex { index, x, y });
            }
        }
        self.window = Rect::default();
        self.mask.clear();
        self.blurred.clear();
        // Window: the vertices' bounding box clipped to the frame, dilated by the blur radius.
        let Some(window) = polygon_window(polygon, fw, fh) else {
            return Ok(());
        };
        self.window = window;
        let n = window.width * window.height;
        self.mask.resize(n, 0);
        fill_convex_poly(&mut self.mask, window, polygon, 255);
        self.blurred.resize(n, 0);
        gaussian_blur_region(
            &self.mask,
            window,
            fw,
            fh,
            &mut self.blurred,
            &mut self.spans,
            &mut self.blur,
        );

        self.resized
            .reset(rect.width, rect.height, ChannelOrder::Bgr);
        let full = Rect::new(0, 0, face.width(), face.height());
        let whole = Rect::new(0, 0, rect.width, rect.height);
        resize_bgr_u8(
            face,
            full,
            &mut self.resized.view_mut(),
            whole,
            &mut self.resizer,
        )?;

        // a = m / 255 and 1 - a exactly as numpy forms them.
        let alpha: [f64; 256] = std::array::from_fn(|m| m as f64 / 255.0);
        let beta: [f64; 256] = std::array::from_fn(|m| 1.0 - alpha[m]);
        let blend = |p: u8, o: u8, m: u8| {
            (p as f64 * alpha[m as usize] + o as f64 * beta[m as usize]) as u8
        };
        let bpp = frame.order().bytes_per_pixel();
        let (bx0, bx1) = (rect.x, rect.x + rect.width);
        for (r, &(lo, hi)) in self.spans.iter().enumerate() {
            if lo > hi {
                continue;
            }
            let y = window.y + r;
            let (x0, x1) = (window.x + lo, window.x + hi + 1);
            let masks = &self.blurred[r * window.width + lo..r * window.width + hi + 1];
            let row = &mut frame.row_mut(y)[x0 * bpp..x1 * bpp];
            // Columns of this span inside the box (empty when the row is outside it).
            let (i0, i1) = if y >= rect.y && y < rect.y + rect.height {
                (bx0.clamp(x0, x1) - x0, bx1.clamp(x0, x1) - x0)
            } else {
                (0, 0)
            };
            // Outside the box the pasted frame is the original: p = o. Only 0 < m < 255 can
            // change the value (truncation of o a + o (1 - a)).
            for seg in [(0, i0), (i1, masks.len())] {
                for (px, &m) in row[seg.0 * bpp..seg.1 * bpp]
                    .chunks_exact_mut(bpp)
                    .zip(&masks[seg.0..seg.1])
                {
                    if m != 0 && m != 255 {
                        for &c in &off {
                            px[c] = blend(px[c], px[c], m);
                        }
                    }
                }
            }
            if i0 < i1 {
                let fy = y - rect.y;
                let fx0 = x0 + i0 - bx0;
                let face_row = &self.resized.data()
                    [(fy * rect.width + fx0) * 3..(fy * rect.width + fx0 + i1 - i0) * 3];
                let pixels = row[i0 * bpp..i1 * bpp].chunks_exact_mut(bpp);
                for ((px, p), &m) in pixels.zip(face_row.chunks_exact(3)).zip(&masks[i0..i1]) {
                    match m {
                        0 => {}
                        // a = 1, 1 - a = 0: the f64 expression is exactly p.
                        255 => {
                            px[off[0]] = p[0];
                            px[off[1]] = p[1];
                            px[off[2]] = p[2];
                        }
                        _ => {
                            for c in 0..3 {
                                px[off[c]] = blend(p[c], px[off[c]], m);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Bounding box of the vertices clipped to the frame and dilated by the blur radius (still within
/// the frame); `None` when no vertex box pixel is inside the frame.
fn polygon_window(polygon: &[(i64, i64)], fw: usize, fh: usize) -> Option<Rect> {
    let (mut x0, mut y0, mut x1, mut y1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
    for &(x, y) in polygon {
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let (fw, fh) = (fw as i64, fh as i64);
    if polygon.is_empty() || x1 < 0 || y1 < 0 || x0 >= fw || y0 >= fh {
        return None;
    }
    let r = GAUSS_RADIUS as i64;
    let (x0, y0) = ((x0.max(0) - r).max(0), (y0.max(0) - r).max(0));
    let (x1, y1) = (
        (x1.min(fw - 1) + r).min(fw - 1),
        (y1.min(fh - 1) + r).min(fh - 1),
    );
    Some(Rect::new(
        x0 as usize,
        y0 as usize,
        (x1 - x0 + 1) as usize,
        (y1 - y0 + 1) as usize,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official full-frame procedure: paste, full-frame mask and blur, blend every pixel.
    fn full_frame(
        frame: &[u8],
        w: usize,
        h: usize,
        face: &ImageRef,
        rect: Rect,
        poly: &[(i64, i64)],
    ) -> Vec<u8> {
        let mut pasted = frame.to_vec();
        let mut view = ImageMut::packed(&mut pasted, w, h, ChannelOrder::Bgr).unwrap();
        paste_face(&mut view, face, rect, &mut Resizer::new()).unwrap();
        let all = Rect::new(0, 0, w, h);
        let mut mask = vec![0u8; w * h];
        fill_convex_poly(&mut mask, all, poly, 255);
        let mut blurred = vec![0u8; w * h];
        gaussian_blur_region(
            &mask,
            all,
            w,
            h,
            &mut blurred,
            &mut Vec::new(),
            &mut BlurScratch::default(),
        );
        (0..w * h * 3)
            .map(|i| {
                let a = blurred[i / 3] as f64 / 255.0;
                (pasted[i] as f64 * a + frame[i] as f64 * (1.0 - a)) as u8
            })
            .collect()
    }

    #[test]
    fn windowed_blend_equals_full_frame_procedure() {
        let (w, h) = (64, 48);
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let frame: Vec<u8> = (0..w * h * 3).map(|_| next() as u8).collect();
        let face_data: Vec<u8> = (0..20 * 16 * 3).map(|_| next() as u8).collect();
        let face = ImageRef::packed(&face_data, 20, 16, ChannelOrder::Bgr).unwrap();
        let mut pb = PasteBack::new();
        for case in 0..200 {
            // Polygons near and across every border, boxes anywhere inside the frame.
            let n = 3 + (next() % 8) as usize;
            let poly: Vec<(i64, i64)> = (0..n)
                .map(|_| ((next() % 100) as i64 - 18, (next() % 80) as i64 - 16))
                .collect();
            let (bx, by) = ((next() % 50) as usize, (next() % 30) as usize);
            let rect = Rect::new(
                bx,
                by,
                1 + (next() as usize % (w - bx)),
                1 + (next() as usize % (h - by)),
            );
            let want = full_frame(&frame, w, h, &face, rect, &poly);
            let mut got = frame.clone();
            pb.blend_u8(
                &mut ImageMut::packed(&mut got, w, h, ChannelOrder::Bgr).unwrap(),
                &face,
                rect,
                &poly,
            )
            .unwrap();
            assert!(got == want, "case {case}: {poly:?} {rect:?}");
        }
    }
}
