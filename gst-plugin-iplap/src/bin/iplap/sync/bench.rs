//! `iplap bench sync`: seconds per output frame of the whole `iplap sync` command (decode, face
//! tracking, landmarks, renderer, encoding), for each reference count asked for, with the time
//! per stage. The speech is cut to `--seconds` first, so the numbers come in minutes, not hours;
//! the template is used whole, as `iplap sync` does.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::output::TempFile;
use super::{Device, SyncArgs, execute, media};

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
}

pub fn run(args: BenchSyncArgs) -> anyhow::Result<()> {
    super::output::install_interrupt_handler();
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
            device: Device::Cpu,
            show_sketch: false,
            dump_frames: None,
            frame_memory_mib: super::frames::MEMORY_BUDGET >> 20,
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
        println!("  {:<28} {:9.3} s", "encoder + muxer drain", f("finish_s"));
    }
    Ok(())
}

/// A 16-bit PCM mono 16 kHz WAV (the cut speech; `iplap sync` reads it like any other file).
fn write_wav_16k(path: &std::path::Path, samples: &[f32]) -> anyhow::Result<()> {
    let data_len = (samples.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + samples.len() * 2);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&16_000u32.to_le_bytes());
    bytes.extend_from_slice(&32_000u32.to_le_bytes()); // bytes per second
    bytes.extend_from_slice(&2u16.to_le_bytes()); // block align
    bytes.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        let v = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
