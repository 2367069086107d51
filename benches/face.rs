//! Face tracking per frame (detector + attention mesh, ONNX Runtime CPU, 2 intra-op threads):
//! static mode (detect every frame) and tracking mode (ROI from the previous frame), on the
//! 256×256 frames of `129.mp4` and on the same frames centred in a 1920×1080 canvas.
//! Needs `models/generated/face/` (prepare_face_models) and the shared goldens; skips otherwise.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::image::{ChannelOrder, ImageRef};
use iplap::runtime::SessionConfig;
use ndarray::Array4;
use ndarray_npy::read_npy;

/// Packed RGB frames.
type Frames = Vec<Vec<u8>>;

fn frames() -> Option<(Frames, Frames)> {
    let dir = iplap::testdata::shared_path("golden/public/facemesh/129")?;
    let all: Array4<u8> = read_npy(dir.join("frames_rgb_u8.npy")).ok()?;
    let small: Vec<Vec<u8>> = all
        .outer_iter()
        .map(|f| f.iter().copied().collect())
        .collect();
    // Full-HD canvas with the face upscaled 3× (nearest) in the middle: a large face, as in a webcam.
    let big: Vec<Vec<u8>> = small
        .iter()
        .map(|f| {
            let (w, h) = (1920usize, 1080usize);
            let mut out = vec![40u8; w * h * 3];
            let (ox, oy) = ((w - 768) / 2, (h - 768) / 2);
            for y in 0..768 {
                for x in 0..768 {
                    let s = ((y / 3) * 256 + x / 3) * 3;
                    let d = ((oy + y) * w + ox + x) * 3;
                    out[d..d + 3].copy_from_slice(&f[s..s + 3]);
                }
            }
            out
        })
        .collect();
    Some((small, big))
}

fn bench(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/generated/face");
    let Some((small, big)) = frames() else {
        return;
    };
    let cfg = SessionConfig {
        intra_threads: 2,
        ..Default::default()
    };
    for (mode, label) in [(Mode::Tracking, "tracking"), (Mode::Static, "static")] {
        let Ok(mut t) = FaceTracker::load(&dir, mode, &cfg) else {
            eprintln!("SKIPPED: face models not found in {}", dir.display());
            return;
        };
        for (frames, w, h, size) in [
            (&small, 256, 256, "256x256"),
            (&big, 1920, 1080, "1920x1080"),
        ] {
            let mut k = 0usize;
            t.reset();
            c.bench_function(&format!("face_{label}_rgb_{size}"), |b| {
                b.iter(|| {
                    let f = &frames[k % frames.len()];
                    k += 1;
                    let img = ImageRef::packed(f, w, h, ChannelOrder::Rgb).unwrap();
                    black_box(t.process(black_box(&img)).unwrap())
                })
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
