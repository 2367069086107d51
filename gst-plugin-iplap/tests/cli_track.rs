//! `iplap track`: any GStreamer-decodable file in, one JSON entry per decoded frame out.

use std::path::{Path, PathBuf};
use std::process::Command;

use gst::prelude::*;
use ndarray::Array2;
use ndarray_npy::read_npy;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iplap-cli-track-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn track(input: &Path, out: &Path, mode: &str) -> serde_json::Value {
    let run = Command::new(env!("CARGO_BIN_EXE_iplap"))
        .args(["track", "--mode", mode, "-o"])
        .arg(out)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

/// The converted face models are made by scripts/setup.sh; without them there is nothing to test.
fn face_models_ready() -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/generated/face");
    let ok = dir.join("face_landmark_with_attention.onnx").is_file();
    if !ok {
        assert_ne!(
            std::env::var("IPLAP_REQUIRE_SHARED").as_deref(),
            Ok("1"),
            "face models missing in {}: run scripts/setup.sh",
            dir.display()
        );
        eprintln!("\n!!!!!!!! SKIPPED: face models missing: run scripts/setup.sh !!!!!!!!\n");
    }
    ok
}

#[test]
fn video_frames_match_golden_boxes() {
    let Some(video) = iplap::testdata::shared_path("media/129.mp4") else {
        return;
    };
    let Some(golden) = iplap::testdata::shared_path("golden/public/facemesh/129") else {
        return;
    };
    if !face_models_ready() {
        return;
    }
    let json = track(&video, &temp_dir("video").join("out.json"), "static");
    assert_eq!(json["width"], 256);
    assert_eq!(json["height"], 256);
    let frames = json["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 270, "one entry per decoded frame");
    for (i, f) in frames.iter().enumerate() {
        let pts = f["pts"].as_f64().unwrap();
        assert!((pts - i as f64 / 30.0).abs() < 1e-3, "frame {i} pts {pts}");
        assert_eq!(f["face"], true, "frame {i}");
        assert_eq!(f["landmarks"].as_array().unwrap().len(), 478);
        assert!(f["lip_openness"].as_f64().unwrap() > 0.0);
    }
    // GStreamer's YUV->RGB conversion differs from OpenCV's by a few code values, so the boxes may
    // move by a pixel; the decoder-independent parity is in the engine's facemesh golden test.
    let boxes: Array2<i32> = read_npy(golden.join("boxes_i32.npy")).unwrap();
    let within = (0..boxes.nrows())
        .filter(|&i| {
            let b = frames[i]["box"].as_array().unwrap();
            (0..4).all(|k| (b[k].as_i64().unwrap() - i64::from(boxes[[i, k]])).abs() <= 1)
        })
        .count();
    assert!(
        within * 100 >= boxes.nrows() * 95,
        "{within}/{} boxes within 1 px",
        boxes.nrows()
    );
}

#[test]
fn colour_bars_have_no_face() {
    if !face_models_ready() {
        return;
    }
    gst::init().unwrap();
    let path = temp_dir("bars").join("bars.avi");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,width=320,height=240,framerate=25/1 ! jpegenc ! \
         avimux ! filesink location={}",
        path.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    bus.timed_pop_filtered(gst::ClockTime::from_seconds(20), &[gst::MessageType::Eos])
        .unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    for mode in ["static", "tracking"] {
        let json = track(&path, &path.with_extension(format!("{mode}.json")), mode);
        let frames = json["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 3);
        for f in frames {
            assert_eq!(f["face"], false);
            assert!(f["landmarks"].is_null() && f["box"].is_null());
        }
    }
}

#[test]
fn unreadable_input_is_an_error() {
    let dir = temp_dir("bad");
    let bogus = dir.join("not-media.mp4");
    std::fs::write(&bogus, b"this is not a video").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_iplap"))
        .args(["track", "-o"])
        .arg(dir.join("out.json"))
        .arg(&bogus)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("not-media.mp4"), "{err}");
}

#[test]
fn audio_only_and_empty_inputs_fail_cleanly() {
    let Some(mp3) = iplap::testdata::shared_path("media/abstract.mp3") else {
        return;
    };
    if !face_models_ready() {
        return;
    }
    let dir = temp_dir("novideo");
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    for (input, says) in [(&mp3, "no video stream in"), (&empty, "empty")] {
        // Criticals (a decoder pipeline disposed outside NULL) abort under fatal-criticals.
        let run = Command::new(env!("CARGO_BIN_EXE_iplap"))
            .args(["track", "-o"])
            .arg(dir.join("out.json"))
            .arg(input)
            .env("G_DEBUG", "fatal-criticals")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        eprintln!("{err}");
        assert_eq!(run.status.code(), Some(1), "{}: {err}", input.display());
        assert!(!err.contains("CRITICAL"), "{err}");
        let name = input.file_name().unwrap().to_string_lossy();
        assert!(err.contains(says) && err.contains(name.as_ref()), "{err}");
    }
}
