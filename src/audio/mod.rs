//! Audio front end: the official IP_LAP mel spectrogram, one-shot and streaming (spec §2), the
//! 25 fps mel-chunk timing expressed in nanoseconds (spec §1.3), and 16 kHz mono WAV reading.
//!
//! Reference code: `IP_LAP/models/audio.py` (`melspectrogram`, `preemphasis`, `_stft`,
//! `_linear_to_mel`, `_amp_to_db`, `_normalize`; inherited from Wav2Lip) at commit
//! `9b9dc03f0e90b10b92c904b202443c160afe7c45`, with librosa 0.9.2 and scipy 1.10 underneath.
//!
//! * [`melspectrogram`] — the whole signal at once, as the official script does.
//! * [`MelStream`] — the same frames, emitted as soon as each 800-sample window is complete; the
//!   concatenation is bit-identical to [`melspectrogram`] for every chunking, because both run
//!   through the same per-frame code ([`melspectrogram`] *is* a push of everything plus a flush).
//! * [`chunk`] — which 16-column chunk a video frame at time `t` uses, and slicing it out.
//! * [`read_wav_16k_mono`] — WAV → f32 samples, refusing anything but 16 kHz mono (we do not
//!   resample: the official resampler is resampy `kaiser_best`, spec §2.2).

pub mod chunk;
pub mod filterbank;
mod mel;
mod stream;
mod wav;

pub use chunk::{
    CHUNK_FRAMES, ChunkPad, chunk_count, chunk_start_clamped_ns, chunk_start_for_frame25,
    chunk_start_ns, chunk_start_secs, mel_chunk,
};
pub use filterbank::MelFilterbank;
pub use mel::{Mel, MelFrame, melspectrogram};
pub use stream::MelStream;
pub use wav::read_wav_16k_mono;

/// Sample rate the front end expects, Hz (`hp.sample_rate`, spec §2.1).
pub const SAMPLE_RATE: u32 = 16_000;
/// FFT size and window length in samples (`hp.n_fft`, `hp.win_size`): 50 ms.
pub const N_FFT: usize = 800;
/// Hop between mel frames in samples (`hp.hop_size`): 12.5 ms, i.e. 80 mel frames per second.
pub const HOP: usize = 200;
/// Number of mel bins (`hp.num_mels`).
pub const N_MELS: usize = 80;
/// Number of one-sided FFT bins, `N_FFT / 2 + 1`.
pub const N_FREQS: usize = N_FFT / 2 + 1;
/// Pre-emphasis coefficient (`hp.preemphasis`).
pub const PREEMPHASIS: f64 = 0.97;

/// Number of mel frames for `n_samples` samples: `M = 1 + floor(S / 200)` (centred STFT, spec §1.3).
pub const fn n_frames(n_samples: usize) -> usize {
    1 + n_samples / HOP
}

/// Errors of the audio front end. The mel computation itself cannot fail; only file input can.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or is not a readable WAV. (The cause is part of the message
    /// rather than a `source()`, so that `{}` and anyhow's `{:#}` both print it exactly once.)
    #[error("cannot read WAV file {path}: {cause}")]
    Wav { path: String, cause: hound::Error },
    /// The WAV is not 16 kHz mono. We refuse rather than resample, because only resampy
    /// `kaiser_best` (spec §2.2) reproduces the official features.
    #[error(
        "{path}: WAV is {sample_rate} Hz with {channels} channel(s), but the mel front end needs \
         16000 Hz mono (spec §2.2). Convert it first, e.g. `ffmpeg -i {path} -ac 1 -ar 16000 out16k.wav`, \
         or `gst-launch-1.0 filesrc location={path} ! wavparse ! audioconvert ! audioresample ! \
         audio/x-raw,rate=16000,channels=1 ! wavenc ! filesink location=out16k.wav` (either resampler \
         differs slightly from the official resampy kaiser_best)"
    )]
    NotMono16k {
        path: String,
        sample_rate: u32,
        channels: u16,
    },
    /// A PCM encoding we do not decode (e.g. 64-bit float or 12-bit integer).
    #[error(
        "{path}: unsupported WAV sample format ({format}, {bits} bits); use 8/16/24/32-bit integer \
         or 32-bit float PCM"
    )]
    SampleFormat {
        path: String,
        format: &'static str,
        bits: u16,
    },
}
