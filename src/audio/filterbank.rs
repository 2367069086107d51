//! The Slaney mel filterbank of `librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55,
//! fmax=7600)` (librosa 0.9.2 defaults: `htk=False`, `norm="slaney"`, `dtype=float32`), spec §2.3 step 3.
//!
//! The weights are reproduced *bit for bit*, including librosa's float32 storage: each triangle is
//! computed in f64 and stored as f32, then multiplied in place by the f64 area normalisation
//! `2 / (c_{i+2} - c_i)`, which numpy forms in f64 and rounds back to f32. Only the non-zero run of
//! each row is kept (at most 27 of 401 bins), which makes `W·|X|` about 15× cheaper than dense.
//!
//! Upstream: `librosa/filters.py::mel` and `librosa/core/convert.py::{hz_to_mel, mel_to_hz,
//! mel_frequencies}` at 0.9.2.

use super::{N_FFT, N_FREQS, N_MELS, SAMPLE_RATE};

/// Lowest filter edge in Hz (`hp.fmin`, spec §2.1).
pub const FMIN_HZ: f64 = 55.0;
/// Highest filter edge in Hz (`hp.fmax`, spec §2.1).
pub const FMAX_HZ: f64 = 7600.0;

// Slaney scale constants, written exactly as librosa does so that every rounding step matches.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;

fn min_log_mel() -> f64 {
    MIN_LOG_HZ / F_SP
}

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// Slaney mel of a frequency in Hz (`librosa.hz_to_mel(f, htk=False)` for a scalar).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        min_log_mel() + (hz / MIN_LOG_HZ).ln() / logstep()
    } else {
        hz / F_SP
    }
}

/// Frequency in Hz of a Slaney mel value (`librosa.mel_to_hz(m, htk=False)`).
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= min_log_mel() {
        MIN_LOG_HZ * (logstep() * (mel - min_log_mel())).exp()
    } else {
        F_SP * mel
    }
}

/// The 82 filter edge frequencies `c_0..c_81` in Hz (`librosa.mel_frequencies(82, fmin, fmax)`).
///
/// `np.linspace` computes `i * step + start` and then sets the last point to `stop` exactly.
pub fn edge_frequencies() -> [f64; N_MELS + 2] {
    let (lo, hi) = (hz_to_mel(FMIN_HZ), hz_to_mel(FMAX_HZ));
    let step = (hi - lo) / (N_MELS + 1) as f64;
    let mut c = [0.0; N_MELS + 2];
    for (i, ci) in c.iter_mut().enumerate() {
        let m = if i == N_MELS + 1 {
            hi
        } else {
            i as f64 * step + lo
        };
        *ci = mel_to_hz(m);
    }
    c
}

/// One filter: its non-zero weights, starting at FFT bin `start`.
#[derive(Debug, Clone, PartialEq)]
struct Band {
    start: usize,
    /// The f32 weights as librosa stores them, widened to f64 (exact) for the f64 product.
    weights: Vec<f64>,
}

/// The 80 × 401 mel filterbank, stored sparsely (one contiguous band per row).
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilterbank {
    bands: Vec<Band>,
}

impl Default for MelFilterbank {
    fn default() -> Self {
        Self::new()
    }
}

impl MelFilterbank {
    /// Builds the IP_LAP filterbank (spec §2.3 step 3).
    pub fn new() -> Self {
        let c = edge_frequencies();
        let bin_hz = SAMPLE_RATE as f64 / N_FFT as f64; // 20 Hz; linspace(0, 8000, 401) is exact.
        let bands = (0..N_MELS)
            .map(|i| {
                let (lower_w, upper_w) = (c[i + 1] - c[i], c[i + 2] - c[i + 1]);
                let enorm = 2.0 / (c[i + 2] - c[i]);
                let row: Vec<f32> = (0..N_FREQS)
                    .map(|k| {
                        let f = k as f64 * bin_hz;
                        // librosa: lower = -(c_i - f) / fdiff_i; negation of a difference is exact.
                        let lower = -(c[i] - f) / lower_w;
                        let upper = (c[i + 2] - f) / upper_w;
                        let tri = 0f64.max(lower.min(upper)) as f32;
                        (f64::from(tri) * enorm) as f32
                    })
                    .collect();
                let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
                Band {
                    start,
                    weights: row[start..end].iter().map(|&w| f64::from(w)).collect(),
                }
            })
            .collect();
        Self { bands }
    }

