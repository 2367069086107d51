//! Fixture of `tests/compose.rs`: the formula-weight model package, the golden frames of
//! `facemesh/129` with their boxes and sets, banks, window inputs, and the reference computations
//! (a direct `RendererModel` run and the image module's paste) the frame compositor is compared with.

use iplap::sizes::FACE_SIZE;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use iplap::engine::bank::{ImageReference, LandmarkReference, ReferenceBank};
use iplap::engine::compose::{
    CompositorSettings, FrameCompositor, FrameInput, MeshPoints, reference_subset,
};
use iplap::face::crop_box::{CropBox, FaceGeometry, NormalisedSets, paste_polygon};
use iplap::graph::package::{ModelPackage, write_package};
use iplap::image::{
    ChannelOrder, Image, ImageMut, ImageRef, PasteBack, Resizer, SketchRasteriser, SketchScaling,
    bgr_to_chw, crop_face, face_to_u8, paste_face,
};
use iplap::runtime::renderer::{RendererInput, RendererModel};
use iplap::weights::FormulaWeights;
use ndarray::{Array3, Array4, ArrayView4, s};
use ndarray_npy::read_npy;

/// Parity tolerance (absolute) between the frame compositor and a direct engine run.
pub const TOL: f32 = 2e-4;
pub const W: usize = 256;
pub const H: usize = 256;

/// The formula-weight renderer package (76 MB), written once per test binary run into cargo's
/// per-target temporary folder: a fixed place, so runs do not pile up copies, and rewritten so it
/// always matches the current graph code (files are replaced atomically, the manifest last).
pub fn package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("engine-render-package");
        write_package(&dir, &[("renderer", &FormulaWeights::new())], &[]).unwrap();
        dir
    })
}

pub struct Golden {
    /// Packed RGB frames.
    pub frames: Vec<Vec<u8>>,
    /// MediaPipe points `(x, y)`, normalised.
    pub mesh: Vec<Vec<[f32; 2]>>,
    pub boxes: Vec<CropBox>,
    pub sets: Vec<NormalisedSets>,
    pub lip: Vec<f64>,
}

pub fn golden() -> Option<&'static Golden> {
    static G: OnceLock<Option<Golden>> = OnceLock::new();
    G.get_or_init(|| {
        let dir = iplap::testdata::shared_path("golden/public/facemesh/129")?;
        let frames: ndarray::Array4<u8> = read_npy(dir.join("frames_rgb_u8.npy")).unwrap();
        let lm: Array3<f32> = read_npy(dir.join("landmarks_refined_f32.npy")).unwrap();
        assert_eq!(&frames.shape()[1..], &[H, W, 3]);
        let mut g = Golden {
            frames: Vec::new(),
            mesh: Vec::new(),
            boxes: Vec::new(),
            sets: Vec::new(),
            lip: Vec::new(),
        };
        for f in 0..frames.shape()[0] {
            g.frames
                .push(frames.slice(s![f, .., .., ..]).iter().copied().collect());
            let mesh: Vec<[f32; 2]> = (0..lm.shape()[1])
                .map(|i| [lm[[f, i, 0]], lm[[f, i, 1]]])
                .collect();
            let geo = FaceGeometry::from_landmarks(&mesh, W, H).unwrap();
            g.sets
                .push(geo.crop_box.normalised_sets(&mesh, W, H).unwrap());
            g.boxes.push(geo.crop_box);
            g.lip.push(geo.lip_dist);
            g.mesh.push(mesh);
        }
        Some(g)
    })
    .as_ref()
}

pub fn rgb(g: &Golden, f: usize) -> ImageRef<'_> {
    ImageRef::packed(&g.frames[f], W, H, ChannelOrder::Rgb).unwrap()
}

