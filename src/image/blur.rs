//! `cv2.GaussianBlur(mask, (21, 21), 11)` on a `uint8` single-channel frame, bit-exact (spec
//! appendix C.3), evaluated only over the window that a sparse mask can reach.
//!
//! OpenCV's fixed-point result is `(sum_j k_j sum_i k_i src + 2^15) >> 16` with the integer kernel
//! below: every partial sum is an exact integer, so the order of the two passes and any skipped
//! all-zero or all-255 neighbourhoods cannot change the result. The window trick relies on that:
//! pixels more than 10 px from every non-zero source pixel are 0 even with BORDER_REFLECT_101,
//! because reflection only maps out-of-frame taps onto pixels within 10 px of the output.

use super::Rect;

/// Kernel radius: 21 taps.
pub const GAUSS_RADIUS: usize = 10;
const TAPS: usize = 2 * GAUSS_RADIUS + 1;

/// The 8-bit fixed-point kernel of sigma 11 (sum 256), spec C.3. Derived in the unit test below
/// from the Gaussian by OpenCV's outside-in error diffusion.
pub const GAUSS_KERNEL: [u32; TAPS] = [
    9, 10, 11, 12, 12, 12, 14, 13, 14, 14, 14, 14, 14, 13, 14, 12, 12, 12, 11, 10, 9,
];

/// BORDER_REFLECT_101 index: mirror without repeating the edge pixel (`-1 -> 1`, `n -> n - 2`).
fn reflect101(mut i: i64, n: usize) -> usize {
    let n = n as i64;
    if n == 1 {
        return 0;
    }
    // Loops only for windows wider than the frame (tiny frames); one step otherwise.
    while i < 0 || i >= n {
        i = if i < 0 { -i } else { 2 * (n - 1) - i };
    }
    i as usize
}

/// End (exclusive) of the run of equal bytes starting at `a`, comparing eight bytes at a time.
fn run_end(p: &[u8], a: usize) -> usize {
    let v = p[a];
    let pattern = u64::from_ne_bytes([v; 8]);
    let mut i = a + 1;
    while let Some(chunk) = p.get(i..i + 8) {
        if u64::from_ne_bytes(chunk.try_into().unwrap_or([!v; 8])) != pattern {
            break;
        }
        i += 8;
    }
    while i < p.len() && p[i] == v {
        i += 1;
    }
    i
}

/// Reusable buffers: horizontal sums and their per-row extents.
#[derive(Debug, Default)]
pub struct BlurScratch {
    // Horizontal sums (integers <= 65280) as f32: see the vertical pass for why this is exact.
    h: Vec<f32>,
    padded: Vec<u8>,
    /// Per horizontal row: inclusive column range of non-zero sums, and a range where all 21 taps
    /// fall on 255 (sum 65280; `(1, 0)` when empty).
    nz: Vec<(usize, usize)>,
    full: Vec<(usize, usize)>,
    acc: Vec<f32>,
}

const EMPTY: (usize, usize) = (1, 0);

