//! The T = 5 window in time (spec §1.7, ARCHITECTURE "Timing"): where its positions lie, which
//! mel chunks they use, and the POSE track the positions are sampled from.
//!
//! Officially (25 fps) output frame `k` is rendered by window `s = k - 2`, whose position `j` uses
//! template frame `k + j - 2` and mel chunk `max(0, k + j - 4)`. In time, position `j` of a frame
//! at `t` lies at `t_j = t + (j - 2) · 40 ms`; its chunk starts at mel frame
//! `max(0, floor(80 · (t_j − 0.08 s)))` ([`crate::audio::chunk_start_ns`]), which is the official
//! chunk at 25 fps and well defined at any rate. The POSE of position `j` is the template frame at
//! `t_j`: at 25 fps an exact hit, at other rates a linear interpolation between the frames either
//! side, clamped to the first / last frame of the current face segment.

use crate::sizes::WINDOW;
use std::collections::VecDeque;

use crate::audio::{CHUNK_FRAMES, chunk_start_ns};
use crate::face::indices::POSE;

/// Spacing of the window positions: one frame at the official 25 fps.
pub const POSITION_SPACING_NS: i64 = super::template::FRAME_NS as i64;
/// How far the window reaches either side of its centre (two positions).
pub const WINDOW_REACH_NS: i64 = 2 * POSITION_SPACING_NS;
/// Audio look-ahead of a frame: its last chunk starts at mel frame `c = floor(80 t)` and needs mel
/// frames up to `c + 15`, i.e. samples up to `200 (c + 15) + 399 <= 16000 t + 3399` (spec §1.3,
/// §8.5 step 2): 3400 samples = 212.5 ms after the frame's time.
pub const AUDIO_LOOKAHEAD_NS: u64 = 212_500_000;

/// A POSE set in f64 (row 0 = x, row 1 = y), as computed from the landmarks (spec §1.4 pass 3).
pub type Pose64 = [[f64; POSE.len()]; 2];
/// A POSE set as the models take it.
pub type Pose32 = [[f32; POSE.len()]; 2];

/// Time of window position `j` (0..5) of a frame at `t` (any time base).
pub fn position_time(t: i64, j: usize) -> i64 {
    t.saturating_add((j as i64 - 2) * POSITION_SPACING_NS)
}

/// First mel frame of each position's chunk, for a frame at `t` nanoseconds of mel time (0 = first
/// audio sample), with the official clamp `max(0, ·)` (spec §1.7).
pub fn chunk_starts(t: i64) -> [usize; WINDOW] {
    std::array::from_fn(|j| {
        let s = chunk_start_ns(position_time(t, j)).max(0);
        usize::try_from(s).unwrap_or(usize::MAX)
    })
}

/// Mel frames (counted from 0) that must exist before the window of a frame at `t` is complete.
pub fn mel_frames_needed(t: i64) -> usize {
    chunk_starts(t)[WINDOW - 1].saturating_add(CHUNK_FRAMES)
}

#[derive(Debug, Clone)]
struct PoseEntry {
    pts: i64,
    segment: u64,
    pose: Pose64,
    /// Crop size `(height, width)` of that frame (the target sketch canvas, spec §1.7 step 3).
    crop_hw: (usize, usize),
}

/// The POSE of recent face frames, by timestamp. A frame without a face (or a caps change) ends a
/// *segment*: windows never reach across it, they clamp to the segment's first / last frame, as at
/// the start and end of a stream.
#[derive(Debug, Default)]
pub struct PoseTrack {
    entries: VecDeque<PoseEntry>,
    segment: u64,
    last_pts: Option<i64>,
}

