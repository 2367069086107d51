//! `iplap bench renderer|landmark-generator --models DIR`: per-stage and per-frame (per-window)
//! medians on deterministic inputs (the reference formula inputs), as text or one JSON object.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use iplap::graph::package::ModelPackage;
use iplap::runtime::renderer::{RenderConfig, RenderEngine, RenderInput};
use iplap::runtime::{LandmarkGenerator, LandmarkInput, SessionConfig};
use iplap::weights::formula::{
    golden_image, golden_input, golden_nl_content, golden_nl_pose, golden_sketch, golden_t_mels,
    golden_t_pose,
};
use ndarray::Array4;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// The staged renderer: reference bank once, then frames (stages b-e).
    Renderer {
        #[command(flatten)]
        common: Common,
        /// Number of references (1-25; the official inference uses 25).
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..=25))]
        references: u16,
        /// Frames to time (the median is reported).
        #[arg(long, default_value_t = 5)]
        iterations: usize,
    },
    /// The landmark generator: one T = 5 window per run.
    LandmarkGenerator {
        #[command(flatten)]
        common: Common,
        /// Windows to time (the median is reported).
        #[arg(long, default_value_t = 50)]
        iterations: usize,
    },
}

#[derive(clap::Args)]
pub struct Common {
    /// Model package folder (from `iplap convert`).
    #[arg(long)]
    models: PathBuf,
    /// ONNX Runtime intra-op threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
}

fn threads_used(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Renderer {
            common,
            references,
            iterations,
        } => renderer(&common, usize::from(references), iterations.max(1)),
        BenchCommand::LandmarkGenerator { common, iterations } => {
            landmark_generator(&common, iterations.max(1))
        }
    }
}

fn renderer(c: &Common, n: usize, iterations: usize) -> anyhow::Result<()> {
    let package = ModelPackage::open(&c.models)?;
    let session = SessionConfig {
        intra_threads: c.threads,
        ..SessionConfig::default()
    };
    let mut engine = RenderEngine::from_package(
        &package,
        RenderConfig {
            session,
            ..RenderConfig::default()
        },
    )?;
    let arr = |shape: [usize; 4], data: Vec<f32>| Array4::from_shape_vec(shape, data);
    let refs = arr(
        [n, 3, 128, 128],
        golden_image("ref_N_frame_img", &[1, n, 3, 128, 128]),
    )?;
    let ref_sketches = arr(
        [n, 3, 128, 128],
        golden_sketch("ref_N_frame_sketch", &[1, n, 3, 128, 128])?,
    )?;
    let face = arr(
        [1, 3, 128, 128],
        golden_image("face_frame_img", &[1, 1, 3, 128, 128]),
    )?;
    let sketches = arr(
        [5, 3, 128, 128],
        golden_sketch("target_sketches", &[1, 5, 3, 128, 128])?,
    )?;
    let audio = arr(
        [1, 1, 80, 16],
        golden_input("audio_mels", &[1, 1, 1, 80, 16], 0.0, 4.0),
    )?;

    let t = Instant::now();
    engine.set_reference_bank(refs.view(), ref_sketches.view())?;
    let bank_s = t.elapsed().as_secs_f64();
    let input = RenderInput {
        face: face.view(),
        target_sketches: sketches.view(),
        audio: audio.view(),
    };
    engine.render(&input)?; // warm-up: first runs allocate and plan
    let (mut frame, mut modulation, mut flow, mut warp, mut translation) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let bar = indicatif::ProgressBar::new(iterations as u64);
    for _ in 0..iterations {
        let t = Instant::now();
        let out = engine.render(&input)?;
        frame.push(t.elapsed());
        modulation.push(out.timings.modulation);
        flow.push(out.timings.flow_head);
        warp.push(out.timings.warp);
        translation.push(out.timings.translation);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let stages = json!({
        "reference_bank_once": bank_s,
        "modulation": median(modulation),
        "flow_head": median(flow),
        "warp": median(warp),
        "translation": median(translation),
    });
    let per_frame = median(frame);
    let threads = threads_used(c.threads);
    if c.json {
        let v = json!({"references": n, "threads": threads, "iterations": iterations,
                       "per_frame_s": per_frame, "stages": stages});
        println!("{v}");
    } else {
        println!("renderer, {n} references, {threads} thread(s), median of {iterations} frames");
        if let Some(map) = stages.as_object() {
            for (k, v) in map {
                println!("  {k:<20} {:9.1} ms", v.as_f64().unwrap_or(f64::NAN) * 1e3);
            }
        }
        println!("  {:<20} {:9.1} ms", "per frame", per_frame * 1e3);
    }
    Ok(())
}

fn landmark_generator(c: &Common, iterations: usize) -> anyhow::Result<()> {
    let package = ModelPackage::open(&c.models)?;
    let session = SessionConfig {
        intra_threads: c.threads,
        ..SessionConfig::default()
    };
    let mut model =
        LandmarkGenerator::from_file(&package.stage_path("landmark_generator")?, &session)?;
    let (t_mels, t_pose, nl_pose, nl_content) = (
        golden_t_mels(),
        golden_t_pose(),
        golden_nl_pose(),
        golden_nl_content(),
    );
    let input = LandmarkInput {
        t_mels: &t_mels,
        t_pose: &t_pose,
        nl_pose: &nl_pose,
        nl_content: &nl_content,
    };
    model.run(&input)?; // warm-up
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        model.run(&input)?;
        times.push(t.elapsed());
    }
    let per_window = median(times);
    let threads = threads_used(c.threads);
    if c.json {
        println!(
            "{}",
            json!({"threads": threads, "iterations": iterations, "per_window_s": per_window})
        );
    } else {
        println!(
            "landmark generator, {threads} thread(s), median of {iterations} windows: {:.2} ms",
            per_window * 1e3
        );
    }
    Ok(())
}