/// Blurs the frame-sized mask whose `window` part is `src` (row stride `window.width`) and whose
/// pixels outside `window` are all zero, writing the `window` part of the result to `dst`. Every
/// non-zero source pixel must lie at least [`GAUSS_RADIUS`] px inside `window` or at the frame
/// edge (use [`Rect`] dilation clipped to the frame); the output is then 0 outside `window`.
/// `row_spans[r]` receives the inclusive column range (window coordinates) of non-zero outputs
/// of row `r` (`(1, 0)` when none).
pub fn gaussian_blur_region(
    src: &[u8],
    window: Rect,
    frame_w: usize,
    frame_h: usize,
    dst: &mut [u8],
    row_spans: &mut Vec<(usize, usize)>,
    s: &mut BlurScratch,
) {
    let (ww, wh) = (window.width, window.height);
    row_spans.clear();
    row_spans.resize(wh, EMPTY);
    let len = ww * wh;
    if len == 0 || src.len() < len || dst.len() < len || !window.fits_in(frame_w, frame_h) {
        return;
    }
    dst[..len].fill(0);
    let mut prefix = [0u32; TAPS + 1];
    for i in 0..TAPS {
        prefix[i + 1] = prefix[i] + GAUSS_KERNEL[i];
    }

    // Horizontal pass, run by run: a run of value v over padded columns a..=b adds
    // v * (kernel taps that fall on it) to each output column it reaches.
    s.h.clear();
    s.h.resize(len, 0.0);
    s.nz.clear();
    s.full.clear();
    s.padded.resize(ww + 2 * GAUSS_RADIUS, 0);
    for r in 0..wh {
        let row = &src[r * ww..(r + 1) * ww];
        let h = &mut s.h[r * ww..(r + 1) * ww];
        let (mut nz, mut full) = (EMPTY, EMPTY);
        if run_end(row, 0) == ww && row[0] == 0 {
            s.nz.push(nz);
            s.full.push(full);
            continue;
        }
        // Padded row: window columns copied, the 10 columns either side are 0 (inside the frame
        // but outside the window) or BORDER_REFLECT_101 images of frame columns.
        let pad = GAUSS_RADIUS;
        s.padded[pad..pad + ww].copy_from_slice(row);
        for i in (0..pad).chain(pad + ww..ww + 2 * pad) {
            let fx = reflect101(window.x as i64 + i as i64 - pad as i64, frame_w);
            s.padded[i] = if fx >= window.x && fx < window.x + ww {
                row[fx - window.x]
            } else {
                0
            };
        }
        let p = &s.padded;
        let mut a = 0;
        while a < p.len() {
            let v = p[a];
            let b = run_end(p, a) - 1;
            if v != 0 {
                // Output column x covers padded columns x..=x + 20, so the run reaches columns
                // a - 20..=b; those in a..=b - 20 see it with all 21 taps.
                let lo = a.saturating_sub(TAPS - 1);
                let hi = b.min(ww - 1);
                let (in_lo, in_hi) = (a, (b + 1).saturating_sub(TAPS - 1).min(hi + 1));
                let v32 = v as u32;
                let partial = |x: usize| {
                    v32 * (prefix[(b - x).min(TAPS - 1) + 1] - prefix[a.saturating_sub(x)])
                };
                if in_lo < in_hi {
                    for (x, hx) in h.iter_mut().enumerate().take(in_lo).skip(lo) {
                        *hx += partial(x) as f32;
                    }
                    for hx in &mut h[in_lo..in_hi] {
                        *hx += (256 * v32) as f32;
                    }
                    for (x, hx) in h.iter_mut().enumerate().take(hi + 1).skip(in_hi) {
                        *hx += partial(x) as f32;
                    }
                } else {
                    for (x, hx) in h.iter_mut().enumerate().take(hi + 1).skip(lo) {
                        *hx += partial(x) as f32;
                    }
                }
                if lo <= hi {
                    nz = if nz == EMPTY {
                        (lo, hi)
                    } else {
                        (nz.0.min(lo), nz.1.max(hi))
                    };
                }
                // Columns whose 21 taps all fall on a 255 run; keep the longest such range.
                if v == 255
                    && in_lo < in_hi
                    && (full == EMPTY || in_hi - 1 - in_lo > full.1 - full.0)
                {
                    full = (in_lo, in_hi - 1);
                }
            }
            a = b + 1;
        }
        s.nz.push(nz);
        s.full.push(full);
    }

    // Vertical pass over the 21 reflected rows; rows outside the window are zero.
    s.acc.resize(ww, 0.0);
    let mut ids = [None::<usize>; TAPS];
    for r in 0..wh {
        let (mut u, mut f) = (EMPTY, (0, ww - 1));
        for (t, id) in ids.iter_mut().enumerate() {
            let fy = reflect101((window.y + r + t) as i64 - GAUSS_RADIUS as i64, frame_h);
            *id = (fy >= window.y && fy < window.y + wh).then(|| fy - window.y);
            let (nz, full) = match *id {
                Some(i) => (s.nz[i], s.full[i]),
                None => (EMPTY, EMPTY),
            };
            if nz != EMPTY {
                u = if u == EMPTY {
                    nz
                } else {
                    (u.0.min(nz.0), u.1.max(nz.1))
                };
            }
            f = (f.0.max(full.0), f.1.min(full.1));
        }
        if u == EMPTY {
            continue;
        }
        row_spans[r] = u;
        let out = &mut dst[r * ww..(r + 1) * ww];
        // Inside `f` every tap is 65280: 256 * 65280 + 32768 >> 16 = 255.
        let f_ok = f.0 <= f.1;
        if f_ok {
            out[f.0..=f.1].fill(255);
        }
        let ranges = if f_ok {
            [(u.0, f.0.min(u.1 + 1)), (f.1 + 1, u.1 + 1)]
        } else {
            [(u.0, u.1 + 1), (0, 0)]
        };
        for (x0, x1) in ranges {
            if x0 >= x1 {
                continue;
            }
            // Integer arithmetic carried in f32: every product and partial sum is an integer
            // below 2^24 (at most 32768 + 256 * 65280 = 16,744,448), so no rounding happens and
            // the result is OpenCV's (S + 2^15) >> 16 exactly, with 4-wide SIMD multiplies.
            let acc = &mut s.acc[x0..x1];
            acc.fill(32768.0);
            for (t, id) in ids.iter().enumerate() {
                if let Some(i) = *id {
                    let k = GAUSS_KERNEL[t] as f32;
                    let hr = &s.h[i * ww + x0..i * ww + x1];
                    for (a, &hv) in acc.iter_mut().zip(hr) {
                        *a += k * hv;
                    }
                }
            }
            for (o, &a) in out[x0..x1].iter_mut().zip(acc.iter()) {
                *o = ((a as u32) >> 16).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_follows_from_the_gaussian() {
        // Spec C.3: normalised Gaussian, then outside-in error diffusion to 8 fractional bits.
        let g: Vec<f64> = (0..TAPS)
            .map(|i| (-((i as f64 - 10.0).powi(2)) / (2.0 * 11.0 * 11.0)).exp())
            .collect();
        let sum: f64 = g.iter().sum();
        let mut k = [0u32; TAPS];
        let mut err = 0.0;
        for i in 0..GAUSS_RADIUS {
            let a = g[i] / sum * 256.0 + err;
            let v = a.round_ties_even();
            err = a - v;
            k[i] = v as u32;
            k[TAPS - 1 - i] = v as u32;
        }
        k[GAUSS_RADIUS] = 256 - 2 * k[..GAUSS_RADIUS].iter().sum::<u32>();
        assert_eq!(k, GAUSS_KERNEL);
    }

    /// Straightforward full-frame reference of spec C.3.
    fn blur_full(src: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut hs = vec![0u32; w * h];
        for y in 0..h {
            for x in 0..w {
                hs[y * w + x] = (0..TAPS)
                    .map(|t| {
                        GAUSS_KERNEL[t]
                            * src[y * w + reflect101(x as i64 + t as i64 - 10, w)] as u32
                    })
                    .sum();
            }
        }
        let mut out = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let s: u32 = (0..TAPS)
                    .map(|t| GAUSS_KERNEL[t] * hs[reflect101(y as i64 + t as i64 - 10, h) * w + x])
                    .sum();
                out[y * w + x] = ((s + 32768) >> 16).min(255) as u8;
            }
        }
        out
    }

    #[test]
    fn window_equals_full_frame_near_borders() {
        let (w, h) = (48, 40);
        let mut src = vec![0u8; w * h];
        // A blob touching the left and top border plus non-binary values.
        for y in 0..25 {
            for x in 0..30 {
                src[y * w + x] = if (x + y) % 7 == 0 { 100 } else { 255 };
            }
        }
        let full = blur_full(&src, w, h);
        let win = Rect::new(0, 0, 40, 35); // bbox (0..30, 0..25) dilated by 10
        let mut wsrc = vec![0u8; 40 * 35];
        for y in 0..35 {
            wsrc[y * 40..y * 40 + 40].copy_from_slice(&src[y * w..y * w + 40]);
        }
        let mut dst = vec![0u8; 40 * 35];
        let mut spans = Vec::new();
        gaussian_blur_region(
            &wsrc,
            win,
            w,
            h,
            &mut dst,
            &mut spans,
            &mut BlurScratch::default(),
        );
        for y in 0..h {
            for x in 0..w {
                let got = if x < 40 && y < 35 { dst[y * 40 + x] } else { 0 };
                assert_eq!(got, full[y * w + x], "({x}, {y})");
            }
        }
        assert_eq!(reflect101(-1, 5), 1);
        assert_eq!(reflect101(5, 5), 3);
        assert_eq!(reflect101(-3, 1), 0);
        assert_eq!(reflect101(-7, 3), 1);
    }
}
