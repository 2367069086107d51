//! `iplap` — the command-line face of the engine and the elements.
//!
//! Subcommands: `sync` (face + speech → lip-synced MP4, the official `inference_single.py`),
//! `mel` (audio features), `track` (face landmarks), `prepare-face-models`, `convert`
//! (checkpoints → model package), `eval` and `bench` (the networks and `sync`).

mod bench;
mod convert;
mod device_args;
mod devices;
mod eval;
mod mel;
mod prepare;
mod progress;
mod sync;
mod track;

use std::path::PathBuf;

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
    /// Convert the official IP_LAP checkpoints into a model package (ONNX stages + manifest).
    Convert(convert::ConvertArgs),
    /// Run one network of a model package on .npy inputs (golden `inputs/` names).
    Eval(eval::EvalArgs),
    /// Time a network of a model package (medians per stage and per frame/window), or `sync`.
    #[command(subcommand)]
    Bench(BenchTarget),
    /// List what this machine can run the networks on: ONNX Runtime, providers, GPUs.
    Devices(devices::DevicesArgs),
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

/// The engine's `log` records (TensorRT engine builds, cache problems) on stderr.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info && metadata.target().starts_with("iplap")
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let level = record.level().to_string().to_lowercase();
            eprintln!("{level}: {}", record.args());
        }
    }
    fn flush(&self) {}
}

fn main() -> std::process::ExitCode {
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
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
        Command::Devices(args) => devices::run(args),
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

/// The error and its causes joined by ": ", as `{:#}` prints them, except that a cause whose text
/// the previous message already contains is left out: many error types (ours wrapping an
/// engine error with `{0}`, thiserror's `{source}`) print their cause *and* return it as the
/// source, and the user would read it twice.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if !previous.is_empty() && previous.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
        previous = message;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    /// "cannot open a.pth", with the cause in its own text too when `repeats`.
    #[derive(Debug)]
    struct Open {
        repeats: bool,
        cause: std::io::Error,
    }

    impl std::fmt::Display for Open {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot open a.pth")?;
            if self.repeats {
                write!(f, ": {}", self.cause)?;
            }
            Ok(())
        }
    }

    impl std::error::Error for Open {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.cause)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        for repeats in [false, true] {
            let cause = std::io::Error::other("disk on fire");
            let err = anyhow::Error::new(Open { repeats, cause }).context("converting");
            assert_eq!(
                error_text(&err),
                "converting: cannot open a.pth: disk on fire"
            );
        }
    }
}
