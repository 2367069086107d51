//! The official output timeline of `inference_single.py` (spec §1.2, §1.3, §1.6) as pure functions:
//! which template frames make the 25 fps template, how many output frames the audio gives, and
//! which template frame each output frame shows.
//!
//! Nothing here touches GStreamer or the models, so `tests/cli_sync.rs` includes this file to
//! compute the expected timeline independently of the command's pipeline.

use iplap::audio::{chunk_count, n_frames};

/// The official output (and template) frame rate.
pub const FPS: u64 = 25;
/// One frame at [`FPS`], in nanoseconds.
pub const FRAME_NS: u64 = 1_000_000_000 / FPS;
/// Output frames before the first rendered one: the official loop renders its first window for
/// output frame 2 and writes that result three times (spec §1.6).
pub const LEAD_COPIES: usize = 2;
/// Video frames the landmark window reaches past the last output frame (positions `+1`, `+2` of
/// the T = 5 window, spec §1.7).
pub const WINDOW_TAIL: usize = 2;
/// Fewest 16 kHz samples that give [`LEAD_COPIES`] + 1 = 3 mel chunks (`M >= 22` mel frames):
/// with fewer the official loop writes no frame at all (spec §8.4 bug 4).
pub const MIN_SAMPLES: usize = 4200;

/// The template converted to 25 fps: for every output time `n · 40 ms` the index of the decoded
/// frame nearest in time (ties: the earlier one), i.e. frames are dropped or repeated, never
/// blended (spec §1.2 step 2). `pts_ns` are the decoded frames' timestamps in decode order.
///
/// The template lasts from its first timestamp to the last one plus the last frame interval (one
/// 25 fps frame for a single image); it gets every 25 fps frame whose first half lies inside that
/// span, at least one. 270 frames at 30 fps (9 s) give 225 frames, as in spec §1.2.
///
/// Deviation: ffmpeg's `-r 25` frame selection depends on its version's vsync rules (the spec
/// does not pin one), and the official path re-encodes the template lossily before analysis
/// (spec §8.4 bug 8), so exact pixel parity with its template is impossible either way; nearest in
/// time is the rule both agree with on average.
pub fn template_frames_25fps(pts_ns: &[u64]) -> Vec<usize> {
    let Some(&first) = pts_ns.first() else {
        return Vec::new();
    };
    let rel: Vec<u64> = pts_ns.iter().map(|&t| t.saturating_sub(first)).collect();
    let last = rel[rel.len() - 1];
    let interval = match rel.len() {
        1 => FRAME_NS,
        n => match last.saturating_sub(rel[n - 2]) {
            0 => FRAME_NS,
            d => d,
        },
    };
    let end = last.saturating_add(interval);
    let count = (end.saturating_sub(FRAME_NS / 2)).div_ceil(FRAME_NS).max(1);
    let mut picked = Vec::with_capacity(count as usize);
    let mut j = 0usize;
    for n in 0..count {
        let t = n * FRAME_NS;
        // Strictly closer only: a tie keeps the earlier frame.
        while j + 1 < rel.len() && rel[j + 1].abs_diff(t) < rel[j].abs_diff(t) {
            j += 1;
        }
        picked.push(j);
    }
    picked
}

/// Whether decoded frame `i` can be picked for one of the first `frames` 25 fps frames, knowing
/// only the timestamps up to `i` (the decode loop drops the pixels of the others): a frame is
/// nearest to some time `t <= (frames - 1) · 40 ms` only if it is the first frame or its
/// predecessor is not later than that.
pub fn may_be_picked(i: usize, previous_rel_ns: Option<u64>, frames: usize) -> bool {
    let horizon = (frames.saturating_sub(1) as u64).saturating_mul(FRAME_NS);
    i == 0 || previous_rel_ns.is_some_and(|t| t <= horizon)
}

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

    fn at(fps_num: u64, fps_den: u64, n: usize) -> Vec<u64> {
        (0..n as u64)
            .map(|i| i * fps_den * 1_000_000_000 / fps_num)
            .collect()
    }

    #[test]
    fn thirty_fps_drops_every_sixth_frame() {
        let picked = template_frames_25fps(&at(30, 1, 270));
        assert_eq!(picked.len(), 225, "spec §1.2: 270 frames at 30 fps -> 225");
        assert_eq!(&picked[..7], &[0, 1, 2, 4, 5, 6, 7]);
        assert_eq!(*picked.last().unwrap(), 269);
        // Timestamps rounded to the nanosecond (33_333_333 ns apart) change nothing.
        let rounded: Vec<u64> = (0..270u64).map(|i| i * 33_333_333).collect();
        assert_eq!(template_frames_25fps(&rounded), picked);
        // The six-frame cut of the end-to-end test.
        assert_eq!(template_frames_25fps(&at(30, 1, 6)), vec![0, 1, 2, 4, 5]);
    }

    #[test]
    fn other_rates_repeat_or_pass_through() {
        let same = template_frames_25fps(&at(25, 1, 10));
        assert_eq!(same, (0..10).collect::<Vec<_>>());
        // A non-zero first timestamp is the template's start.
        let shifted: Vec<u64> = at(25, 1, 10).iter().map(|t| t + 123_456).collect();
        assert_eq!(template_frames_25fps(&shifted), same);
        // 24 fps: one frame in 24 appears twice.
        let p = template_frames_25fps(&at(24, 1, 48));
        assert_eq!(p.len(), 50);
        assert_eq!(p.windows(2).filter(|w| w[0] == w[1]).count(), 2);
        // 29.97 fps.
        assert_eq!(template_frames_25fps(&at(30000, 1001, 300)).len(), 250);
    }

    #[test]
    fn a_still_image_is_one_frame() {
        assert_eq!(template_frames_25fps(&[0]), vec![0]);
        assert_eq!(template_frames_25fps(&[7_000]), vec![0]);
        assert!(template_frames_25fps(&[]).is_empty());
        // Two frames with the same timestamp: one 25 fps frame, the first.
        assert_eq!(template_frames_25fps(&[0, 0]), vec![0]);
    }

    #[test]
    fn pruning_keeps_every_frame_that_can_be_picked() {
        let pts = at(30, 1, 270);
        for frames in [1, 2, 5, 13, 100, 224, 225, 400] {
            let picked = template_frames_25fps(&pts);
            for &i in picked.iter().take(frames) {
                let prev = i.checked_sub(1).map(|p| pts[p]);
                assert!(may_be_picked(i, prev, frames), "frame {i} of {frames}");
            }
        }
        assert!(!may_be_picked(5, Some(200_000_000), 3));
    }

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