/// A bank whose image references are the given frames, in order (landmark references: the first
/// 15 of them; the renderer does not read those).
pub fn bank_of(g: &Golden, frames: &[usize]) -> ReferenceBank {
    let mut rz = Resizer::new();
    let images = frames
        .iter()
        .map(|&f| {
            let mut crop = Image::default();
            crop_face(&rgb(g, f), g.boxes[f].rect(), &mut crop, &mut rz).unwrap();
            let b = g.boxes[f];
            ImageReference {
                crop_bgr: crop.into_vec(),
                landmarks: g.sets[f].full_f32(),
                crop_hw: (b.height(), b.width()),
            }
        })
        .collect();
    let landmarks = frames
        .iter()
        .take(15)
        .map(|&f| LandmarkReference {
            pose: g.sets[f].pose_f32(),
            content: g.sets[f].content_f32(),
        })
        .collect();
    ReferenceBank::new(landmarks, images)
}

/// The image references of spec §1.5 steps 1 and 3 over the 60 golden frames: a stable sort by lip
/// openness, then `order[trunc(linspace_f32(0, V - 1, 25)[k])]` (no FMA question for 25 steps).
pub fn spec_bank(g: &Golden) -> ReferenceBank {
    let v = g.lip.len();
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| g.lip[a].total_cmp(&g.lip[b]));
    let end = (v - 1) as f32;
    let step = ((v - 1) as f64 / 24.0) as f32;
    let picks: Vec<usize> = (0..25)
        .map(|k| {
            let x = if k < 12 {
                step * k as f32
            } else {
                end - step * (24 - k) as f32
            };
            order[x as usize]
        })
        .collect();
    bank_of(g, &picks)
}

/// Window inputs for centre frame `f` (window frames f-2..f+2). The "predicted" content is the
/// window frames' own CONTENT with the mouth opened a little, so that it differs from the pose
/// frames' real mouth like a prediction would.
pub struct Window {
    pub pose: Vec<f32>,
    pub content: Vec<f32>,
    pub hw: [(usize, usize); 5],
    pub mel: Vec<f32>,
}

pub fn window(g: &Golden, f: usize) -> Window {
    let mut w = Window {
        pose: Vec::new(),
        content: Vec::new(),
        hw: [(0, 0); 5],
        mel: (0..80 * 16)
            .map(|i| ((i * 37 % 101) as f32 / 12.5) - 4.0)
            .collect(),
    };
    for j in 0..5 {
        let fj = f + j - 2;
        let (pose, content) = (g.sets[fj].pose_f32(), g.sets[fj].content_f32());
        w.pose.extend(pose.iter().flatten());
        w.content.extend(content[0]);
        let mid = content[1].iter().sum::<f32>() / content[1].len() as f32;
        w.content
            .extend(content[1].iter().map(|&y| mid + 1.15 * (y - mid)));
        w.hw[j] = (g.boxes[fj].height(), g.boxes[fj].width());
    }
    w
}

pub fn input<'a>(
    g: &'a Golden,
    f: usize,
    w: &'a Window,
    bank: &'a ReferenceBank,
) -> FrameInput<'a> {
    FrameInput {
        crop_box: g.boxes[f],
        mesh: MeshPoints::Normalised(&g.mesh[f]),
        window_pose: &w.pose,
        window_crop_hw: w.hw,
        window_content: &w.content,
        mel: &w.mel,
        bank,
    }
}

pub fn settings(references: usize, blend: bool) -> CompositorSettings {
    CompositorSettings {
        references,
        blend,
        show_sketch: false,
        threads: 2,
        device: iplap::runtime::DeviceConfig::cpu(),
    }
}

pub fn renderer(references: usize, blend: bool) -> FrameCompositor {
    FrameCompositor::from_package(package(), settings(references, blend)).unwrap()
}

