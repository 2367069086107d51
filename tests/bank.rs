//! Reference bank (spec §1.5): selection parity with the golden arg-sort, the offline bank against
//! the golden pose/content/crop/sketch files, enrolment, tensor packing and the bank file format.

use iplap::sizes::FACE_SIZE;
use std::path::Path;

use iplap::engine::bank::ReferenceBank;
use iplap::engine::bank_build::{Enrolment, FrameRecord, build_bank};
use iplap::engine::select::{order_by_lip_openness, select_references};
use iplap::image::{ChannelOrder, Image, ImageRef, Resizer};
use ndarray::{Array1, Array3, Array4};
use ndarray_npy::read_npy;

struct Golden {
    frames: Array4<u8>,
    landmarks: Array3<f32>,
    pose: Array3<f32>,
    content: Array3<f32>,
    lip: Array1<f64>,
    argsort: Vec<usize>,
}

fn golden(dir: &Path) -> Golden {
    let fm = dir.join("facemesh/129");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let argsort = index["parts"]["facemesh"]["sources"]["129"]["lip_dist_stable_argsort"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    Golden {
        frames: read_npy(fm.join("frames_rgb_u8.npy")).unwrap(),
        landmarks: read_npy(fm.join("landmarks_refined_f32.npy")).unwrap(),
        pose: read_npy(fm.join("pose_f32.npy")).unwrap(),
        content: read_npy(fm.join("content_f32.npy")).unwrap(),
        lip: read_npy(fm.join("lip_dist_f64.npy")).unwrap(),
        argsort,
    }
}

fn landmarks(g: &Golden, f: usize) -> Vec<[f32; 3]> {
    g.landmarks
        .outer_iter()
        .nth(f)
        .unwrap()
        .outer_iter()
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

fn records(g: &Golden) -> Vec<FrameRecord> {
    let (n, h, w, _) = g.frames.dim();
    let (mut resizer, mut scratch) = (Resizer::new(), Image::default());
    (0..n)
        .map(|f| {
            let data = g.frames.as_slice().unwrap();
            let frame = &data[f * h * w * 3..(f + 1) * h * w * 3];
            let img = ImageRef::packed(frame, w, h, ChannelOrder::Rgb).unwrap();
            FrameRecord::from_frame(&img, &landmarks(g, f), &mut resizer, &mut scratch).unwrap()
        })
        .collect()
}

#[test]
fn selection_matches_golden_argsort_and_bank_matches_golden_sets() {
    let dir = iplap::require_shared!("golden/public");
    let g = golden(&dir);
    let recs = records(&g);
    let lips: Vec<f64> = recs.iter().map(|r| r.lip_dist).collect();
    assert_eq!(lips, g.lip.to_vec(), "lip distances are bit-exact");
    assert_eq!(order_by_lip_openness(&lips), g.argsort);
    // V = 60: (V - 1) k / (steps - 1) is never an integer at k = 7, so the float32 ranks equal the
    // rational floors here (spec §1.5 step 4).
    let sel = select_references(&lips);
    let want_r: Vec<usize> = (0..15).map(|k| g.argsort[59 * k / 14]).collect();
    let want_q: Vec<usize> = (0..25).map(|k| g.argsort[59 * k / 24]).collect();
    assert_eq!((sel.landmark.clone(), sel.image.clone()), (want_r, want_q));

    let (bank, sel2) = build_bank(&recs).unwrap();
    assert_eq!(sel2, sel);
    for (lr, &f) in bank.landmarks.iter().zip(&sel.landmark) {
        for r in 0..2 {
            for k in 0..74 {
                assert_eq!(lr.pose[r][k], g.pose[[f, r, k]]);
            }
            for k in 0..57 {
                assert_eq!(lr.content[r][k], g.content[[f, r, k]]);
            }
        }
    }
    // Packed tensors.
    let nl_pose = bank.nl_pose();
    let nl_content = bank.nl_content();
    assert_eq!(
        (nl_pose.len(), nl_content.len()),
        (15 * 2 * 74, 15 * 2 * 57)
    );
    assert_eq!(nl_pose[74], g.pose[[sel.landmark[0], 1, 0]]);
    assert_eq!(nl_content[2 * 57 + 3], g.content[[sel.landmark[1], 0, 3]]);
    let imgs = bank.ref_images_chw().unwrap();
    let sketches = bank.ref_sketches().unwrap();
    assert_eq!(
        (imgs.len(), sketches.len()),
        (
            25 * 3 * FACE_SIZE * FACE_SIZE,
            25 * 3 * FACE_SIZE * FACE_SIZE
        )
    );

    // Golden crops and sketches exist for frames 0, 12, 24, 36, 48, 59; 24, 48, 59 are selected.
    let crop_u8: Array4<u8> = read_npy(dir.join("crop/crop_bgr_u8.npy")).unwrap();
    let crop_chw: Array4<f32> = read_npy(dir.join("crop/crop_chw_f32.npy")).unwrap();
    let sketch: Array4<f32> = read_npy(dir.join("sketch/sketch_f32.npy")).unwrap();
    let plane = 3 * FACE_SIZE * FACE_SIZE;
    let mut compared = 0;
    for (sample, frame) in [0usize, 12, 24, 36, 48, 59].into_iter().enumerate() {
        let Some(k) = sel.image.iter().position(|&q| q == frame) else {
            continue;
        };
        let img = &bank.images[k];
        let want: Vec<u8> = crop_u8
            .outer_iter()
            .nth(sample)
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(img.crop_bgr, want, "crop of frame {frame}");
        let want: Vec<f32> = crop_chw
            .outer_iter()
            .nth(sample)
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(&imgs[k * plane..(k + 1) * plane], &want[..]);
        let want: Vec<f32> = sketch
            .outer_iter()
            .nth(sample)
            .unwrap()
            .iter()
            .copied()
            .collect();
        let worst = sketches[k * plane..(k + 1) * plane]
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "sketch of frame {frame}: {worst}");
        compared += 1;
    }
    assert_eq!(compared, 3);
}

#[test]
fn enrolment_by_timestamps_equals_offline_bank_of_those_frames() {
    let dir = iplap::require_shared!("golden/public");
    let g = golden(&dir);
    let recs = records(&g);
    let (_, h, w, _) = g.frames.dim();
    let data = g.frames.as_slice().unwrap();
    // 1 s at 40 ms per frame: complete after 25 frames.
    let mut e = Enrolment::new(1_000_000_000);
    let mut done_at = None;
    for f in 0..60 {
        let img = ImageRef::packed(
            &data[f * h * w * 3..(f + 1) * h * w * 3],
            w,
            h,
            ChannelOrder::Rgb,
        )
        .unwrap();
        let pts = 5_000_000_000 + f as u64 * 40_000_000;
        if e.push(pts, 40_000_000, &img, &landmarks(&g, f)).unwrap() {
            done_at = Some(f);
            break;
        }
    }
    assert_eq!(done_at, Some(24));
    let enrolled = e.finish().unwrap();
    let (offline, _) = build_bank(&recs[..25]).unwrap();
    assert_eq!(enrolled.landmarks, offline.landmarks);
    assert_eq!(enrolled.images, offline.images);
    assert_ne!(enrolled.id(), offline.id());
    assert!(e.is_empty());
}

#[test]
fn save_load_round_trip_and_hostile_files() {
    let dir = iplap::require_shared!("golden/public");
    let g = golden(&dir);
    let (bank, _) = build_bank(&records(&g)).unwrap();
    let tmp = std::env::temp_dir().join(format!("iplap-bank-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let path = tmp.join("bank.iplapbank");
    bank.save(&path).unwrap();
    let loaded = ReferenceBank::load(&path).unwrap();
    assert_eq!(loaded.landmarks, bank.landmarks);
    assert_eq!(loaded.images, bank.images);
    assert_ne!(loaded.id(), bank.id(), "loading gives a new id");

    let bytes = std::fs::read(&path).unwrap();
    // Every truncation is an error.
    for len in (0..bytes.len())
        .step_by(997)
        .chain([bytes.len() - 1, 7, 8, 24, 56])
    {
        assert!(
            ReferenceBank::from_bytes(&bytes[..len]).is_err(),
            "len {len}"
        );
    }
    // Byte flips anywhere (header, records, checksum) are errors.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut b = bytes.clone();
        let i = (rng as usize) % b.len();
        b[i] ^= 1 << (rng >> 60 & 7);
        assert!(ReferenceBank::from_bytes(&b).is_err(), "flip at {i}");
    }
    // Absurd counts are refused before any allocation; trailing bytes are refused.
    let mut b = bytes.clone();
    b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(
        ReferenceBank::from_bytes(&b)
            .unwrap_err()
            .contains("at most 64")
    );
    let mut b = bytes.clone();
    b.push(0);
    assert!(ReferenceBank::from_bytes(&b).is_err());
    // A missing file is an error naming it.
    let e = ReferenceBank::load(&tmp.join("missing")).unwrap_err();
    assert!(e.to_string().contains("missing"));
    std::fs::remove_dir_all(&tmp).unwrap();
}
