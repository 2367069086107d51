//! One mel frame from one 800-sample window, and the one-shot [`melspectrogram`] (spec §2.3).
//!
//! Upstream (`IP_LAP/models/audio.py`, from Wav2Lip):
//! ```python
//! def melspectrogram(wav):
//!     D = _stft(preemphasis(wav, hp.preemphasis, hp.preemphasize))
//!     S = _amp_to_db(_linear_to_mel(np.abs(D))) - hp.ref_level_db
//!     return _normalize(S)   # symmetric, clipped to [-4, 4]
//! ```
//! Every step is written in the same order of f64 operations as numpy/scipy/librosa so that the
//! result matches the reference to rounding noise of the FFT and dot-product summation order.

use std::sync::Arc;

use ndarray::Array2;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::filterbank::MelFilterbank;
use super::stream::MelStream;
use super::{N_FFT, N_FREQS, N_MELS, n_frames};

/// One mel column: 80 bins, low to high frequency, normalised to `[-4, 4]` (f64, as the official
/// `melspectrogram` returns; the models receive f32, see [`Mel::to_array2`]).
pub type MelFrame = [f64; N_MELS];

/// `hp.min_level_db`: the dB floor (spec §2.1).
const MIN_LEVEL_DB: f64 = -100.0;
/// `hp.ref_level_db`: subtracted after the dB conversion.
const REF_LEVEL_DB: f64 = 20.0;
/// `hp.max_abs_value`: symmetric output range `[-4, 4]`.
const MAX_ABS: f64 = 4.0;

/// The per-frame pipeline shared by the one-shot and streaming paths: window → FFT → |X| → W·|X| →
/// dB → normalise. Owning the FFT plan and buffers keeps the per-frame work allocation-free.
pub(crate) struct FrameAnalyzer {
    /// Periodic Hann window as scipy computes it (see [`hann_periodic`]).
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    input: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    magnitude: Vec<f64>,
    filterbank: MelFilterbank,
    /// FFT bins some filter uses (3..380): `hypot` is the costliest step, so skip the rest.
    used_bins: std::ops::Range<usize>,
    /// `np.exp(min_level_db / 20 * np.log(10))`: not exactly 1e-5, so computed the same way.
    amp_floor: f64,
}

impl FrameAnalyzer {
    pub(crate) fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let filterbank = MelFilterbank::new();
        let used_bins = (0..N_MELS)
            .map(|i| filterbank.support(i))
            .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))
            .unwrap_or(0..0);
        Self {
            window: hann_periodic(N_FFT),
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            magnitude: vec![0.0; N_FREQS],
            fft,
            filterbank,
            used_bins,
            amp_floor: (MIN_LEVEL_DB / 20.0 * 10f64.ln()).exp(),
        }
    }

    /// The mel column of one STFT frame: `frame` holds the 800 pre-emphasised, zero-padded
    /// samples `200 t .. 200 t + 799` of the padded signal (spec §2.3 step 2). Shorter slices are
    /// zero-extended, longer ones truncated.
    pub(crate) fn analyze(&mut self, frame: &[f64]) -> MelFrame {
        self.input.fill(0.0);
        for ((x, &w), &s) in self.input.iter_mut().zip(&self.window).zip(frame) {
            *x = w * s; // librosa: fft_window * y_frames
        }
        let fft = Arc::clone(&self.fft);
        let ok = fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .is_ok();
        // Cannot fail: all three buffers were made by this plan. Should it ever, say so with NaN.
        debug_assert!(ok, "FFT buffers do not match the plan");
        if !ok {
            return [f64::NAN; N_MELS];
        }
        let bins = self.used_bins.clone();
        for (m, c) in self.magnitude[bins.clone()]
            .iter_mut()
            .zip(&self.spectrum[bins])
        {
            *m = c.re.hypot(c.im); // np.abs(complex128) is hypot
        }
        let mut mel = [0.0; N_MELS];
        self.filterbank.apply(&self.magnitude, &mut mel);
        for v in &mut mel {
            *v = normalize(*v, self.amp_floor);
        }
        mel
    }
}

/// `_normalize(_amp_to_db(mel) - ref_level_db)` for one value (spec §2.3 steps 4-5).
///
/// NaN propagates like numpy's `np.maximum` / `np.clip` (Rust's `f64::max` would drop it).
fn normalize(mel: f64, amp_floor: f64) -> f64 {
    let amp = if mel.is_nan() {
        mel
    } else {
        mel.max(amp_floor)
    };
    let db = 20.0 * amp.log10() - REF_LEVEL_DB;
    ((2.0 * MAX_ABS) * ((db - MIN_LEVEL_DB) / (-MIN_LEVEL_DB)) - MAX_ABS).clamp(-MAX_ABS, MAX_ABS)
}

