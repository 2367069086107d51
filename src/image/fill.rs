//! `cv2.fillConvexPoly(mask, points, 255)` with shift 0 and LINE_8 (spec appendix C.4), drawn into
//! a window of the frame so that the paste-back never touches a full-frame mask.

use super::Rect;
use super::line::line8;

/// 16.16 fixed point of the scanline walkers.
const XY_SHIFT: u32 = 16;
const XY_HALF: i64 = 1 << (XY_SHIFT - 1);

/// Fills `pts` (vertices `(x, y)` in frame pixels, any order OpenCV accepts: the polygon is not
/// made convex) with `value` into `buf`, which holds the `window` part of the frame (row stride
/// `window.width`).
///
/// The result inside `window` equals OpenCV's on the full frame provided `window` contains every
/// frame pixel the polygon can reach, i.e. the vertices' bounding box clipped to the frame. Vertex
/// coordinates are used in `i64`; the caller bounds them (see `PasteBack`).
///
/// Known deviation: OpenCV clips each outline segment to the image before walking it, which moves
/// a few outline pixels when a vertex lies outside the frame (spec C.4 step 1: about 1 case in
/// 1500 face-like polygons); here unclipped segments are walked and off-window pixels dropped.
pub fn fill_convex_poly(buf: &mut [u8], window: Rect, pts: &[(i64, i64)], value: u8) {
    let n = pts.len();
    if n == 0 || window.is_empty() || buf.len() < window.width * window.height {
        return;
    }
    let (wx0, wy0) = (window.x as i64, window.y as i64);
    let (wx1, wy1) = (wx0 + window.width as i64, wy0 + window.height as i64);
    let stride = window.width;
    let mut plot = |x: i64, y: i64| {
        if x >= wx0 && x < wx1 && y >= wy0 && y < wy1 {
            buf[(y - wy0) as usize * stride + (x - wx0) as usize] = value;
        }
    };
    // 1. Outline: segment i goes from vertex i - 1 (cyclically) to vertex i (C.4 step 1).
    for i in 0..n {
        line8(pts[(i + n - 1) % n], pts[i], &mut plot);
    }

    // 2. Scanline fill with two edge walkers (C.4 step 2).
    let (mut imin, mut ymin, mut ymax) = (0, pts[0].1, pts[0].1);
    for (i, p) in pts.iter().enumerate() {
        if p.1 < ymin {
            ymin = p.1;
            imin = i;
        }
        ymax = ymax.max(p.1);
    }
    // Rows past the window's end cannot be drawn; stopping there only saves work.
    let ymax = ymax.min(wy1 - 1);

    #[derive(Clone, Copy)]
    struct Walker {
        idx: usize,
        step: usize,
        ye: i64,
        x: i64,
        dx: i64,
    }
    let mut walkers = [
        Walker {
            idx: imin,
            step: 1,
            ye: ymin,
            x: 0,
            dx: 0,
        },
        Walker {
            idx: imin,
            step: n - 1,
            ye: ymin,
            x: 0,
            dx: 0,
        },
    ];
    // Both walkers share one budget of n edges; running out ends the fill.
    let mut edges = n as i64;
    let mut y = ymin;
    while y <= ymax {
        for w in walkers.iter_mut() {
            if y < w.ye {
                continue;
            }
            let mut idx0 = w.idx;
            let mut idx = (idx0 + w.step) % n;
            loop {
                let budget = edges;
                edges -= 1;
                if budget <= 0 {
                    break;
                }
                let ty = pts[idx].1;
                if ty > y {
                    let xs = pts[idx0].0 << XY_SHIFT;
                    let xe = pts[idx].0 << XY_SHIFT;
                    let dy = ty - y;
                    // C integer division truncates toward zero, as Rust's does.
                    w.dx = ((xe - xs) * 2 + dy) / (2 * dy);
                    w.x = xs;
                    w.ye = ty;
                    w.idx = idx;
                    break;
                }
                idx0 = idx;
                idx = (idx + w.step) % n;
            }
        }
        if edges < 0 {
            break;
        }
        if y >= wy0 {
            let (l, r) = if walkers[0].x > walkers[1].x {
                (walkers[1].x, walkers[0].x)
            } else {
                (walkers[0].x, walkers[1].x)
            };
            let x1 = ((l + XY_HALF) >> XY_SHIFT).max(wx0);
            let x2 = ((r + XY_HALF) >> XY_SHIFT).min(wx1 - 1);
            if x1 <= x2 {
                let row = (y - wy0) as usize * stride;
                buf[row + (x1 - wx0) as usize..=row + (x2 - wx0) as usize].fill(value);
            }
        }
        walkers[0].x += walkers[0].dx;
        walkers[1].x += walkers[1].dx;
        y += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_is_filled_and_window_clips() {
        let pts = [(1, 1), (4, 1), (4, 4), (1, 4)];
        let mut buf = vec![0u8; 36];
        fill_convex_poly(&mut buf, Rect::new(0, 0, 6, 6), &pts, 255);
        let filled: usize = buf.iter().filter(|&&v| v == 255).count();
        assert_eq!(filled, 16);
        // The same polygon seen through a window gives the same pixels there.
        let mut win = vec![0u8; 9];
        fill_convex_poly(&mut win, Rect::new(2, 2, 3, 3), &pts, 255);
        for y in 0..3 {
            for x in 0..3 {
                assert_eq!(win[y * 3 + x], buf[(y + 2) * 6 + x + 2]);
            }
        }
        // Degenerate input is a no-op or an outline, never a panic.
        fill_convex_poly(&mut buf, Rect::new(0, 0, 6, 6), &[], 255);
        fill_convex_poly(
            &mut buf,
            Rect::new(0, 0, 6, 6),
            &[(-100, -100), (100, 3)],
            7,
        );
    }
}
