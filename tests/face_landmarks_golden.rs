//! Crop boxes, crop-normalised POSE / CONTENT sets and lip openness (spec §1.4) against
//! `shared/golden/public/facemesh/129`, computed from the stored MediaPipe landmarks.

use iplap::face::crop_box::{FaceGeometry, paste_polygon};
use iplap::face::indices::{CONTENT, POSE};
use ndarray::{Array1, Array2, Array3};
use ndarray_npy::read_npy;

fn landmarks(a: &Array3<f32>, f: usize) -> Vec<[f32; 3]> {
    (0..a.shape()[1])
        .map(|i| [a[[f, i, 0]], a[[f, i, 1]], a[[f, i, 2]]])
        .collect()
}

#[test]
fn facemesh_129_geometry_matches_golden() {
    let dir = iplap::require_shared!("golden/public/facemesh/129");
    let lm: Array3<f32> = read_npy(dir.join("landmarks_refined_f32.npy")).unwrap();
    let frames: ndarray::Array4<u8> = read_npy(dir.join("frames_rgb_u8.npy")).unwrap();
    let (h, w) = (frames.shape()[1], frames.shape()[2]);
    let boxes: Array2<i32> = read_npy(dir.join("boxes_i32.npy")).unwrap();
    let raw: Array2<f64> = read_npy(dir.join("box_extent_raw_f64.npy")).unwrap();
    let margin: Array2<f64> = read_npy(dir.join("box_extent_margin_f64.npy")).unwrap();
    let lip: Array1<f64> = read_npy(dir.join("lip_dist_f64.npy")).unwrap();
    let pose64: Array3<f64> = read_npy(dir.join("pose_f64.npy")).unwrap();
    let content64: Array3<f64> = read_npy(dir.join("content_f64.npy")).unwrap();
    let pose32: Array3<f32> = read_npy(dir.join("pose_f32.npy")).unwrap();
    let content32: Array3<f32> = read_npy(dir.join("content_f32.npy")).unwrap();

    let n = lm.shape()[0];
    let (mut box_bad, mut f32_bad) = (0, 0);
    let (mut ext_max, mut set_max, mut lip_max) = (0f64, 0f64, 0f64);
    for f in 0..n {
        let l = landmarks(&lm, f);
        let g = FaceGeometry::from_landmarks(&l, w, h).unwrap();
        let b = g.crop_box;
        let want = [boxes[[f, 0]], boxes[[f, 1]], boxes[[f, 2]], boxes[[f, 3]]];
        if [b.y1, b.y2, b.x1, b.x2].map(|v| v as i32) != want {
            box_bad += 1;
        }
        for (e, row) in [(g.extent_raw, &raw), (g.extent_margin, &margin)] {
            for (k, v) in [e.y_min, e.y_max, e.x_min, e.x_max].into_iter().enumerate() {
                ext_max = ext_max.max((v - row[[f, k]]).abs());
            }
        }
        lip_max = lip_max.max((g.lip_dist - lip[f]).abs());
        let sets = b.normalised_sets(&l, w, h).unwrap();
        let (p32, c32) = (sets.pose_f32(), sets.content_f32());
        for r in 0..2 {
            for k in 0..POSE.len() {
                set_max = set_max.max((sets.pose[r][k] - pose64[[f, r, k]]).abs());
                f32_bad += (p32[r][k].to_bits() != pose32[[f, r, k]].to_bits()) as usize;
            }
            for k in 0..CONTENT.len() {
                set_max = set_max.max((sets.content[r][k] - content64[[f, r, k]]).abs());
                f32_bad += (c32[r][k].to_bits() != content32[[f, r, k]].to_bits()) as usize;
            }
        }
    }
    eprintln!(
        "facemesh/129: {n} frames; boxes wrong {box_bad}; extent max|d| {ext_max:e}; \
         pose/content f64 max|d| {set_max:e}; f32 mismatches {f32_bad}; lip max|d| {lip_max:e}"
    );
    assert_eq!(box_bad, 0);
    assert_eq!(ext_max, 0.0);
    assert!(set_max <= 1e-12);
    assert_eq!(f32_bad, 0);
    assert!(lip_max <= 1e-12);
}

#[test]
fn paste_polygons_match_golden() {
    let fm = iplap::require_shared!("golden/public/facemesh/129");
    let crop = iplap::require_shared!("golden/public/crop");
    let lm: Array3<f32> = read_npy(fm.join("landmarks_refined_f32.npy")).unwrap();
    let poly: Array3<i32> = read_npy(crop.join("paste_polygon_i32.npy")).unwrap();
    // Paste samples 0, 1, 2 are frames 0, 24, 48 of 129 (README "crop" part).
    for (s, f) in [0usize, 24, 48].into_iter().enumerate() {
        let p = paste_polygon(&landmarks(&lm, f), 256, 256).unwrap();
        for (k, &(x, y)) in p.iter().enumerate() {
            assert_eq!(
                [x as i32, y as i32],
                [poly[[s, k, 0]], poly[[s, k, 1]]],
                "sample {s} vertex {k}"
            );
        }
    }
}