/// `scipy.signal.get_window("hann", n, fftbins=True)`: a symmetric Hann of `n + 1` points from
/// `general_cosine` (`0.5 + 0.5 cos(fac)`, `fac = linspace(-π, π, n + 1)`), last point dropped.
/// Mathematically `0.5 - 0.5 cos(2πi/n)`; this form matches scipy to the last bit.
fn hann_periodic(n: usize) -> Vec<f64> {
    let (start, stop) = (-std::f64::consts::PI, std::f64::consts::PI);
    let step = (stop - start) / n as f64;
    (0..n)
        .map(|i| 0.5 + 0.5 * (i as f64 * step + start).cos())
        .collect()
}

/// A mel spectrogram: `M` frames of 80 bins (frame-major storage, f64 as the official code).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mel {
    frames: Vec<MelFrame>,
}

impl Mel {
    /// Wraps frames, e.g. those collected from a [`MelStream`].
    pub fn from_frames(frames: Vec<MelFrame>) -> Self {
        Self { frames }
    }

    /// Number of frames `M` (columns of the official 80 × M array).
    pub fn n_frames(&self) -> usize {
        self.frames.len()
    }

    /// The frames in time order; `frames()[t][bin]`.
    pub fn frames(&self) -> &[MelFrame] {
        &self.frames
    }

    /// Gives the frames back.
    pub fn into_frames(self) -> Vec<MelFrame> {
        self.frames
    }

    /// Value at `(bin, frame)`, the official array's `mel[bin, frame]`.
    pub fn get(&self, bin: usize, frame: usize) -> Option<f64> {
        self.frames.get(frame).and_then(|f| f.get(bin)).copied()
    }

    /// The official `(80, M)` layout in f64 (what `melspectrogram` returns).
    pub fn to_array2_f64(&self) -> Array2<f64> {
        Array2::from_shape_fn((N_MELS, self.frames.len()), |(b, t)| self.frames[t][b])
    }

    /// The `(80, M)` layout rounded to f32 (numpy `astype(float32)`), what the models consume.
    pub fn to_array2(&self) -> Array2<f32> {
        Array2::from_shape_fn((N_MELS, self.frames.len()), |(b, t)| {
            self.frames[t][b] as f32
        })
    }
}

/// The official `melspectrogram(wav)` of 16 kHz mono samples (spec §2.3): `1 + S / 200` frames.
///
/// Runs the input through a [`MelStream`] and flushes it, so streaming gives identical bits.
/// The official code fails on an empty signal; here it follows the formula: one frame, all −4.
pub fn melspectrogram(samples: &[f32]) -> Mel {
    let mut frames = Vec::with_capacity(n_frames(samples.len()));
    let mut stream = MelStream::new();
    stream.push_into(samples, &mut frames);
    stream.flush_into(&mut frames);
    Mel { frames }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_periodic_hann() {
        let w = hann_periodic(N_FFT);
        assert_eq!(w.len(), N_FFT);
        assert!(w[0].abs() < 1e-15);
        assert!((w[400] - 1.0).abs() < 1e-15);
        for (i, &v) in w.iter().enumerate() {
            let want = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos();
            assert!((v - want).abs() < 1e-15, "w[{i}]");
        }
    }

    #[test]
    fn normalize_maps_floor_to_minus_four_and_propagates_nan() {
        let floor = (MIN_LEVEL_DB / 20.0 * 10f64.ln()).exp();
        assert_eq!(normalize(0.0, floor), -4.0);
        assert_eq!(normalize(1e6, floor), 4.0);
        // 20 log10(1) - 20 = -20 dB → 0.08 · (-20) + 4 = 2.4
        assert!((normalize(1.0, floor) - 2.4).abs() < 1e-12);
        assert!(normalize(f64::NAN, floor).is_nan());
    }

    #[test]
    fn frame_count_follows_formula() {
        for s in [0usize, 1, 199, 200, 201, 799, 800, 48_000] {
            assert_eq!(
                melspectrogram(&vec![0.1; s]).n_frames(),
                1 + s / 200,
                "S = {s}"
            );
        }
    }

    #[test]
    fn layouts_agree() {
        let x: Vec<f32> = (0..3000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let mel = melspectrogram(&x);
        let (a, b) = (mel.to_array2_f64(), mel.to_array2());
        assert_eq!(a.dim(), (N_MELS, 16));
        assert_eq!(a[[7, 3]], mel.frames()[3][7]);
        assert_eq!(b[[7, 3]], mel.frames()[3][7] as f32);
        assert_eq!(mel.get(7, 3), Some(a[[7, 3]]));
        assert_eq!(mel.get(80, 0), None);
    }
}
