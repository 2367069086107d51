//! `iplap prepare-face-models <wheel|folder> [--out DIR]`: MediaPipe face detector and attention
//! mesh from the pinned `mediapipe==0.10.21` wheel, converted to ONNX (scripts/setup.sh runs this).

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PrepareArgs {
    /// The mediapipe-0.10.21 wheel (from `pip download --no-deps mediapipe==0.10.21`), or a folder
    /// holding face_detection_short_range.tflite and face_landmark_with_attention.tflite.
    pub source: PathBuf,
    /// Output folder for the .onnx files (default: the checkout's models/generated/face for a
    /// development build, else ~/.local/share/iplap/face).
    #[arg(long, default_value_os_t = crate::face_models_out())]
    pub out: PathBuf,
}

pub fn run(args: PrepareArgs) -> anyhow::Result<()> {
    for path in iplap::face::prepare::prepare_face_models(&args.source, &args.out)? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
