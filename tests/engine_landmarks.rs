//! `LandmarkEngine` (streaming landmark side) against an independent official-style batch
//! computation (spec §1.3, §1.5-§1.7), with the formula-weight model package, the golden face-mesh
//! frames of `129.mp4` and the golden `audio2` waveform.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use iplap::audio::melspectrogram;
use iplap::engine::bank::ReferenceBank;
use iplap::engine::bank_build::{FrameRecord, build_bank};
use iplap::engine::landmarks::{BankMode, FrameResult, FrameStatus, LandmarkEngine, SyncedFace};
use iplap::graph::package::{LANDMARK_GENERATOR_STAGE, ModelPackage, write_package};
use iplap::image::{ChannelOrder, Image, ImageRef, Resizer};
use iplap::runtime::{LandmarkGenerator, LandmarkInput, SessionConfig};
use iplap::weights::FormulaWeights;
use ndarray::{Array1, Array3, Array4};
use ndarray_npy::read_npy;

const A0: u64 = 2_000_000_000; // audio starts at 2 s of running time
const F25: u64 = 40_000_000;

struct Data {
    frames: Array4<u8>,
    lms: Vec<Vec<[f32; 3]>>,
    pose64: Array3<f64>,
    pose32: Array3<f32>,
    wav: Vec<f32>,
    bank: Arc<ReferenceBank>,
    package: ModelPackage,
}

fn config() -> SessionConfig {
    SessionConfig {
        intra_threads: 1,
        ..SessionConfig::default()
    }
}

/// The package is built once per test binary (tests run in parallel threads).
fn package_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("iplap-engine-lm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        write_package(&d, &[("landmark_generator", &FormulaWeights::new())], &[]).unwrap();
        d
    })
    .clone()
}

fn data() -> Option<Data> {
    let dir = iplap::testdata::shared_path("golden/public")?;
    let fm = dir.join("facemesh/129");
    let frames: Array4<u8> = read_npy(fm.join("frames_rgb_u8.npy")).unwrap();
    let lm: Array3<f32> = read_npy(fm.join("landmarks_refined_f32.npy")).unwrap();
    let lms: Vec<Vec<[f32; 3]>> = lm
        .outer_iter()
        .map(|f| f.outer_iter().map(|p| [p[0], p[1], p[2]]).collect())
        .collect();
    let wav: Array1<f32> = read_npy(dir.join("audio/audio2/wav16k_f32.npy")).unwrap();
    let (mut resizer, mut scratch) = (Resizer::new(), Image::default());
    let recs: Vec<FrameRecord> = (0..lms.len())
        .map(|k| {
            let img = frame(&frames, k);
            FrameRecord::from_frame(&img, &lms[k], &mut resizer, &mut scratch).unwrap()
        })
        .collect();
    let (bank, _) = build_bank(&recs).unwrap();
    Some(Data {
        pose64: read_npy(fm.join("pose_f64.npy")).unwrap(),
        pose32: read_npy(fm.join("pose_f32.npy")).unwrap(),
        frames,
        lms,
        wav: wav.to_vec(),
        bank: Arc::new(bank),
        package: ModelPackage::open(&package_dir()).unwrap(),
    })
}

fn frame(frames: &Array4<u8>, k: usize) -> ImageRef<'_> {
    let (_, h, w, _) = frames.dim();
    let n = h * w * 3;
    ImageRef::packed(
        &frames.as_slice().unwrap()[k * n..(k + 1) * n],
        w,
        h,
        ChannelOrder::Rgb,
    )
    .unwrap()
}

fn engine(d: &Data, mode: BankMode) -> LandmarkEngine {
    LandmarkEngine::from_package(&d.package, &config(), mode).unwrap()
}

fn push_frame(e: &mut LandmarkEngine, d: &Data, k: usize, pts: u64, face: bool) {
    let lm = face.then(|| d.lms[k].as_slice());
    e.push_video(pts, F25, &frame(&d.frames, k), lm).unwrap();
}

fn drain(e: &mut LandmarkEngine, out: &mut Vec<FrameResult>) {
    while let Some(r) = e.pop_ready().unwrap() {
        out.push(r);
    }
}

fn synced(r: &FrameResult) -> &SyncedFace {
    match &r.status {
        FrameStatus::Synced(s) => s,
        other => panic!("frame {} is {other:?}", r.pts_ns),
    }
}

