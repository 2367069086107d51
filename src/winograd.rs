//! 3×3 "same" convolution (stride 1, zero padding 1) by Winograd's F(2×2, 3×3) algorithm, for the
//! renderer's 256-channel SPADE convolutions on the CPU.
//!
//! Direct convolution already runs at ~73 % of this class of CPU's FMA peak in ONNX Runtime, so the
//! renderer can only get faster by doing fewer multiplications: F(2×2, 3×3) computes each 2×2 output
//! tile from a 4×4 input tile with 16 products per (input, output) channel pair instead of 36
//! (2.25× fewer). Its transforms only add and subtract inputs and outputs (and halve weights), so
//! the rounding error stays at the level of direct convolution (measured 3.4e-6 against 4.6e-6 for
//! a direct f32 sum, 256 channels, unit inputs); the larger F(4×4, 3×3) is 12-37× worse and is not
//! used.
//!
//! Layout per image: the input is transformed into `V[ξ][c][t]` (ξ = 4·i + j the tile position,
//! `t` the tile index), each of the 16 `M[ξ] = U[ξ] · V[ξ]` is one `(K × C) · (C × T)` matrix
//! product, and the output transform writes `y[k][2·ty + a][2·tx + b]` plus the bias.

/// `G` of F(2×2, 3×3): kernel rows → transformed rows.
const G: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Why a Winograd convolution cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WinogradError {
    /// A buffer or size does not fit the others.
    #[error("winograd 3x3 convolution: {0}")]
    Shape(String),
}

/// Transformed weights `U = G g Gᵀ` of a `(K, C, 3, 3)` kernel, as 16 row-major `(K × C)` matrices,
/// computed in f64 and rounded once.
pub fn transform_weights(weight: &[f32], k: usize, c: usize) -> Result<Vec<f32>, WinogradError> {
    if weight.len() != k * c * 9 {
        return Err(WinogradError::Shape(format!(
            "weight has {} values, expected {k}x{c}x3x3",
            weight.len()
        )));
    }
    let mut u = vec![0f32; 16 * k * c];
    for ko in 0..k {
        for ci in 0..c {
            let g = &weight[(ko * c + ci) * 9..][..9];
            for i in 0..4 {
                for j in 0..4 {
                    let mut v = 0f64;
                    for (r, gr) in G[i].iter().enumerate() {
                        for (s, gs) in G[j].iter().enumerate() {
                            v += gr * f64::from(g[r * 3 + s]) * gs;
                        }
                    }
                    u[((i * 4 + j) * k + ko) * c + ci] = v as f32;
                }
            }
        }
    }
    Ok(u)
}

/// Per-thread working memory (reused between images to avoid page faults on fresh buffers).
#[derive(Debug, Default)]
pub struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
}

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub k: usize,
    /// Height (even).
    pub h: usize,
    /// Width (even).
    pub w: usize,
}

impl ConvShape {
    fn check(&self, x: usize, u: usize, bias: usize, y: usize) -> Result<(), WinogradError> {
        let ConvShape { c, k, h, w } = *self;
        if h % 2 != 0 || w % 2 != 0 || h == 0 || w == 0 {
            return Err(WinogradError::Shape(format!(
                "{h}x{w}: needs an even, non-zero height and width"
            )));
        }
        for (name, got, want) in [
            ("input", x, c * h * w),
            ("weights", u, 16 * k * c),
            ("bias", bias, k),
            ("output", y, k * h * w),
        ] {
            if got != want {
                return Err(WinogradError::Shape(format!(
                    "{name} has {got} values, expected {want} for {self:?}"
                )));
            }
        }
        Ok(())
    }
}

/// One image: `y (K, H, W) = conv3x3(x (C, H, W)) + bias` with `u` from [`transform_weights`].
pub fn conv3x3(
    x: &[f32],
    u: &[f32],
    bias: &[f32],
    y: &mut [f32],
    shape: ConvShape,
    scratch: &mut Scratch,
) -> Result<(), WinogradError> {
    conv3x3_outputs(x, u, bias, y, shape, 0..shape.k, scratch)
}

