//! The command-line subcommands that need no GStreamer (feature `cli`): shared by the `iplap`
//! tool of `gst-plugin-iplap` and by `iplap-engine`, the engine-only executable that runs where
//! GStreamer is absent (the GPU check, `scripts/gpu-check.sh`).

pub mod bench;
pub mod convert;
pub mod device_args;
pub mod devices;
pub mod eval;
pub mod frame_bench;
pub mod kernels;
pub mod live_bench;
pub mod parity;

/// The engine-only subcommands, flattened into both executables' command lists.
#[derive(clap::Subcommand)]
pub enum EngineCommand {
    /// Convert the official IP_LAP checkpoints into a model package (ONNX stages + manifest).
    Convert(convert::ConvertArgs),
    /// Run one network of a model package on .npy inputs (golden `inputs/` names).
    Eval(eval::EvalArgs),
    /// Compare a device's renderer and landmark generator with the CPU on the reference inputs.
    Parity(parity::ParityArgs),
    /// List what this machine can run the networks on: ONNX Runtime, providers, GPUs.
    Devices(devices::DevicesArgs),
    /// Compile every CUDA kernel with NVRTC to cubins (no GPU needed).
    Kernels(kernels::KernelsArgs),
}

impl EngineCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            EngineCommand::Convert(args) => convert::run(args),
            EngineCommand::Eval(args) => eval::run(args),
            EngineCommand::Parity(args) => parity::run(args),
            EngineCommand::Devices(args) => devices::run(args),
            EngineCommand::Kernels(args) => kernels::run(args),
        }
    }
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

/// Sends the engine's `log` records to stderr (info and above).
pub fn init_logging() {
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// The error and its causes joined by ": ", as `{:#}` prints them, except that a cause whose text
/// the previous message already contains is left out: many error types (ours wrapping an
/// engine error with `{0}`, thiserror's `{source}`) print their cause *and* return it as the
/// source, and the user would read it twice.
pub fn error_text(err: &anyhow::Error) -> String {
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
