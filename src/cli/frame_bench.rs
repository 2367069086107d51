//! `bench frame`: the compositor's whole frame (sketches, crop, networks, warp, paste, colour) on
//! a 1920 × 1080 frame with a 577 × 455 face, timed per step; on a GPU each step's CUDA-event time
//! too. With `--compare-cpu` the same frame is composed by the CPU compositor and the two frames
//! are compared: nothing outside the paste region may change, and inside it the pictures must
//! agree to 40 dB (they differ only by what the networks compute on the GPU).
//!
//! Inputs are synthetic and deterministic: a camera-like frame, a face-like window of landmark
//! sets (the kernel check's), an elliptic face contour, a bank of textured references.

use std::time::{Duration, Instant};

use serde_json::json;

use super::bench::median;

use crate::engine::bank::{ImageReference, ReferenceBank};
use crate::engine::compose::{
    CompositorSettings, FrameCompositor, FrameInput, FrameStats, MeshPoints, WINDOW_CONTENT_LEN,
    WINDOW_POSE_LEN, paste_region,
};
use crate::face::crop_box::{CropBox, paste_polygon};
use crate::face::indices::{FULL_LEN, PASTE_CONTOUR, POSE};
use crate::image::yuv::{Plane, Yuv420Mut, YuvColour, YuvMatrix};
use crate::image::{ChannelOrder, ImageMut, Rect};
use crate::kernels::check::{CheckRng, FACE, FRAME};
use crate::kernels::launch::sketch::face_set;
use crate::runtime::DeviceConfig;
use crate::sizes::{FACE_SIZE, WINDOW};

/// Frame layouts of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FrameFormat {
    Bgrx,
    I420,
    Nv12,
}

#[derive(clap::Args)]
pub struct FrameArgs {
    #[command(flatten)]
    pub common: super::bench::Common,
    /// Layout of the frame.
    #[arg(long, value_enum, default_value_t = FrameFormat::Bgrx)]
    pub format: FrameFormat,
    /// Number of references (1-25; the official inference uses 25).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..=25))]
    pub references: u16,
    /// Frames to time after one warm-up frame (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub iterations: usize,
    /// Also compose the frame on the CPU and compare the two frames (fails past the limits).
    #[arg(long)]
    pub compare_cpu: bool,
}

/// The face box of the GPU kernel check: 577 × 455 at (671, 312), an odd x.
const FACE_AT: (usize, usize) = (671, 312);
/// MediaPipe's mesh size.
const MESH_POINTS: usize = 478;
/// Limit of `--compare-cpu` inside the paste region.
const MIN_PSNR_DB: f64 = 40.0;

/// One frame's synthetic inputs.
pub(super) struct Case {
    frame: Vec<u8>,
    /// (offset, stride) of each plane in `frame` (packed: one).
    planes: Vec<(usize, usize)>,
    mesh: Vec<[f32; 2]>,
    pose: Vec<f32>,
    content: Vec<f32>,
    crop_hw: [(usize, usize); WINDOW],
    mel: Vec<f32>,
    bank: ReferenceBank,
}