/// [`conv3x3`] for the output channels `ks` only (`y` still holds all K planes; the others are
/// left as they are), so that two threads can share one image.
pub fn conv3x3_outputs(
    x: &[f32],
    u: &[f32],
    bias: &[f32],
    y: &mut [f32],
    shape: ConvShape,
    ks: std::ops::Range<usize>,
    scratch: &mut Scratch,
) -> Result<(), WinogradError> {
    shape.check(x.len(), u.len(), bias.len(), y.len())?;
    let ConvShape { c, k, h, w } = shape;
    if ks.start > ks.end || ks.end > k {
        return Err(WinogradError::Shape(format!(
            "output channels {ks:?} outside 0..{k}"
        )));
    }
    let (th, tw) = (h / 2, w / 2);
    let t = th * tw;
    let kn = ks.len();
    scratch.v.resize(16 * c * t, 0.0);
    scratch.m.resize(16 * kn * t, 0.0);
    input_transform(x, c, h, w, &mut scratch.v);
    for xi in 0..16 {
        // SAFETY: `u` holds 16 row-major K×C matrices, rows `ks` of matrix ξ start at
        // (ξ·K + ks.start)·C; `v` holds 16 C×T and `m` 16 kn×T matrices (all sizes checked or
        // resized above), and `m` does not alias `u` or `v`.
        unsafe {
            matrixmultiply::sgemm(
                kn,
                c,
                t,
                1.0,
                u[(xi * k + ks.start) * c..].as_ptr(),
                c as isize,
                1,
                scratch.v[xi * c * t..].as_ptr(),
                t as isize,
                1,
                0.0,
                scratch.m[xi * kn * t..].as_mut_ptr(),
                t as isize,
                1,
            );
        }
    }
    let planes = &mut y[ks.start * h * w..ks.end * h * w];
    output_transform(&scratch.m, &bias[ks], kn, h, w, planes);
    Ok(())
}

/// `V[ξ][c][t] = (Bᵀ d B)[ξ]` for every 4×4 input tile `d` (rows `2·ty − 1 …`, zero outside),
/// with `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`. Loops run along a tile
/// row with unit-stride writes so that they vectorise.
fn input_transform(x: &[f32], c: usize, h: usize, w: usize, v: &mut [f32]) {
    let (th, tw) = (h / 2, w / 2);
    let t = th * tw;
    // One channel with a zero border, so every tile reads without bounds checks.
    let pw = w + 2;
    let mut padded = vec![0f32; (h + 2) * pw];
    // Bᵀ applied down the columns of one tile row: row i of the transform for every column.
    let mut cols = vec![0f32; 4 * pw];
    for ci in 0..c {
        let plane = &x[ci * h * w..][..h * w];
        for (r, src) in plane.chunks_exact(w).enumerate() {
            padded[(r + 1) * pw + 1..][..w].copy_from_slice(src);
        }
        for ty in 0..th {
            let d: [&[f32]; 4] = std::array::from_fn(|r| &padded[(2 * ty + r) * pw..][..pw]);
            let (c0, rest) = cols.split_at_mut(pw);
            let (c1, rest) = rest.split_at_mut(pw);
            let (c2, c3) = rest.split_at_mut(pw);
            for q in 0..pw {
                c0[q] = d[0][q] - d[2][q];
                c1[q] = d[1][q] + d[2][q];
                c2[q] = d[2][q] - d[1][q];
                c3[q] = d[1][q] - d[3][q];
            }
            for (i, row) in cols.chunks_exact(pw).enumerate() {
                let out = |j: usize| ((i * 4 + j) * c + ci) * t + ty * tw;
                let (o0, o1, o2, o3) = (out(0), out(1), out(2), out(3));
                for tx in 0..tw {
                    let q = &row[2 * tx..2 * tx + 4];
                    v[o0 + tx] = q[0] - q[2];
                    v[o1 + tx] = q[1] + q[2];
                    v[o2 + tx] = q[2] - q[1];
                    v[o3 + tx] = q[1] - q[3];
                }
            }
        }
    }
}

