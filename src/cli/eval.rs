//! `iplap eval landmark-generator|renderer --models DIR --inputs DIR --out DIR`: one forward pass
//! on `.npy` inputs named as in the golden `inputs/` folders, outputs under the golden names.

use crate::audio::{CHUNK_FRAMES, N_MELS};
use std::path::{Path, PathBuf};

use crate::graph::package::ModelPackage;
use crate::runtime::renderer::{RendererConfig, RendererInput, RendererModel};
use crate::runtime::{LandmarkGenerator, LandmarkInput, SessionConfig};
use anyhow::{Context, bail};
use ndarray::{ArrayD, ArrayView4, IxDyn};
use ndarray_npy::{read_npy, write_npy};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Network {
    /// Inputs T_mels, T_pose, Nl_pose, Nl_content; output predict_content.
    LandmarkGenerator,
    /// Inputs face_frame_img, target_sketches, ref_N_frame_img, ref_N_frame_sketch, audio_mels;
    /// outputs generated_face, wrapped_ref (+ wrapped_h1, wrapped_h2).
    Renderer,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Which network to run.
    #[arg(value_enum)]
    pub network: Network,
    /// Model package folder (from `iplap convert`).
    #[arg(long)]
    pub models: PathBuf,
    /// Folder with the input .npy files (float32).
    #[arg(long)]
    pub inputs: PathBuf,
    /// Output folder (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// ONNX Runtime intra-op threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub device: crate::cli::device_args::DeviceArgs,
    /// Which of the package's renderer graphs to run: cpu or gpu (default: the device's).
    /// `--target gpu --device cpu` checks the GPU graphs without a GPU.
    #[arg(long, value_parser = |s: &str| s.parse::<crate::graph::target::GraphTarget>())]
    pub target: Option<crate::graph::target::GraphTarget>,
    /// Which precision of the package's renderer graphs to run: fp32 or fp16 (default: the
    /// device's). `--target gpu --graph-precision fp16 --device cpu` checks the fp16 graphs.
    #[arg(long, value_parser = |s: &str| s.parse::<crate::graph::package::GraphPrecision>())]
    pub graph_precision: Option<crate::graph::package::GraphPrecision>,
}

/// Reads `<dir>/<name>.npy` as float32 and checks its shape (`None` = any size on that axis).
fn input(dir: &Path, name: &str, shape: &[Option<usize>]) -> anyhow::Result<ArrayD<f32>> {
    let path = dir.join(format!("{name}.npy"));
    let a: ArrayD<f32> = read_npy(&path)
        .with_context(|| format!("cannot read {} as float32 .npy", path.display()))?;
    let ok = a.ndim() == shape.len()
        && a.shape()
            .iter()
            .zip(shape)
            .all(|(&d, s)| s.is_none_or(|s| s == d));
    if !ok {
        let want: Vec<String> = shape
            .iter()
            .map(|s| s.map_or("N".into(), |s| s.to_string()))
            .collect();
        bail!(
            "{}: shape {:?}, expected ({})",
            path.display(),
            a.shape(),
            want.join(", ")
        );
    }
    Ok(a.as_standard_layout().into_owned())
}

/// A 4-d view of an input whose shape was already checked.
fn as4(a: &ArrayD<f32>, shape: [usize; 4]) -> anyhow::Result<ArrayView4<'_, f32>> {
    Ok(a.view().into_shape_with_order(shape)?)
}

fn output<S: ndarray::Data<Elem = f32>, D: ndarray::Dimension>(
    dir: &Path,
    name: &str,
    a: &ndarray::ArrayBase<S, D>,
) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.npy"));
    write_npy(&path, a).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {} {:?}", path.display(), a.shape());
    Ok(())
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    // An explicit device first (a machine that cannot run it needs no package to say so); `auto`
    // after the package, whose problems come first.
    let explicit = (args.device.device != crate::runtime::Device::Auto)
        .then(|| args.device.resolve())
        .transpose()?;
    let package = ModelPackage::open(&args.models)?;
    let device = match explicit {
        Some(device) => device,
        None => args.device.resolve()?,
    };
    let session = SessionConfig {
        device,
        intra_threads: args.threads,
        ..SessionConfig::default()
    };
    match args.network {
        Network::LandmarkGenerator => {
            let d = &args.inputs;
            let t_mels = input(
                d,
                "T_mels",
                &[Some(1), Some(5), Some(1), Some(80), Some(16)],
            )?;
            let t_pose = input(d, "T_pose", &[Some(1), Some(5), Some(2), Some(74)])?;
            let nl_pose = input(d, "Nl_pose", &[Some(1), Some(15), Some(2), Some(74)])?;
            let nl_content = input(d, "Nl_content", &[Some(1), Some(15), Some(2), Some(57)])?;
            let mut model =
                LandmarkGenerator::from_file(&package.stage_path("landmark_generator")?, &session)?;
            let slice = |a: &ArrayD<f32>| a.as_slice().map(<[f32]>::to_vec).unwrap_or_default();
            let out = model.run(&LandmarkInput {
                t_mels: &slice(&t_mels),
                t_pose: &slice(&t_pose),
                nl_pose: &slice(&nl_pose),
                nl_content: &slice(&nl_content),
            })?;
            let pc = ArrayD::from_shape_vec(IxDyn(&[5, 2, 57]), out.predict_content)?;
            output(&args.out, "predict_content", &pc)?;
        }
        Network::Renderer => {
            let d = &args.inputs;
            let img = Some(128);
            let face = input(d, "face_frame_img", &[Some(1), Some(1), Some(3), img, img])?;
            let sketches = input(d, "target_sketches", &[Some(1), Some(5), Some(3), img, img])?;
            let ref_img = input(d, "ref_N_frame_img", &[Some(1), None, Some(3), img, img])?;
            let n = ref_img.shape()[1];
            let ref_sketch = input(
                d,
                "ref_N_frame_sketch",
                &[Some(1), Some(n), Some(3), img, img],
            )?;
            let audio = input(
                d,
                "audio_mels",
                &[Some(1), Some(1), Some(1), Some(80), Some(16)],
            )?;
            let config = RendererConfig {
                session,
                target: args.target,
                graph_precision: args.graph_precision,
                ..RendererConfig::default()
            };
            let mut engine = RendererModel::from_package(&package, config)?;

            engine.set_reference_bank(
                as4(&ref_img, [n, 3, 128, 128])?,
                as4(&ref_sketch, [n, 3, 128, 128])?,
            )?;
            let out = engine.render(&RendererInput {
                face: as4(&face, [1, 3, 128, 128])?,
                target_sketches: as4(&sketches, [5, 3, 128, 128])?,
                audio: as4(&audio, [1, 1, N_MELS, CHUNK_FRAMES])?,
            })?;
            output(&args.out, "generated_face", &out.generated_face)?;
            output(&args.out, "wrapped_ref", &out.wrapped_ref)?;
            output(&args.out, "wrapped_h1", &out.wrapped_h1)?;
            output(&args.out, "wrapped_h2", &out.wrapped_h2)?;
            eprintln!("{n} references, {:.3} s", out.timings.total().as_secs_f64());
        }
    }
    Ok(())
}
