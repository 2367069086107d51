//! Issue 13 §3: the reference bank is chosen the same way everywhere. `iplaplandmarks`'
//! `reference-location` and `iplap sync` build the bank of a face file through the same engine
//! path (`iplap::engine::bank_template`, spec §1.2, §1.4, §1.5): the file converted to 25 fps,
//! tracked in static mode, the official selection over those frames. For 129.mp4 (270 frames at
//! 30 fps) both banks must be the bank over its 225 frames at 25 fps, which differs from the bank
//! over all 270 decoded frames that the element used to build.

mod common;
mod sync_support;

use std::path::Path;

use gst::prelude::*;
use iplap::engine::bank_build::{FrameRecord, build_bank};
use iplap::engine::template::template_frames_25fps;
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::image::{Image, Resizer};
use iplap::runtime::SessionConfig;

use common::init;
use sync_support::{
    RUN_LIMIT, THREADS, cut_wav, decode_frames, face_models, face_models_ready, launch_to_eos,
    media, output_within, package, sync_command_with, temp_dir,
};

/// `iplaplandmarks` with the formula-weight package, tracking on [`THREADS`] threads and its
/// bank from `face`, taken to PAUSED (where it builds the bank) and back. Returns the bank file it
/// saved (`reference-bank-save`), or the error it posted.
fn element_bank(face: &Path, save: &Path) -> Result<Vec<u8>, String> {
    init();
    let e = gst::ElementFactory::make("iplaplandmarks")
        .property("models", package().to_str().unwrap())
        .property("face-models", face_models().to_str().unwrap())
        .property("threads", THREADS as u32)
        .property("reference-location", face.to_str().unwrap())
        .property("reference-bank-save", save.to_str().unwrap())
        .build()
        .unwrap();
    let pipeline = gst::Pipeline::new();
    pipeline.add(&e).unwrap();
    let started = pipeline.set_state(gst::State::Paused);
    let error = pipeline
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    match (started, error) {
        (Ok(_), None) => Ok(std::fs::read(save).expect("the element saved its bank")),
        (_, Some(msg)) => match msg.view() {
            gst::MessageView::Error(err) => Err(err.error().to_string()),
            _ => unreachable!(),
        },
        (Err(e), None) => Err(format!("state change failed without an error message: {e}")),
    }
}

/// The banks (file bytes) over the 25 fps frames and over every decoded frame of `face`, from
/// the engine pieces run here (decode, static tracking, records, selection), and the number of
/// 25 fps frames.
fn banks_from_pieces(face: &Path) -> (Vec<u8>, Vec<u8>, usize) {
    let frames = decode_frames(face);
    let config = SessionConfig {
        intra_threads: THREADS,
        ..SessionConfig::default()
    };
    let mut tracker = FaceTracker::load(&face_models(), Mode::Static, &config).unwrap();
    let (mut resizer, mut scratch) = (Resizer::new(), Image::default());
    let records: Vec<FrameRecord> = frames
        .iter()
        .map(|f| {
            let image = f.image().unwrap();
            let face = tracker
                .process(&image)
                .unwrap()
                .expect("a face in every frame");
            FrameRecord::from_frame(&image, &face.normalized, &mut resizer, &mut scratch).unwrap()
        })
        .collect();
    let pts: Vec<u64> = frames.iter().map(|f| f.pts.unwrap().nseconds()).collect();
    let picked = template_frames_25fps(&pts);
    let at_25: Vec<FrameRecord> = picked.iter().map(|&i| records[i].clone()).collect();
    let bytes = |records: &[FrameRecord]| build_bank(records).unwrap().0.to_bytes().unwrap();
    (bytes(&at_25), bytes(&records), picked.len())
}

#[test]
fn reference_location_and_sync_choose_the_same_bank_from_the_25_fps_frames() {
    let Some((video, wav, _heavy)) = media() else {
        return;
    };
    let dir = temp_dir("same-bank");

    let (official, all_frames, frames_25fps) = banks_from_pieces(&video);
    assert_eq!(
        frames_25fps, 225,
        "129.mp4: 270 frames at 30 fps -> 225 at 25 fps"
    );
    assert!(
        official != all_frames,
        "for 129.mp4 the 25 fps conversion changes the bank, so this test tells them apart"
    );

    let element = element_bank(&video, &dir.join("element.bank")).unwrap();

    // `iplap sync` on a third of a second of speech (4 output frames, one reference), saving the
    // bank it hands to its own `iplaplandmarks`.
    let speech = dir.join("speech.wav");
    cut_wav(&wav, 0.3, &speech);
    let sync_bank = dir.join("sync.bank");
    let run = output_within(
        &mut sync_command_with(
            &video,
            &speech,
            &dir.join("out.mp4"),
            package(),
            1,
            &["--reference-bank-save".as_ref(), sync_bank.as_os_str()],
        ),
        RUN_LIMIT,
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "iplap sync failed:\n{stderr}");
    assert!(
        stderr.contains("270 frame(s) decoded -> 225 at 25 fps"),
        "{stderr}"
    );
    let sync = std::fs::read(&sync_bank).unwrap();

    // Compared as bytes: a failing `assert_eq!` would print half a megabyte.
    assert!(
        element == sync,
        "the element and iplap sync chose different banks"
    );
    assert!(
        element == official,
        "the bank is not the one over the 225 frames at 25 fps"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reference_location_without_a_face_says_how_many_frames_it_read() {
    if !face_models_ready() {
        return;
    }
    let dir = temp_dir("bank-no-face");
    let bars = dir.join("bars.mp4");
    // 12 frames at 30 fps (0.4 s): 10 frames at 25 fps, none with a face.
    launch_to_eos(&format!(
        "videotestsrc num-buffers=12 ! video/x-raw,width=160,height=120,framerate=30/1 ! \
         x264enc ! mp4mux ! filesink location={}",
        bars.display()
    ));
    let err = element_bank(&bars, &dir.join("unused.bank")).unwrap_err();
    assert!(
        err.contains("reference-location")
            && err.contains("bars.mp4")
            && err.contains("no face")
            && err.contains("10 frame(s) at 25 fps (12 decoded"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