/// `y[k][2ty + a][2tx + b] = (Aᵀ M A)[a][b] + bias[k]` with `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`.
fn output_transform(m: &[f32], bias: &[f32], k: usize, h: usize, w: usize, y: &mut [f32]) {
    let (th, tw) = (h / 2, w / 2);
    let t = th * tw;
    // Aᵀ over the tile rows i for one tile row: r[a][j][tx].
    let mut r = vec![0f32; 8 * tw];
    for (ko, out) in y.chunks_exact_mut(h * w).enumerate().take(k) {
        let b = bias[ko];
        for ty in 0..th {
            let mt = |xi: usize| &m[(xi * k + ko) * t + ty * tw..][..tw];
            for j in 0..4 {
                let (m0, m1, m2, m3) = (mt(j), mt(4 + j), mt(8 + j), mt(12 + j));
                let (ra, rb) = r.split_at_mut(4 * tw);
                let (r0, r1) = (&mut ra[j * tw..][..tw], &mut rb[j * tw..][..tw]);
                for tx in 0..tw {
                    r0[tx] = m0[tx] + m1[tx] + m2[tx];
                    r1[tx] = m1[tx] - m2[tx] - m3[tx];
                }
            }
            for a in 0..2 {
                let ra = &r[a * 4 * tw..][..4 * tw];
                let (q0, q1, q2, q3) = (
                    &ra[..tw],
                    &ra[tw..2 * tw],
                    &ra[2 * tw..3 * tw],
                    &ra[3 * tw..],
                );
                let row = &mut out[(2 * ty + a) * w..][..w];
                for (tx, pair) in row.chunks_exact_mut(2).enumerate() {
                    pair[0] = q0[tx] + q1[tx] + q2[tx] + b;
                    pair[1] = q1[tx] - q2[tx] - q3[tx] + b;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    fn direct(x: &[f32], wt: &[f32], bias: &[f32], s: ConvShape) -> Vec<f64> {
        let ConvShape { c, k, h, w } = s;
        let mut y = vec![0f64; k * h * w];
        for ko in 0..k {
            for r in 0..h {
                for q in 0..w {
                    let mut acc = f64::from(bias[ko]);
                    for ci in 0..c {
                        for dr in 0..3 {
                            for dq in 0..3 {
                                let (rr, qq) = (r as isize + dr - 1, q as isize + dq - 1);
                                if rr < 0 || qq < 0 || rr >= h as isize || qq >= w as isize {
                                    continue;
                                }
                                let xv = x[(ci * h + rr as usize) * w + qq as usize];
                                let wv = wt[((ko * c + ci) * 3 + dr as usize) * 3 + dq as usize];
                                acc += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    y[(ko * h + r) * w + q] = acc;
                }
            }
        }
        y
    }

    #[test]
    fn equals_direct_convolution() {
        let mut scratch = Scratch::default();
        for s in [
            ConvShape {
                c: 1,
                k: 1,
                h: 2,
                w: 2,
            },
            ConvShape {
                c: 3,
                k: 5,
                h: 6,
                w: 10,
            },
            ConvShape {
                c: 32,
                k: 16,
                h: 16,
                w: 8,
            },
        ] {
            let x = values(s.c * s.h * s.w, 1, 1.0);
            let wt = values(s.k * s.c * 9, 2, 0.1);
            let bias = values(s.k, 3, 1.0);
            let u = transform_weights(&wt, s.k, s.c).unwrap();
            let mut y = vec![f32::NAN; s.k * s.h * s.w];
            conv3x3(&x, &u, &bias, &mut y, s, &mut scratch).unwrap();
            let want = direct(&x, &wt, &bias, s);
            let err = y
                .iter()
                .zip(&want)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-5, "{s:?}: max error {err:e}");
        }
    }

    #[test]
    fn output_channel_ranges_compose_to_the_whole() {
        let s = ConvShape {
            c: 8,
            k: 7,
            h: 6,
            w: 4,
        };
        let x = values(s.c * s.h * s.w, 4, 1.0);
        let wt = values(s.k * s.c * 9, 5, 0.1);
        let bias = values(s.k, 6, 1.0);
        let u = transform_weights(&wt, s.k, s.c).unwrap();
        let mut scratch = Scratch::default();
        let mut whole = vec![0.0; s.k * s.h * s.w];
        conv3x3(&x, &u, &bias, &mut whole, s, &mut scratch).unwrap();
        let mut parts = vec![f32::NAN; s.k * s.h * s.w];
        for ks in [0..3, 3..3, 3..7] {
            conv3x3_outputs(&x, &u, &bias, &mut parts, s, ks, &mut scratch).unwrap();
        }
        assert_eq!(parts, whole);
        let e = conv3x3_outputs(&x, &u, &bias, &mut parts, s, 5..8, &mut scratch);
        assert!(e.unwrap_err().to_string().contains("5..8"));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let s = ConvShape {
            c: 2,
            k: 2,
            h: 3,
            w: 4,
        };
        let mut y = vec![0.0; 24];
        let e = conv3x3(
            &[0.0; 24],
            &[0.0; 64],
            &[0.0; 2],
            &mut y,
            s,
            &mut Scratch::default(),
        );
        assert!(e.unwrap_err().to_string().contains("even"));
        let s = ConvShape {
            c: 2,
            k: 2,
            h: 4,
            w: 4,
        };
        let mut y = vec![0.0; 32];
        let e = conv3x3(
            &[0.0; 31],
            &[0.0; 64],
            &[0.0; 2],
            &mut y,
            s,
            &mut Scratch::default(),
        );
        assert!(e.unwrap_err().to_string().contains("input"));
        assert!(transform_weights(&[0.0; 5], 1, 1).is_err());
    }
}
