//! `iplap sync --face <video|image> --audio <speech> -o out.mp4`: the official
//! `inference_single.py` as a GStreamer pipeline of `iplaplandmarks` and `iplaprender`.
//!
//! Steps: check the models and the output folder (seconds, before any heavy work); decode the
//! speech to 16 kHz (its length fixes the output length, [`timeline::output_frames`]); decode,
//! 25 fps-convert and track the whole template and select the reference bank from it, as
//! `iplaplandmarks`' `reference-location` does ([`media::load_template`]); then stream the timeline of spec §1.6 through the elements into an
//! MP4 ([`pipeline`]), written under a temporary name and renamed when complete ([`output`]).
//!
//! Deviations from the official script, all documented where they are made: GStreamer decodes
//! and resamples instead of ffmpeg + resampy (a few code values / 1e-4 in the features); the
//! 25 fps template picks the nearest frame in time and is not re-encoded first
//! ([`iplap::engine::template::template_frames_25fps`]); a template frame without a face is
//! written unchanged instead of aborting the run; the output is only the lip-synced frame (the
//! official file has the sketch beside it; `--show-sketch` draws the sketch over the face
//! instead); the post-processing contour comes from MediaPipe, not face-alignment
//! (`iplaprender`).

pub mod bench;
mod feed;
mod frames;
mod media;
mod output;
mod pipeline;
mod report;
mod signals;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Instant;

use anyhow::{Context, bail};
use iplap::graph::GraphError;
use iplap::graph::package::ModelPackage;
use iplap::runtime::SessionConfig;

use output::{PartialOutput, TempFile};
use report::Report;
pub use signals::Interrupted;
use timeline::{MIN_SAMPLES, Plan};

/// How to make a model package, printed once after the cause; `{dir}` is the `--models` folder.
const CHECKPOINT_HINT: &str = "hint: `iplap convert --landmark-checkpoint \
     landmarkgenerator_checkpoint.pth --renderer-checkpoint renderer_checkpoint.pth --out {dir}` \
     makes it from the official checkpoints (https://github.com/Weizhi-Zhong/IP_LAP, \"Test\")";

#[derive(clap::Args, Clone)]
pub struct SyncArgs {
    /// Face video or still image (anything GStreamer decodes): the template whose mouth is redrawn.
    #[arg(long)]
    pub face: PathBuf,
    /// Speech (any audio GStreamer decodes: WAV, MP3, AAC, the audio track of a video, ...).
    #[arg(long)]
    pub audio: PathBuf,
    /// Output MP4 (H.264 + AAC), replaced if it exists.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model package folder (made by `iplap convert` from the official checkpoints). Default:
    /// $IPLAP_MODELS, models/ip_lap in the data folders, then the checkout (README "Install").
    #[arg(long, default_value_os_t = crate::default_models())]
    pub models: PathBuf,
    /// Folder with the converted MediaPipe face models (made by scripts/setup.sh).
    #[arg(long, default_value_os_t = crate::default_face_models())]
    pub face_models: PathBuf,
    /// Reference images for the renderer, 1-25: 25 is the official setting, fewer is faster.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=25))]
    pub references: u32,
    /// Threads per network (ONNX Runtime intra-op threads); 0: one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    #[command(flatten)]
    pub device: iplap::cli::device_args::DeviceArgs,
    /// Draw the predicted jaw and lip lines over the face (the official script shows the sketch
    /// beside the frame instead).
    #[arg(long)]
    pub show_sketch: bool,
    /// Also write every output frame, before encoding, as frame_NNNNN.npy (height x width x 3
    /// RGB uint8) into this folder (for tests).
    #[arg(long, hide = true)]
    pub dump_frames: Option<PathBuf>,
    /// MiB of template frames kept in memory; the rest go to a temporary file beside the output
    /// (tests use 0 to exercise that path).
    #[arg(long, hide = true, default_value_t = frames::MEMORY_BUDGET >> 20)]
    pub frame_memory_mib: usize,
    /// Also save the reference bank to this file (the format of `iplaplandmarks`'
    /// `reference-bank`; tests compare it with the element's bank from the same face).
    #[arg(long, hide = true)]
    pub reference_bank_save: Option<PathBuf>,
}

pub fn run(args: SyncArgs) -> anyhow::Result<()> {
    signals::install_handlers();
    let report = signals::exit_if_interrupted(execute(&args, true))?;
    report.print(&args);
    Ok(())
}

