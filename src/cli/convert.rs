//! `iplap convert`: official IP_LAP checkpoints (`.pth`, never unpickled with code execution) →
//! model package (ONNX stages + manifest with I/O contracts and source checkpoint hashes).

use std::path::{Path, PathBuf};

use crate::checkpoint::{Network, ValidatedStateDict, load_checkpoint, validate};
use crate::graph::package::{SourceCheckpoint, write_package};
use crate::graph::weights::WeightSource;
use crate::weights::FormulaWeights;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true)
    .args(["landmark_checkpoint", "renderer_checkpoint", "reference_weights"])))]
pub struct ConvertArgs {
    /// The official landmark generator checkpoint (landmarkgenerator_checkpoint.pth). Given alone,
    /// the package holds only the landmark generator.
    #[arg(long)]
    pub landmark_checkpoint: Option<PathBuf>,
    /// The official renderer checkpoint (renderer_checkpoint.pth). Given alone, the package holds
    /// only the renderer stages.
    #[arg(long)]
    pub renderer_checkpoint: Option<PathBuf>,
    /// Output folder of the model package (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Use the deterministic reference-formula weights instead of checkpoints (for tests and
    /// benchmarks: the outputs are meaningless faces, but the compute is the real one).
    #[arg(long, conflicts_with_all = ["landmark_checkpoint", "renderer_checkpoint"])]
    pub reference_weights: bool,
}

/// The package's name for each network (its stages' `network` field).
fn package_network(network: Network) -> &'static str {
    match network {
        Network::LandmarkGenerator => "landmark_generator",
        Network::Renderer => "renderer",
    }
}

/// The option that takes `network`'s checkpoint.
fn checkpoint_flag(network: Network) -> &'static str {
    match network {
        Network::LandmarkGenerator => "--landmark-checkpoint",
        Network::Renderer => "--renderer-checkpoint",
    }
}

fn load(path: &Path, network: Network) -> anyhow::Result<(ValidatedStateDict, SourceCheckpoint)> {
    // Both errors name the file and the network themselves; no context is added.
    let sd = load_checkpoint(path)?;
    let validated = validate(&sd, network).map_err(|err| match err.looks_like {
        // The two files are easily swapped; say which option this one belongs to.
        Some(other) => anyhow::anyhow!(
            "{} is not the {network} checkpoint: this looks like the {other} checkpoint (pass \
             it as {})",
            path.display(),
            checkpoint_flag(other)
        ),
        None => err.into(),
    })?;
    let sha256 = sd.source().map(|s| s.sha256_hex()).unwrap_or_default();
    let source = SourceCheckpoint {
        network: package_network(network).to_owned(),
        file: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256,
    };
    eprintln!(
        "{}: {} tensors, sha256 {}",
        path.display(),
        validated.len(),
        source.sha256
    );
    Ok((validated, source))
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let manifest = if args.reference_weights {
        spinner.set_message("writing the model package from the reference formula weights");
        let formula = FormulaWeights::new();
        let nets: [(&str, &dyn WeightSource); 2] =
            [("landmark_generator", &formula), ("renderer", &formula)];
        write_package(&args.out, &nets, &[])?
    } else {
        let mut loaded = Vec::new();
        for (path, network) in [
            (&args.landmark_checkpoint, Network::LandmarkGenerator),
            (&args.renderer_checkpoint, Network::Renderer),
        ] {
            if let Some(path) = path {
                spinner.set_message(format!("reading {}", path.display()));
                loaded.push((network, load(path, network)?));
            }
        }
        spinner.set_message("writing the model package");
        let nets: Vec<(&str, &dyn WeightSource)> = loaded
            .iter()
            .map(|(n, (w, _))| (package_network(*n), w as &dyn WeightSource))
            .collect();
        let sources: Vec<SourceCheckpoint> = loaded.iter().map(|(_, (_, s))| s.clone()).collect();
        write_package(&args.out, &nets, &sources)?
    };
    spinner.finish_and_clear();
    for stage in &manifest.stages {
        eprintln!("  {:<20} {}", stage.name, stage.file);
    }
    for (net, keys) in &manifest.unused_weights {
        eprintln!(
            "  note: {} weight(s) of {net} unused by the graphs",
            keys.len()
        );
    }
    eprintln!("model package written to {}", args.out.display());
    Ok(())
}
