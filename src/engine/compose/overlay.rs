//! The `show_sketch` debugging view, drawn inside the output frame.
//!
//! The official script shows the centre target sketch as the left half of a side-by-side frame
//! (spec §1.7 steps 10-11), which a video filter cannot do without changing the caps. Here the
//! same sketch is laid over the face instead: its 128 × 128 values (`0..224`, truncated to `u8`,
//! three equal channels) are resized into the crop box with the cv2-exact `uint8` resize, and each
//! box pixel becomes the per-channel maximum of itself and the sketch ("lighten"). The predicted
//! jaw and lip lines thus appear in light grey exactly where the renderer was asked to put them,
//! on top of the generated face, and nothing outside the crop box is touched.

use crate::image::{ChannelOrder, Image, ImageError, ImageMut, Rect, Resizer, resize_bgr_u8};

/// Scratch of the overlay: the sketch as a BGR image and its resized copy.
#[derive(Debug, Default)]
pub(super) struct SketchOverlay {
    sketch: Image,
    resized: Image,
}

impl SketchOverlay {
    /// Keeps the 128 × 128 sketch `values` (`0.0..=224.0`, as spec §4 step 5 leaves them) for the
    /// next [`SketchOverlay::draw`]; `as u8` truncates like the official `astype(np.uint8)`.
    pub(super) fn set_sketch(&mut self, values: &[f64], side: usize) {
        self.sketch.reset(side, side, ChannelOrder::Bgr);
        for (px, &v) in self.sketch.data_mut().chunks_exact_mut(3).zip(values) {
            px.fill(v as u8);
        }
    }

    /// Lightens `rect` of `frame` with the kept sketch resized to the rectangle.
    pub(super) fn draw(
        &mut self,
        frame: &mut ImageMut,
        rect: Rect,
        resizer: &mut Resizer,
    ) -> Result<(), ImageError> {
        self.resized
            .reset(rect.width, rect.height, ChannelOrder::Bgr);
        let src = Rect::new(0, 0, self.sketch.width(), self.sketch.height());
        let dst = Rect::new(0, 0, rect.width, rect.height);
        resize_bgr_u8(
            &self.sketch.view(),
            src,
            &mut self.resized.view_mut(),
            dst,
            resizer,
        )?;
        let order = frame.order();
        let off = order.bgr_offsets().ok_or(ImageError::NeedsColour {
            what: "sketch overlay",
            order,
        })?;
        let bpp = order.bytes_per_pixel();
        for y in 0..rect.height {
            let row = &mut frame.row_mut(rect.y + y)[rect.x * bpp..(rect.x + rect.width) * bpp];
            let src = &self.resized.data()[y * rect.width * 3..(y + 1) * rect.width * 3];
            for (px, s) in row.chunks_exact_mut(bpp).zip(src.chunks_exact(3)) {
                for c in 0..3 {
                    px[off[c]] = px[off[c]].max(s[c]);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_lightens_only_the_box() {
        let mut values = vec![0.0f64; 4 * 4];
        values[5] = 224.0; // pixel (1, 1)
        let mut ov = SketchOverlay::default();
        ov.set_sketch(&values, 4);
        let (w, h) = (10, 6);
        let mut data = vec![100u8; w * h * 4];
        let mut frame = ImageMut::packed(&mut data, w, h, ChannelOrder::Rgbx).unwrap();
        ov.draw(&mut frame, Rect::new(2, 1, 4, 4), &mut Resizer::new())
            .unwrap();
        // Same size: identity resize; only (3, 2) changes, and never the x byte.
        for y in 0..h {
            for x in 0..w {
                let px = &data[(y * w + x) * 4..(y * w + x + 1) * 4];
                let want = if (x, y) == (3, 2) { 224 } else { 100 };
                assert_eq!(px, [want, want, want, 100], "({x}, {y})");
            }
        }
    }
}