/// Everything at once, 25 fps timestamps.
fn clean_run(d: &Data) -> Vec<FrameResult> {
    let mut e = engine(d, BankMode::Fixed(d.bank.clone()));
    e.push_audio(A0, &d.wav).unwrap();
    e.finish_audio();
    for k in 0..60 {
        push_frame(&mut e, d, k, A0 + k as u64 * F25, true);
    }
    e.finish_video().unwrap();
    let mut out = Vec::new();
    drain(&mut e, &mut out);
    assert_eq!(e.pending(), 0);
    out
}

fn assert_same(a: &SyncedFace, b: &SyncedFace, what: &str) {
    assert_eq!(a.window_content, b.window_content, "{what}: content");
    assert_eq!(a.window_pose, b.window_pose, "{what}: pose");
    assert_eq!(a.mel_chunk, b.mel_chunk, "{what}: mel");
    assert_eq!(a.face, b.face, "{what}: face");
}

#[test]
fn matches_official_batch_computation_at_25_fps() {
    let Some(d) = data() else { return };
    let out = clean_run(&d);
    assert_eq!(out.len(), 60);
    // Independent batch: whole-audio mel, chunk i at floor(16 i / 5), window s uses chunks
    // max(0, s + j - 2) and the POSE of frames s + j; Nl from the offline bank (spec §1.7).
    let mel = melspectrogram(&d.wav);
    let chunk = |i: i64| mel.chunk(16 * i.max(0) / 5, Default::default());
    let path = d.package.stage_path(LANDMARK_GENERATOR_STAGE.name).unwrap();
    let mut lg = LandmarkGenerator::from_file(&path, &config()).unwrap();
    let (nl_pose, nl_content) = (d.bank.nl_pose(), d.bank.nl_content());
    let mut worst = 0f32;
    for s in 0..=55usize {
        let t_mels: Vec<f32> = (0..5)
            .flat_map(|j| chunk(s as i64 + j - 2).into_iter())
            .collect();
        let t_pose: Vec<f32> = (0..5)
            .flat_map(|j| d.pose32.outer_iter().nth(s + j).unwrap().to_owned())
            .collect();
        let want = lg
            .run(&LandmarkInput {
                t_mels: &t_mels,
                t_pose: &t_pose,
                nl_pose: &nl_pose,
                nl_content: &nl_content,
            })
            .unwrap()
            .predict_content;
        let got = synced(&out[s + 2]);
        assert_eq!(out[s + 2].pts_ns, A0 + (s as u64 + 2) * F25);
        let got_pose: Vec<f32> = got
            .window_pose
            .iter()
            .flatten()
            .flatten()
            .copied()
            .collect();
        assert_eq!(got_pose, t_pose, "T_pose of frame {}", s + 2);
        assert_eq!(got.mel_chunk, t_mels[2 * 1280..3 * 1280], "renderer chunk");
        let got_c: Vec<f32> = got
            .window_content
            .iter()
            .flatten()
            .flatten()
            .copied()
            .collect();
        for (a, b) in got_c.iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
        assert_eq!(got.content, got.window_content[2]);
        assert_eq!(got.pose, got.window_pose[2]);
    }
    eprintln!("max |engine - batch| predict_content over frames 2..57: {worst:e}");
    assert!(worst <= 1e-4, "{worst}");
    // Frames 0 and 1 (official copies of frame 2) get their own clamped windows.
    assert_eq!(
        synced(&out[0]).mel_chunk,
        chunk(0).iter().copied().collect::<Vec<_>>()
    );
    let face = &synced(&out[10]).face;
    assert_eq!(face.points_px.len(), 478);
    assert_eq!(face.frame_size, (256, 256));
}