impl Case {
    pub(super) fn new(format: FrameFormat) -> Self {
        let mut rng = CheckRng::new(0x5EED_F4A3_0000_0001);
        let (w, h) = FRAME;
        // Rows padded as GStreamer pads them, so strides differ from widths.
        let pad = |row: usize| row.next_multiple_of(256);
        let planes_spec: Vec<(usize, usize, usize)> = match format {
            FrameFormat::Bgrx => vec![(pad(4 * w), h, 4)],
            FrameFormat::I420 => vec![
                (pad(w), h, 1),
                (pad(w / 2), h / 2, 1),
                (pad(w / 2), h / 2, 1),
            ],
            FrameFormat::Nv12 => vec![(pad(w), h, 1), (pad(w), h / 2, 2)],
        };
        let mut frame = Vec::new();
        let mut planes = Vec::new();
        for (stride, rows, channels) in planes_spec {
            planes.push((frame.len(), stride));
            for y in 0..rows {
                for x in 0..stride {
                    let c = (x % channels) as u32;
                    let t = (x / channels) as u32 * 3 + y as u32 * 5 + c * 71;
                    let wave = (t % 512).abs_diff(256).min(255);
                    frame.push((wave as u8).wrapping_add(rng.below(9) as u8));
                }
            }
        }
        let (fw, fh) = FACE;
        let (cx, cy) = (
            (FACE_AT.0 + fw / 2) as f32 / w as f32,
            (FACE_AT.1 + fh / 2) as f32 / h as f32,
        );
        let (rx, ry) = (0.42 * fw as f32 / w as f32, 0.45 * fh as f32 / h as f32);
        let mut mesh = vec![[cx, cy]; MESH_POINTS];
        for (k, &i) in PASTE_CONTOUR.iter().enumerate() {
            let a = std::f32::consts::TAU * k as f32 / PASTE_CONTOUR.len() as f32;
            mesh[i] = [cx + rx * a.cos(), cy + ry * a.sin()];
        }
        let (mut pose, mut content) = (Vec::new(), Vec::new());
        let mut set_rng = CheckRng::new(0x5EED_F4A3_0000_0002);
        for _ in 0..WINDOW {
            let set = face_set(&mut set_rng);
            for row in &set {
                pose.extend_from_slice(&row[..POSE.len()]);
            }
            for row in &set {
                content.extend_from_slice(&row[POSE.len()..FULL_LEN]);
            }
        }
        let crop_hw = std::array::from_fn(|j| (fh + j, fw - j));
        let mel = (0..crate::engine::compose::MEL_LEN)
            .map(|_| rng.range(-4.0, 1.0))
            .collect();
        let images = (0..crate::engine::bank::IMAGE_REFERENCES)
            .map(|k| {
                let mut crop_bgr = vec![0u8; FACE_SIZE * FACE_SIZE * 3];
                rng.fill_bytes(&mut crop_bgr);
                for (i, v) in crop_bgr.iter_mut().enumerate() {
                    let (y, x) = (i / (3 * FACE_SIZE), i / 3 % FACE_SIZE);
                    *v = ((x + y + k * 9) as u8 / 2).wrapping_add(*v / 4);
                }
                ImageReference {
                    crop_bgr,
                    landmarks: face_set(&mut set_rng),
                    crop_hw: (430 + k * 3, 560 - k * 2),
                }
            })
            .collect();
        debug_assert_eq!(pose.len(), WINDOW_POSE_LEN);
        debug_assert_eq!(content.len(), WINDOW_CONTENT_LEN);
        Case {
            frame,
            planes,
            mesh,
            pose,
            content,
            crop_hw,
            mel,
            bank: ReferenceBank::new(Vec::new(), images),
        }
    }

