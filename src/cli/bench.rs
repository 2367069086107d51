//! `iplap bench renderer|landmark-generator --models DIR`: per-stage and per-frame (per-window)
//! medians on deterministic inputs (the reference formula inputs), as text or one JSON object.

use crate::audio::{CHUNK_FRAMES, N_MELS};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::graph::package::ModelPackage;
use crate::runtime::renderer::{RendererConfig, RendererInput, RendererModel};
use crate::runtime::{LandmarkGenerator, LandmarkInput, LandmarkModel, SessionConfig};
use crate::weights::formula::{
    RendererGoldenInputs, golden_input, golden_nl_content, golden_nl_pose,
};
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
    /// The compositor's whole frame (1080p, 577x455 face): every step timed, on a GPU with
    /// CUDA events too; `--compare-cpu` checks the frame against the CPU compositor's.
    Frame(super::frame_bench::FrameArgs),
    /// Synthetic live streams (1, 2, 4 at once) through the compositor: frames composed, skipped
    /// and over the latency budget, latency percentiles, CPU and GPU memory per stream.
    Live(super::live_bench::LiveArgs),
    /// The landmark generator: streaming windows (one new mel chunk and frame each), and the
    /// one-graph model on the same windows for comparison.
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
    pub(crate) models: PathBuf,
    /// ONNX Runtime intra-op threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) device: crate::cli::device_args::DeviceArgs,
}

/// The median in seconds (0 for none).
pub(crate) fn median(mut v: Vec<Duration>) -> f64 {
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
        BenchCommand::Frame(args) => super::frame_bench::run(args),
        BenchCommand::Live(args) => super::live_bench::run(args),
        BenchCommand::LandmarkGenerator { common, iterations } => {
            landmark_generator(&common, iterations.max(1))
        }
    }
}

fn renderer(c: &Common, n: usize, iterations: usize) -> anyhow::Result<()> {
    let package = ModelPackage::open(&c.models)?;
    let session = SessionConfig {
        device: c.device.resolve()?,
        intra_threads: c.threads,
        ..SessionConfig::default()
    };
    let (device, precision) = (session.device.to_string(), session.device.precision);
    let mut engine = RendererModel::from_package(
        &package,
        RendererConfig {
            session,
            ..RendererConfig::default()
        },
    )?;
    let golden = RendererGoldenInputs::new(n)?;
    let t = Instant::now();
    engine.set_reference_bank(golden.ref_img.view(), golden.ref_sketch.view())?;
    let bank_s = t.elapsed().as_secs_f64();
    let input = RendererInput {
        face: golden.face.view(),
        target_sketches: golden.target_sketches.view(),
        audio: golden.audio.view(),
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
        let v = json!({"references": n, "threads": threads, "device": device,
                       "precision": precision.to_string(), "graphs": engine.stages(),
                       "iterations": iterations, "per_frame_s": per_frame,
                       "frames_per_s": 1.0 / per_frame.max(1e-9), "stages": stages});
        println!("{v}");
    } else {
        println!(
            "renderer on {device} ({precision}), {n} references, {threads} thread(s), median of \
             {iterations} frames; graphs {}",
            engine.stages().join(", ")
        );
        if let Some(map) = stages.as_object() {
            for (k, v) in map {
                println!("  {k:<20} {:9.1} ms", v.as_f64().unwrap_or(f64::NAN) * 1e3);
            }
        }
        println!("  {:<20} {:9.1} ms", "per frame", per_frame * 1e3);
        println!("  {:<20} {:9.2}", "frames/s", 1.0 / per_frame.max(1e-9));
    }
    Ok(())
}

/// Streaming windows as the engine runs them (spec §1.7, §7.2): window s takes chunks
/// max(0, s + j − 2) and template frames s + j, so after the first window each one brings one
/// new chunk and one new frame; the reference set is encoded once (not counted per window).
fn landmark_generator(c: &Common, iterations: usize) -> anyhow::Result<()> {
    let package = ModelPackage::open(&c.models)?;
    let session = SessionConfig {
        device: c.device.resolve()?,
        intra_threads: c.threads,
        ..SessionConfig::default()
    };
    let device = session.device.to_string();
    let mut staged = match LandmarkModel::from_package(&package, &session)? {
        LandmarkModel::Staged(g) => g,
        LandmarkModel::OneGraph(_) => anyhow::bail!(
            "{} has no streaming landmark stages (an older package); run `iplap convert` again",
            c.models.display()
        ),
    };
    let mut one_graph =
        LandmarkGenerator::from_file(&package.stage_path("landmark_generator")?, &session)?;
    let windows = iterations + 1; // the first window encodes everything: warm-up, not timed
    let chunks: Vec<Vec<f32>> = (0..windows + 4)
        .map(|i| {
            golden_input(
                &format!("bench_chunk{i}"),
                &[1, N_MELS, CHUNK_FRAMES],
                0.0,
                4.0,
            )
        })
        .collect();
    let frames: Vec<Vec<f32>> = (0..windows + 4)
        .map(|i| golden_input(&format!("bench_frame{i}"), &[2, 74], 0.5, 0.3))
        .collect();
    let (nl_pose, nl_content) = (golden_nl_pose(), golden_nl_content());
    let mut per_window = Vec::with_capacity(iterations);
    let mut stages: [Vec<Duration>; 3] = Default::default();
    let mut full = Vec::with_capacity(iterations);
    for s in 0..windows {
        let t_mels: Vec<f32> = (0..5usize)
            .flat_map(|j| chunks[(s + j).saturating_sub(2)].iter().copied())
            .collect();
        let t_pose: Vec<f32> = (0..5).flat_map(|j| frames[s + j].iter().copied()).collect();
        let input = LandmarkInput {
            t_mels: &t_mels,
            t_pose: &t_pose,
            nl_pose: &nl_pose,
            nl_content: &nl_content,
        };
        let t = Instant::now();
        staged.run(&input)?;
        let elapsed = t.elapsed();
        let t = Instant::now();
        one_graph.run(&input)?;
        let elapsed_full = t.elapsed();
        if s > 0 {
            per_window.push(elapsed);
            full.push(elapsed_full);
            let st = staged.last_times();
            for (v, d) in stages
                .iter_mut()
                .zip([st.mel_encoder, st.pose_encoder, st.fusion])
            {
                v.push(d);
            }
        }
    }
    let [mel, pose, fusion] = stages.map(median);
    let (per_window, one_graph_per_window) = (median(per_window), median(full));
    let threads = threads_used(c.threads);
    if c.json {
        println!(
            "{}",
            json!({
                "threads": threads,
                "device": device,
                "iterations": iterations,
                "per_window_s": per_window,
                "one_graph_per_window_s": one_graph_per_window,
                "stages": {"mel_encoder": mel, "pose_encoder": pose, "fusion": fusion},
            })
        );
    } else {
        println!(
            "landmark generator on {device}, {threads} thread(s), median of {iterations} streaming windows:"
        );
        for (name, v) in [
            ("mel encoder (1 new chunk)", mel),
            ("pose encoder (1 new frame)", pose),
            ("fusion", fusion),
        ] {
            println!("  {name:<28} {:7.2} ms", v * 1e3);
        }
        println!("  {:<28} {:7.2} ms", "per window", per_window * 1e3);
        println!(
            "  {:<28} {:7.2} ms",
            "one-graph model, per window",
            one_graph_per_window * 1e3
        );
    }
    Ok(())
}
