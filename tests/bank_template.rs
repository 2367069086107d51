//! [`TemplateScan`], the reference bank of a face template (spec §1.2, §1.4, §1.5), on the golden
//! frames of 129 (`shared/golden/public/facemesh/129`, already at 25 fps): stamped at 25 fps every
//! frame makes the bank; stamped at 50 fps only the 25 fps frames are tracked and the bank is the
//! one over those frames; and the errors say what is wrong. The expected banks come from a tracker
//! of their own and [`build_bank`] over the frames the 25 fps template uses.
//!
//! Needs the converted face models in `models/generated/face/`; skips loudly without them unless
//! `IPLAP_REQUIRE_SHARED=1`.

use std::path::PathBuf;

use iplap::engine::bank_build::{FrameRecord, build_bank};
use iplap::engine::bank_template::{TemplateBank, TemplateError, TemplateScan};
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::image::{ChannelOrder, Image, ImageRef, Resizer};
use iplap::runtime::SessionConfig;
use ndarray::Array4;
use ndarray_npy::read_npy;

const MS: u64 = 1_000_000;

fn model_dir() -> Option<PathBuf> {
    iplap::testdata::face_models_dir()
}

fn config() -> SessionConfig {
    SessionConfig {
        intra_threads: 2,
        ..Default::default()
    }
}

fn scan() -> Option<TemplateScan> {
    Some(TemplateScan::load(&model_dir()?, &config()).expect("load face models"))
}

/// The golden frames (packed RGB) and their side.
fn golden_frames() -> Option<(Vec<Vec<u8>>, usize)> {
    let dir = iplap::testdata::shared_path("golden/public/facemesh/129")?;
    let frames: Array4<u8> = read_npy(dir.join("frames_rgb_u8.npy")).unwrap();
    let side = frames.shape()[1];
    let out = frames
        .outer_iter()
        .map(|f| f.iter().copied().collect())
        .collect();
    Some((out, side))
}

/// Pushes `frames` stamped by `pts` and finishes.
fn run(
    mut scan: TemplateScan,
    frames: &[Vec<u8>],
    side: usize,
    pts: impl Fn(usize) -> Option<u64>,
) -> Result<TemplateBank, TemplateError> {
    for (i, f) in frames.iter().enumerate() {
        let image = ImageRef::packed(f, side, side, ChannelOrder::Rgb).unwrap();
        scan.push(pts(i), &image)?;
    }
    scan.finish()
}

/// The bank file bytes of the official selection over frames `indices`, tracked here.
fn expected_bank(frames: &[Vec<u8>], side: usize, indices: &[usize]) -> Vec<u8> {
    let mut tracker = FaceTracker::load(&model_dir().unwrap(), Mode::Static, &config()).unwrap();
    let (mut resizer, mut scratch) = (Resizer::new(), Image::default());
    let records: Vec<FrameRecord> = indices
        .iter()
        .map(|&i| {
            let image = ImageRef::packed(&frames[i], side, side, ChannelOrder::Rgb).unwrap();
            let face = tracker.process(&image).unwrap().expect("a face");
            FrameRecord::from_frame(&image, &face.normalized, &mut resizer, &mut scratch).unwrap()
        })
        .collect();
    build_bank(&records).unwrap().0.to_bytes().unwrap()
}

#[test]
fn at_25_fps_every_frame_makes_the_bank() {
    let Some((frames, side)) = golden_frames() else {
        return;
    };
    let Some(scan) = scan() else {
        return;
    };
    let built = run(scan, &frames, side, |i| {
        Some(1_000 * MS + i as u64 * 40 * MS)
    })
    .unwrap();
    let all: Vec<usize> = (0..frames.len()).collect();
    assert_eq!(built.picked, all);
    assert_eq!(
        (built.decoded, built.tracked, built.face_frames),
        (60, 60, 60)
    );
    assert_eq!((built.width, built.height), (side, side));
    assert!(built.bank.to_bytes().unwrap() == expected_bank(&frames, side, &all));
}

#[test]
fn at_50_fps_only_the_25_fps_frames_are_tracked() {
    let Some((frames, side)) = golden_frames() else {
        return;
    };
    let Some(scan) = scan() else {
        return;
    };
    // 1.2 s at 50 fps: 30 frames at 25 fps, the even ones; the odd ones are never tracked.
    let built = run(scan, &frames, side, |i| Some(i as u64 * 20 * MS)).unwrap();
    let even: Vec<usize> = (0..frames.len()).step_by(2).collect();
    assert_eq!(built.picked, even);
    assert_eq!(built.frames_25fps(), 30);
    assert_eq!(
        (built.decoded, built.tracked, built.face_frames),
        (60, 30, 30)
    );
    assert!(built.bank.to_bytes().unwrap() == expected_bank(&frames, side, &even));
}

#[test]
fn frames_without_timestamps_follow_at_25_fps() {
    let Some((frames, side)) = golden_frames() else {
        return;
    };
    let Some(scan) = scan() else {
        return;
    };
    let built = run(scan, &frames[..3], side, |_| None).unwrap();
    assert_eq!(built.picked, [0, 1, 2]);
    // A still image: one frame.
    let built = run(
        TemplateScan::load(&model_dir().unwrap(), &config()).unwrap(),
        &frames[..1],
        side,
        |_| None,
    )
    .unwrap();
    assert_eq!(built.picked, [0]);
    assert_eq!(
        built.bank.images.len(),
        25,
        "the one frame fills every reference"
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let Some(scan) = scan() else {
        return;
    };
    let err = scan.finish().unwrap_err();
    assert!(matches!(err, TemplateError::NoFrame), "{err}");

    // Three blank frames at 30 fps (0.1 s): two frames at 25 fps, no face in either.
    let blank = vec![vec![0u8; 64 * 64 * 3]; 3];
    let scan = TemplateScan::load(&model_dir().unwrap(), &config()).unwrap();
    let err = run(scan, &blank, 64, |i| Some(i as u64 * 1_000_000_000 / 30)).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            TemplateError::NoFace {
                decoded: 3,
                frames_25fps: 2
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("no face") && text.contains("2 frame(s) at 25 fps (3 decoded"),
        "{text}"
    );

    let mut scan = TemplateScan::load(&model_dir().unwrap(), &config()).unwrap();
    let small = vec![0u8; 32 * 32 * 3];
    scan.push(
        Some(0),
        &ImageRef::packed(&blank[0], 64, 64, ChannelOrder::Rgb).unwrap(),
    )
    .unwrap();
    let err = scan
        .push(
            Some(40 * MS),
            &ImageRef::packed(&small, 32, 32, ChannelOrder::Rgb).unwrap(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("frame 1 is 32x32 but frame 0 is 64x64"),
        "{err}"
    );
}
