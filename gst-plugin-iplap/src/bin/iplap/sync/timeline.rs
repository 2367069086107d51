//! The official output timeline of `inference_single.py` (spec §1.3, §1.6) as pure functions: how
//! many output frames the audio gives and which frame of the 25 fps template (spec §1.2,
//! [`iplap::engine::template::template_frames_25fps`]) each output frame shows.
//!
//! Nothing here touches GStreamer or the models, so `tests/cli_sync.rs` includes this file to
//! compute the expected timeline independently of the command's pipeline.

use iplap::audio::{chunk_count, n_frames};
// The 25 fps frame, the engine's: the template's conversion to 25 fps lives there, shared with
// the reference bank of the same template.
pub use iplap::engine::template::{FPS, FRAME_NS};

/// Output frames before the first rendered one: the official loop renders its first window for
/// output frame 2 and writes that result three times (spec §1.6).
pub const LEAD_COPIES: usize = 2;
/// Video frames the landmark window reaches past the last output frame (positions `+1`, `+2` of
/// the T = 5 window, spec §1.7).
pub const WINDOW_TAIL: usize = 2;
/// Fewest 16 kHz samples that give [`LEAD_COPIES`] + 1 = 3 mel chunks (`M >= 22` mel frames):
/// with fewer the official loop writes no frame at all (spec §8.4 bug 4).
pub const MIN_SAMPLES: usize = 4200;

/// Number of output frames for `samples` 16 kHz samples: the number of mel chunks
/// `L = ceil(5 (M - 15) / 16)` with `M = 1 + floor(S / 200)` (spec §1.3 step 4, §1.6).
pub fn output_frames(samples: usize) -> usize {
    chunk_count(n_frames(samples))
}

/// The ping-pong template loop of spec §1.6: `0, 1, …, V-1, V-1, …, 1, 0, 0, 1, …` (the turning
/// frames appear twice). Output frame `k` shows template frame `ping_pong(k, V)`. `v = 0` gives 0.
pub fn ping_pong(k: usize, v: usize) -> usize {
    if v == 0 {
        return 0;
    }
    let m = k % (2 * v);
    if m < v { m } else { 2 * v - 1 - m }
}

/// The whole output plan of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Frames of the 25 fps template (`V`).
    pub template_frames: usize,
    /// Output frames (`L`, the number of mel chunks).
    pub output_frames: usize,
}

impl Plan {
    /// Frames fed to `iplaplandmarks`: the output frames plus the two the last window reaches
    /// (the official loop reads `seq[L-3 .. L+1]` for its last window).
    pub fn fed_frames(&self) -> usize {
        self.output_frames + WINDOW_TAIL
    }

    /// Template frame (index into the 25 fps template) shown by fed frame `k`.
    pub fn source(&self, k: usize) -> usize {
        ping_pong(k, self.template_frames)
    }

    /// Whether fed frame `k` goes to the renderer: output frames 0 and 1 are copies of frame 2
    /// (made after the renderer), and the two tail frames only complete the last windows.
    pub fn is_rendered(&self, k: usize) -> bool {
        (LEAD_COPIES..self.output_frames).contains(&k)
    }

    /// Output duration in nanoseconds (`L / 25` s).
    pub fn duration_ns(&self) -> u64 {
        self.output_frames as u64 * FRAME_NS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_counts_follow_the_spec() {
        // audio2.wav: S = 341427 -> M = 1708 -> L = 530 (spec §1.6).
        assert_eq!(output_frames(341_427), 530);
        assert_eq!(output_frames(MIN_SAMPLES), 3);
        assert_eq!(output_frames(MIN_SAMPLES - 1), 2);
        assert_eq!(output_frames(0), 0);
        assert_eq!(output_frames(16_000), 21);
        assert_eq!(output_frames(9_600), 11);
    }

    #[test]
    fn ping_pong_doubles_the_turning_frames() {
        let seq: Vec<usize> = (0..13).map(|k| ping_pong(k, 5)).collect();
        assert_eq!(seq, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 1, 2]);
        assert!((0..10).all(|k| ping_pong(k, 1) == 0));
        assert_eq!(ping_pong(3, 0), 0);
    }

    #[test]
    fn plan_renders_frames_two_to_l_minus_one() {
        let plan = Plan {
            template_frames: 5,
            output_frames: 11,
        };
        assert_eq!(plan.fed_frames(), 13);
        let rendered: Vec<usize> = (0..13).filter(|&k| plan.is_rendered(k)).collect();
        assert_eq!(rendered, (2..11).collect::<Vec<_>>());
        assert_eq!(plan.source(12), 2);
        assert_eq!(plan.duration_ns(), 440_000_000);
    }
}
