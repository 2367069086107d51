//! Reading 16 kHz mono WAV files into the f32 samples the mel front end takes (spec §2.2).
//!
//! Integer PCM is scaled as libsndfile/soundfile do for librosa: `x / 2^(bits-1)` (16-bit:
//! `x / 32768`), which is exact in f32 up to 24 bits. Anything but 16 kHz mono is refused with an
//! error naming the file and its format: the official pipeline resamples with resampy
//! `kaiser_best` and averages channels, and a silent substitute would change the features.

use std::path::Path;

use super::{AudioError, SAMPLE_RATE};

/// Reads a 16 kHz mono WAV (8/16/24/32-bit integer or 32-bit float PCM) as f32 samples.
pub fn read_wav_16k_mono(path: impl AsRef<Path>) -> Result<Vec<f32>, AudioError> {
    let path = path.as_ref();
    let name = || path.display().to_string();
    let wav_err = |cause| AudioError::Wav {
        path: name(),
        cause,
    };
    let reader = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE || spec.channels != 1 {
        return Err(AudioError::NotMono16k {
            path: name(),
            sample_rate: spec.sample_rate,
            channels: spec.channels,
        });
    }
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            // 2^(bits-1) is a power of two, so the division only rounds for 32-bit input.
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(wav_err)
        }
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(wav_err),
        (format, bits) => Err(AudioError::SampleFormat {
            path: name(),
            format: match format {
                hound::SampleFormat::Int => "integer",
                hound::SampleFormat::Float => "float",
            },
            bits,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, spec: hound::WavSpec, samples: &[i32]) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            match spec.sample_format {
                hound::SampleFormat::Int => w.write_sample(s).unwrap(),
                hound::SampleFormat::Float => w.write_sample(s as f32 / 4.0).unwrap(),
            }
        }
        w.finalize().unwrap();
    }

    fn spec(rate: u32, channels: u16, bits: u16, fmt: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: fmt,
        }
    }

    #[test]
    fn reads_integer_and_float_pcm_and_refuses_other_layouts() {
        let dir = std::env::temp_dir().join(format!("iplap-wav-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let int = hound::SampleFormat::Int;
        let cases: [(u16, &[i32], &[f32]); 4] = [
            (8, &[-128, 64, 127], &[-1.0, 0.5, 127.0 / 128.0]),
            (16, &[-32768, 16384, 1], &[-1.0, 0.5, 1.0 / 32768.0]),
            (24, &[-8388608, 4194304, 1], &[-1.0, 0.5, 1.0 / 8388608.0]),
            (32, &[i32::MIN, 1 << 30, 0], &[-1.0, 0.5, 0.0]),
        ];
        for (bits, raw, want) in cases {
            let p = dir.join(format!("i{bits}.wav"));
            write(&p, spec(16_000, 1, bits, int), raw);
            assert_eq!(read_wav_16k_mono(&p).unwrap(), want, "{bits}-bit");
        }
        let p = dir.join("f32.wav");
        write(
            &p,
            spec(16_000, 1, 32, hound::SampleFormat::Float),
            &[1, -2],
        );
        assert_eq!(read_wav_16k_mono(&p).unwrap(), [0.25, -0.5]);

        let p = dir.join("stereo44k.wav");
        write(&p, spec(44_100, 2, 16, int), &[0, 0]);
        let err = read_wav_16k_mono(&p).unwrap_err().to_string();
        assert!(
            err.contains("44100 Hz") && err.contains("2 channel"),
            "{err}"
        );
        assert!(
            err.contains("stereo44k.wav") && err.contains("-ar 16000"),
            "{err}"
        );

        let err = read_wav_16k_mono(dir.join("missing.wav")).unwrap_err();
        assert!(matches!(err, AudioError::Wav { .. }), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
