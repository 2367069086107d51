//! `parity --models DIR --device D`: the renderer and the landmark generator on a device compared
//! with the CPU provider on the golden inputs (reference-weights §4). With a package of the
//! reference formula weights the CPU side is what the goldens check in CI, so this tells how far
//! a GPU is from the goldens without carrying them; `--target gpu --device cpu` compares the GPU
//! graphs with the CPU graphs on a machine without a GPU (`--graph-precision fp16`: the fp16
//! graphs). fp16 has no absolute limit by default: its PSNR is the measure.

use std::path::PathBuf;

use anyhow::Context;
use ndarray::{ArrayView, Dimension};
use serde_json::json;

use crate::graph::package::{GraphPrecision, ModelPackage, base_stage};
use crate::graph::target::GraphTarget;
use crate::runtime::renderer::{RendererConfig, RendererInput, RendererModel, RendererOutput};
use crate::runtime::{Device, DeviceConfig, LandmarkInput, LandmarkModel, SessionConfig};
use crate::weights::formula::{
    RendererGoldenInputs, golden_nl_content, golden_nl_pose, golden_t_mels, golden_t_pose,
};

#[derive(clap::Args)]
pub struct ParityArgs {
    /// Model package folder (from `convert`; `--reference-weights` for the golden weights).
    #[arg(long)]
    pub models: PathBuf,
    /// Number of references (1-25; the goldens use 25).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..=25))]
    pub references: u16,
    /// ONNX Runtime intra-op threads of the CPU side (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// The device's renderer graphs: cpu or gpu (default: the device's).
    #[arg(long, value_parser = |s: &str| s.parse::<GraphTarget>())]
    pub target: Option<GraphTarget>,
    /// The device's renderer graphs: fp32 or fp16 (default: the device's and --precision's).
    #[arg(long, value_parser = |s: &str| s.parse::<GraphPrecision>())]
    pub graph_precision: Option<GraphPrecision>,
    /// Largest absolute difference allowed (renderer outputs and landmarks); past it the command
    /// fails. Default: 2e-4 at fp32/tf32 (the goldens' tolerance); none at fp16 (PSNR reported).
    #[arg(long)]
    pub max_abs: Option<f32>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: crate::cli::device_args::DeviceArgs,
}

/// Largest absolute difference and PSNR (peak 1) of `a` against `b`.
fn compare<D: Dimension>(a: ArrayView<'_, f32, D>, b: ArrayView<'_, f32, D>) -> (f32, f64) {
    let (mut max, mut se) = (0f32, 0f64);
    for (x, y) in a.iter().zip(b.iter()) {
        let d = x - y;
        max = max.max(d.abs());
        se += f64::from(d) * f64::from(d);
    }
    let mse = se / a.len().max(1) as f64;
    (max, 10.0 * (1.0 / mse.max(1e-20)).log10())
}

fn render(
    package: &ModelPackage,
    config: RendererConfig,
    inputs: &RendererGoldenInputs,
) -> anyhow::Result<(RendererOutput, Vec<String>)> {
    let mut model = RendererModel::from_package(package, config)?;
    model.set_reference_bank(inputs.ref_img.view(), inputs.ref_sketch.view())?;
    let out = model.render(&RendererInput {
        face: inputs.face.view(),
        target_sketches: inputs.target_sketches.view(),
        audio: inputs.audio.view(),
    })?;
    Ok((out, model.stages().to_vec()))
}

fn landmarks(package: &ModelPackage, session: &SessionConfig) -> anyhow::Result<Vec<f32>> {
    let (t_mels, t_pose) = (golden_t_mels(), golden_t_pose());
    let (nl_pose, nl_content) = (golden_nl_pose(), golden_nl_content());
    let mut model = LandmarkModel::from_package(package, session)?;
    let out = model.run(&LandmarkInput {
        t_mels: &t_mels,
        t_pose: &t_pose,
        nl_pose: &nl_pose,
        nl_content: &nl_content,
    })?;
    Ok(out.predict_content)
}

pub fn run(args: ParityArgs) -> anyhow::Result<()> {
    let device = args.device.resolve()?;
    let package = ModelPackage::open(&args.models)?;
    let inputs = RendererGoldenInputs::new(usize::from(args.references))?;
    let cpu = SessionConfig {
        device: DeviceConfig {
            device: Device::Cpu,
            ..DeviceConfig::default()
        },
        intra_threads: args.threads,
        ..SessionConfig::default()
    };
    let on_device = SessionConfig {
        device: device.clone(),
        intra_threads: args.threads,
        ..SessionConfig::default()
    };
    let renderer_config = |session: &SessionConfig, target, graph_precision| RendererConfig {
        session: session.clone(),
        target,
        graph_precision,
        ..RendererConfig::default()
    };
    let reference_config = renderer_config(&cpu, Some(GraphTarget::Cpu), None);
    let (reference, _) = render(&package, reference_config, &inputs).context("the CPU renderer")?;
    let tested_config = renderer_config(&on_device, args.target, args.graph_precision);
    let (tested, stages) = render(&package, tested_config, &inputs)
        .with_context(|| format!("the renderer on {}", device.device))?;
    let half = stages
        .iter()
        .any(|s| base_stage(s).1 == GraphPrecision::Fp16)
        || device.precision == crate::runtime::Precision::Fp16;
    let face = compare(
        tested.generated_face.view(),
        reference.generated_face.view(),
    );
    let wrapped = compare(tested.wrapped_ref.view(), reference.wrapped_ref.view());
    let lm_ref = landmarks(&package, &cpu).context("the CPU landmark generator")?;
    let lm = landmarks(&package, &on_device)
        .with_context(|| format!("the landmark generator on {}", device.device))?;
    let lm_max = lm
        .iter()
        .zip(&lm_ref)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);

    let limit = args.max_abs.or((!half).then_some(2e-4));
    if args.json {
        let v = json!({
            "device": device.device.to_string(), "precision": device.precision.to_string(),
            "references": args.references, "stages": stages,
            "generated_face": {"max_abs": face.0, "psnr_db": face.1},
            "wrapped_ref": {"max_abs": wrapped.0, "psnr_db": wrapped.1},
            "predict_content": {"max_abs": lm_max}, "max_abs_allowed": limit,
        });
        println!("{v}");
    } else {
        println!(
            "{} ({}) vs cpu, {} references; renderer stages: {}",
            device.device,
            device.precision,
            args.references,
            stages.join(", ")
        );
        for (name, (max, psnr)) in [("generated_face", face), ("wrapped_ref", wrapped)] {
            println!("  {name:<16} max |diff| {max:.3e}   PSNR {psnr:6.1} dB");
        }
        println!("  {:<16} max |diff| {lm_max:.3e}", "predict_content");
    }
    if let Some(limit) = limit {
        let worst = face.0.max(wrapped.0).max(lm_max);
        anyhow::ensure!(
            worst <= limit,
            "{} differs from the CPU reference by {worst:.3e} (> {limit:.1e})",
            device.device
        );
    }
    Ok(())
}
