//! YUV ↔ RGB for one 8-bit sample: the matrices and quantisation ranges GStreamer's colorimetry
//! names, in `f32` with round-half-up and saturation.

/// The luma/chroma matrix: the `(Kr, Kb)` pair of each standard, as GStreamer lists them
/// (`gst_video_color_matrix_get_Kr_Kb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YuvMatrix {
    Bt601,
    Bt709,
    Bt2020,
    Smpte240m,
    Fcc,
}

impl YuvMatrix {
    pub const fn kr_kb(self) -> (f32, f32) {
        match self {
            YuvMatrix::Bt601 => (0.299, 0.114),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
            YuvMatrix::Bt2020 => (0.2627, 0.0593),
            YuvMatrix::Smpte240m => (0.212, 0.087),
            YuvMatrix::Fcc => (0.30, 0.11),
        }
    }
}

/// `YuvColour`'s tables flattened row-major, laid out exactly as `IplapYuvCoeffs` in
/// `kernels/yuv.cuh` (19 `f32`, no padding), so the GPU and host builds of the kernels take the
/// matrix from here instead of defining it a second time.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvCoefficients {
    /// RGB (0..255) → Y, U, V rows (without offsets).
    pub fwd: [f32; 9],
    /// Y − offset, U − 128, V − 128 → R, G, B rows.
    pub inv: [f32; 9],
    pub y_offset: f32,
}

// SAFETY: `#[repr(C)]` with only `f32` fields (19 of them, no padding, no pointers), so its bytes
// are exactly `IplapYuvCoeffs` (kernels/yuv.cuh), which the kernels take by value: any bit
// pattern is a valid value on either side, and a launch copies it into the parameter buffer.
unsafe impl cudarc::driver::DeviceRepr for YuvCoefficients {}

/// A YUV encoding: matrix and quantisation range. Limited range puts black..white at Y 16..235
/// and chroma at 128 ± 112; full range uses 0..255 and 128 ± 127.5 (GStreamer's offsets/scales).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvColour {
    matrix: YuvMatrix,
    full_range: bool,
    /// RGB (0..255) → Y, U, V rows (without offsets).
    fwd: [[f32; 3]; 3],
    /// Y − offset, U − 128, V − 128 → R, G, B rows.
    inv: [[f32; 3]; 3],
    y_offset: f32,
}

impl YuvColour {
    pub fn new(matrix: YuvMatrix, full_range: bool) -> Self {
        let (kr, kb) = matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = if full_range {
            (0.0, 255.0, 255.0)
        } else {
            (16.0, 219.0, 224.0)
        };
        // E'y = kr R' + kg G' + kb B', E'pb = (B' − E'y) / 2(1 − kb), E'pr = (R' − E'y) / 2(1 − kr).
        let (sy, su, sv) = (
            y_scale / 255.0,
            c_scale / 255.0 / (2.0 * (1.0 - kb)),
            c_scale / 255.0 / (2.0 * (1.0 - kr)),
        );
        let fwd = [
            [sy * kr, sy * kg, sy * kb],
            [-su * kr, -su * kg, su * (1.0 - kb)],
            [sv * (1.0 - kr), -sv * kg, -sv * kb],
        ];
        let (iy, ic) = (255.0 / y_scale, 255.0 / c_scale);
        let (rv, bu) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
        let inv = [
            [iy, 0.0, ic * rv],
            [iy, -ic * bu * kb / kg, -ic * rv * kr / kg],
            [iy, ic * bu, 0.0],
        ];
        YuvColour {
            matrix,
            full_range,
            fwd,
            inv,
            y_offset,
        }
    }

    /// The tables the maths below uses, for the kernels (`IplapYuvCoeffs`).
    pub fn coefficients(&self) -> YuvCoefficients {
        let flat = |m: [[f32; 3]; 3]| std::array::from_fn(|i| m[i / 3][i % 3]);
        YuvCoefficients {
            fwd: flat(self.fwd),
            inv: flat(self.inv),
            y_offset: self.y_offset,
        }
    }

    /// R, G, B of one sample, rounded and clamped.
    #[inline]
    pub fn rgb(&self, y: u8, u: u8, v: u8) -> [u8; 3] {
        let t = [y as f32 - self.y_offset, u as f32 - 128.0, v as f32 - 128.0];
        self.inv
            .map(|row| quantise(row[0] * t[0] + row[1] * t[1] + row[2] * t[2]))
    }

    /// Y of one RGB pixel, rounded and clamped.
    #[inline]
    pub fn luma(&self, rgb: [u8; 3]) -> u8 {
        quantise(self.y_offset + dot(self.fwd[0], rgb.map(f32::from)))
    }

