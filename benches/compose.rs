//! Frame renderer bench: seconds per video frame of `FrameCompositor::render_frame` (spec §1.7 steps
//! 3-9: target sketches, face crop, renderer, feathered paste-back) at N = 25 and N = 5 references,
//! with the split per step. The reference encoding happens once per bank and is reported apart.
//!
//! Plain timing loop (`harness = false`): a frame takes seconds on a 2-core machine. Model: the
//! reference formula weights written as a model package into a temporary folder; frames and
//! landmarks: `shared/golden/public/facemesh/129` (256 x 256, RGB).
//!
//! `cargo bench -p iplap --bench compose`; environment: `IPLAP_BENCH_THREADS` (default 2),
//! `IPLAP_BENCH_ITERS` (frames per N, default 3), `IPLAP_BENCH_N` (comma list, default `25,5`).

use std::time::Duration;

use iplap::engine::bank::{ImageReference, LandmarkReference, ReferenceBank};
use iplap::engine::compose::{
    CompositorSettings, FrameCompositor, FrameInput, FrameStats, MeshPoints,
};
use iplap::face::crop_box::{FaceGeometry, NormalisedSets};
use iplap::graph::package::write_package;
use iplap::image::{ChannelOrder, Image, ImageMut, ImageRef, Resizer, crop_face};
use iplap::weights::FormulaWeights;
use ndarray::{Array3, Array4, s};
use ndarray_npy::read_npy;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:9.2} ms", d.as_secs_f64() * 1e3)
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len().max(1) as u32
}

fn main() {
    let Some(dir) = iplap::testdata::shared_path("golden/public/facemesh/129") else {
        return;
    };
    let threads = env_usize("IPLAP_BENCH_THREADS", 2);
    let iters = env_usize("IPLAP_BENCH_ITERS", 3).max(1);
    let ns: Vec<usize> = std::env::var("IPLAP_BENCH_N")
        .unwrap_or_else(|_| "25,5".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();

    let pkg = std::env::temp_dir().join(format!("iplap-bench-frame-{}", std::process::id()));
    write_package(&pkg, &[("renderer", &FormulaWeights::new())], &[]).expect("package");

    let frames: Array4<u8> = read_npy(dir.join("frames_rgb_u8.npy")).unwrap();
    let lm: Array3<f32> = read_npy(dir.join("landmarks_refined_f32.npy")).unwrap();
    let (h, w) = (frames.shape()[1], frames.shape()[2]);
    let rgb: Vec<Vec<u8>> = (0..frames.shape()[0])
        .map(|f| frames.slice(s![f, .., .., ..]).iter().copied().collect())
        .collect();
    let mesh: Vec<Vec<[f32; 2]>> = (0..lm.shape()[0])
        .map(|f| {
            (0..lm.shape()[1])
                .map(|i| [lm[[f, i, 0]], lm[[f, i, 1]]])
                .collect()
        })
        .collect();
    let geo: Vec<(iplap::face::crop_box::CropBox, NormalisedSets)> = mesh
        .iter()
        .map(|m| {
            let b = FaceGeometry::from_landmarks(m, w, h).unwrap().crop_box;
            (b, b.normalised_sets(m, w, h).unwrap())
        })
        .collect();

    // Bank: image references from frames 0, 2, ..., 48 (the bench does not need spec §1.5).
    let mut rz = Resizer::new();
    let refs: Vec<usize> = (0..25).map(|k| 2 * k).collect();
    let images = refs
        .iter()
        .map(|&f| {
            let mut crop = Image::default();
            let frame = ImageRef::packed(&rgb[f], w, h, ChannelOrder::Rgb).unwrap();
            crop_face(&frame, geo[f].0.rect(), &mut crop, &mut rz).unwrap();
            ImageReference {
                crop_bgr: crop.into_vec(),
                landmarks: geo[f].1.full_f32(),
                crop_hw: (geo[f].0.height(), geo[f].0.width()),
            }
        })
        .collect();
    let landmarks = refs[..15]
        .iter()
        .map(|&f| LandmarkReference {
            pose: geo[f].1.pose_f32(),
            content: geo[f].1.content_f32(),
        })
        .collect();
    let bank = ReferenceBank::new(landmarks, images);

    let mel: Vec<f32> = (0..80 * 16)
        .map(|i| (i * 37 % 101) as f32 / 12.5 - 4.0)
        .collect();
    println!(
        "compose: {w}x{h} RGB frames, {threads} threads, {iters} frames per N (after one warm-up \
         frame that also encodes the bank)"
    );
    for &n in &ns {
        let settings = CompositorSettings {
            references: n,
            blend: true,
            show_sketch: false,
            threads,
            device: iplap::runtime::DeviceConfig::cpu(),
        };
        let mut fr = FrameCompositor::from_package(&pkg, settings).expect("renderer");
        let mut stats: Vec<FrameStats> = Vec::new();
        let mut encode = Duration::ZERO;
        for i in 0..=iters {
            let f = 10 + i;
            let (mut pose, mut content) = (Vec::new(), Vec::new());
            let mut hw = [(0, 0); 5];
            for j in 0..5 {
                let (b, sets) = &geo[f + j - 2];
                pose.extend(sets.pose_f32().iter().flatten());
                content.extend(sets.content_f32().iter().flatten());
                hw[j] = (b.height(), b.width());
            }
            let input = FrameInput {
                crop_box: geo[f].0,
                mesh: MeshPoints::Normalised(&mesh[f]),
                window_pose: &pose,
                window_crop_hw: hw,
                window_content: &content,
                mel: &mel,
                bank: &bank,
            };
            let mut frame = rgb[f].clone();
            let mut view = ImageMut::packed(&mut frame, w, h, ChannelOrder::Rgb).unwrap();
            let st = fr.render_frame(&mut view, &input).expect("render");
            if i == 0 {
                encode = st.reference_encoding;
            } else {
                stats.push(st);
            }
        }
        let pick = |f: fn(&FrameStats) -> Duration| mean(&stats.iter().map(f).collect::<Vec<_>>());
        let total = pick(|s| s.total);
        println!(
            "N = {n:2}: {:.3} s/frame (mean of {iters})",
            total.as_secs_f64()
        );
        println!("  sketches (5)        {}", ms(pick(|s| s.sketches)));
        println!("  crop + tensor       {}", ms(pick(|s| s.crop)));
        println!(
            "  renderer (b) modul. {}",
            ms(pick(|s| s.render.modulation))
        );
        println!("  renderer (c) flow   {}", ms(pick(|s| s.render.flow_head)));
        println!("  renderer (d) warp   {}", ms(pick(|s| s.render.warp)));
        println!(
            "  renderer (e) transl {}",
            ms(pick(|s| s.render.translation))
        );
        println!("  paste + blend       {}", ms(pick(|s| s.paste)));
        println!("  bank encoding (once per bank) {}", ms(encode));
    }
    let _ = std::fs::remove_dir_all(&pkg);
}
