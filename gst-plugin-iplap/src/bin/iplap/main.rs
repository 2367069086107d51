//! `iplap` — the command-line face of the engine and the elements.
//!
//! Subcommands: `sync` (face + speech → lip-synced MP4, the official `inference_single.py`),
//! `mel` (audio features), `track` (face landmarks), `prepare-face-models`, `convert`
//! (checkpoints → model package), `eval` and `bench` (the networks and `sync`).

mod bench;
mod convert;
mod eval;
mod mel;
mod prepare;
mod progress;
mod sync;
mod track;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "iplap",
    version,
    about = "IP_LAP lip-sync: tools around the iplap engine and GStreamer elements"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lip-sync a face video or image to speech: an MP4 like the official inference_single.py.
    Sync(sync::SyncArgs),
    /// Write the 80 x M float32 mel spectrogram of a 16 kHz mono WAV file as .npy (spec §2.3).
    Mel(mel::MelArgs),
    /// Track the face in a video or image with MediaPipe and write the landmarks as JSON.
    Track(track::TrackArgs),
    /// Convert MediaPipe's face models from the mediapipe 0.10.21 wheel to ONNX.
    PrepareFaceModels(prepare::PrepareArgs),
    /// Convert the official IP_LAP checkpoints into a model package (ONNX stages + manifest).
    Convert(convert::ConvertArgs),
    /// Run one network of a model package on .npy inputs (golden `inputs/` names).
    Eval(eval::EvalArgs),
    /// Time a network of a model package (medians per stage and per frame/window), or `sync`.
    #[command(subcommand)]
    Bench(BenchTarget),
}

/// `iplap bench …`: the networks (bench.rs) plus the whole `sync` command.
#[derive(Subcommand)]
enum BenchTarget {
    #[command(flatten)]
    Network(bench::BenchCommand),
    /// The whole `iplap sync` on a cut of the speech: seconds per output frame, per stage.
    Sync(sync::bench::BenchSyncArgs),
}

/// Where `scripts/setup.sh` puts the converted face models in this checkout.
pub fn default_face_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(iplap::face::prepare::DEFAULT_OUT_DIR)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mel(args) => mel::run(args),
        Command::Track(args) => track::run(args),
        Command::PrepareFaceModels(args) => prepare::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Sync(args) => sync::run(args),
        Command::Bench(BenchTarget::Network(cmd)) => bench::run(cmd),
        Command::Bench(BenchTarget::Sync(args)) => sync::bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The shells' convention for a run stopped by Ctrl-C.
        Err(err) if err.chain().any(|e| e.is::<sync::Interrupted>()) => {
            eprintln!("{err}");
            std::process::ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