    fn input(&self) -> FrameInput<'_> {
        let (fw, fh) = FACE;
        FrameInput {
            crop_box: CropBox {
                x1: FACE_AT.0,
                y1: FACE_AT.1,
                x2: FACE_AT.0 + fw,
                y2: FACE_AT.1 + fh,
            },
            mesh: MeshPoints::Normalised(&self.mesh),
            window_pose: &self.pose,
            window_crop_hw: self.crop_hw,
            window_content: &self.content,
            mel: &self.mel,
            bank: &self.bank,
        }
    }

    /// Composes one frame into a copy of the case's frame.
    pub(super) fn compose(
        &self,
        compositor: &mut FrameCompositor,
        format: FrameFormat,
    ) -> anyhow::Result<(Vec<u8>, FrameStats)> {
        let mut out = self.frame.clone();
        let (w, h) = FRAME;
        let input = self.input();
        let colour = YuvColour::new(YuvMatrix::Bt709, false);
        let stats = match format {
            FrameFormat::Bgrx => {
                let stride = self.planes[0].1;
                let mut image = ImageMut::new(&mut out, w, h, stride, ChannelOrder::Bgrx)?;
                compositor.render_frame(&mut image, &input)?
            }
            FrameFormat::I420 | FrameFormat::Nv12 => {
                let mut rest: &mut [u8] = &mut out;
                let mut slices = Vec::new();
                for (i, &(offset, stride)) in self.planes.iter().enumerate() {
                    let end = self.planes.get(i + 1).map_or(rest.len(), |p| p.0 - offset);
                    let (plane, tail) = rest.split_at_mut(end);
                    slices.push(Plane {
                        data: plane,
                        stride,
                    });
                    rest = tail;
                }
                let mut it = slices.into_iter();
                let y = it.next().expect("a Y plane");
                let mut yuv = if format == FrameFormat::I420 {
                    let (u, v) = (it.next().expect("U"), it.next().expect("V"));
                    Yuv420Mut::i420(w, h, y, u, v)?
                } else {
                    Yuv420Mut::nv12(w, h, y, it.next().expect("UV"))?
                };
                compositor.render_yuv(&mut yuv, &colour, &input)?
            }
        };
        Ok((out, stats))
    }

    /// Bytes of the frame inside the paste region (every plane's rows and columns of it).
    fn region_mask(&self, format: FrameFormat) -> anyhow::Result<Vec<bool>> {
        let (w, h) = FRAME;
        let polygon = paste_polygon(&self.mesh, w, h)?;
        let input = self.input();
        let r = paste_region(input.crop_box.rect(), Some(&polygon), w, h);
        let mut mask = vec![false; self.frame.len()];
        let mut mark = |plane: usize, r: Rect, bytes_per_px: usize| {
            let (offset, stride) = self.planes[plane];
            for y in r.y..r.y + r.height {
                let row = offset + y * stride;
                mask[row + r.x * bytes_per_px..row + (r.x + r.width) * bytes_per_px].fill(true);
            }
        };
        match format {
            FrameFormat::Bgrx => mark(0, r, 4),
            FrameFormat::I420 | FrameFormat::Nv12 => {
                let r = crate::image::yuv::chroma_aligned(r, w, h);
                mark(0, r, 1);
                let c = Rect::new(r.x / 2, r.y / 2, r.width.div_ceil(2), r.height.div_ceil(2));
                if format == FrameFormat::I420 {
                    mark(1, c, 1);
                    mark(2, c, 1);
                } else {
                    mark(1, c, 2);
                }
            }
        }
        Ok(mask)
    }
}

/// A compositor of the package in `common` with `references` on `device` (the benches' setting).
pub(super) fn compositor(
    common: &super::bench::Common,
    references: u16,
    device: DeviceConfig,
) -> anyhow::Result<FrameCompositor> {
    let settings = CompositorSettings {
        references: usize::from(references),
        threads: common.threads,
        device,
        ..CompositorSettings::default()
    };
    Ok(FrameCompositor::from_package(&common.models, settings)?)
}

/// What `--compare-cpu` measures between the device's frame and the CPU's.
#[derive(Debug, Clone, Copy)]
struct Comparison {
    /// Max |diff| and PSNR inside the paste region.
    max_abs: u8,
    psnr_db: f64,
    /// Bytes either compositor changed outside the region (must be 0).
    outside: usize,
    /// Bytes the device's frame changed inside it (a frame left as it was is a failure).
    changed: usize,
}

impl Comparison {
    fn passed(&self) -> bool {
        self.outside == 0 && self.changed > 0 && self.psnr_db >= MIN_PSNR_DB
    }
}

fn compare(case: &Case, mask: &[bool], a: &[u8], b: &[u8]) -> Comparison {
    let (mut max, mut sq, mut n, mut outside, mut changed) = (0u8, 0f64, 0usize, 0, 0);
    for (((&x, &y), &orig), &inside) in a.iter().zip(b).zip(&case.frame).zip(mask) {
        if inside {
            let d = x.abs_diff(y);
            max = max.max(d);
            sq += f64::from(d) * f64::from(d);
            n += 1;
            changed += usize::from(x != orig);
        } else if x != orig || y != orig {
            outside += 1;
        }
    }
    let mse = sq / n.max(1) as f64;
    let psnr = if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    };
    Comparison {
        max_abs: max,
        psnr_db: psnr,
        outside,
        changed,
    }
}

