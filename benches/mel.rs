//! Mel front end (spec §2.3) on 60 s of 16 kHz audio: one-shot, and streamed in 640-sample pushes
//! (40 ms, one 25 fps video frame of audio). Target: well under 100 ms per 60 s on one core.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use iplap::audio::{MelStream, melspectrogram};

const SECONDS: usize = 60;

/// Deterministic speech-like test signal: amplitude-modulated harmonics plus LCG noise.
fn signal() -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..SECONDS * 16_000)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((state >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 0.02;
            let envelope = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let voice: f64 = (1..=8)
                .map(|h| (2.0 * std::f64::consts::PI * 140.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (0.2 * envelope * voice + noise) as f32
        })
        .collect()
}

fn bench_mel(c: &mut Criterion) {
    let x = signal();
    let mut group = c.benchmark_group("mel");
    group.sample_size(20);
    group.bench_function("mel_oneshot_f32_60s", |b| {
        b.iter(|| melspectrogram(black_box(&x)))
    });
    group.bench_function("mel_stream640_f32_60s", |b| {
        let mut stream = MelStream::new();
        let mut frames = Vec::with_capacity(x.len() / 200 + 1);
        b.iter(|| {
            stream.reset();
            frames.clear();
            for chunk in black_box(&x).chunks(640) {
                stream.push_into(chunk, &mut frames);
            }
            stream.flush_into(&mut frames);
            black_box(frames.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_mel);
criterion_main!(benches);
