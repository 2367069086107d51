//! The two appsrc feeders of the `iplap sync` pipeline: the template frames in timeline order
//! and the speech samples, pushed from their own threads. `push_buffer` blocks while the appsrc
//! is full, so memory stays bounded however long the output, and fails once the pipeline stops,
//! which ends the thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use gst::prelude::*;

use super::pipeline::Inputs;
use super::timeline::{FPS, FRAME_NS};

/// Samples per audio buffer pushed into `iplaplandmarks` (100 ms).
const AUDIO_BUFFER: usize = 1600;

/// The appsrc's frame layout (GStreamer pads RGB rows to a multiple of 4 bytes).
pub fn video_info(inputs: &Inputs) -> anyhow::Result<gst_video::VideoInfo> {
    gst_video::VideoInfo::builder(
        gst_video::VideoFormat::Rgb,
        inputs.width as u32,
        inputs.height as u32,
    )
    .fps(gst::Fraction::new(FPS as i32, 1))
    .build()
    .context("invalid template frame size")
}

/// A buffer in `info`'s layout from packed RGB rows.
fn frame_buffer(packed: &[u8], info: &gst_video::VideoInfo) -> gst::Buffer {
    let (row, stride) = (info.width() as usize * 3, info.stride()[0] as usize);
    if row == stride {
        return gst::Buffer::from_mut_slice(packed.to_vec());
    }
    let mut data = vec![0u8; stride * info.height() as usize];
    for (dst, src) in data.chunks_exact_mut(stride).zip(packed.chunks_exact(row)) {
        dst[..row].copy_from_slice(src);
    }
    gst::Buffer::from_mut_slice(data)
}

/// Pushes fed frames `0 .. L+2` (template frame `seq[k]` at `k · 40 ms`), then EOS.
pub fn spawn_video_feeder(
    src: &gst_app::AppSrc,
    info: gst_video::VideoInfo,
    inputs: &Inputs,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let src = src.clone();
    let plan = inputs.plan;
    let pixels = inputs.pixels.clone();
    let store = inputs.store.clone();
    std::thread::spawn(move || {
        for k in 0..plan.fed_frames() {
            let Some(stored) = pixels.get(plan.source(k)) else {
                break;
            };
            let frame = match store.get(stored) {
                Ok(frame) => frame,
                Err(e) => {
                    src.post_error_message(gst::error_msg!(gst::ResourceError::Read, ("{e:#}")));
                    return;
                }
            };
            let mut buffer = frame_buffer(&frame, &info);
            {
                let b = buffer.get_mut().expect("a new buffer is writable");
                b.set_pts(gst::ClockTime::from_nseconds(k as u64 * FRAME_NS));
                b.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
                b.set_offset(k as u64);
            }
            // Flushing (the pipeline is stopping) ends the feed.
            if stop.load(Ordering::SeqCst) || src.push_buffer(buffer).is_err() {
                return;
            }
        }
        let _ = src.end_of_stream();
    })
}

/// Pushes the 16 kHz samples in 100 ms buffers with sample-exact timestamps, then EOS.
pub fn spawn_audio_feeder(
    src: &gst_app::AppSrc,
    samples: Arc<Vec<f32>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let src = src.clone();
    std::thread::spawn(move || {
        let at = |n: usize| {
            gst::ClockTime::from_nseconds(
                n as u64 * 1_000_000_000 / u64::from(iplap::audio::SAMPLE_RATE),
            )
        };
        for (i, chunk) in samples.chunks(AUDIO_BUFFER).enumerate() {
            let start = i * AUDIO_BUFFER;
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_ne_bytes()).collect();
            let mut buffer = gst::Buffer::from_mut_slice(bytes);
            {
                let b = buffer.get_mut().expect("a new buffer is writable");
                b.set_pts(at(start));
                b.set_duration(at(start + chunk.len()) - at(start));
                b.set_offset(start as u64);
                b.set_offset_end((start + chunk.len()) as u64);
            }
            if stop.load(Ordering::SeqCst) || src.push_buffer(buffer).is_err() {
                return;
            }
        }
        let _ = src.end_of_stream();
    })
}
