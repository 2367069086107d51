//! `iplap` — the command-line face of the engine and the elements.
//!
//! Subcommands are added as their issues land: `mel` (audio features) today; `convert`, `eval`,
//! `bench`, `track` and `sync` follow.

mod mel;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "iplap", version, about = "IP_LAP lip-sync: tools around the iplap engine and GStreamer elements")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the 80 x M float32 mel spectrogram of a 16 kHz mono WAV file as .npy (spec §2.3).
    Mel(mel::MelArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mel(args) => mel::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
