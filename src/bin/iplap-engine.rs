//! `iplap-engine` — the engine-only subcommands of `iplap` (convert, eval, parity, bench of the
//! networks, devices) in an executable that needs no GStreamer, for machines without it: the GPU
//! check (`scripts/gpu-check.sh`) runs it where only an NVIDIA driver and CUDA libraries are.

use clap::{Parser, Subcommand};
use iplap::cli::{EngineCommand, bench::BenchCommand, error_text, init_logging};

#[derive(Parser)]
#[command(
    name = "iplap-engine",
    version,
    about = "IP_LAP engine tools without GStreamer: convert, eval, parity, bench, devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Engine(EngineCommand),
    /// Time a network of a model package (medians per stage and per frame/window).
    #[command(subcommand)]
    Bench(BenchCommand),
}

fn main() -> std::process::ExitCode {
    init_logging();
    let result = match Cli::parse().command {
        Command::Engine(cmd) => cmd.run(),
        Command::Bench(cmd) => iplap::cli::bench::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            std::process::ExitCode::FAILURE
        }
    }
}
