//! `cv2.resize(..., interpolation=INTER_LINEAR)` reproduced bit for bit (spec appendix C.2).
//!
//! Two element types are needed: `uint8` BGR images (face crops, the generated face pasted back)
//! use OpenCV's fixed-point path with 11-bit weights; the `float64` sketch canvas uses the same
//! taps with `f32` weights applied in `f64`.

use super::{ChannelOrder, ImageError, ImageMut, ImageRef, Rect};

/// OpenCV's `INTER_RESIZE_COEF_BITS`: weights are integers in 1/2048 units.
const COEF_SCALE: f32 = 2048.0;

/// The two source samples (and their weights) behind one output sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tap {
    pub i0: usize,
    pub i1: usize,
    pub w0: f32,
    pub w1: f32,
}

/// Taps for one axis (spec C.2). `clamp` selects the column rule (out-of-range positions are
/// pinned to the edge with weight 0); rows (`clamp = false`) keep their fractional weight and only
/// clip the two source indices, which differs from the column rule only when upscaling.
pub(crate) fn taps(src: usize, dst: usize, clamp: bool) -> Vec<Tap> {
    // OpenCV computes the inverse scale first and inverts it; keep that rounding.
    let scale = 1.0 / (dst as f64 / src as f64);
    let last = src as i64 - 1;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if clamp {
                if s < 0 {
                    s = 0;
                    frac = 0.0;
                }
                if s >= last {
                    s = last;
                    frac = 0.0;
                }
            }
            Tap {
                i0: s.clamp(0, last) as usize,
                i1: (s + 1).clamp(0, last) as usize,
                w0: 1.0 - frac,
                w1: frac,
            }
        })
        .collect()
}

/// Fixed-point weight: `round(w * 2048)`, ties to even (OpenCV's `saturate_cast<short>`).
fn fixed(w: f32) -> i32 {
    (w * COEF_SCALE).round_ties_even() as i32
}

/// Reusable scratch space for `uint8` resizing (no allocation per frame once warmed up).
#[derive(Debug, Default)]
pub struct Resizer {
    xt: Vec<(usize, usize, i32, i32)>,
    yt: Vec<(usize, usize, u16, u16)>,
    // Horizontal results (t >> 4 <= 32640, which fits u16) of the two source rows in use, and their indices.
    rows: [Vec<u16>; 2],
    row_ids: [usize; 2],
    packed: Vec<u8>,
    out: Vec<u8>,
}

impl Resizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Horizontal pass of source row `y`: `t = s0 a0 + s1 a1`, stored as `t >> 4` (spec C.2).
    fn horizontal(&mut self, slot: usize, src: &ImageRef, rect: Rect, off: [usize; 3], y: usize) {
        let bpp = src.order().bytes_per_pixel();
        let row = &src.row(rect.y + y)[rect.x * bpp..(rect.x + rect.width) * bpp];
        let h = &mut self.rows[slot];
        if self.xt.len() < rect.width {
            // Downscaling: most source pixels are never read, so read the taps in place.
            for (hx, &(i0, i1, a0, a1)) in h.chunks_exact_mut(3).zip(self.xt.iter()) {
                let (p0, p1) = (
                    &row[i0 * bpp..i0 * bpp + bpp],
                    &row[i1 * bpp..i1 * bpp + bpp],
                );
                for c in 0..3 {
                    hx[c] = ((p0[off[c]] as i32 * a0 + p1[off[c]] as i32 * a1) >> 4) as u16;
                }
            }
        } else {
            // Upscaling: gather B, G, R once per source pixel so the taps read packed triples.
            self.packed.clear();
            if off == [0, 1, 2] && bpp == 3 {
                self.packed.extend_from_slice(row);
            } else {
                for px in row.chunks_exact(bpp) {
                    self.packed
                        .extend_from_slice(&[px[off[0]], px[off[1]], px[off[2]]]);
                }
            }
            let packed = &self.packed;
            for (hx, &(i0, i1, a0, a1)) in h.chunks_exact_mut(3).zip(self.xt.iter()) {
                let p0: [u8; 3] = packed[3 * i0..3 * i0 + 3].try_into().unwrap_or([0; 3]);
                let p1: [u8; 3] = packed[3 * i1..3 * i1 + 3].try_into().unwrap_or([0; 3]);
                for c in 0..3 {
                    hx[c] = ((p0[c] as i32 * a0 + p1[c] as i32 * a1) >> 4) as u16;
                }
            }
        }
        self.row_ids[slot] = y;
    }

    /// Makes slots 0 and 1 hold source rows `r0` and `r1`, reusing what is already there.
    fn load_rows(&mut self, src: &ImageRef, rect: Rect, off: [usize; 3], r0: usize, r1: usize) {
        if self.row_ids[0] != r0 {
            if self.row_ids[1] == r0 {
                self.rows.swap(0, 1);
                self.row_ids.swap(0, 1);
            } else {
                self.horizontal(0, src, rect, off, r0);
            }
        }
        if self.row_ids[1] != r1 {
            self.horizontal(1, src, rect, off, r1);
        }
    }
}