#[test]
fn random_audio_chunks_interleaving_overlaps_and_reset_give_identical_results() {
    let Some(d) = data() else { return };
    let clean = clean_run(&d);
    let mut e = engine(&d, BankMode::Fixed(d.bank.clone()));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for round in 0..2u64 {
        // Second round after a flush, 100 s later in running time.
        let base = A0 + round * 100_000_000_000;
        let mut out = Vec::new();
        let (mut pos, mut k) = (0usize, 0usize);
        let samples_needed = 3 * 16000; // 60 frames = 2.4 s, plus the look-ahead
        while pos < samples_needed || k < 60 {
            if k < 60 && (next(3) == 0 || pos >= samples_needed) {
                push_frame(&mut e, &d, k, base + k as u64 * F25, true);
                k += 1;
            } else {
                let n = 1 + next(3000) as usize;
                // Sometimes re-send up to 50 already-sent samples: the overlap must be trimmed.
                let back = if pos > 50 {
                    next(2) as usize * next(51) as usize
                } else {
                    0
                };
                let start = pos - back;
                let end = (pos + n).min(d.wav.len());
                let pts = base + start as u64 * 1_000_000_000 / 16000;
                e.push_audio(pts, &d.wav[start..end]).unwrap();
                pos = end;
            }
            drain(&mut e, &mut out);
        }
        e.finish_video().unwrap();
        drain(&mut e, &mut out);
        assert_eq!(out.len(), 60, "round {round}");
        for (k, (a, b)) in out.iter().zip(&clean).enumerate() {
            assert_same(synced(a), synced(b), &format!("round {round} frame {k}"));
        }
        e.reset();
    }
}

#[test]
fn readiness_waits_for_audio_and_for_the_frame_80_ms_later() {
    let Some(d) = data() else { return };
    let mut e = engine(&d, BankMode::Fixed(d.bank.clone()));
    for k in 0..60 {
        push_frame(&mut e, &d, k, A0 + k as u64 * F25, true);
    }
    assert!(e.pop_ready().unwrap().is_none(), "nothing before any audio");
    let mut out = Vec::new();
    let mut pushed = 0usize;
    for k in 0..58usize {
        // Frame k's last chunk starts at floor(3.2 k) and needs mel frames up to that + 15,
        // i.e. samples 0 ..= 200 (c + 15) + 399.
        let need = 200 * (16 * k / 5 + 15) + 400;
        if need - 1 > pushed {
            let pts = A0 + pushed as u64 * 1_000_000_000 / 16000;
            e.push_audio(pts, &d.wav[pushed..need - 1]).unwrap();
            pushed = need - 1;
        }
        drain(&mut e, &mut out);
        assert_eq!(out.len(), k, "frame {k} must wait for sample {}", need - 1);
        e.push_audio(
            A0 + pushed as u64 * 1_000_000_000 / 16000,
            &d.wav[pushed..need],
        )
        .unwrap();
        pushed = need;
        drain(&mut e, &mut out);
        assert_eq!(out.len(), k + 1, "frame {k} is ready with {need} samples");
        // 212.5 ms of audio after the frame is the documented worst case.
        assert!((need as u64 * 1_000_000_000 / 16000) <= k as u64 * F25 + 212_500_000);
    }
    // Frames 58 and 59 need frames at +80 ms that never come: only the end of video frees them.
    e.push_audio(
        A0 + pushed as u64 * 1_000_000_000 / 16000,
        &d.wav[pushed..64000],
    )
    .unwrap();
    drain(&mut e, &mut out);
    assert_eq!(out.len(), 58);
    assert_eq!(e.latency_ns(), 212_500_000);

    // Video side: with all audio present, frame k is ready once frame k + 2 (t + 80 ms) is in.
    let mut e = engine(&d, BankMode::Fixed(d.bank.clone()));
    e.push_audio(A0, &d.wav).unwrap();
    let mut out = Vec::new();
    for k in 0..10 {
        push_frame(&mut e, &d, k, A0 + k as u64 * F25, true);
        drain(&mut e, &mut out);
        assert_eq!(out.len(), (k + 1).saturating_sub(2), "after frame {k}");
    }
}

#[test]
fn end_of_stream_pads_audio_with_silence_and_clamps_video() {
    let Some(d) = data() else { return };
    let clean = clean_run(&d);
    let mut e = engine(&d, BankMode::Fixed(d.bank.clone()));
    e.push_audio(A0, &d.wav[..16000]).unwrap(); // 1 s: 81 mel frames
    e.finish_audio();
    let mut out = Vec::new();
    for k in 0..60 {
        push_frame(&mut e, &d, k, A0 + k as u64 * F25, true);
        drain(&mut e, &mut out);
    }
    assert_eq!(out.len(), 58, "the last two frames wait for video EOS");
    e.finish_video().unwrap();
    drain(&mut e, &mut out);
    assert_eq!(out.len(), 60);
    // Frame 10's chunks lie well inside the first second: identical to the full-audio run.
    assert_same(synced(&out[10]), synced(&clean[10]), "frame 10");
    // Frame 40's centre chunk starts at mel frame 121 > 81: pure silence.
    assert!(synced(&out[40]).mel_chunk.iter().all(|&v| v == -4.0));
    // Frame 59: positions +40 and +80 ms clamp to the last frame.
    let last = synced(&out[59]);
    assert_eq!(last.window_pose[3], last.window_pose[2]);
    assert_eq!(last.window_pose[4], last.window_pose[2]);
    assert_ne!(last.window_pose[1], last.window_pose[2]);
}

