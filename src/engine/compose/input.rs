//! A frame's input checked before anything is written, and the frame region its composition
//! touches.

use super::{ComposeError, FrameInput, MEL_LEN, WINDOW_CONTENT_LEN, WINDOW_POSE_LEN};
use crate::face::crop_box::{CropBoxError, MIN_LANDMARKS};
use crate::face::indices::{CONTENT, FULL_LEN, PASTE_CONTOUR, POSE};
use crate::image::{ChannelOrder, GAUSS_RADIUS, ImageError, Rect};

/// Validates everything `render_frame` reads before it writes anything; returns the box as a rect.
pub(super) fn check_input(
    width: usize,
    height: usize,
    order: ChannelOrder,
    input: &FrameInput,
) -> Result<Rect, ComposeError> {
    let b = input.crop_box;
    if b.x1 >= b.x2 || b.y1 >= b.y2 || b.x2 > width || b.y2 > height {
        return Err(ComposeError::BadBox {
            crop_box: b,
            width,
            height,
        });
    }
    if order.bgr_offsets().is_none() {
        return Err(ImageError::NeedsColour {
            what: "rendered frame",
            order,
        }
        .into());
    }
    let lengths = [
        ("window_pose", WINDOW_POSE_LEN, input.window_pose.len()),
        (
            "window_content",
            WINDOW_CONTENT_LEN,
            input.window_content.len(),
        ),
        ("mel", MEL_LEN, input.mel.len()),
    ];
    for (what, expected, got) in lengths {
        if expected != got {
            return Err(ComposeError::BadLength {
                what,
                expected,
                got,
            });
        }
    }
    Ok(b.rect())
}

/// The landmark set of window frame `j`: its POSE set then its predicted CONTENT set (lengths
/// checked by [`check_input`]).
pub(super) fn window_landmarks(input: &FrameInput, j: usize) -> [[f32; FULL_LEN]; 2] {
    let (np, nc) = (POSE.len(), CONTENT.len());
    let pose = &input.window_pose[j * 2 * np..(j + 1) * 2 * np];
    let content = &input.window_content[j * 2 * nc..(j + 1) * 2 * nc];
    let mut full = [[0f32; FULL_LEN]; 2];
    for (r, row) in full.iter_mut().enumerate() {
        row[..np].copy_from_slice(&pose[r * np..(r + 1) * np]);
        row[np..].copy_from_slice(&content[r * nc..(r + 1) * nc]);
    }
    full
}

/// The frame region a frame's composition reads and writes: the crop box and, with a paste
/// polygon, the blurred mask's window (the vertices' box clipped to the frame and dilated by the
/// blur radius, as `PasteBack::blend_u8` computes it), clipped to the frame. What a YUV frame
/// converts to RGB, and what the GPU path uploads and downloads.
pub fn paste_region(
    crop: Rect,
    polygon: Option<&[(i64, i64); PASTE_CONTOUR.len()]>,
    width: usize,
    height: usize,
) -> Rect {
    let (mut x0, mut y0) = (crop.x as i64, crop.y as i64);
    let (mut x1, mut y1) = (x0 + crop.width as i64, y0 + crop.height as i64);
    if let (Some(polygon), true) = (polygon, width > 0 && height > 0) {
        let (w, h, r) = (width as i64, height as i64, GAUSS_RADIUS as i64);
        for &(x, y) in polygon {
            x0 = x0.min(x.clamp(0, w - 1) - r);
            x1 = x1.max(x.clamp(0, w - 1) + r + 1);
            y0 = y0.min(y.clamp(0, h - 1) - r);
            y1 = y1.max(y.clamp(0, h - 1) + r + 1);
        }
    }
    let clip = |v: i64, max: usize| v.clamp(0, max as i64) as usize;
    let (x0, x1) = (clip(x0, width), clip(x1, width));
    let (y0, y1) = (clip(y0, height), clip(y1, height));
    Rect::new(x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
}

/// The paste polygon from mesh points already in frame pixels: truncation toward zero.
pub(super) fn pixel_polygon(
    points: &[[f32; 2]],
) -> Result<[(i64, i64); PASTE_CONTOUR.len()], ComposeError> {
    if points.len() < MIN_LANDMARKS {
        return Err(CropBoxError::TooFewLandmarks(points.len()).into());
    }
    let mut out = [(0, 0); PASTE_CONTOUR.len()];
    for (o, &mp) in out.iter_mut().zip(PASTE_CONTOUR.iter()) {
        let [x, y] = points[mp];
        if !x.is_finite() || !y.is_finite() {
            return Err(CropBoxError::NonFiniteLandmark(mp).into());
        }
        *o = (x as i64, y as i64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{ImageMut, PasteBack};

    /// The region holds the crop box and exactly the blurred mask's window `PasteBack` computes
    /// (what the YUV path converts and the GPU path uploads must contain everything the paste
    /// reads and writes), for polygons inside, across and outside every border.
    #[test]
    fn region_holds_the_box_and_the_mask_window() {
        let (w, h) = (160usize, 120usize);
        let mut rng = crate::kernels::check::CheckRng::new(7);
        let face = vec![0.5f32; 3 * 128 * 128];
        let mut paste = PasteBack::new();
        for case in 0..300 {
            let (cx, cy) = (rng.range(-40.0, 200.0), rng.range(-40.0, 160.0));
            let (rx, ry) = (rng.range(2.0, 70.0), rng.range(2.0, 60.0));
            let polygon: [(i64, i64); PASTE_CONTOUR.len()] = std::array::from_fn(|k| {
                let a = std::f32::consts::TAU * k as f32 / PASTE_CONTOUR.len() as f32;
                ((cx + rx * a.cos()) as i64, (cy + ry * a.sin()) as i64)
            });
            let bx = rng.below(w as u64 - 10) as usize;
            let by = rng.below(h as u64 - 10) as usize;
            let crop = Rect::new(bx, by, 1 + rng.below((w - bx) as u64 - 1) as usize, 5);
            let region = paste_region(crop, Some(&polygon), w, h);
            let inside = |r: Rect| {
                r.x >= region.x
                    && r.y >= region.y
                    && r.x + r.width <= region.x + region.width
                    && r.y + r.height <= region.y + region.height
            };
            assert!(inside(crop), "case {case}");
            assert!(region.fits_in(w, h), "case {case}");
            let mut frame = vec![0u8; w * h * 3];
            let mut image = ImageMut::packed(&mut frame, w, h, ChannelOrder::Bgr).unwrap();
            paste.blend(&mut image, &face, crop, &polygon).unwrap();
            let window = paste.window();
            if !window.is_empty() {
                assert!(inside(window), "case {case}: {window:?} outside {region:?}");
            }
            // Without a polygon: the box alone.
            assert_eq!(paste_region(crop, None, w, h), crop);
        }
    }
}
