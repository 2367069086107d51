//! `iplap mel <wav> -o <file.npy>`: the official mel spectrogram of a 16 kHz mono WAV (spec §2.3),
//! written as an 80 × M float32 `.npy` (rows = mel bins, columns = 12.5 ms frames), the layout and
//! dtype the models consume (spec §1.3 step 6). Reading and the maths live in `iplap::audio`.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct MelArgs {
    /// Input WAV: 16 kHz mono, 8/16/24/32-bit integer or 32-bit float PCM. Other rates and channel
    /// layouts are refused (resample with resampy kaiser_best, ffmpeg or audioresample first).
    pub wav: PathBuf,
    /// Output .npy file (80 x M, float32, C order).
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(args: MelArgs) -> anyhow::Result<()> {
    let samples = iplap::audio::read_wav_16k_mono(&args.wav)?;
    let mel = iplap::audio::melspectrogram(&samples).to_array2();
    ndarray_npy::write_npy(&args.output, &mel)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "{}: {} samples ({:.3} s) -> {} x {} mel -> {}",
        args.wav.display(),
        samples.len(),
        samples.len() as f64 / f64::from(iplap::audio::SAMPLE_RATE),
        mel.nrows(),
        mel.ncols(),
        args.output.display()
    );
    Ok(())
}
