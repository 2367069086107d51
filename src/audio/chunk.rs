//! Which 16-column mel chunk belongs to a video frame, in time rather than frame counters
//! (spec §1.3 steps 4-5, ARCHITECTURE "Timing").
//!
//! Officially, at 25 fps, chunk `i` starts at mel frame `int(i * 3.2) = floor(16 i / 5)` and video
//! frame `f` uses chunk `f - 2`. With 80 mel frames per second and 40 ms per video frame this is
//! `floor(80 · (t - 0.08 s))` for the video frame at time `t = f / 25`: the chunk starts 80 ms
//! before the frame. Computing it on integer nanoseconds (12.5 ms = 12 500 000 ns per mel frame)
//! makes it exact at 25 fps and well defined at any other frame rate.

use ndarray::Array2;

use super::N_MELS;
use super::mel::{Mel, MelFrame};

/// Columns per chunk (`mel_step_size` = 16 mel frames = 200 ms).
pub const CHUNK_FRAMES: usize = 16;
/// Mel frame period in nanoseconds (hop 200 at 16 kHz).
pub const MEL_FRAME_NS: i64 = 12_500_000;
/// How far before its video frame a chunk starts: two frames at 25 fps (the "f − 2" convention).
pub const CHUNK_OFFSET_NS: i64 = 80_000_000;

/// First mel frame of the chunk for a video frame at `t_ns` nanoseconds (stream time of the audio,
/// 0 = first sample): `floor((t_ns - 80 ms) / 12.5 ms)`. Negative for `t < 80 ms`, where the
/// official script has no chunk; see [`chunk_start_clamped_ns`] and [`ChunkPad`].
pub fn chunk_start_ns(t_ns: i64) -> i64 {
    // i128: no overflow even at i64::MIN; the quotient always fits back into i64.
    ((i128::from(t_ns) - i128::from(CHUNK_OFFSET_NS)).div_euclid(i128::from(MEL_FRAME_NS))) as i64
}

/// [`chunk_start_ns`] for a time in seconds, rounded to the nearest nanosecond first so that
/// `t = f / 25` gives exactly `floor(16 (f - 2) / 5)` (a float `80 · (t - 0.08)` can land just
/// below an integer). NaN counts as 0 s; ±∞ saturate.
pub fn chunk_start_secs(t: f64) -> i64 {
    chunk_start_ns((t * 1e9).round() as i64)
}

/// [`chunk_start_ns`] clamped at 0: the first chunk for the first 80 ms of video.
pub fn chunk_start_clamped_ns(t_ns: i64) -> usize {
    usize::try_from(chunk_start_ns(t_ns).max(0)).unwrap_or(usize::MAX)
}

/// The official frame-counter form at 25 fps: chunk of video frame `f` starts at
/// `floor(16 (f - 2) / 5)` (spec §2.4: `int(80 (f - 2) / 25)` for `f >= 2`), saturating at the
/// ends of `i64` (the factor 3.2 overflows for `|f| > 2^61`).
pub fn chunk_start_for_frame25(f: i64) -> i64 {
    let start = ((i128::from(f) - 2) * 16).div_euclid(5);
    start.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Number of chunks the official script makes from `m` mel frames at 25 fps: chunks
/// `i = 0, 1, …` while `floor(16 i / 5) + 16 <= m`, i.e. `L = ceil(5 (m - 15) / 16)` for
/// `m >= 16`, else 0 (spec §1.3 step 4).
pub fn chunk_count(m: usize) -> usize {
    if m < CHUNK_FRAMES {
        return 0;
    }
    let n = 5 * (m as u128 - 15);
    n.div_ceil(16) as usize
}

/// What a chunk holds where it reaches outside the mel frames `0..M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkPad {
    /// −4, the value silent audio produces: as if the audio were extended with silence. Default.
    #[default]
    Silence,
    /// 0.0, the middle of the range (what a zero-initialised buffer would give).
    Zero,
    /// The nearest existing column repeated (silence when there is no column at all).
    Edge,
}

/// The 80 × 16 chunk of `frames` starting at mel frame `start` (may be negative or past the end;
/// outside columns follow `pad`), rounded to f32 as the models receive it (spec §1.3 step 6).
pub fn mel_chunk(frames: &[MelFrame], start: i64, pad: ChunkPad) -> Array2<f32> {
    let mut chunk = Array2::zeros((N_MELS, CHUNK_FRAMES));
    for (j, mut col) in chunk.columns_mut().into_iter().enumerate() {
        let t = i128::from(start) + j as i128;
        let inside = usize::try_from(t).ok().and_then(|t| frames.get(t));
        let source = match (inside, pad) {
            (Some(f), _) => Some(f),
            (None, ChunkPad::Edge) if t < 0 => frames.first(),
            (None, ChunkPad::Edge) => frames.last(),
            (None, _) => None,
        };
        match (source, pad) {
            (Some(f), _) => col.iter_mut().zip(f).for_each(|(c, &v)| *c = v as f32),
            (None, ChunkPad::Zero) => col.fill(0.0),
            (None, _) => col.fill(-4.0),
        }
    }
    chunk
}

