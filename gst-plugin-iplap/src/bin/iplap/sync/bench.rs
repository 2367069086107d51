//! `iplap bench sync`: seconds per output frame of the whole `iplap sync` command (decode, face
//! tracking, landmarks, renderer, encoding), for each reference count asked for, with the time
//! per stage. The speech is cut to `--seconds` first, so the numbers come in minutes, not hours;
//! the template is used whole, as `iplap sync` does.

use std::path::PathBuf;

use anyhow::Context;

use gstiplap::render::stats::STATS_FIELDS;

use super::output::TempFile;
use super::{SyncArgs, execute, media};

#[derive(clap::Args)]
pub struct BenchSyncArgs {
    /// Model package folder (from `iplap convert`).
    #[arg(long)]
    models: PathBuf,
    /// Face video or image.
    #[arg(long)]
    face: PathBuf,
    /// Speech file; only its first `--seconds` are synced.
    #[arg(long)]
    audio: PathBuf,
    /// Seconds of speech to sync.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Reference counts to time, in order (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [25u32, 5],
          value_parser = clap::value_parser!(u32).range(1..=25))]
    references: Vec<u32>,
    /// Threads per network (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Folder with the converted MediaPipe face models.
    #[arg(long, default_value_os_t = crate::default_face_models())]
    face_models: PathBuf,
    /// Print one JSON object per reference count on stdout instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: iplap::cli::device_args::DeviceArgs,
}

pub fn run(args: BenchSyncArgs) -> anyhow::Result<()> {
    super::signals::install_handlers();
    super::signals::exit_if_interrupted(bench(args))
}

fn bench(args: BenchSyncArgs) -> anyhow::Result<()> {
    super::init_gstreamer()?;
    let speech = media::decode_speech(&args.audio).context("cannot read the speech (--audio)")?;
    let keep = ((args.seconds.max(0.0) * 16_000.0) as usize).min(speech.samples.len());
    let cut = TempFile::new("bench-speech.wav");
    write_wav_16k(&cut.0, &speech.samples[..keep])?;
    let out = TempFile::new("bench-out.mp4");
    for &references in &args.references {
        let sync = SyncArgs {
            face: args.face.clone(),
            audio: cut.0.clone(),
            output: out.0.clone(),
            models: args.models.clone(),
            face_models: args.face_models.clone(),
            references,
            threads: args.threads,
            device: args.device.clone(),
            show_sketch: false,
            dump_frames: None,
            frame_memory_mib: super::frames::MEMORY_BUDGET >> 20,
            reference_bank_save: None,
        };
        let report = execute(&sync, !args.json)?;
        if args.json {
            println!("{}", report.json(references, args.threads));
            continue;
        }
        let stages = report.stages();
        let f = |k: &str| stages[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "sync, {references} references, {} thread(s), {} output frames ({:.2} s of speech): \
             {:.3} s per output frame ({:.1} s in all)",
            args.threads,
            report.plan.output_frames,
            media::seconds(keep),
            report.per_frame(),
            report.total.as_secs_f64()
        );
        for (name, d) in &report.prepare {
            println!("  {name:<28} {:9.3} s", d.as_secs_f64());
        }
        println!("  {:<28} {:9.3} s", "models + first window", f("start_s"));
        println!(
            "  {:<28} {:9.3} s/frame",
            "landmarks",
            f("landmarks_per_frame_s")
        );
        println!(
            "  {:<28} {:9.3} s/frame",
            "renderer",
            f("render_per_frame_s")
        );
        for name in STATS_FIELDS.iter().filter(|&&n| n != "total") {
            let v = stages["render_steps_per_frame_s"][*name]
                .as_f64()
                .unwrap_or(f64::NAN);
            println!("    {name:<26} {v:9.3} s/frame");
        }
        println!("  {:<28} {:9.3} s", "encoder + muxer drain", f("finish_s"));
    }
    Ok(())
}

/// A 16-bit PCM mono 16 kHz WAV (the cut speech; `iplap sync` reads it like any other file).
fn write_wav_16k(path: &std::path::Path, samples: &[f32]) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let fail = || format!("cannot write {}", path.display());
    let mut w = hound::WavWriter::create(path, spec).with_context(fail)?;
    for s in samples {
        let v = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        w.write_sample(v).with_context(fail)?;
    }
    w.finalize().with_context(fail)
}