/// The whole command; `interactive` shows progress bars. Used by `iplap bench sync` as well.
pub fn execute(args: &SyncArgs, interactive: bool) -> anyhow::Result<Report> {
    let start = Instant::now();
    check_models(&args.models)?;
    check_not_an_input(args)?;
    let out = PartialOutput::create(&args.output)?;
    // A killed run (SIGKILL, a crash, a second Ctrl-C) cannot remove its own temporary files.
    for stale in out
        .sweep_stale()
        .into_iter()
        .chain(output::sweep_stale_temp_files())
    {
        eprintln!(
            "removed {} (left by an iplap sync that was killed)",
            stale.display()
        );
    }
    init_gstreamer()?;
    let device = args.device.resolve()?;
    let config = SessionConfig {
        device: device.clone(),
        intra_threads: args.threads as usize,
        ..SessionConfig::default()
    };

    let t = Instant::now();
    let speech = media::decode_speech(&args.audio).context("cannot read the speech (--audio)")?;
    let speech_time = t.elapsed();
    let samples = speech.samples.len();
    if samples < MIN_SAMPLES {
        bail!(
            "{}: {:.3} s of audio is too short; IP_LAP needs at least {:.4} s (3 video frames)",
            args.audio.display(),
            media::seconds(samples),
            media::seconds(MIN_SAMPLES)
        );
    }
    let output_frames = timeline::output_frames(samples);

    let t = Instant::now();
    let spinner = report::spinner(interactive, "reading the face");
    let mut decoded = 0usize;
    // Spilled frames go beside the output: that folder was just proven writable.
    let spill_dir = out
        .temp_path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let budget = args.frame_memory_mib.saturating_mul(1 << 20);
    let mut store = frames::FrameStore::new(&spill_dir, budget);
    let template = media::load_template(
        &args.face,
        &args.face_models,
        &config,
        &mut store,
        output_frames + timeline::WINDOW_TAIL,
        || {
            decoded += 1;
            spinner.set_message(format!("reading the face: {decoded} frame(s) decoded"));
        },
    )?;
    spinner.finish_and_clear();
    let template_time = t.elapsed();
    let t = Instant::now();
    let bank_file = TempFile::new("reference.bank");
    template
        .bank
        .save(&bank_file.0)
        .context("cannot write the reference bank to the temporary folder")?;
    if let Some(path) = &args.reference_bank_save {
        template
            .bank
            .save(path)
            .with_context(|| format!("cannot save the reference bank to {}", path.display()))?;
    }
    let bank_time = t.elapsed();
    if let Some(dir) = &args.dump_frames {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }

    let plan = Plan {
        template_frames: template.frames_25fps,
        output_frames,
    };
    let settings = pipeline::Settings {
        models: &args.models,
        face_models: &args.face_models,
        threads: args.threads,
        device: &device,
        references: args.references,
        show_sketch: args.show_sketch,
        bank_file: &bank_file.0,
        audio_file: &args.audio,
        dump_frames: args.dump_frames.as_deref(),
    };
    let inputs = pipeline::Inputs {
        plan,
        width: template.width,
        height: template.height,
        pixels: template.pixels,
        store: Arc::new(store),
        samples: Arc::new(speech.samples),
    };
    let bar = report::frames_bar(interactive, output_frames);
    let stream = pipeline::run(&settings, inputs, &out, &bar)?;
    bar.finish_and_clear();
    if stream.written != output_frames {
        bail!(
            "internal error: {} frames were written, the timeline has {output_frames}",
            stream.written
        );
    }
    out.commit()?;
    Ok(Report {
        plan,
        decoded: template.decoded,
        face_frames: template.face_frames,
        width: template.width,
        height: template.height,
        audio_seconds: media::seconds(samples),
        prepare: [
            ("speech decode", speech_time),
            ("face decode + tracking", template_time),
            ("reference bank", bank_time),
        ],
        stream,
        total: start.elapsed(),
    })
}

/// GStreamer with the two elements registered statically (no GST_PLUGIN_PATH), once.
fn init_gstreamer() -> anyhow::Result<()> {
    static REGISTER: Once = Once::new();
    gst::init().context("cannot initialise GStreamer")?;
    let mut result = Ok(());
    REGISTER.call_once(|| {
        result = gstiplap::plugin_register_static()
            .map_err(|e| anyhow::anyhow!("cannot register the iplap elements: {e}"));
    });
    result
}

/// The package must exist and hold both networks. The message is the cause in one line, then
/// [`CHECKPOINT_HINT`] (the package's own short hint is left out: this one says more).
fn check_models(dir: &Path) -> anyhow::Result<()> {
    let fail = |cause: String| {
        let hint = CHECKPOINT_HINT.replace("{dir}", &dir.display().to_string());
        anyhow::anyhow!("{cause}\n{hint}")
    };
    if !dir.is_dir() {
        return Err(fail(format!(
            "model package {} does not exist (--models)",
            dir.display()
        )));
    }
    let package = ModelPackage::open(dir).map_err(|err| match err {
        GraphError::Package { path, message } => {
            fail(format!("model package {}: {message}", path.display()))
        }
        other => fail(other.to_string()),
    })?;
    for network in ["landmark_generator", "renderer"] {
        if !package
            .manifest()
            .stages
            .iter()
            .any(|s| s.network == network)
        {
            return Err(fail(format!(
                "model package {} has no {network} network (it was converted from one \
                 checkpoint only)",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Refuses an output path that names one of the inputs (it would be replaced at the end).
fn check_not_an_input(args: &SyncArgs) -> anyhow::Result<()> {
    let Ok(out) = std::fs::canonicalize(&args.output) else {
        return Ok(());
    };
    for input in [&args.face, &args.audio] {
        if std::fs::canonicalize(input).is_ok_and(|i| i == out) {
            bail!(
                "output {} is the input {}; choose another -o",
                args.output.display(),
                input.display()
            );
        }
    }
    Ok(())
}
