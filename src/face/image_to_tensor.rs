//! MediaPipe's `ImageToTensorCalculator` (CPU/OpenCV path): a rotated rectangle of the frame
//! warped to a fixed-size float tensor.
//!
//! Upstream (`mediapipe/calculators/tensor/image_to_tensor_converter_opencv.cc`) maps the four
//! corners of the rectangle (`cv::boxPoints`) onto the tensor corners, runs `cv::warpPerspective`
//! with `INTER_LINEAR` on the **uint8** image, then `convertTo` with the value-range scale. This
//! module reproduces OpenCV's fixed-point bilinear remap (coordinates rounded to 1/32 pixel,
//! 15-bit weights, round-half-up) so that the tensors match MediaPipe's to the code value.
//! Output is RGB, planar NCHW (`[3, H, W]`), whatever the input channel order.

use crate::image::ImageRef;

/// A rectangle in frame pixels, rotated by `rotation` radians about its centre (MediaPipe's
/// `RotatedRect`: `mediapipe/calculators/tensor/image_to_tensor_utils.h`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotatedRect {
    /// Centre x, pixels.
    pub center_x: f32,
    /// Centre y, pixels.
    pub center_y: f32,
    /// Width, pixels.
    pub width: f32,
    /// Height, pixels.
    pub height: f32,
    /// Rotation, radians (positive turns the rectangle's x axis towards +y).
    pub rotation: f32,
}

/// What the warp reads outside the frame (`ImageToTensorCalculatorOptions.border_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Border {
    /// Black (`BORDER_ZERO`, used by the face detector).
    Zero,
    /// Nearest edge pixel (`BORDER_REPLICATE`, the default, used by the face mesh).
    Replicate,
}

/// OpenCV's `INTER_BITS`: sub-pixel positions are quantised to 1/32.
const INTER_TAB_SIZE: f64 = 32.0;
/// OpenCV's `INTER_REMAP_COEF_BITS`.
const COEF_BITS: u32 = 15;

/// Fills `out` (`3 × out_h × out_w`, RGB planes) with the rectangle `roi` of `image`, values mapped
/// from [0, 255] to [`range.0`, `range.1`].
pub fn warp_to_tensor(
    image: &ImageRef<'_>,
    roi: &RotatedRect,
    out_w: usize,
    out_h: usize,
    border: Border,
    range: (f32, f32),
    out: &mut Vec<f32>,
) {
    out.clear();
    out.resize(3 * out_w * out_h, range.0);
    let (w, h) = (image.width() as i64, image.height() as i64);
    let Some([ob, og, or]) = image.order().bgr_offsets() else {
        return;
    };
    if w == 0 || h == 0 || out_w == 0 || out_h == 0 {
        return;
    }
    let bpp = image.order().bytes_per_pixel();
    let stride = image.stride();
    let data = image.data();
    // Tensor pixel (x, y) → frame: centre + (x/W − ½)·width·(cos, sin) + (y/H − ½)·height·(−sin, cos).
    let (c, s) = ((roi.rotation as f64).cos(), (roi.rotation as f64).sin());
    let (rw, rh) = (roi.width as f64, roi.height as f64);
    let ax = c * rw / out_w as f64;
    let ay = -s * rh / out_h as f64;
    let bx = s * rw / out_w as f64;
    let by = c * rh / out_h as f64;
    let x0 = roi.center_x as f64 - 0.5 * c * rw + 0.5 * s * rh;
    let y0 = roi.center_y as f64 - 0.5 * s * rw - 0.5 * c * rh;
    let scale = (range.1 - range.0) / 255.0;
    let offset = range.0;
    let plane = out_w * out_h;
    let fetch = |x: i64, y: i64| -> Option<usize> {
        let (x, y) = match border {
            Border::Zero if x < 0 || y < 0 || x >= w || y >= h => return None,
            Border::Zero => (x, y),
            Border::Replicate => (x.clamp(0, w - 1), y.clamp(0, h - 1)),
        };
        Some(y as usize * stride + x as usize * bpp)
    };
    for ty in 0..out_h {
        for tx in 0..out_w {
            let sx = x0 + ax * tx as f64 + ay * ty as f64;
            let sy = y0 + bx * tx as f64 + by * ty as f64;
            let xi = (sx * INTER_TAB_SIZE)
                .clamp(i32::MIN as f64, i32::MAX as f64)
                .round_ties_even() as i64;
            let yi = (sy * INTER_TAB_SIZE)
                .clamp(i32::MIN as f64, i32::MAX as f64)
                .round_ties_even() as i64;
            let (px, fx) = (xi >> 5, xi & 31);
            let (py, fy) = (yi >> 5, yi & 31);
            // Bilinear weights in 1/32768: (32 − f)·32 etc. are exact, as OpenCV's table.
            let wts = [
                (32 - fx) * (32 - fy) * 32,
                fx * (32 - fy) * 32,
                (32 - fx) * fy * 32,
                fx * fy * 32,
            ];
            let taps = [
                fetch(px, py),
                fetch(px + 1, py),
                fetch(px, py + 1),
                fetch(px + 1, py + 1),
            ];
            let mut acc = [0i64; 3];
            for (t, wt) in taps.iter().zip(wts) {
                if let Some(p) = t {
                    for (k, off) in [or, og, ob].into_iter().enumerate() {
                        acc[k] += wt * data[p + off] as i64;
                    }
                }
            }
            let idx = ty * out_w + tx;
            for (k, a) in acc.iter().enumerate() {
                let v = ((a + (1 << (COEF_BITS - 1))) >> COEF_BITS).clamp(0, 255) as f32;
                out[k * plane + idx] = v * scale + offset;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ChannelOrder;

    #[test]
    fn half_size_full_frame_samples_even_pixels() {
        // 4x4 RGB ramp; a 2x2 tensor of the whole frame samples pixel (2x, 2y) exactly.
        let data: Vec<u8> = (0..48).map(|i| (i * 5) as u8).collect();
        let img = ImageRef::packed(&data, 4, 4, ChannelOrder::Rgb).unwrap();
        let roi = RotatedRect {
            center_x: 2.0,
            center_y: 2.0,
            width: 4.0,
            height: 4.0,
            rotation: 0.0,
        };
        let mut out = Vec::new();
        warp_to_tensor(&img, &roi, 2, 2, Border::Zero, (0.0, 255.0), &mut out);
        assert_eq!(out[1], data[2 * 3] as f32); // R of pixel (2, 0)
        assert_eq!(out[4 + 3], data[(2 * 4 + 2) * 3 + 1] as f32); // G of pixel (2, 2)
    }

    #[test]
    fn bgr_and_rgb_give_the_same_tensor() {
        let rgb: Vec<u8> = (0..75).map(|i| (i * 7 % 256) as u8).collect();
        let bgr: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
        let roi = RotatedRect {
            center_x: 2.3,
            center_y: 2.1,
            width: 4.0,
            height: 3.0,
            rotation: 0.3,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ia = ImageRef::packed(&rgb, 5, 5, ChannelOrder::Rgb).unwrap();
        let ib = ImageRef::packed(&bgr, 5, 5, ChannelOrder::Bgr).unwrap();
        warp_to_tensor(&ia, &roi, 6, 6, Border::Replicate, (0.0, 1.0), &mut a);
        warp_to_tensor(&ib, &roi, 6, 6, Border::Replicate, (0.0, 1.0), &mut b);
        assert_eq!(a, b);
    }
}