fn check_rect(rect: Rect, width: usize, height: usize) -> Result<(), ImageError> {
    if rect.is_empty() || !rect.fits_in(width, height) {
        return Err(ImageError::BadRegion {
            rect,
            width,
            height,
        });
    }
    Ok(())
}

fn colour_offsets(order: ChannelOrder, what: &'static str) -> Result<[usize; 3], ImageError> {
    order
        .bgr_offsets()
        .ok_or(ImageError::NeedsColour { what, order })
}

/// Vertical pass (spec C.2): `((b0 h0) >> 16) + ((b1 h1) >> 16) + 2 >> 2`, i.e. the high halves
/// of 16-bit products as OpenCV's SIMD path computes them. All terms are non-negative and each
/// high half is at most 2048 * 32640 >> 16 = 1020, so unsigned 16-bit lanes are exact; blocks of
/// eight let the compiler use 8-lane multiply-high instructions.
fn vertical_u8(out: &mut [u8], h0: &[u16], h1: &[u16], b0: u16, b1: u16) {
    let mulhi = |b: u16, t: u16| ((b as u32 * t as u32) >> 16) as u16;
    let lane = |t0: u16, t1: u16| ((mulhi(b0, t0) + mulhi(b1, t1) + 2) >> 2).min(255) as u8;
    let mut o8 = out.chunks_exact_mut(8);
    let (mut a8, mut c8) = (h0.chunks_exact(8), h1.chunks_exact(8));
    for ((o, a), c) in (&mut o8).zip(&mut a8).zip(&mut c8) {
        for i in 0..8 {
            o[i] = lane(a[i], c[i]);
        }
    }
    for ((o, &a), &c) in o8
        .into_remainder()
        .iter_mut()
        .zip(a8.remainder())
        .zip(c8.remainder())
    {
        *o = lane(a, c);
    }
}

/// Resizes the `src_rect` part of `src` onto the `dst_rect` part of `dst` with `uint8`
/// INTER_LINEAR (spec C.2), channel by channel (B, G and R are matched by name, so the two images
/// may have different channel orders; other bytes of `dst` are left alone).
pub fn resize_bgr_u8(
    src: &ImageRef,
    src_rect: Rect,
    dst: &mut ImageMut,
    dst_rect: Rect,
    scratch: &mut Resizer,
) -> Result<(), ImageError> {
    check_rect(src_rect, src.width(), src.height())?;
    check_rect(dst_rect, dst.width(), dst.height())?;
    let soff = colour_offsets(src.order(), "resize source")?;
    let doff = colour_offsets(dst.order(), "resize destination")?;
    let (dw, dh) = (dst_rect.width, dst_rect.height);

    scratch.xt.clear();
    scratch.xt.extend(
        taps(src_rect.width, dw, true)
            .iter()
            .map(|t| (t.i0, t.i1, fixed(t.w0), fixed(t.w1))),
    );
    scratch.yt.clear();
    scratch.yt.extend(
        taps(src_rect.height, dh, false)
            .iter()
            .map(|t| (t.i0, t.i1, fixed(t.w0) as u16, fixed(t.w1) as u16)),
    );
    for r in scratch.rows.iter_mut() {
        r.clear();
        r.resize(dw * 3, 0);
    }
    scratch.row_ids = [usize::MAX; 2];
    scratch.out.clear();
    scratch.out.resize(dw * 3, 0);

    let dbpp = dst.order().bytes_per_pixel();
    for y in 0..dh {
        let (r0, r1, b0, b1) = scratch.yt[y];
        scratch.load_rows(src, src_rect, soff, r0, r1);
        // Vertical pass: ((b0 h0) >> 16) + ((b1 h1) >> 16) + 2 >> 2, i.e. 16-bit "multiply high"
        // products as OpenCV's SIMD path computes them (spec C.2).
        let (h0, h1) = (&scratch.rows[0], &scratch.rows[1]);
        vertical_u8(&mut scratch.out, h0, h1, b0, b1);
        let row = &mut dst.row_mut(dst_rect.y + y)[dst_rect.x * dbpp..(dst_rect.x + dw) * dbpp];
        if doff == [0, 1, 2] && dbpp == 3 {
            row.copy_from_slice(&scratch.out);
        } else {
            for (px, v) in row.chunks_exact_mut(dbpp).zip(scratch.out.chunks_exact(3)) {
                px[doff[0]] = v[0];
                px[doff[1]] = v[1];
                px[doff[2]] = v[2];
            }
        }
    }
    Ok(())
}