#[test]
fn audio_that_ends_before_any_video_drives_the_frames_with_silence() {
    // An unlinked audio_sink (or an audio stream with no samples) ends before the first video
    // frame reaches the engine: no audio origin was ever set. Frames must still come out, driven
    // by silence from the first video frame on (issue 13: the element spun forever here).
    let Some(d) = data() else { return };
    for samples in [0usize, 1] {
        let mut e = engine(&d, BankMode::Fixed(d.bank.clone()));
        if samples > 0 {
            e.push_audio(A0, &[]).unwrap();
        }
        e.finish_audio();
        let mut out = Vec::new();
        for k in 0..6 {
            push_frame(&mut e, &d, k, A0 + k as u64 * F25, true);
            drain(&mut e, &mut out);
        }
        assert_eq!(out.len(), 4, "frames wait only for the video 80 ms later");
        e.finish_video().unwrap();
        drain(&mut e, &mut out);
        assert_eq!(out.len(), 6);
        assert!(
            out.iter()
                .all(|r| synced(r).mel_chunk.iter().all(|&v| v == -4.0)),
            "all silence"
        );
    }
}

#[test]
fn no_face_frames_pass_through_and_the_window_recovers() {
    let Some(d) = data() else { return };
    let clean = clean_run(&d);
    let mut e = engine(&d, BankMode::Fixed(d.bank.clone()));
    e.push_audio(A0, &d.wav).unwrap();
    let mut out = Vec::new();
    for k in 0..60 {
        push_frame(&mut e, &d, k, A0 + k as u64 * F25, !(20..23).contains(&k));
        drain(&mut e, &mut out);
    }
    e.finish_video().unwrap();
    drain(&mut e, &mut out);
    assert_eq!(out.len(), 60);
    for (k, r) in out.iter().enumerate() {
        assert_eq!(r.pts_ns, A0 + k as u64 * F25);
        match k {
            20..=22 => assert!(matches!(r.status, FrameStatus::NoFace), "frame {k}"),
            // Windows clamp at the gap instead of reaching across it.
            19 => assert_eq!(synced(r).window_pose[4], synced(r).window_pose[2]),
            23 => assert_eq!(synced(r).window_pose[0], synced(r).window_pose[2]),
            k if k <= 17 || k >= 25 => {
                assert_same(synced(r), synced(&clean[k]), &format!("frame {k}"))
            }
            _ => {
                synced(r);
            }
        }
    }
}

#[test]
fn other_frame_rates_interpolate_pose_between_neighbours() {
    let Some(d) = data() else { return };
    let mut e = engine(&d, BankMode::Fixed(d.bank.clone()));
    e.push_audio(A0, &d.wav).unwrap();
    // The native 30 fps timestamps.
    let pts30 = |k: usize| A0 + (k as u64 * 1_000_000_000).div_ceil(30);
    let mut out = Vec::new();
    for k in 0..60 {
        e.push_video(pts30(k), 33_333_333, &frame(&d.frames, k), Some(&d.lms[k]))
            .unwrap();
        drain(&mut e, &mut out);
    }
    e.finish_video().unwrap();
    drain(&mut e, &mut out);
    assert_eq!(out.len(), 60);
    let mel = melspectrogram(&d.wav);
    let mut worst = 0f64;
    for (k, r) in out.iter().enumerate().skip(3).take(50) {
        let s = synced(r);
        for j in 0..5 {
            let tau = pts30(k) as i64 + (j as i64 - 2) * 40_000_000;
            let b = (0..60).find(|&i| pts30(i) as i64 >= tau).unwrap();
            let a = b - usize::from(pts30(b) as i64 > tau);
            let w = if a == b {
                0.0
            } else {
                (tau - pts30(a) as i64) as f64 / (pts30(b) - pts30(a)) as f64
            };
            for c in 0..2 {
                for p in 0..74 {
                    let (va, vb) = (d.pose64[[a, c, p]], d.pose64[[b, c, p]]);
                    let want = va + (vb - va) * w;
                    worst = worst.max((s.window_pose[j][c][p] as f64 - want).abs());
                }
            }
        }
        // The renderer chunk of a frame at t starts at floor(80 (t - 0.08)).
        let t = (pts30(k) - A0) as i64;
        let start = (t - 80_000_000).div_euclid(12_500_000).max(0);
        let want: Vec<f32> = mel
            .chunk(start, Default::default())
            .iter()
            .copied()
            .collect();
        assert_eq!(s.mel_chunk, want, "frame {k}");
    }
    assert!(worst < 1e-6, "{worst}");
}

