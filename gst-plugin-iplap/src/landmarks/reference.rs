//! The offline reference bank of the `reference-location` property: every frame of a video or
//! image file is decoded, tracked (static mode, as the official script) and the official
//! selection (spec §1.5) runs over all of them (`iplap::engine::bank_build::build_bank`).

use std::path::Path;

use iplap::engine::bank::ReferenceBank;
use iplap::engine::bank_build::{FrameRecord, build_bank};
use iplap::face::tracker::FaceTracker;
use iplap::image::{ChannelOrder, Image, ImageRef, Resizer};

use crate::decode::VideoDecoder;

/// Frames read from the file, and how many of them had a usable face.
#[derive(Debug)]
pub struct BuiltBank {
    pub bank: ReferenceBank,
    pub frames: usize,
    pub face_frames: usize,
}

/// Decodes every frame of `path` ([`crate::decode::VideoDecoder`]) and builds the bank from all
/// face frames with `tracker`.
pub fn build_from_file(path: &Path, tracker: &mut FaceTracker) -> Result<BuiltBank, String> {
    let mut decoder = VideoDecoder::open(path).map_err(|e| format!("{e:#}"))?;
    let mut resizer = Resizer::new();
    let mut scratch = Image::new(1, 1, ChannelOrder::Bgr);
    let mut records = Vec::new();
    let mut frames = 0usize;
    while let Some(frame) = decoder.next_frame().map_err(|e| format!("{e:#}"))? {
        let image = ImageRef::packed(&frame.data, frame.width, frame.height, ChannelOrder::Rgb)
            .map_err(|e| e.to_string())?;
        frames += 1;
        let face = tracker
            .process(&image)
            .map_err(|e| format!("face tracking: {e}"))?;
        if let Some(face) = face {
            // A face whose crop box leaves the frame is skipped, like a frame without a face.
            if let Ok(rec) =
                FrameRecord::from_frame(&image, &face.normalized, &mut resizer, &mut scratch)
            {
                records.push(rec);
            }
        }
    }
    drop(decoder);
    let face_frames = records.len();
    let (bank, _) = build_bank(&records).map_err(|e| {
        format!(
            "{}: {e} ({frames} frames decoded, {face_frames} with a usable face)",
            path.display()
        )
    })?;
    Ok(BuiltBank {
        bank,
        frames,
        face_frames,
    })
}
