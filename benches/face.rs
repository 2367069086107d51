//! Face tracking per frame (detector + attention mesh, ONNX Runtime CPU): static mode (detect
//! every frame) and tracking mode (ROI from the previous frame), on the 256×256 frames of
//! `129.mp4` and on the same frames centred in a 1920×1080 canvas.
//!
//! Before the Criterion runs (2 intra-op threads, what `threads = 0` gives on a 2-core machine;
//! `IPLAP_FACE_BENCH_THREADS` changes it), a summary
//! prints, for 1 and 2 intra-op threads, the median wall time and the mean CPU time (all threads
//! of the process, from `/proc/self/task/*/schedstat`) per call of each model and per frame of
//! each mode: on a shared 2-core machine the CPU time is what other work loses. Set
//! `IPLAP_FACE_BENCH_SUMMARY=0` to skip it; `IPLAP_FACE_MODEL_DIR` points at other converted models.
//!
//! Needs `models/generated/face/` (prepare_face_models) and the shared goldens; skips otherwise.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use iplap::face::detector::FaceDetector;
use iplap::face::image_to_tensor::{Border, warp_to_tensor};
use iplap::face::mesh::FaceMesh;
use iplap::face::prepare::{DETECTOR, MESH};
use iplap::face::roi::NormRect;
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

fn config(threads: usize) -> SessionConfig {
    SessionConfig {
        intra_threads: threads,
        ..Default::default()
    }
}

/// CPU time of every thread of this process so far (`/proc/self/task/*/schedstat`, first field,
/// nanoseconds); `None` where that is not available.
fn process_cpu() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// Runs `f` `n` times after a warm-up; prints the median wall and the mean CPU time per call.
fn measure(label: &str, n: usize, mut f: impl FnMut(usize)) {
    for k in 0..n.min(10) {
        f(k);
    }
    let mut wall = Vec::with_capacity(n);
    let cpu0 = process_cpu();
    for k in 0..n {
        let t = Instant::now();
        f(k);
        wall.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cpu = match (cpu0, process_cpu()) {
        (Some(a), Some(b)) => format!("{:.2} ms", (b - a).as_secs_f64() * 1e3 / n as f64),
        _ => "n/a".into(),
    };
    wall.sort_by(f64::total_cmp);
    eprintln!(
        "{label:<34} wall median {:.2} ms (p10 {:.2}, p90 {:.2}), cpu mean {cpu}",
        wall[n / 2],
        wall[n / 10],
        wall[n * 9 / 10]
    );
}

fn img(f: &[u8], w: usize, h: usize) -> ImageRef<'_> {
    ImageRef::packed(f, w, h, ChannelOrder::Rgb).unwrap()
}

/// `roi` of a 256×256 frame mapped into the 1920×1080 canvas of [`frames`].
fn big_canvas_roi(roi: &NormRect) -> NormRect {
    let (ox, oy) = ((1920.0 - 768.0) / 2.0, (1080.0 - 768.0) / 2.0);
    NormRect {
        x_center: (ox + roi.x_center * 768.0) / 1920.0,
        y_center: (oy + roi.y_center * 768.0) / 1080.0,
        width: roi.width * 768.0 / 1920.0,
        height: roi.height * 768.0 / 1080.0,
        rotation: roi.rotation,
    }
}

fn summary(dir: &Path, small: &Frames, big: &Frames) {
    for threads in [1, 2] {
        let cfg = config(threads);
        let (Ok(mut det), Ok(mut mesh), Ok(mut t)) = (
            FaceDetector::load(&dir.join(DETECTOR.onnx_name), &cfg),
            FaceMesh::load(&dir.join(MESH.onnx_name), &cfg),
            FaceTracker::load(dir, Mode::Static, &cfg),
        ) else {
            return;
        };
        let Ok(Some(face)) = t.process(&img(&small[0], 256, 256)) else {
            return;
        };
        let big_roi = big_canvas_roi(&face.roi);
        if threads == 1 {
            // The mesh crop of the same face in both canvases (3× larger in the full-HD one).
            for (frames, w, h, roi) in [(small, 256, 256, face.roi), (big, 1920, 1080, big_roi)] {
                let (px, mut out) = (roi.to_pixels(w, h), Vec::new());
                // One frame again and again (in cache), then a different frame each time.
                for (label, step) in [("same frame", 0), ("next frame", 1)] {
                    measure(&format!("warp {w}x{h} -> 192x192, {label}"), 200, |k| {
                        let frame = img(&frames[k * step % frames.len()], w, h);
                        let (r, b) = (Border::Replicate, (0.0, 1.0));
                        warp_to_tensor(&frame, &px, 192, 192, r, b, &mut out);
                        black_box(&out);
                    });
                }
            }
        }
        for (frames, w, h, roi) in [(small, 256, 256, face.roi), (big, 1920, 1080, big_roi)] {
            measure(&format!("detector {w}x{h} ({threads}t)"), 150, |k| {
                black_box(det.detect(&img(&frames[k % frames.len()], w, h)).unwrap());
            });
            measure(&format!("mesh {w}x{h} ({threads}t)"), 150, |k| {
                black_box(mesh.run(&img(&frames[k % frames.len()], w, h), &roi)).unwrap();
            });
        }
        for mode in [Mode::Tracking, Mode::Static] {
            let Ok(mut t) = FaceTracker::load(dir, mode, &cfg) else {
                return;
            };
            for (frames, w, h) in [(small, 256, 256), (big, 1920, 1080)] {
                t.reset();
                measure(&format!("{mode:?} {w}x{h} ({threads}t)"), 150, |k| {
                    black_box(t.process(&img(&frames[k % frames.len()], w, h)).unwrap());
                });
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::var_os("IPLAP_FACE_MODEL_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/generated/face"),
        PathBuf::from,
    );
    let Some((small, big)) = frames() else {
        return;
    };
    if std::env::var("IPLAP_FACE_BENCH_SUMMARY").as_deref() != Ok("0") {
        summary(&dir, &small, &big);
    }
    let threads = std::env::var("IPLAP_FACE_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let cfg = config(threads);
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
