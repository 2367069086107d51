//! The IP_LAP landmark index sets, in one place (spec §3.2, §3.3, §1.1; README "crop" part).
//!
//! All values are MediaPipe FaceMesh indices (0..478). The official code keeps three identical
//! copies of these lists (`inference_single.py`, `draw_landmark.py`, `preprocess/preprocess_video.py`);
//! everything in this crate reads them from here. Column tables (`*_COLUMN`) are derived at compile
//! time so that the spec lists stay the single source of truth.

/// Number of MediaPipe landmarks with `refine_landmarks=True` (468 mesh points + 10 iris points).
pub const MESH_LEN: usize = 478;

/// ORI (`ori_sequence_idx`, spec §3.2): the canonical ordering of the 131 points used by IP_LAP.
pub const ORI: [usize; 131] = [
    162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397,
    288, 361, 323, 454, 356, 389, 70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 336, 296, 334, 293,
    300, 276, 283, 282, 295, 285, 168, 6, 197, 195, 5, 48, 115, 220, 45, 4, 275, 440, 344, 278, 33,
    246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7, 362, 398, 384, 385,
    386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382, 61, 185, 40, 39, 37, 0, 267, 269,
    270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 78, 191, 80, 81, 82, 13, 312, 311,
    310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95,
];

/// POSE (`pose_landmark_idx`, spec §3.2): 74 points, sorted by ORI position.
pub const POSE: [usize; 74] = [
    162, 127, 234, 93, 323, 454, 356, 389, 70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 336, 296, 334,
    293, 300, 276, 283, 282, 295, 285, 168, 6, 197, 195, 5, 48, 115, 220, 45, 4, 275, 440, 344,
    278, 33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7, 362, 398,
    384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382,
];

/// CONTENT (`content_landmark_idx`, spec §3.2): 57 points = 17 jaw, 20 outer lip, 20 inner lip.
pub const CONTENT: [usize; 57] = [
    132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 61, 185,
    40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 78, 191, 80,
    81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95,
];

/// Number of columns of a "full" landmark set (POSE then CONTENT, spec §1.4 packing).
pub const FULL_LEN: usize = POSE.len() + CONTENT.len();

/// `lip_index` (spec §1.1): upper-lip and lower-lip outer midpoints, used for lip openness.
pub const LIP_INDEX: [usize; 2] = [0, 17];

/// The 125 drawing edges (spec §3.3), as pairs of MediaPipe indices, grouped as in the spec:
/// lips 40, left eye 16, left eyebrow 8, right eye 16, right eyebrow 8, face oval 24, nose 13.
/// The order is irrelevant to the result (every edge has the same colour).
#[rustfmt::skip] // eight edges a line, grouped as in spec §3.3
pub const CONNECTIONS: [(usize, usize); 125] = [
    // FACEMESH_LIPS
    (61, 146), (146, 91), (91, 181), (181, 84), (84, 17), (17, 314), (314, 405), (405, 321),
    (321, 375), (375, 291), (61, 185), (185, 40), (40, 39), (39, 37), (37, 0), (0, 267),
    (267, 269), (269, 270), (270, 409), (409, 291), (78, 95), (95, 88), (88, 178), (178, 87),
    (87, 14), (14, 317), (317, 402), (402, 318), (318, 324), (324, 308), (78, 191), (191, 80),
    (80, 81), (81, 82), (82, 13), (13, 312), (312, 311), (311, 310), (310, 415), (415, 308),
    // FACEMESH_LEFT_EYE
    (263, 249), (249, 390), (390, 373), (373, 374), (374, 380), (380, 381), (381, 382), (382, 362),
    (263, 466), (466, 388), (388, 387), (387, 386), (386, 385), (385, 384), (384, 398), (398, 362),
    // FACEMESH_LEFT_EYEBROW
    (276, 283), (283, 282), (282, 295), (295, 285), (300, 293), (293, 334), (334, 296), (296, 336),
    // FACEMESH_RIGHT_EYE
    (33, 7), (7, 163), (163, 144), (144, 145), (145, 153), (153, 154), (154, 155), (155, 133),
    (33, 246), (246, 161), (161, 160), (160, 159), (159, 158), (158, 157), (157, 173), (173, 133),
    // FACEMESH_RIGHT_EYEBROW
    (46, 53), (53, 52), (52, 65), (65, 55), (70, 63), (63, 105), (105, 66), (66, 107),
    // FACEMESH_FACE_OVAL (lower part only: IP_LAP's reduced set)
    (389, 356), (356, 454), (454, 323), (323, 361), (361, 288), (288, 397), (397, 365), (365, 379),
    (379, 378), (378, 400), (400, 377), (377, 152), (152, 148), (148, 176), (176, 149), (149, 150),
    (150, 136), (136, 172), (172, 58), (58, 132), (132, 93), (93, 234), (234, 127), (127, 162),
    // FACEMESH_NOSE (IP_LAP's own definition)
    (168, 6), (6, 197), (197, 195), (195, 5), (5, 4), (4, 45), (45, 220), (220, 115), (115, 48),
    (4, 275), (275, 440), (440, 344), (344, 278),
];