impl Mel {
    /// [`mel_chunk`] of this spectrogram.
    pub fn chunk(&self, start: i64, pad: ChunkPad) -> Array2<f32> {
        mel_chunk(self.frames(), start, pad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_form_equals_frame_counter_form_at_25_fps() {
        for f in 0..20_000i64 {
            let want = (16 * (f - 2)).div_euclid(5);
            assert_eq!(chunk_start_ns(f * 40_000_000), want, "f = {f} (ns)");
            assert_eq!(chunk_start_secs(f as f64 / 25.0), want, "f = {f} (s)");
            assert_eq!(chunk_start_for_frame25(f), want, "f = {f}");
            assert_eq!(chunk_start_clamped_ns(f * 40_000_000), want.max(0) as usize);
        }
        // Spec §1.3: chunk starts of i = 0..11 (frames f = i + 2).
        let starts: Vec<i64> = (2..14).map(chunk_start_for_frame25).collect();
        assert_eq!(starts, [0, 3, 6, 9, 12, 16, 19, 22, 25, 28, 32, 35]);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        assert!(chunk_start_ns(i64::MIN) < 0);
        assert!(chunk_start_ns(i64::MAX) > 0);
        assert_eq!(chunk_start_clamped_ns(i64::MIN), 0);
        assert_eq!(chunk_start_secs(f64::NAN), chunk_start_ns(0));
        assert!(chunk_start_secs(f64::INFINITY) > 0);
        assert_eq!(chunk_start_for_frame25(i64::MIN), i64::MIN);
        assert_eq!(chunk_start_for_frame25(i64::MAX), i64::MAX);
        assert_eq!(
            chunk_count(usize::MAX),
            (5 * (usize::MAX as u128 - 15)).div_ceil(16) as usize
        );
    }

    #[test]
    fn chunk_count_matches_official_enumeration() {
        // inference_single.py: i = 0; while int(i * 3.2) + 16 <= M: i += 1.
        for m in 0..20_000usize {
            let mut i = 0usize;
            while (i as f64 * 3.2) as usize + CHUNK_FRAMES <= m {
                i += 1;
            }
            assert_eq!(chunk_count(m), i, "M = {m}");
        }
        assert_eq!(chunk_count(1708), 530); // spec §2.5
    }

    #[test]
    fn chunk_slicing_and_padding() {
        let frames: Vec<MelFrame> = (0..20).map(|t| [t as f64 / 8.0; N_MELS]).collect();
        let c = mel_chunk(&frames, 3, ChunkPad::Silence);
        assert_eq!(c.dim(), (N_MELS, CHUNK_FRAMES));
        assert_eq!(c[[5, 0]], 3.0 / 8.0);
        assert_eq!(c[[79, 15]], 18.0 / 8.0);
        let c = mel_chunk(&frames, -2, ChunkPad::Silence);
        assert_eq!((c[[0, 0]], c[[0, 1]], c[[0, 2]]), (-4.0, -4.0, 0.0));
        let c = mel_chunk(&frames, -2, ChunkPad::Edge);
        assert_eq!((c[[0, 0]], c[[0, 2]], c[[0, 3]]), (0.0, 0.0, 1.0 / 8.0));
        let c = mel_chunk(&frames, 10, ChunkPad::Edge);
        assert_eq!(
            (c[[0, 9]], c[[0, 10]], c[[0, 15]]),
            (19.0 / 8.0, 19.0 / 8.0, 19.0 / 8.0)
        );
        let c = mel_chunk(&frames, 10, ChunkPad::Zero);
        assert_eq!((c[[0, 9]], c[[0, 10]]), (19.0 / 8.0, 0.0));
        assert!(mel_chunk(&[], 0, ChunkPad::Edge).iter().all(|&v| v == -4.0));
        assert!(
            mel_chunk(&frames, i64::MAX, ChunkPad::Zero)
                .iter()
                .all(|&v| v == 0.0)
        );
        assert!(
            mel_chunk(&frames, i64::MIN, ChunkPad::Edge)
                .iter()
                .all(|&v| v == 0.0)
        );
    }
}