impl PoseTrack {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every frame.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.segment += 1;
        self.last_pts = None;
    }

    /// Records a face frame; returns the segment it belongs to.
    pub fn push_face(&mut self, pts: i64, pose: Pose64, crop_hw: (usize, usize)) -> u64 {
        self.entries.push_back(PoseEntry {
            pts,
            segment: self.segment,
            pose,
            crop_hw,
        });
        self.last_pts = Some(pts);
        self.segment
    }

    /// Records a frame without a face: the current segment ends.
    pub fn push_gap(&mut self, pts: i64) {
        self.break_segment();
        self.last_pts = Some(pts);
    }

    /// Ends the current segment (no face, caps change).
    pub fn break_segment(&mut self) {
        self.segment += 1;
    }

    /// Frames stored (for tests and memory checks).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no frame is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the window of a face frame at `pts` in `segment` has all the frames it can get
    /// (the caller adds "video ended"): a later frame at or after `pts + 80 ms` has arrived, or the
    /// segment has ended.
    pub fn covers(&self, pts: i64, segment: u64) -> bool {
        segment != self.segment
            || self
                .last_pts
                .is_some_and(|l| l >= pts.saturating_add(WINDOW_REACH_NS))
    }

    /// The POSE at time `tau` in `segment` and the crop size of the nearest frame (ties: the
    /// earlier one); `None` when the segment has no stored frame.
    pub fn sample(&self, tau: i64, segment: u64) -> Option<(Pose32, (usize, usize))> {
        let mut before: Option<&PoseEntry> = None;
        let mut after: Option<&PoseEntry> = None;
        for e in self.entries.iter().filter(|e| e.segment == segment) {
            if e.pts <= tau {
                before = Some(e);
            }
            if e.pts >= tau && after.is_none() {
                after = Some(e);
            }
        }
        let cast = |p: &Pose64| p.map(|row| row.map(|v| v as f32));
        match (before, after) {
            (Some(a), Some(b)) if a.pts == b.pts || a.pts == tau => {
                Some((cast(&a.pose), a.crop_hw))
            }
            (Some(a), Some(b)) => {
                // Linear interpolation in f64, rounded once to f32 like the official packing.
                let w = (tau - a.pts) as f64 / (b.pts - a.pts) as f64;
                let mut pose = [[0.0f32; POSE.len()]; 2];
                for (r, row) in pose.iter_mut().enumerate() {
                    for (k, v) in row.iter_mut().enumerate() {
                        *v = (a.pose[r][k] + (b.pose[r][k] - a.pose[r][k]) * w) as f32;
                    }
                }
                let hw = if tau - a.pts <= b.pts - tau {
                    a.crop_hw
                } else {
                    b.crop_hw
                };
                Some((pose, hw))
            }
            (Some(e), None) | (None, Some(e)) => Some((cast(&e.pose), e.crop_hw)),
            (None, None) => None,
        }
    }

    /// Drops frames no window at or after `tau` can use (keeps the last frame at or before it).
    pub fn prune_before(&mut self, tau: i64) {
        while self.entries.len() >= 2 && self.entries[1].pts <= tau {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pose(v: f64) -> Pose64 {
        [[v; POSE.len()], [v + 1.0; POSE.len()]]
    }

    #[test]
    fn chunks_match_the_official_indices_at_25_fps() {
        // Output frame k uses chunks max(0, k + j - 4), chunk i starting at floor(16 i / 5).
        for k in 0..400i64 {
            let starts = chunk_starts(k * 40_000_000);
            for (j, &s) in starts.iter().enumerate() {
                let i = (k + j as i64 - 4).max(0);
                assert_eq!(s as i64, 16 * i / 5, "k {k} j {j}");
            }
        }
        assert_eq!(chunk_starts(0), [0; 5]);
        assert_eq!(chunk_starts(80_000_000), [0, 0, 0, 3, 6]);
    }

    #[test]
    fn exact_hits_interpolation_and_clamping() {
        let mut t = PoseTrack::new();
        let seg = t.push_face(0, pose(0.0), (100, 80));
        t.push_face(40, pose(4.0), (120, 90));
        assert_eq!(t.sample(40, seg).unwrap().0[0][3], 4.0);
        let (p, hw) = t.sample(10, seg).unwrap();
        assert_eq!((p[0][0], p[1][0], hw), (1.0, 2.0, (100, 80)));
        assert_eq!(t.sample(-80, seg).unwrap().0[0][0], 0.0);
        assert_eq!(t.sample(500, seg).unwrap().0[0][0], 4.0);
        assert!(!t.covers(0, seg));
        t.push_gap(80);
        assert!(t.covers(0, seg));
        let seg2 = t.push_face(120, pose(9.0), (1, 1));
        // The gap separates the segments: no interpolation across it.
        assert_eq!(t.sample(100, seg2).unwrap().0[0][0], 9.0);
        assert_eq!(t.sample(100, seg).unwrap().0[0][0], 4.0);
        t.prune_before(100);
        assert_eq!(t.len(), 2);
    }
}
