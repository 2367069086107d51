//! `iplap track <video|image> [--mode static|tracking] -o out.json`: MediaPipe face landmarks for
//! every decoded frame (spec §1.4, §3), with IP_LAP's crop box and lip openness.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use iplap::face::crop_box::FaceGeometry;
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::runtime::SessionConfig;
use serde::Serialize;

use gstiplap::decode::VideoDecoder;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TrackMode {
    /// Detect the face in every frame, as the official script does (MediaPipe static_image_mode).
    Static,
    /// Follow the face from the previous frame's landmarks; detect again only when it is lost.
    Tracking,
}

#[derive(clap::Args)]
pub struct TrackArgs {
    /// Video or image file (anything GStreamer decodes).
    pub input: PathBuf,
    /// Output JSON file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Detection policy.
    #[arg(long, value_enum, default_value = "static")]
    pub mode: TrackMode,
    /// Folder with the converted MediaPipe face models (made by scripts/setup.sh).
    #[arg(long, default_value_os_t = crate::default_face_models())]
    pub face_models: PathBuf,
    /// Threads for ONNX Runtime (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Serialize)]
struct Output {
    width: usize,
    height: usize,
    frames: Vec<FrameOut>,
}

#[derive(Serialize)]
struct FrameOut {
    /// Presentation time in seconds (null when the decoder gave none).
    pts: Option<f64>,
    face: bool,
    landmarks: Option<Vec<[f32; 2]>>,
    #[serde(rename = "box")]
    crop_box: Option<[usize; 4]>,
    lip_openness: Option<f64>,
}

pub fn run(args: TrackArgs) -> anyhow::Result<()> {
    let mode = match args.mode {
        TrackMode::Static => Mode::Static,
        TrackMode::Tracking => Mode::Tracking,
    };
    let config = SessionConfig {
        intra_threads: args.threads,
        ..SessionConfig::default()
    };
    // The input first: a file without video fails before the models load.
    let mut decoder = VideoDecoder::open(&args.input)?;
    let mut tracker = FaceTracker::load(&args.face_models, mode, &config)?;
    let progress = crate::progress::frames_bar(decoder.duration, "tracking");
    let mut out = Output {
        width: 0,
        height: 0,
        frames: Vec::new(),
    };
    // Every decoded frame, at the file's own rate (not the 25 fps template of `iplap sync`).
    decoder.for_each_frame(|_, frame| {
        out.width = frame.width;
        out.height = frame.height;
        let face = tracker.process(&frame.image()?)?;
        let geometry = face
            .as_ref()
            .map(|f| FaceGeometry::from_landmarks(&f.normalized, frame.width, frame.height))
            .transpose()?;
        out.frames.push(FrameOut {
            pts: frame.pts.map(|t| t.nseconds() as f64 / 1e9),
            face: face.is_some(),
            landmarks: face.map(|f| f.pixels),
            crop_box: geometry.as_ref().map(|g| {
                let b = g.crop_box;
                [b.y1, b.y2, b.x1, b.x2]
            }),
            lip_openness: geometry.map(|g| g.lip_dist),
        });
        crate::progress::advance(&progress, frame.pts);
        Ok(())
    })?;
    progress.finish_and_clear();
    let found = out.frames.iter().filter(|f| f.face).count();
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut w, &out)?;
    w.flush()?;
    eprintln!(
        "{}: {} frame(s), face in {}, written to {}",
        args.input.display(),
        out.frames.len(),
        found,
        args.output.display()
    );
    Ok(())
}