/// `float64` INTER_LINEAR of a single-channel `u8` image (`sw` x `sh`, packed) into `dst`
/// (`dw` x `dh`): the sketch path of spec §4 step 5. `row` is scratch for one horizontal pass pair.
pub(crate) fn resize_gray_f64(
    src: &[u8],
    sw: usize,
    sh: usize,
    dst: &mut [f64],
    dw: usize,
    dh: usize,
    rows: &mut [Vec<f64>; 2],
) {
    let xt = taps(sw, dw, true);
    let yt = taps(sh, dh, false);
    let horizontal = |y: usize, out: &mut Vec<f64>| {
        let s = &src[y * sw..(y + 1) * sw];
        out.clear();
        out.extend(
            xt.iter()
                .map(|t| s[t.i0] as f64 * t.w0 as f64 + s[t.i1] as f64 * t.w1 as f64),
        );
    };
    let mut ids = [usize::MAX; 2];
    for (y, t) in yt.iter().enumerate() {
        if ids[0] != t.i0 {
            if ids[1] == t.i0 {
                rows.swap(0, 1);
                ids.swap(0, 1);
            } else {
                horizontal(t.i0, &mut rows[0]);
                ids[0] = t.i0;
            }
        }
        if ids[1] != t.i1 {
            horizontal(t.i1, &mut rows[1]);
            ids[1] = t.i1;
        }
        let (b0, b1) = (t.w0 as f64, t.w1 as f64);
        for ((o, &t0), &t1) in dst[y * dw..(y + 1) * dw]
            .iter_mut()
            .zip(rows[0].iter())
            .zip(rows[1].iter())
        {
            *o = t0 * b0 + t1 * b1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Image;

    #[test]
    fn identity_taps_and_upscale_rows() {
        let t = taps(5, 5, true);
        assert!(t.iter().enumerate().all(|(i, t)| t.i0 == i && t.w1 == 0.0));
        // Upscaling 2 -> 4: first row sits at -0.25, clipped indices, weights kept (spec C.2).
        let r = taps(2, 4, false);
        assert_eq!((r[0].i0, r[0].i1, r[0].w0, r[0].w1), (0, 0, 0.25, 0.75));
        let c = taps(2, 4, true);
        assert_eq!((c[0].i0, c[0].i1, c[0].w0), (0, 1, 1.0));
    }

    #[test]
    fn exact_two_to_one_is_rounded_box_average() {
        // Spec C.2: an exact 2x downscale equals the 2 x 2 box average rounded half up.
        let data: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let src = ImageRef::packed(&data, 4, 4, ChannelOrder::Bgr).unwrap();
        let mut out = Image::new(2, 2, ChannelOrder::Bgr);
        let mut rz = Resizer::new();
        resize_bgr_u8(
            &src,
            Rect::new(0, 0, 4, 4),
            &mut out.view_mut(),
            Rect::new(0, 0, 2, 2),
            &mut rz,
        )
        .unwrap();
        for y in 0..2 {
            for x in 0..2 {
                for c in 0..3 {
                    let p = |yy: usize, xx: usize| data[(yy * 4 + xx) * 3 + c] as u32;
                    let s = p(2 * y, 2 * x)
                        + p(2 * y, 2 * x + 1)
                        + p(2 * y + 1, 2 * x)
                        + p(2 * y + 1, 2 * x + 1);
                    assert_eq!(out.data()[(y * 2 + x) * 3 + c] as u32, (s + 2) / 4);
                }
            }
        }
    }

    #[test]
    fn bad_regions_are_errors() {
        let data = [0u8; 12];
        let src = ImageRef::packed(&data, 2, 2, ChannelOrder::Bgr).unwrap();
        let mut out = Image::new(2, 2, ChannelOrder::Bgr);
        let mut rz = Resizer::new();
        let full = Rect::new(0, 0, 2, 2);
        assert!(
            resize_bgr_u8(
                &src,
                Rect::new(1, 0, 2, 2),
                &mut out.view_mut(),
                full,
                &mut rz
            )
            .is_err()
        );
        assert!(
            resize_bgr_u8(
                &src,
                Rect::new(0, 0, 0, 2),
                &mut out.view_mut(),
                full,
                &mut rz
            )
            .is_err()
        );
    }
}