    /// `mel[i] = Σ_k W[i, k] · magnitude[k]` in f64, summed in increasing `k`.
    ///
    /// `magnitude` must hold the 401 one-sided bins; bins past its end count as zero.
    pub fn apply(&self, magnitude: &[f64], mel: &mut [f64; N_MELS]) {
        for (out, band) in mel.iter_mut().zip(&self.bands) {
            let mags = magnitude.get(band.start..).unwrap_or(&[]);
            *out = band.weights.iter().zip(mags).map(|(w, m)| w * m).sum();
        }
    }

    /// The dense 80 × 401 weights as f32, exactly as `librosa.filters.mel` returns them.
    pub fn dense(&self) -> Vec<[f32; N_FREQS]> {
        self.bands
            .iter()
            .map(|band| {
                let mut row = [0f32; N_FREQS];
                for (j, &w) in band.weights.iter().enumerate() {
                    row[band.start + j] = w as f32;
                }
                row
            })
            .collect()
    }

    /// The range of FFT bins where row `i` is non-zero (empty for `i >= 80`).
    pub fn support(&self, i: usize) -> std::ops::Range<usize> {
        self.bands
            .get(i)
            .map_or(0..0, |b| b.start..b.start + b.weights.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_frequencies_match_spec_check_values() {
        // Spec §2.3 step 3: c_0..c_3 and c_79..c_81 as printed by numpy (repr, 17 significant digits).
        let c = edge_frequencies();
        let want = [
            (0, 55.0),
            (1, 90.94615265698575),
            (2, 126.89230531397148),
            (3, 162.83845797095722),
            (79, 7056.910790734859),
            (80, 7323.422834275305),
            (81, 7599.9999999999945),
        ];
        for (i, v) in want {
            assert!((c[i] - v).abs() <= 1e-12 * v, "c_{i} = {} want {v}", c[i]);
        }
    }

    #[test]
    fn weights_match_spec_check_values() {
        let fb = MelFilterbank::new();
        let dense = fb.dense();
        assert_eq!(fb.support(0), 3..7);
        // Printed to 10 decimals in the spec, so agreement to 5e-11 is all that can be asked.
        let row0 = [0.0038695920f64, 0.0193479601, 0.0208124500, 0.0053340821];
        for (j, &w) in row0.iter().enumerate() {
            let got = f64::from(dense[0][3 + j]);
            assert!((got - w).abs() < 6e-11, "W[0,{}] = {got}", 3 + j);
        }
        assert_eq!(fb.support(79), 353..380);
        let total: f64 = dense.iter().flatten().map(|&w| f64::from(w)).sum();
        assert!((total - 3.9994978).abs() < 1e-6, "sum {total}");
        assert_eq!(fb.support(80), 0..0);
    }

    #[test]
    fn sparse_apply_equals_dense_product() {
        let fb = MelFilterbank::new();
        let dense = fb.dense();
        let mag: Vec<f64> = (0..N_FREQS)
            .map(|k| 1.0 + (k as f64 * 0.37).sin())
            .collect();
        let mut mel = [0.0; N_MELS];
        fb.apply(&mag, &mut mel);
        for (i, row) in dense.iter().enumerate() {
            let want: f64 = row.iter().zip(&mag).map(|(&w, m)| f64::from(w) * m).sum();
            assert!(
                (mel[i] - want).abs() <= 1e-15 * want.abs().max(1.0),
                "row {i}"
            );
        }
    }
}
