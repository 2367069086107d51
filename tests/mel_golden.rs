//! The mel front end against the official `melspectrogram` (spec §2.3, §2.5) on the public golden
//! data (`shared/golden/public/audio/audio2`), streaming equivalence and edge cases.

use iplap::audio::{self, Mel, MelFrame, MelStream, chunk_count, melspectrogram};
use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use rand::{RngExt, SeedableRng, rngs::StdRng};

const TOL: f64 = 1e-4;

fn max_abs_diff(mel: &Mel, golden: &Array2<f64>) -> f64 {
    assert_eq!(mel.to_array2_f64().dim(), golden.dim(), "shape (80, M)");
    mel.to_array2_f64()
        .iter()
        .zip(golden)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

fn golden_wave(dir: &std::path::Path) -> Vec<f32> {
    let wav: Array1<f32> = read_npy(dir.join("wav16k_f32.npy")).unwrap();
    wav.to_vec()
}

fn streamed(x: &[f32], sizes: &mut dyn FnMut() -> usize) -> Vec<MelFrame> {
    let mut stream = MelStream::new();
    let mut out = Vec::new();
    let mut rest = x;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(sizes().clamp(1, rest.len()));
        stream.push_into(now, &mut out);
        assert_eq!(stream.frames_emitted(), out.len());
        rest = later;
    }
    stream.flush_into(&mut out);
    out
}

#[test]
fn full_waveform_matches_official_mel() {
    let dir = iplap::require_shared!("golden/public/audio/audio2");
    let wav = golden_wave(&dir);
    assert_eq!(wav.len(), 341_427);
    let mel = melspectrogram(&wav);
    assert_eq!(mel.n_frames(), 1708);
    let golden: Array2<f64> = read_npy(dir.join("mel_f64.npy")).unwrap();
    let d = max_abs_diff(&mel, &golden);
    eprintln!("mel_f64: max |diff| = {d:e}");
    assert!(d <= TOL, "max |diff| {d}");

    // The f32 layout is the f64 result rounded, as `mel_f32.npy` is.
    let golden32: Array2<f32> = read_npy(dir.join("mel_f32.npy")).unwrap();
    let d32 = mel
        .to_array2()
        .iter()
        .zip(&golden32)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("mel_f32: max |diff| = {d32:e}");
    assert!(f64::from(d32) <= TOL);

    // Spec §2.5 check values.
    let a = mel.to_array2_f64();
    let mean = a.mean().unwrap();
    assert!((mean - -2.094424396).abs() < 1e-8, "mean {mean}");
    assert_eq!(a.iter().copied().fold(f64::INFINITY, f64::min), -4.0);
    let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!((max - 1.71651978).abs() < 1e-8, "max {max}");
    let col100 = [
        -3.873352512,
        -3.540691987,
        -3.882925815,
        -3.411658535,
        -3.121136477,
    ];
    for (r, v) in col100.into_iter().enumerate() {
        assert!((a[[r, 100]] - v).abs() < 1e-8, "mel[{r}, 100]");
    }
    let col800 = [-3.903159924, -3.380199451, -3.685205550, -3.735813709, -4.0];
    for (r, v) in col800.into_iter().enumerate() {
        assert!((a[[75 + r, 800]] - v).abs() < 1e-8, "mel[{}, 800]", 75 + r);
    }
    assert_eq!(chunk_count(mel.n_frames()), 530);
}

#[test]
fn first_three_seconds_match_official_mel() {
    let dir = iplap::require_shared!("golden/public/audio/audio2");
    let wav = golden_wave(&dir);
    let mel = melspectrogram(&wav[..48_000]);
    let golden: Array2<f64> = read_npy(dir.join("mel_first3s_f64.npy")).unwrap();
    let d = max_abs_diff(&mel, &golden);
    eprintln!("mel_first3s_f64: max |diff| = {d:e}");
    assert!(d <= TOL, "max |diff| {d}");
}

#[test]
fn int16_wav_matches_official_mel() {
    let dir = iplap::require_shared!("golden/public/audio/audio2");
    let wav = audio::read_wav_16k_mono(dir.join("wav16k_s16.wav")).unwrap();
    assert_eq!(wav.len(), 341_427);
    let golden: Array2<f64> = read_npy(dir.join("mel_from_s16_f64.npy")).unwrap();
    let d = max_abs_diff(&melspectrogram(&wav), &golden);
    eprintln!("mel_from_s16_f64: max |diff| = {d:e}");
    assert!(d <= TOL, "max |diff| {d}");
}

#[test]
fn streaming_is_bit_identical_for_any_chunking() {
    let dir = iplap::require_shared!("golden/public/audio/audio2");
    let wav = golden_wave(&dir);
    let one_shot = melspectrogram(&wav).into_frames();

    // One sample at a time for the first 5000 samples (covers the first frames), then 199.
    let mut n = 0usize;
    let frames = streamed(&wav, &mut || {
        n += 1;
        if n <= 5000 { 1 } else { 199 }
    });
    assert!(frames == one_shot, "1-sample then 199-sample pushes");
    assert!(
        streamed(&wav, &mut || 4096) == one_shot,
        "4096-sample pushes"
    );
    assert!(streamed(&wav, &mut || 640) == one_shot, "640-sample pushes");
    assert!(streamed(&wav, &mut || usize::MAX) == one_shot, "one push");
    for seed in [1u64, 2, 3] {
        let mut rng = StdRng::seed_from_u64(seed);
        let frames = streamed(&wav, &mut || rng.random_range(1..=3000));
        assert!(frames == one_shot, "random pushes, seed {seed}");
    }
}

#[test]
fn edge_cases() {
    // S = 0: the formula gives M = 1 frame of pure padding, i.e. silence.
    let mel = melspectrogram(&[]);
    assert_eq!(mel.n_frames(), 1);
    assert!(mel.frames()[0].iter().all(|&v| v == -4.0));
    let mut s = MelStream::new();
    assert!(s.push(&[]).is_empty());
    assert_eq!(s.flush(), mel.frames());

    // Shorter than one window: 1 + S / 200 frames, all from the one-shot path.
    for len in [1usize, 150, 399, 799] {
        let x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        let mel = melspectrogram(&x);
        assert_eq!(mel.n_frames(), 1 + len / 200, "S = {len}");
        assert!(
            mel.frames()
                .iter()
                .flatten()
                .all(|v| (-4.0..=4.0).contains(v))
        );
        assert!(streamed(&x, &mut || 7) == mel.frames(), "S = {len}");
    }

    // Pure silence is −4 everywhere.
    let mel = melspectrogram(&vec![0.0; 16_000]);
    assert_eq!(mel.n_frames(), 81);
    assert!(mel.frames().iter().flatten().all(|&v| v == -4.0));

    // Full-scale ±1 square wave (period 100 samples): finite and within [−4, 4].
    let x: Vec<f32> = (0..16_000)
        .map(|i| if (i / 50) % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let mel = melspectrogram(&x);
    let v: Vec<f64> = mel.frames().iter().flatten().copied().collect();
    assert!(v.iter().all(|v| v.is_finite() && (-4.0..=4.0).contains(v)));
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Pre-emphasis removes most of the 160 Hz fundamental; the harmonics still give about +2.1.
    assert!(max > 1.0, "max {max}");
}