pub fn run(args: FrameArgs) -> anyhow::Result<()> {
    let device = args.common.device.resolve()?;
    let label = device.to_string();
    let case = Case::new(args.format);
    let mut gpu = compositor(&args.common, args.references, device)?;
    let iterations = args.iterations.max(1);
    let (first, warm_up) = case.compose(&mut gpu, args.format)?;
    let mut samples: Vec<FrameStats> = Vec::with_capacity(iterations);
    let mut wall = Vec::with_capacity(iterations);
    let bar = indicatif::ProgressBar::new(iterations as u64);
    for _ in 0..iterations {
        let t = Instant::now();
        let (_, stats) = case.compose(&mut gpu, args.format)?;
        wall.push(t.elapsed());
        samples.push(stats);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let pick = |f: &dyn Fn(&FrameStats) -> Duration| median(samples.iter().map(f).collect());
    let mut steps = vec![
        ("sketches", pick(&|s| s.sketches)),
        ("crop", pick(&|s| s.crop)),
        ("modulation", pick(&|s| s.render.modulation)),
        ("flow_head", pick(&|s| s.render.flow_head)),
        ("warp", pick(&|s| s.render.warp)),
        ("translation", pick(&|s| s.render.translation)),
        ("paste", pick(&|s| s.paste)),
    ];
    let on_gpu = samples.iter().all(|s| s.device.is_some());
    let gpu_steps = on_gpu.then(|| {
        let g = |f: &dyn Fn(&crate::engine::compose::DeviceStepTimes) -> Duration| {
            median(
                samples
                    .iter()
                    .filter_map(|s| s.device.as_ref())
                    .map(f)
                    .collect(),
            )
        };
        vec![
            ("upload", g(&|d| d.upload)),
            ("sketches", g(&|d| d.sketches)),
            ("crop", g(&|d| d.crop)),
            ("networks", g(&|d| d.networks)),
            ("paste", g(&|d| d.paste)),
            ("download", g(&|d| d.download)),
            ("kernels_and_transfers", g(&|d| d.total() - d.networks)),
            ("total", g(&|d| d.total())),
        ]
    });
    steps.push(("per_frame", median(wall)));

    let comparison = if args.compare_cpu {
        let mut cpu = compositor(&args.common, args.references, DeviceConfig::cpu())?;
        let (want, _) = case.compose(&mut cpu, args.format)?;
        let mask = case.region_mask(args.format)?;
        Some(compare(&case, &mask, &first, &want))
    } else {
        None
    };
    let failed = comparison.is_some_and(|c| !c.passed());

    if args.common.json {
        let map = |v: &[(&str, f64)]| {
            v.iter()
                .map(|(k, s)| ((*k).to_string(), json!(s)))
                .collect::<serde_json::Map<_, _>>()
        };
        let v = json!({
            "device": label, "format": format!("{:?}", args.format).to_lowercase(),
            "references": args.references, "iterations": iterations, "on_gpu": on_gpu,
            "first_frame_s": warm_up.total.as_secs_f64(),
            "steps_s": map(&steps), "gpu_steps_s": gpu_steps.as_deref().map(map),
            "compare_cpu": comparison.map(|c| json!({
                "max_abs": c.max_abs,
                "psnr_db": if c.psnr_db.is_finite() { json!(c.psnr_db) } else { json!(null) },
                "changed_outside_region": c.outside, "changed_in_region": c.changed,
                "passed": c.passed(),
            })),
        });
        println!("{v}");
    } else {
        println!(
            "compositor on {label}{}, {:?} {}x{} frame, {}x{} face, {} references, median of \
             {iterations} frames (first frame {:.1} ms)",
            if on_gpu { " (GPU path)" } else { "" },
            args.format,
            FRAME.0,
            FRAME.1,
            FACE.0,
            FACE.1,
            args.references,
            warm_up.total.as_secs_f64() * 1e3,
        );
        for (k, v) in &steps {
            println!("  {k:<24} {:9.3} ms", v * 1e3);
        }
        if let Some(g) = &gpu_steps {
            println!("  GPU time (CUDA events):");
            for (k, v) in g {
                println!("    {k:<22} {:9.3} ms", v * 1e3);
            }
        }
        if let Some(c) = comparison {
            println!(
                "  vs the CPU compositor: max |diff| {} in the paste region, PSNR {:.1} dB \
                 (limit {MIN_PSNR_DB} dB), {} bytes changed there, {} outside it (limit 0): {}",
                c.max_abs,
                c.psnr_db,
                c.changed,
                c.outside,
                if c.passed() { "ok" } else { "FAILED" }
            );
        }
    }
    if failed {
        anyhow::bail!("the frame differs from the CPU compositor's beyond the limits");
    }
    Ok(())
}
