//! `iplap` — the command-line face of the engine and the elements.
//!
//! Subcommands: `sync` (face + speech → lip-synced MP4, the official `inference_single.py`),
//! `mel` (audio features), `track` (face landmarks), `prepare-face-models`, `convert`
//! (checkpoints → model package), `eval` and `bench` (the networks and `sync`).

mod mel;
mod prepare;
mod progress;
mod sync;
mod track;

use std::path::PathBuf;

use iplap::cli::{EngineCommand, bench, error_text, init_logging};
use iplap::data_files::{DataFile, Origin, SearchContext};

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
    #[command(flatten)]
    Engine(EngineCommand),
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

/// `--face-models` when not given: found through iplap's search order (`IPLAP_FACE_MODELS`, the
/// data folders, the checkout for a development build; README "Install"); when none holds them,
/// the folder `prepare-face-models` writes by default, which the load error then names.
pub fn default_face_models() -> PathBuf {
    match iplap::data_files::locate(DataFile::FaceModels) {
        Ok(found) => found.path,
        Err(_) => face_models_out(),
    }
}

/// Where `prepare-face-models` writes when `--out` is not given: the checkout's
/// `models/generated/face` for a development build, else `face/` in the user's data folder.
pub fn face_models_out() -> PathBuf {
    let ctx = SearchContext::current();
    if ctx.in_checkout() {
        return ctx.checkout.join(DataFile::FaceModels.in_checkout());
    }
    ctx.data_dirs()
        .into_iter()
        .find(|(origin, _)| *origin == Origin::UserData)
        .map(|(_, dir)| dir.join(DataFile::FaceModels.in_data_dir()))
        .unwrap_or_else(|| PathBuf::from(DataFile::FaceModels.in_data_dir()))
}

/// `--models` when not given: `IPLAP_MODELS`, `models/ip_lap` in the data folders, then the
/// checkout's `models/ip_lap` for a development build; when none holds a package,
/// `models/ip_lap` (relative), which the package error then names.
pub fn default_models() -> PathBuf {
    iplap::data_files::locate(DataFile::ModelPackage)
        .map(|found| found.path)
        .unwrap_or_else(|_| PathBuf::from(DataFile::ModelPackage.in_checkout()))
}

fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mel(args) => mel::run(args),
        Command::Track(args) => track::run(args),
        Command::PrepareFaceModels(args) => prepare::run(args),
        Command::Engine(cmd) => cmd.run(),
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
            eprintln!("error: {}", error_text(&err));
            std::process::ExitCode::FAILURE
        }
    }
}
