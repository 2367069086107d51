//! The audio side of the landmark engine: timestamps → a gap-free 16 kHz sample stream → mel frames
//! (spec §1.3, §2), with the mel history bounded.
//!
//! The first audio timestamp defines mel time 0. A later buffer whose timestamp lies after the end
//! of what arrived so far is preceded by silence (zeros); one that overlaps is trimmed. Positions
//! are whole samples, `round((pts − t0) · 16000 / 1e9)`, so timestamp rounding of a few
//! nanoseconds never inserts or drops a sample.

use crate::audio::{CHUNK_FRAMES, MelFrame, MelStream, N_MELS, SAMPLE_RATE, mel_chunk};

/// Largest gap filled with silence (60 s); a longer one is an error, and the element should treat
/// it as a discontinuity (reset) rather than compute a minute of silent mel frames.
pub const MAX_AUDIO_GAP_NS: u64 = 60_000_000_000;
/// Mel frames kept behind the newest even when no video frame needs them yet (30 s).
const MAX_MEL_HISTORY: usize = 2400;

/// Values in one 80 × 16 chunk.
pub const CHUNK_LEN: usize = N_MELS * CHUNK_FRAMES;

/// Errors of the audio timeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioTimelineError {
    #[error("audio gap of {gap_ns} ns is longer than {MAX_AUDIO_GAP_NS} ns; reset the stream")]
    Gap { gap_ns: u64 },
    #[error("audio pushed after finish_audio (end of stream) without a reset")]
    AfterEos,
}

/// Incoming audio as mel frames, indexed from the first sample.
#[derive(Debug, Default)]
pub struct AudioTimeline {
    t0: Option<u64>,
    mel: MelStream,
    /// Mel frames `base .. base + frames.len()`.
    frames: Vec<MelFrame>,
    base: usize,
    samples: u64,
    finished: bool,
}

impl AudioTimeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything (flush); the next buffer defines mel time 0 again.
    pub fn reset(&mut self) {
        *self = AudioTimeline {
            mel: std::mem::take(&mut self.mel),
            ..Default::default()
        };
        self.mel.reset();
    }

    /// Timestamp of mel time 0 (the first audio sample), once known.
    pub fn origin(&self) -> Option<u64> {
        self.t0
    }

    /// Samples placed on the timeline so far (including inserted silence).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Whether [`AudioTimeline::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Mel frames computed so far, counted from mel time 0.
    pub fn mel_frames(&self) -> usize {
        self.base + self.frames.len()
    }

    /// Adds `samples` (16 kHz mono) whose first sample is at `pts_ns`.
    pub fn push(&mut self, pts_ns: u64, samples: &[f32]) -> Result<(), AudioTimelineError> {
        if self.finished {
            return Err(AudioTimelineError::AfterEos);
        }
        let t0 = *self.t0.get_or_insert(pts_ns);
        let rel = i128::from(pts_ns) - i128::from(t0);
        // Nearest sample position (ties away from zero; both operands are exact integers).
        let num = rel * i128::from(SAMPLE_RATE);
        let idx = (num + num.signum() * 500_000_000) / 1_000_000_000;
        let have = i128::from(self.samples);
        let mut rest = samples;
        if idx > have {
            let gap = (idx - have) as u64;
            let gap_ns = gap.saturating_mul(1_000_000_000) / u64::from(SAMPLE_RATE);
            if gap_ns > MAX_AUDIO_GAP_NS {
                return Err(AudioTimelineError::Gap { gap_ns });
            }
            let zeros = [0.0f32; 4000];
            let mut left = gap as usize;
            while left > 0 {
                let n = left.min(zeros.len());
                self.feed(&zeros[..n]);
                left -= n;
            }
        } else if idx < have {
            let skip = usize::try_from(have - idx).unwrap_or(usize::MAX);
            rest = &rest[skip.min(rest.len())..];
        }
        self.feed(rest);
        Ok(())
    }

    fn feed(&mut self, samples: &[f32]) {
        self.samples += samples.len() as u64;
        self.mel.push_into(samples, &mut self.frames);
        // Without video to say what is needed, keep a bounded history only.
        let floor = self.mel_frames().saturating_sub(MAX_MEL_HISTORY);
        if floor > self.base + MAX_MEL_HISTORY / 4 {
            self.prune_before(floor);
        }
    }

    /// End of stream: the last frames (right zero padding of the centred STFT) are computed. If no
    /// audio ever arrived, `fallback_origin` becomes mel time 0 (everything is then silence).
    pub fn finish(&mut self, fallback_origin: Option<u64>) {
        if self.finished {
            return;
        }
        if self.t0.is_none() {
            self.t0 = fallback_origin;
        }
        self.mel.flush_into(&mut self.frames);
        self.finished = true;
    }

    /// The 80 × 16 chunk starting at mel frame `start` (row-major, rows = mel bins), f32. Columns
    /// past the end of the audio (after [`AudioTimeline::finish`]) or already pruned hold silence
    /// (−4), which is what the official script's audio would give if extended with silence.
    pub fn chunk_into(&self, start: usize, out: &mut [f32]) {
        let rel = start as i64 - self.base as i64;
        let c = mel_chunk(&self.frames, rel, crate::audio::ChunkPad::Silence);
        for (o, v) in out.iter_mut().zip(c.iter()) {
            *o = *v;
        }
    }

    /// Drops mel frames before `mel_frame` (no pending window needs them).
    pub fn prune_before(&mut self, mel_frame: usize) {
        if mel_frame > self.base {
            let n = (mel_frame - self.base).min(self.frames.len());
            self.frames.drain(..n);
            self.base += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_silence_and_overlaps_are_trimmed() {
        let mut a = AudioTimeline::new();
        a.push(1_000_000_000, &[0.5; 160]).unwrap(); // 10 ms
        assert_eq!(a.samples(), 160);
        // 10 ms later than the end: 160 zeros first.
        a.push(1_020_000_000, &[0.5; 160]).unwrap();
        assert_eq!(a.samples(), 480);
        // Overlapping by 5 ms: 80 samples trimmed.
        a.push(1_025_000_000, &[0.5; 160]).unwrap();
        assert_eq!(a.samples(), 560);
        // A few ns of timestamp jitter changes nothing.
        a.push(1_035_000_003, &[0.5; 16]).unwrap();
        assert_eq!(a.samples(), 576);
        assert!(matches!(
            a.push(u64::MAX, &[0.0]),
            Err(AudioTimelineError::Gap { .. })
        ));
        a.finish(None);
        assert_eq!(
            a.push(2_000_000_000, &[0.0]),
            Err(AudioTimelineError::AfterEos)
        );
        a.reset();
        assert_eq!(a.origin(), None);
        a.push(5, &[0.0; 1000]).unwrap();
        assert_eq!(a.mel_frames(), 4);
    }
}
