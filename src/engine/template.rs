//! The face template converted to 25 fps (spec §1.2 step 2): which decoded frames make the official
//! 25 fps template, computed from their timestamps alone. One definition for everything that
//! reads a template file: the reference bank ([`super::bank_template`], used by `iplaplandmarks`'
//! `reference-location` and `iplap sync`) and `iplap sync`'s output timeline.
//!
//! The official script converts any template whose rate is not exactly 25 fps with
//! `ffmpeg -r 25` and then uses every frame of the result: the bank is selected over those
//! frames, not over the decoded ones (270 frames at 30 fps become 225).

/// The official template (and output) frame rate.
pub const FPS: u64 = 25;
/// One frame at [`FPS`], in nanoseconds.
pub const FRAME_NS: u64 = 1_000_000_000 / FPS;

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
/// only the timestamps up to `i` (`iplap sync` drops the pixels of the others while decoding): a
/// frame is nearest to some time `t <= (frames - 1) · 40 ms` only if it is the first frame or its
/// predecessor is not later than that. `previous_rel_ns` is frame `i - 1`'s timestamp relative to
/// frame 0.
pub fn may_be_picked(i: usize, previous_rel_ns: Option<u64>, frames: usize) -> bool {
    let horizon = (frames.saturating_sub(1) as u64).saturating_mul(FRAME_NS);
    i == 0 || previous_rel_ns.is_some_and(|t| t <= horizon)
}

/// [`template_frames_25fps`]' walk, run as the timestamps arrive, so that a scan can skip the
/// frames the 25 fps template drops (tracking is the expensive part of reading a template: a
/// 60 fps file has 12 frames for every 5 the bank uses).
///
/// The walk leaves a frame only after comparing it with its successor, so once frame `k`'s
/// timestamp is in, whether frame `k - 1` is picked is settled. Where the template ends is not
/// known until the last frame, so the walk ignores it: it may keep a frame near the end that the
/// final selection drops, never the reverse (the final selection is always
/// [`template_frames_25fps`] over all timestamps).
#[derive(Debug, Default, Clone)]
pub struct PickWalk {
    /// Timestamp of frame 0 (the template's start).
    first: Option<u64>,
    /// The walk's frame (always the newest one until it is stuck), relative to `first`.
    current: u64,
    /// Whether that frame is nearest to some grid time already.
    current_picked: bool,
    /// The next grid time, in 25 fps frames.
    n: u64,
    /// The walk can never move again: every later frame is dropped.
    stuck: bool,
}

impl PickWalk {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next decoded frame's timestamp; returns whether the previous frame can be picked
    /// (`None` for the first frame, which has no previous one).
    pub fn push(&mut self, pts_ns: u64) -> Option<bool> {
        let Some(first) = self.first else {
            self.first = Some(pts_ns);
            return None;
        };
        if self.stuck {
            return Some(false);
        }
        let rel = pts_ns.saturating_sub(first);
        loop {
            let t = self.n.saturating_mul(FRAME_NS);
            if rel.abs_diff(t) < self.current.abs_diff(t) {
                // The walk moves on to the new frame for this same grid time.
                let picked = std::mem::replace(&mut self.current_picked, false);
                self.current = rel;
                return Some(picked);
            }
            self.current_picked = true;
            // A new frame not later than the current one and not closer to `t` is not closer to
            // any later grid time either: the walk stays here to the end.
            if rel <= self.current {
                self.stuck = true;
                return Some(true);
            }
            self.n += 1;
        }
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

    /// The walk's answers: whether each frame but the last (which it cannot settle) is kept.
    fn walk_keeps(pts: &[u64]) -> Vec<bool> {
        let mut walk = PickWalk::new();
        pts.iter().filter_map(|&t| walk.push(t)).collect()
    }

    /// Every frame the selection picks is kept (the last one is the scan's to decide), and (when
    /// `exact`) nothing else.
    fn check_walk(pts: &[u64], exact: bool) {
        let keep = walk_keeps(pts);
        let picked = template_frames_25fps(pts);
        for &i in picked.iter().filter(|&&i| i < keep.len()) {
            assert!(keep[i], "frame {i} picked but skipped, pts {pts:?}");
        }
        if exact {
            let kept: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
            let mut unique: Vec<usize> = picked.into_iter().filter(|&i| i < keep.len()).collect();
            unique.dedup();
            assert_eq!(kept, unique, "pts {pts:?}");
        }
    }

    #[test]
    fn the_walk_keeps_exactly_the_picked_frames_of_regular_rates() {
        for (num, den, n) in [
            (30, 1, 270),
            (30, 1, 6),
            (25, 1, 10),
            (24, 1, 48),
            (30000, 1001, 300),
            (60, 1, 120),
            (50, 1, 99),
            (12, 1, 30),
            (1, 1, 3),
        ] {
            check_walk(&at(num, den, n), true);
        }
        // 60 fps: 5 frames in 12, so well under half the tracking (2 s: 50 frames at 25 fps).
        let keep = walk_keeps(&at(60, 1, 120));
        assert_eq!(keep.iter().filter(|&&k| k).count(), 50);
        assert!(keep[0] && !keep[1] && keep[2]);
        check_walk(&[5_000], true);
        check_walk(&[], true);
    }

    #[test]
    fn the_walk_never_skips_a_picked_frame_of_odd_timestamps() {
        // Equal timestamps, a frame before its predecessor, a long gap, jitter, the start late.
        check_walk(&[0, 0, 0, 40_000_000], false);
        check_walk(&[0, 40_000_000, 20_000_000, 80_000_000, 60_000_000], false);
        check_walk(&[0, 100_000_000, 50_000_000, 10_000_000], false);
        check_walk(&[0, 33_333_333, 5_000_000_000, 5_033_333_333], false);
        check_walk(&[90, 80, 70, 60], false);
        // A deterministic pseudo-random set: rates from 5 to 120 fps with jitter and reordering.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        for _ in 0..400 {
            let n = 1 + next(40) as usize;
            let step = 8_000_000 + next(200_000_000);
            let mut t = next(1_000_000);
            let pts: Vec<u64> = (0..n)
                .map(|_| {
                    t += step + next(step / 2);
                    match next(10) {
                        0 => t.saturating_sub(next(3 * step)),
                        _ => t,
                    }
                })
                .collect();
            check_walk(&pts, false);
        }
    }
}