#[test]
fn enrol_mode_builds_the_bank_from_the_first_second() {
    let Some(d) = data() else { return };
    let mut e = engine(
        &d,
        BankMode::Enrol {
            duration_ns: 1_000_000_000,
        },
    );
    e.push_audio(A0, &d.wav).unwrap();
    let mut out = Vec::new();
    for k in 0..40 {
        push_frame(&mut e, &d, k, A0 + k as u64 * F25, true);
        drain(&mut e, &mut out);
    }
    let bank = e.bank().expect("enrolled after 25 frames").clone();
    let (mut resizer, mut scratch) = (Resizer::new(), Image::default());
    let recs: Vec<FrameRecord> = (0..25)
        .map(|k| {
            let f = frame(&d.frames, k);
            FrameRecord::from_frame(&f, &d.lms[k], &mut resizer, &mut scratch).unwrap()
        })
        .collect();
    let (want, _) = build_bank(&recs).unwrap();
    assert_eq!(
        (&bank.landmarks, &bank.images),
        (&want.landmarks, &want.images)
    );
    // Frames popped before the bank existed are Enrolling; the first frame popped after is synced.
    let enrolling = out
        .iter()
        .take_while(|r| matches!(r.status, FrameStatus::Enrolling(_)))
        .count();
    assert_eq!(enrolling, 24);
    assert!(out[24..].iter().all(|r| synced(r).bank.id() == bank.id()));
    // A flush keeps the bank.
    e.reset();
    assert_eq!(e.bank().map(|b| b.id()), Some(bank.id()));
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let Some(d) = data() else { return };
    // A bank with the wrong number of references is refused.
    let mut small = (*d.bank).clone();
    small.landmarks.truncate(10);
    let small = ReferenceBank::new(small.landmarks, small.images);
    assert!(
        LandmarkEngine::from_package(&d.package, &config(), BankMode::Fixed(Arc::new(small)))
            .is_err()
    );
    let mut e = engine(&d, BankMode::Fixed(d.bank.clone()));
    push_frame(&mut e, &d, 1, A0 + F25, true);
    let back = e.push_video(A0, F25, &frame(&d.frames, 0), Some(&d.lms[0]));
    assert!(back.is_err(), "timestamps going backwards");
    // Too few landmarks or a face off the frame: NoFace, not an error.
    e.push_video(
        A0 + 2 * F25,
        F25,
        &frame(&d.frames, 2),
        Some(&d.lms[2][..100]),
    )
    .unwrap();
    let off: Vec<[f32; 3]> = d.lms[3].iter().map(|p| [p[0] + 5.0, p[1], p[2]]).collect();
    e.push_video(A0 + 3 * F25, F25, &frame(&d.frames, 3), Some(&off))
        .unwrap();
    e.finish_audio();
    assert!(e.push_audio(A0, &d.wav[..100]).is_err(), "audio after EOS");
    e.finish_video().unwrap();
    assert!(
        e.push_video(A0 + 9 * F25, F25, &frame(&d.frames, 9), None)
            .is_err()
    );
    let mut out = Vec::new();
    drain(&mut e, &mut out);
    // No audio ever arrived: mel time 0 is the first video frame and every chunk is silence.
    assert!(synced(&out[0]).mel_chunk.iter().all(|&v| v == -4.0));
    assert!(matches!(out[1].status, FrameStatus::NoFace));
    assert!(matches!(out[2].status, FrameStatus::NoFace));
}
