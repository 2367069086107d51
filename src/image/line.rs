//! `cv2.line` with thickness 1, LINE_8, shift 0: the exact pixel walk of spec appendix C.1.

/// Calls `plot(x, y)` for every pixel of the 8-connected segment from `p0` to `p1` (both
/// included), in OpenCV's order. No clipping: the caller drops pixels outside its image.
///
/// Lines are always walked left to right (endpoints swapped when `x1 < x0`), which decides the
/// pixel set of ambiguous steps, so `line8(a, b)` and `line8(b, a)` agree.
pub fn line8(p0: (i64, i64), p1: (i64, i64), mut plot: impl FnMut(i64, i64)) {
    let ((x0, y0), (x1, y1)) = if p1.0 < p0.0 { (p1, p0) } else { (p0, p1) };
    let dx = x1 - x0;
    let dy = y1 - y0;
    let sy = if dy >= 0 { 1 } else { -1 };
    let ady = dy.abs();
    let steep = ady > dx;
    let (major, minor) = if steep { (ady, dx) } else { (dx, ady) };
    let (mut x, mut y) = (x0, y0);
    let mut err = major - 2 * minor;
    for _ in 0..=major {
        plot(x, y);
        if err < 0 {
            // Diagonal step.
            x += 1;
            y += sy;
            err += 2 * major - 2 * minor;
        } else {
            if steep {
                y += sy;
            } else {
                x += 1;
            }
            err -= 2 * minor;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(a: (i64, i64), b: (i64, i64)) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        line8(a, b, |x, y| v.push((x, y)));
        v
    }

    #[test]
    fn basic_shapes() {
        assert_eq!(pixels((2, 3), (2, 3)), vec![(2, 3)]);
        assert_eq!(pixels((0, 0), (3, 0)).len(), 4);
        assert_eq!(pixels((0, 3), (0, 0)), vec![(0, 3), (0, 2), (0, 1), (0, 0)]);
        assert_eq!(pixels((0, 0), (2, 2)), vec![(0, 0), (1, 1), (2, 2)]);
        let mut a = pixels((0, 0), (5, 2));
        let mut b = pixels((5, 2), (0, 0));
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
