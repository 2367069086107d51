//! [`MelStream`]: the official mel spectrogram computed incrementally, for live audio (spec §2.3).
//!
//! The centred STFT pads the pre-emphasised signal with 400 zeros on each side; frame `t` covers
//! padded samples `200 t .. 200 t + 799`, i.e. original samples `200 t - 400 .. 200 t + 399`. The
//! left padding is known from the start, so frame `t` can be emitted as soon as original sample
//! `200 t + 399` has arrived (25 ms after its centre). Only the right padding waits for the end of
//! the stream: [`MelStream::flush_into`] appends it and emits the last frames.

use super::mel::{FrameAnalyzer, MelFrame};
use super::{HOP, N_FFT, PREEMPHASIS};

/// Zero padding on each side of the signal (`n_fft / 2`, librosa `center=True`).
const PAD: usize = N_FFT / 2;

/// Incremental mel spectrogram: push 16 kHz mono f32 samples in chunks of any size, get each mel
/// frame as soon as its window is complete.
///
/// The frames of one stream (pushes, then [`flush_into`](Self::flush_into)) are bit-identical to
/// [`melspectrogram`](super::melspectrogram) of the concatenated samples, for every chunking: both
/// use the same per-frame code. Memory is bounded: at most 1200 samples of history are kept,
/// whatever the chunk sizes.
pub struct MelStream {
    analyzer: FrameAnalyzer,
    /// Pre-emphasised, left-padded signal from padded index `200 · emitted` on; `len() < 800`
    /// between calls.
    window: Vec<f64>,
    /// Last input sample, for pre-emphasis (`None` before the first one: `e[0] = x[0]`).
    prev: Option<f32>,
    emitted: usize,
    samples: u64,
    finished: bool,
}

impl Default for MelStream {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelStream")
            .field("frames_emitted", &self.emitted)
            .field("samples_pushed", &self.samples)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl MelStream {
    /// Samples that must arrive after a frame's centre before the frame is emitted (25 ms): the
    /// algorithmic latency of the streaming front end, for a GStreamer latency query.
    pub const LOOKAHEAD_SAMPLES: usize = PAD;

    /// A fresh stream, positioned at frame 0.
    pub fn new() -> Self {
        let mut window = Vec::with_capacity(N_FFT + PAD);
        window.resize(PAD, 0.0);
        Self {
            analyzer: FrameAnalyzer::new(),
            window,
            prev: None,
            emitted: 0,
            samples: 0,
            finished: false,
        }
    }

    /// Forgets everything and starts a new stream at frame 0 (e.g. on a GStreamer flush or a
    /// discontinuity). Keeps the FFT plan and buffers.
    pub fn reset(&mut self) {
        self.window.clear();
        self.window.resize(PAD, 0.0);
        self.prev = None;
        self.emitted = 0;
        self.samples = 0;
        self.finished = false;
    }

    /// Frames emitted so far in this stream; the next frame has this index.
    pub fn frames_emitted(&self) -> usize {
        self.emitted
    }

    /// Samples pushed so far in this stream.
    pub fn samples_pushed(&self) -> u64 {
        self.samples
    }

    /// Whether [`flush_into`](Self::flush_into) has ended this stream.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Appends `samples` and pushes every frame completed by them onto `out`, in order.
    ///
    /// A push after a flush starts a new stream, as if [`reset`](Self::reset) had been called.
    pub fn push_into(&mut self, samples: &[f32], out: &mut Vec<MelFrame>) {
        if self.finished {
            self.reset();
        }
        self.samples += samples.len() as u64;
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (N_FFT - self.window.len()).min(rest.len());
            let (now, later) = rest.split_at(take);
            for &x in now {
                // scipy lfilter([1, -0.97], [1], x): e[i] = x[i] - 0.97 x[i-1], in f64.
                let e = match self.prev {
                    Some(p) => f64::from(x) - PREEMPHASIS * f64::from(p),
                    None => f64::from(x),
                };
                self.window.push(e);
                self.prev = Some(x);
            }
            rest = later;
            self.emit_complete(out);
        }
    }

    /// Ends the stream: appends the right zero padding and pushes the remaining frames onto `out`,
    /// so that `1 + S / 200` frames have been emitted in all. A second flush emits nothing.
    pub fn flush_into(&mut self, out: &mut Vec<MelFrame>) {
        if self.finished {
            return;
        }
        self.window.resize(self.window.len() + PAD, 0.0);
        self.emit_complete(out);
        self.finished = true;
    }

    /// [`push_into`](Self::push_into) returning the new frames.
    pub fn push(&mut self, samples: &[f32]) -> Vec<MelFrame> {
        let mut out = Vec::with_capacity(samples.len() / HOP + 1);
        self.push_into(samples, &mut out);
        out
    }

    /// [`flush_into`](Self::flush_into) returning the last frames.
    pub fn flush(&mut self) -> Vec<MelFrame> {
        let mut out = Vec::with_capacity(N_FFT / HOP);
        self.flush_into(&mut out);
        out
    }

    fn emit_complete(&mut self, out: &mut Vec<MelFrame>) {
        while self.window.len() >= N_FFT {
            out.push(self.analyzer.analyze(&self.window[..N_FFT]));
            self.window.drain(..HOP);
            self.emitted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::melspectrogram;

    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.013).sin() + (i as f32 * 0.29).cos() * 0.2) * 0.4)
            .collect()
    }

    #[test]
    fn frame_emitted_once_sample_200t_plus_399_arrives() {
        let mut s = MelStream::new();
        assert!(s.push(&signal(399)).is_empty());
        assert_eq!(s.push(&[0.0]).len(), 1); // sample 399 completes frame 0
        assert!(s.push(&[0.0; 199]).is_empty());
        assert_eq!(s.push(&[0.0]).len(), 1); // sample 599 completes frame 1
        assert_eq!(s.frames_emitted(), 2);
        assert_eq!(s.flush().len(), 2); // S = 600 → M = 4
        assert!(s.flush().is_empty());
        assert_eq!(s.frames_emitted(), 4);
    }

    #[test]
    fn push_after_flush_starts_a_new_stream() {
        let x = signal(1234);
        let mut s = MelStream::new();
        s.push(&signal(777));
        s.flush();
        let mut frames = s.push(&x);
        frames.extend(s.flush());
        assert_eq!(frames, melspectrogram(&x).into_frames());
        s.push(&x);
        s.reset();
        assert_eq!(s.frames_emitted(), 0);
        assert_eq!(s.samples_pushed(), 0);
        let mut frames = s.push(&x);
        frames.extend(s.flush());
        assert_eq!(frames, melspectrogram(&x).into_frames());
    }

    #[test]
    fn history_stays_bounded() {
        let mut s = MelStream::new();
        s.push(&signal(100_000));
        assert!(s.window.len() < N_FFT);
        assert!(s.window.capacity() <= N_FFT + PAD);
        s.flush();
        assert!(s.window.capacity() <= N_FFT + PAD);
    }
}