/// The 36-point paste-back contour (README "crop" part): MediaPipe points along the jaw and over the
/// forehead, standing in for IP_LAP's 27-point face-alignment jaw+brow contour (spec §1.8 step 2).
pub const PASTE_CONTOUR: [usize; 36] = [
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361,
    323, 454, 356, 389, 251, 284, 332, 297, 338, 10, 109, 67, 103, 54, 21, 162, 127,
];

/// Column of a full (POSE then CONTENT) set holding MediaPipe index `mp`, if any.
pub const fn full_column(mp: usize) -> Option<usize> {
    let mut i = 0;
    while i < POSE.len() {
        if POSE[i] == mp {
            return Some(i);
        }
        i += 1;
    }
    let mut j = 0;
    while j < CONTENT.len() {
        if CONTENT[j] == mp {
            return Some(POSE.len() + j);
        }
        j += 1;
    }
    None
}

/// MediaPipe index carried by each column of a full set (spec §3.2 `full_face_landmark_sequence`:
/// exactly POSE order followed by CONTENT order).
pub const FULL: [usize; FULL_LEN] = {
    let mut out = [0usize; FULL_LEN];
    let mut i = 0;
    while i < FULL_LEN {
        out[i] = if i < POSE.len() {
            POSE[i]
        } else {
            CONTENT[i - POSE.len()]
        };
        i += 1;
    }
    out
};

/// [`CONNECTIONS`] as pairs of full-set columns, which is what the sketch rasteriser (spec §4)
/// indexes. Built at compile time; a connection endpoint missing from POSE ∪ CONTENT would fail
/// the build.
pub const CONNECTION_COLUMNS: [(usize, usize); 125] = {
    let mut out = [(0usize, 0usize); 125];
    let mut i = 0;
    while i < CONNECTIONS.len() {
        let a = match full_column(CONNECTIONS[i].0) {
            Some(c) => c,
            None => panic!("connection endpoint not in POSE or CONTENT"),
        };
        let b = match full_column(CONNECTIONS[i].1) {
            Some(c) => c,
            None => panic!("connection endpoint not in POSE or CONTENT"),
        };
        out[i] = (a, b);
        i += 1;
    }
    out
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn sets_are_consistent_with_spec_3_2() {
        let ori: BTreeSet<_> = ORI.iter().copied().collect();
        let pose: BTreeSet<_> = POSE.iter().copied().collect();
        let content: BTreeSet<_> = CONTENT.iter().copied().collect();
        assert_eq!(ori.len(), 131);
        assert_eq!(pose.len(), 74);
        assert_eq!(content.len(), 57);
        assert!(pose.is_disjoint(&content));
        assert_eq!(pose.union(&content).copied().collect::<BTreeSet<_>>(), ori);
        // POSE and CONTENT are sorted by ORI position.
        let pos = |m: usize| ORI.iter().position(|&o| o == m).unwrap();
        assert!(POSE.windows(2).all(|w| pos(w[0]) < pos(w[1])));
        assert!(CONTENT.windows(2).all(|w| pos(w[0]) < pos(w[1])));
        // lip_index: CONTENT columns 22 and 32 (spec §3.2).
        assert_eq!(CONTENT[22], LIP_INDEX[0]);
        assert_eq!(CONTENT[32], LIP_INDEX[1]);
        assert!(PASTE_CONTOUR.iter().all(|&m| m < MESH_LEN));
    }

    #[test]
    fn connections_are_125_distinct_edges_over_ori() {
        let edges: BTreeSet<_> = CONNECTIONS
            .iter()
            .map(|&(a, b)| (a.min(b), a.max(b)))
            .collect();
        assert_eq!(edges.len(), 125);
        let used: BTreeSet<_> = CONNECTIONS.iter().flat_map(|&(a, b)| [a, b]).collect();
        assert_eq!(used, ORI.iter().copied().collect());
        for (&(a, b), &(ca, cb)) in CONNECTIONS.iter().zip(CONNECTION_COLUMNS.iter()) {
            assert_eq!((FULL[ca], FULL[cb]), (a, b));
        }
    }
}
