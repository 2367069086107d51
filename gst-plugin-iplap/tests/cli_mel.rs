//! `iplap mel`: golden parity on the int16 WAV, and refusal of WAVs that are not 16 kHz mono.

use std::path::PathBuf;
use std::process::Command;

use ndarray::Array2;
use ndarray_npy::read_npy;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iplap-cli-mel-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn iplap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iplap"))
}

#[test]
fn mel_of_int16_wav_matches_golden() {
    let Some(dir) = iplap::testdata::shared_path("golden/public/audio/audio2") else {
        return;
    };
    let out = temp_dir("golden").join("mel.npy");
    let run = iplap()
        .arg("mel")
        .arg(dir.join("wav16k_s16.wav"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mel: Array2<f32> = read_npy(&out).unwrap();
    let golden: Array2<f64> = read_npy(dir.join("mel_from_s16_f64.npy")).unwrap();
    assert_eq!(mel.dim(), (80, 1708));
    assert_eq!(mel.dim(), golden.dim());
    let d = mel
        .iter()
        .zip(&golden)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max);
    eprintln!("iplap mel vs mel_from_s16_f64: max |diff| = {d:e}");
    assert!(d <= 1e-4, "max |diff| {d}");
    std::fs::remove_file(&out).ok();
}

#[test]
fn refuses_wav_that_is_not_16k_mono() {
    let dir = temp_dir("refuse");
    for (name, rate, channels) in [("a44k.wav", 44_100u32, 1u16), ("stereo.wav", 16_000, 2)] {
        let wav = dir.join(name);
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).unwrap();
        for i in 0..4410 {
            w.write_sample((i % 100) as i16 * 100).unwrap();
        }
        w.finalize().unwrap();
        let out = dir.join("out.npy");
        let run = iplap()
            .arg("mel")
            .arg(&wav)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{name} was accepted");
        assert!(stderr.contains(&format!("{rate} Hz")), "{stderr}");
        assert!(stderr.contains(&format!("{channels} channel")), "{stderr}");
        assert!(
            stderr.contains(name) && stderr.contains("16000"),
            "{stderr}"
        );
        assert!(!out.exists(), "{name}: no output on refusal");
    }
    std::fs::remove_dir_all(&dir).ok();
}