    /// U, V of the mean of `n` RGB pixels whose channel sums are `sum` (`n > 0`).
    #[inline]
    pub fn chroma(&self, sum: [u32; 3], n: u32) -> (u8, u8) {
        let mean = sum.map(|s| s as f32 / n as f32);
        (
            quantise(128.0 + dot(self.fwd[1], mean)),
            quantise(128.0 + dot(self.fwd[2], mean)),
        )
    }
}

#[inline]
fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Round half up, saturate to 0..=255 (NaN cannot occur: inputs are finite bytes).
#[inline]
fn quantise(v: f32) -> u8 {
    (v + 0.5).floor().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const BT601: YuvMatrix = YuvMatrix::Bt601;

    /// 75 % colour bars (RGB 191 = 0.75 × 255 rounded) and their BT.601 limited-range YCbCr
    /// (ITU-R BT.801 table values, computed from exactly 0.75).
    const BARS: [([u8; 3], [u8; 3]); 8] = [
        ([191, 191, 191], [180, 128, 128]),
        ([191, 191, 0], [162, 44, 142]),
        ([0, 191, 191], [131, 156, 44]),
        ([0, 191, 0], [112, 72, 58]),
        ([191, 0, 191], [84, 184, 198]),
        ([191, 0, 0], [65, 100, 212]),
        ([0, 0, 191], [35, 212, 114]),
        ([0, 0, 0], [16, 128, 128]),
    ];

    fn close(a: u8, b: u8, tol: u8, what: &str) {
        assert!(a.abs_diff(b) <= tol, "{what}: {a} vs {b}");
    }

    #[test]
    fn colour_bars_bt601_limited() {
        let c = YuvColour::new(BT601, false);
        for (rgb, [y, u, v]) in BARS {
            // 191 is 0.749 × 255, the table's 0.75: at most one code value apart.
            close(c.luma(rgb), y, 1, &format!("Y of {rgb:?}"));
            let (cu, cv) = c.chroma(rgb.map(u32::from), 1);
            close(cu, u, 1, &format!("U of {rgb:?}"));
            close(cv, v, 1, &format!("V of {rgb:?}"));
            for (got, want) in c.rgb(y, u, v).into_iter().zip(rgb) {
                close(got, want, 1, &format!("RGB of {:?}", [y, u, v]));
            }
        }
        // Nominal black and white of each range.
        assert_eq!(c.rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(c.rgb(235, 128, 128), [255, 255, 255]);
        let full = YuvColour::new(BT601, true);
        assert_eq!(full.rgb(0, 128, 128), [0, 0, 0]);
        assert_eq!(full.rgb(255, 128, 128), [255, 255, 255]);
        assert_eq!(full.luma([255, 255, 255]), 255);
    }

    #[test]
    fn bt709_differs_from_bt601() {
        // Pure red: Y = 16 + 219 × Kr.
        let red = [255, 0, 0];
        assert_eq!(YuvColour::new(YuvMatrix::Bt709, false).luma(red), 63);
        assert_eq!(YuvColour::new(BT601, false).luma(red), 81);
        assert_eq!(YuvColour::new(YuvMatrix::Bt709, true).luma(red), 54);
    }

    #[test]
    fn rgb_round_trip_is_within_one_quantisation_step() {
        for matrix in [BT601, YuvMatrix::Bt709, YuvMatrix::Bt2020] {
            for full in [false, true] {
                let c = YuvColour::new(matrix, full);
                // Limited range has fewer codes than RGB: one step of Y is 255/219 RGB levels.
                let tol = if full { 1 } else { 2 };
                for r in (0..=255u8).step_by(5) {
                    for g in (0..=255u8).step_by(3) {
                        for b in (0..=255u8).step_by(7) {
                            let y = c.luma([r, g, b]);
                            let (u, v) = c.chroma([r, g, b].map(u32::from), 1);
                            let back = c.rgb(y, u, v);
                            for (x, o) in back.into_iter().zip([r, g, b]) {
                                assert!(
                                    x.abs_diff(o) <= tol,
                                    "{matrix:?} full={full}: {:?} -> {:?} -> {back:?}",
                                    [r, g, b],
                                    [y, u, v]
                                );
                            }
                        }
                    }
                }
                // YUV -> RGB -> YUV is exact on in-gamut grey.
                for y in 16..=235u8 {
                    assert_eq!(c.luma(c.rgb(y, 128, 128)), y, "{matrix:?} Y {y}");
                }
            }
        }
    }
}