/// `RendererModel::render` run directly, with every tensor built here from the image module.
pub fn direct_render(
    g: &Golden,
    f: usize,
    w: &Window,
    bank: &ReferenceBank,
    references: usize,
) -> (Array4<f32>, Array4<f32>) {
    let pkg = ModelPackage::open(package()).unwrap();
    let mut engine =
        RendererModel::from_package(&pkg, settings(references, true).render_config()).unwrap();
    let idx = reference_subset(bank.images.len(), references).unwrap();
    let n = idx.len();
    let mut rast = SketchRasteriser::new();
    let mut imgs = Array4::<f32>::zeros((n, 3, FACE_SIZE, FACE_SIZE));
    let mut sks = Array4::<f32>::zeros((n, 3, FACE_SIZE, FACE_SIZE));
    for (k, &i) in idx.iter().enumerate() {
        let r = &bank.images[i];
        let crop = ImageRef::packed(&r.crop_bgr, 128, 128, ChannelOrder::Bgr).unwrap();
        let mut img = imgs.slice_mut(s![k, .., .., ..]);
        bgr_to_chw(&crop, img.as_slice_mut().unwrap()).unwrap();
        let mut sk = sks.slice_mut(s![k, .., .., ..]);
        let (h, wd) = r.crop_hw;
        rast.render(
            &r.landmarks,
            wd,
            h,
            SketchScaling::Reference,
            sk.as_slice_mut().unwrap(),
        )
        .unwrap();
    }
    engine.set_reference_bank(imgs.view(), sks.view()).unwrap();

    let mut targets = Array4::<f32>::zeros((5, 3, FACE_SIZE, FACE_SIZE));
    for j in 0..5 {
        let mut full = [[0f32; 131]; 2];
        for (r, row) in full.iter_mut().enumerate() {
            row[..74].copy_from_slice(&w.pose[j * 148 + r * 74..j * 148 + (r + 1) * 74]);
            row[74..].copy_from_slice(&w.content[j * 114 + r * 57..j * 114 + (r + 1) * 57]);
        }
        let mut t = targets.slice_mut(s![j, .., .., ..]);
        let (h, wd) = w.hw[j];
        rast.render(
            &full,
            wd,
            h,
            SketchScaling::Target,
            t.as_slice_mut().unwrap(),
        )
        .unwrap();
    }
    let mut crop = Image::default();
    crop_face(
        &rgb(g, f),
        g.boxes[f].rect(),
        &mut crop,
        &mut Resizer::new(),
    )
    .unwrap();
    let mut face = Array4::<f32>::zeros((1, 3, FACE_SIZE, FACE_SIZE));
    bgr_to_chw(&crop.view(), face.as_slice_mut().unwrap()).unwrap();
    let audio = Array4::from_shape_vec((1, 1, 80, 16), w.mel.clone()).unwrap();
    let out = engine
        .render(&RendererInput {
            face: face.view(),
            target_sketches: targets.view(),
            audio: audio.view(),
        })
        .unwrap();
    (out.generated_face, targets)
}

pub fn max_abs(a: ArrayView4<f32>, b: ArrayView4<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn count_bad(a: &[u8], b: &[u8]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// Whether pixel (x, y) lies in the crop box.
pub fn in_box(b: &CropBox, x: usize, y: usize) -> bool {
    (b.x1..b.x2).contains(&x) && (b.y1..b.y2).contains(&y)
}

/// The official paste procedure of the image module (golden-tested) applied to `face`.
pub fn reference_paste(
    g: &Golden,
    f: usize,
    face: ArrayView4<f32>,
    blend: bool,
) -> (Vec<u8>, PasteBack) {
    let mut want = g.frames[f].clone();
    let mut view = ImageMut::packed(&mut want, W, H, ChannelOrder::Rgb).unwrap();
    let face = face.as_slice().unwrap();
    let mut pb = PasteBack::new();
    if blend {
        let poly = paste_polygon(&g.mesh[f], W, H).unwrap();
        pb.blend(&mut view, face, g.boxes[f].rect(), &poly).unwrap();
    } else {
        let mut u8face = Image::default();
        face_to_u8(face, &mut u8face).unwrap();
        paste_face(
            &mut view,
            &u8face.view(),
            g.boxes[f].rect(),
            &mut Resizer::new(),
        )
        .unwrap();
    }
    (want, pb)
}
