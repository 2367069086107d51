//! Per-frame CPU cost of the image stages at 1920 x 1080 with a ~500 px face: five target
//! sketches, the face crop tensor, and the feathered paste-back (spec §1.7 steps 3, 4, 7-8, §1.8).
//!
//! Landmarks: the golden MediaPipe landmarks of `129.mp4` frame 0 (when `shared/` is present),
//! scaled so that the face is about 500 px tall and placed off-centre in a 1080p frame; otherwise
//! a synthetic ellipse. Quote the machine beside every number (STYLE B6).

use criterion::{Criterion, criterion_group, criterion_main};
use iplap::face::crop_box::{FaceGeometry, paste_polygon};
use iplap::image::{
    ChannelOrder, Image, PasteBack, Resizer, SketchRasteriser, SketchScaling, bgr_to_chw,
    crop_face, mask_lower_half,
};
use iplap::sizes::FACE_SIZE;
use std::hint::black_box;

const W: usize = 1920;
const H: usize = 1080;

/// 478 normalised (x, y) landmarks of a ~500 px face in a 1920 x 1080 frame.
fn landmarks() -> Vec<[f32; 2]> {
    let golden =
        iplap::testdata::shared_path("golden/public/facemesh/129/landmarks_refined_f32.npy")
            .and_then(|p| ndarray_npy::read_npy::<_, ndarray::Array3<f32>>(p).ok());
    // Golden frames are 256 x 256 with a ~200 px face: scale by 2.5 around the frame centre.
    let to_frame = |x: f64, y: f64| {
        [
            ((x * 256.0 - 128.0) * 2.5 + 800.0) as f32 / W as f32,
            ((y * 256.0 - 128.0) * 2.5 + 560.0) as f32 / H as f32,
        ]
    };
    match golden {
        Some(a) => (0..478)
            .map(|i| to_frame(a[[0, i, 0]] as f64, a[[0, i, 1]] as f64))
            .collect(),
        None => (0..478)
            .map(|i| {
                let t = i as f64 * 0.7;
                to_frame(0.5 + 0.38 * t.cos(), 0.55 + 0.42 * t.sin())
            })
            .collect(),
    }
}

fn bench_image(c: &mut Criterion) {
    let lm = landmarks();
    let geometry = FaceGeometry::from_landmarks(&lm, W, H).expect("face inside the frame");
    let bx = geometry.crop_box;
    let sets = bx.normalised_sets(&lm, W, H).unwrap();
    let full = sets.full_f32();
    let polygon = paste_polygon(&lm, W, H).unwrap();
    eprintln!("bench face box {bx:?} ({} x {})", bx.width(), bx.height());

    // A deterministic textured BGRx frame (what a GStreamer pipeline typically maps).
    let frame_data: Vec<u8> = (0..W * H * 4)
        .map(|i| ((i * 2654435761usize) >> 13) as u8)
        .collect();
    let frame = Image::from_vec(frame_data, W, H, ChannelOrder::Bgrx).unwrap();
    let face: Vec<f32> = (0..3 * FACE_SIZE * FACE_SIZE)
        .map(|i| (i % 251) as f32 / 251.0)
        .collect();

    let mut group = c.benchmark_group("image_1080p_face500");
    let mut sk = SketchRasteriser::new();
    let mut sketches = vec![0f32; 5 * 3 * 128 * 128];
    let five_sketches = |sk: &mut SketchRasteriser, out: &mut [f32]| {
        for s in out.chunks_exact_mut(3 * 128 * 128) {
            sk.render(
                black_box(&full),
                bx.width(),
                bx.height(),
                SketchScaling::Target,
                s,
            )
            .unwrap();
        }
    };
    group.bench_function("sketch_x5_f32_128", |b| {
        b.iter(|| five_sketches(&mut sk, &mut sketches))
    });

    let mut rz = Resizer::new();
    let mut crop = Image::default();
    let mut tensor = vec![0f32; 3 * FACE_SIZE * FACE_SIZE];
    let crop_tensor = |rz: &mut Resizer, crop: &mut Image, tensor: &mut [f32]| {
        crop_face(&frame.view(), bx.rect(), crop, rz).unwrap();
        bgr_to_chw(&crop.view(), tensor).unwrap();
        mask_lower_half(tensor).unwrap();
    };
    group.bench_function("crop_u8_to_chw_f32_128", |b| {
        b.iter(|| crop_tensor(&mut rz, &mut crop, &mut tensor))
    });

    let mut pb = PasteBack::new();
    let mut out = frame.clone();
    group.bench_function("paste_back_bgrx", |b| {
        b.iter(|| {
            pb.blend(&mut out.view_mut(), black_box(&face), bx.rect(), &polygon)
                .unwrap()
        })
    });

    group.bench_function("frame_total", |b| {
        b.iter(|| {
            five_sketches(&mut sk, &mut sketches);
            crop_tensor(&mut rz, &mut crop, &mut tensor);
            pb.blend(&mut out.view_mut(), black_box(&face), bx.rect(), &polygon)
                .unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench_image);
criterion_main!(benches);
