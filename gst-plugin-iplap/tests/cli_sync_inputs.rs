//! `iplap sync` answers every bad input (issue 13): an output that is not a regular file, a face
//! file without video or empty, a face too small or of odd size, speech at a rate MP4 cannot
//! declare, signals, and the temporary files a killed run leaves behind. Also the element: a
//! `reference-location` without video must end `gst-launch-1.0` with the error, not hang it.
//!
//! The whole runs are tiny (a still face, a third of a second of speech, one reference), a few
//! seconds each; refusals happen before any work and take a fraction of a second.

mod common;
mod sync_support;

use std::ffi::OsStr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gstiplap::decode::RgbFrame;
use sync_support::{
    RUN_LIMIT, cut_wav, decode_frames, demuxed_caps, face_models, face_models_ready,
    failure_stderr, has_entries, heavy, launch_to_eos, output_within, package, probe_mp4,
    resize_canvas, signal_when, sync_command, sync_command_with, sync_fails, temp_dir, write_mp4,
    write_png, write_png_scaled, write_tone_wav,
};

/// The first frame of 129.mp4 (a face filling most of its 256 x 256).
fn face_frame() -> Option<RgbFrame> {
    let video = iplap::testdata::shared_path("media/129.mp4")?;
    decode_frames(&video).into_iter().next()
}

/// `iplap sync` with one reference (these tests check files, not pixels: fastest renderer).
fn quick_sync(face: &Path, audio: &Path, out: &Path, extra: &[&OsStr]) -> Command {
    sync_command_with(face, audio, out, package(), 1, extra)
}

/// Runs `cmd` to success within [`RUN_LIMIT`]; returns stderr.
fn succeeds(cmd: &mut Command) -> String {
    let run: Output = output_within(cmd, RUN_LIMIT);
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    eprintln!("{err}");
    assert!(run.status.success(), "{cmd:?} failed");
    err
}

/// A third of a second of audio2.wav: 4 output frames, 2 of them rendered.
fn short_speech(dir: &Path) -> Option<PathBuf> {
    let wav = iplap::testdata::shared_path("media/audio2.wav")?;
    let cut = dir.join("speech.wav");
    cut_wav(&wav, 0.3, &cut);
    Some(cut)
}

/// Names in `dir` containing `needle`.
fn names_with(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(needle))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn outputs_that_are_not_regular_files_are_refused() {
    let dir = temp_dir("special");
    let (face, audio) = (dir.join("face.mp4"), dir.join("speech.wav"));
    std::fs::write(&face, b"x").unwrap();
    std::fs::write(&audio, b"x").unwrap();
    let kind = |p: &Path| std::fs::symlink_metadata(p).unwrap().file_type();

    let fifo = dir.join("fifo.mp4");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let err = sync_fails(&face, &audio, &fifo, None);
    assert!(
        err.contains("fifo.mp4") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(kind(&fifo).is_fifo(), "the FIFO must stay a FIFO");

    // A copy of /dev/null: today's danger is renaming the MP4 over a device node.
    let device = dir.join("null.mp4");
    let c = std::ffi::CString::new(device.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; makedev(1, 3) is /dev/null's number.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) };
    if made == 0 {
        let err = sync_fails(&face, &audio, &device, None);
        assert!(
            err.contains("null.mp4") && err.contains("character device"),
            "{err}"
        );
        assert!(
            kind(&device).is_char_device(),
            "the node must stay a device"
        );
    } else {
        eprintln!(
            "\n!!!!!!!! SKIPPED the character-device case: mknod is not permitted here ({}) \
             !!!!!!!!\n",
            std::io::Error::last_os_error()
        );
    }

    // A symbolic link is followed: to a FIFO it is refused, dangling it is named.
    let link = dir.join("link.mp4");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let err = sync_fails(&face, &audio, &link, None);
    assert!(err.contains("not a regular file"), "{err}");
    assert!(kind(&link).is_symlink() && kind(&fifo).is_fifo());
    let dangling = dir.join("dangling.mp4");
    std::os::unix::fs::symlink(dir.join("nowhere").join("x.mp4"), &dangling).unwrap();
    let err = sync_fails(&face, &audio, &dangling, None);
    assert!(
        err.contains("dangling.mp4") && err.contains("does not exist"),
        "{err}"
    );
    assert!(kind(&dangling).is_symlink());
}

#[test]
fn a_symlinked_output_replaces_its_target() {
    if !face_models_ready() {
        return;
    }
    let Some(frame) = face_frame() else {
        return;
    };
    let _heavy = heavy();
    let dir = temp_dir("symlink");
    let Some(speech) = short_speech(&dir) else {
        return;
    };
    let face = dir.join("face.png");
    write_png(&frame, &face);
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let target = elsewhere.join("target.mp4");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.join("link.mp4");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    succeeds(&mut quick_sync(&face, &speech, &link, &[]));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced instead of its target"
    );
    assert_eq!(
        probe_mp4(&target).video_frames,
        4,
        "the target holds the MP4"
    );
    assert!(names_with(&elsewhere, "partial").is_empty());
}

#[test]
fn face_without_video_or_empty_is_named() {
    let Some(mp3) = iplap::testdata::shared_path("media/abstract.mp3") else {
        return;
    };
    if !face_models_ready() {
        return;
    }
    let dir = temp_dir("novideo");
    let wav = dir.join("speech.wav");
    write_tone_wav(&wav);
    let out = dir.join("out.mp4");
    let err = sync_fails(&mp3, &wav, &out, None);
    assert!(
        err.contains("no video stream in") && err.contains("abstract.mp3"),
        "{err}"
    );
    assert!(!err.contains("not-linked"), "{err}");
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let err = sync_fails(&empty, &wav, &out, None);
    assert!(err.contains("empty.mp4") && err.contains("empty"), "{err}");
    let err = sync_fails(&wav, &empty, &out, None);
    assert!(err.contains("empty.mp4") && err.contains("empty"), "{err}");
}

#[test]
fn reference_location_without_video_ends_gst_launch() {
    let Some(mp3) = iplap::testdata::shared_path("media/abstract.mp3") else {
        return;
    };
    if !face_models_ready() {
        return;
    }
    let dir = temp_dir("gst-launch");
    // The plugin as built beside the binary; a private registry so that the user's is untouched.
    let plugins = Path::new(env!("CARGO_BIN_EXE_iplap")).parent().unwrap();
    let pipeline = format!(
        "videotestsrc num-buffers=50 ! video/x-raw,format=RGB,width=64,height=64,framerate=25/1 \
         ! iplaplandmarks name=l reference-location={} models={} face-models={} ! fakesink \
         audiotestsrc num-buffers=50 ! audio/x-raw,format=F32LE,rate=16000,channels=1 \
         ! l.audio_sink",
        mp3.display(),
        package().display(),
        face_models().display()
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(pipeline.split_whitespace())
        .env("GST_PLUGIN_PATH", plugins)
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env("G_DEBUG", "fatal-criticals");
    // Today's failure is a hang (a decoder left in PAUSED keeps a task alive): 60 s is far more
    // than the error needs (under a second after the registry scan).
    let run = output_within(&mut cmd, std::time::Duration::from_secs(60));
    let text =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    eprintln!("{text}");
    assert!(!run.status.success(), "gst-launch-1.0 should fail");
    assert!(run.status.code().is_some(), "killed by a signal: {text}");
    assert!(
        text.contains("abstract.mp3") && text.contains("no video stream"),
        "{text}"
    );
    assert!(!text.contains("CRITICAL"), "{text}");
}

#[test]
fn a_face_smaller_than_the_encoder_takes_is_refused_early() {
    if !face_models_ready() {
        return;
    }
    let Some(frame) = face_frame() else {
        return;
    };
    let dir = temp_dir("tiny");
    // The face scaled to 17 x 15: MediaPipe still finds it, x264 cannot encode 15 rows.
    let face = dir.join("tiny.png");
    write_png_scaled(&frame, 17, 15, &face);
    let wav = dir.join("speech.wav");
    write_tone_wav(&wav);
    let err = sync_fails(&face, &wav, &dir.join("out.mp4"), None);
    assert!(
        err.contains("17x15") && err.contains("16x16") && err.contains("too small"),
        "{err}"
    );
    assert!(
        !err.contains("not-negotiated") && !err.contains("   "),
        "{err}"
    );
}

#[test]
fn an_odd_size_is_padded_not_cropped() {
    if !face_models_ready() {
        return;
    }
    let Some(frame) = face_frame() else {
        return;
    };
    let _heavy = heavy();
    let dir = temp_dir("odd");
    let Some(speech) = short_speech(&dir) else {
        return;
    };
    // 255 x 511: the face without its last column, above a black band.
    let face = dir.join("odd.png");
    write_png(&resize_canvas(&frame, 255, 511), &face);
    let (out, dump) = (dir.join("odd.mp4"), dir.join("frames"));
    let summary = succeeds(&mut quick_sync(
        &face,
        &speech,
        &out,
        &["--dump-frames".as_ref(), dump.as_os_str()],
    ));
    assert!(summary.contains("256x512"), "{summary}");
    let decoded = decode_frames(&out);
    assert_eq!(decoded.len(), 4);
    let last = decoded.last().unwrap();
    assert_eq!((last.width, last.height), (256, 512), "padded to even");
    // The whole picture is kept where it was: the encoded frame's first 255 x 511 are the frame
    // before encoding (H.264 at CRF 18 moves values by a few codes), the added column is black.
    let before: ndarray::Array3<u8> = ndarray_npy::read_npy(dump.join("frame_00003.npy")).unwrap();
    assert_eq!(before.shape(), &[511, 255, 3]);
    let mut diff = 0u64;
    for y in 0..511 {
        for x in 0..255 {
            for c in 0..3 {
                let got = last.data[(y * 256 + x) * 3 + c];
                diff += u64::from(got.abs_diff(before[[y, x, c]]));
            }
        }
    }
    let mean = diff as f64 / (511.0 * 255.0 * 3.0);
    assert!(
        mean < 3.0,
        "mean difference {mean} to the frame before H.264"
    );
    let column: u64 = (0..512)
        .map(|y| u64::from(last.data[(y * 256 + 255) * 3]))
        .sum();
    assert!(column / 512 < 24, "the added column is black");
}

#[test]
fn high_rate_speech_is_muxed_at_48_khz() {
    if !face_models_ready() {
        return;
    }
    let Some(frame) = face_frame() else {
        return;
    };
    let _heavy = heavy();
    let dir = temp_dir("96k");
    let speech = dir.join("speech-96k.wav");
    launch_to_eos(&format!(
        "audiotestsrc wave=saw num-buffers=15 samplesperbuffer=1920 ! \
         audio/x-raw,rate=96000,channels=1 ! wavenc ! filesink location={}",
        speech.display()
    ));
    let face = dir.join("face.png");
    write_png(&frame, &face);
    let out = dir.join("out.mp4");
    succeeds(&mut quick_sync(&face, &speech, &out, &[]));
    // The MP4 sample entry holds the rate as 16.16 fixed point: 96000 would read back as 30464.
    let rates: Vec<i32> = demuxed_caps(&out)
        .iter()
        .filter_map(|c| c.structure(0))
        .filter(|s| s.name().starts_with("audio/"))
        .filter_map(|s| s.get::<i32>("rate").ok())
        .collect();
    assert_eq!(rates, [48_000], "the container's audio rate");
    let audio = probe_mp4(&out).audio_caps.expect("an audio track");
    let decoded = audio.structure(0).unwrap().get::<i32>("rate").unwrap();
    assert_eq!(decoded, 48_000, "the decoded audio rate");
}

/// A 6-frame cut of 129.mp4 and two seconds of speech: a run that renders for about a minute,
/// so that a signal reaches it mid-stream; `None` when the shared media are missing.
fn long_run_inputs(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let video = iplap::testdata::shared_path("media/129.mp4")?;
    let wav = iplap::testdata::shared_path("media/audio2.wav")?;
    let face = dir.join("129-cut.mp4");
    write_mp4(&decode_frames(&video)[..6], &face);
    let speech = dir.join("speech.wav");
    cut_wav(&wav, 2.0, &speech);
    Some((face, speech))
}

#[test]
fn sigterm_and_sighup_exit_with_128_plus_the_signal_and_leave_nothing() {
    if !face_models_ready() {
        return;
    }
    let _heavy = heavy();
    let dir = temp_dir("signals");
    let Some((face, speech)) = long_run_inputs(&dir) else {
        return;
    };
    for (signal, name, code) in [(libc::SIGTERM, "term", 143), (libc::SIGHUP, "hup", 129)] {
        let (out, dump, tmp) = (
            dir.join(format!("{name}.mp4")),
            dir.join(format!("{name}-frames")),
            dir.join(format!("{name}-tmp")),
        );
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = sync_command(
            &face,
            &speech,
            &out,
            &["--dump-frames".as_ref(), dump.as_os_str()],
        )
        .env("TMPDIR", &tmp)
        .spawn()
        .unwrap();
        // Once frames are being written: the MP4 is half done and the bank file exists.
        let status = signal_when(&mut child, signal, || has_entries(&dump));
        assert_eq!(
            status.code(),
            Some(code),
            "exit status after signal {signal}"
        );
        assert!(!out.exists(), "no output after signal {signal}");
        assert_eq!(names_with(&dir, ".partial"), Vec::<String>::new());
        // (ONNX Runtime keeps a `.ses` file of its own in the temporary folder.)
        assert_eq!(
            names_with(&tmp, "iplap"),
            Vec::<String>::new(),
            "signal {signal}"
        );
    }
}

#[test]
fn the_files_of_a_killed_run_are_swept_by_the_next() {
    if !face_models_ready() {
        return;
    }
    let _heavy = heavy();
    let dir = temp_dir("sigkill");
    let Some((face, speech)) = long_run_inputs(&dir) else {
        return;
    };
    let (out, tmp) = (dir.join("out.mp4"), dir.join("tmp"));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = quick_sync(&face, &speech, &out, &[])
        .env("TMPDIR", &tmp)
        .spawn()
        .unwrap();
    let pid = child.id();
    let partial = dir.join(format!(".out.mp4.partial-{pid}"));
    let bank = tmp.join(format!("iplap-sync-{pid}-reference.bank"));
    // SIGKILL cannot be handled: what the run had made stays behind.
    signal_when(&mut child, libc::SIGKILL, || bank.is_file());
    assert!(partial.is_file() && bank.is_file(), "nothing left to sweep");
    // Files of a live process (this test's) must survive the sweep.
    let me = std::process::id();
    let live = [
        dir.join(format!(".out.mp4.partial-{me}")),
        tmp.join(format!("iplap-sync-{me}-reference.bank")),
    ];
    for f in &live {
        std::fs::write(f, b"live").unwrap();
    }
    // The next run sweeps at its start, before it fails on speech too short to sync.
    let short = dir.join("short.wav");
    sync_support::write_wav(&short, std::iter::repeat_n(0, 1000));
    let mut next = quick_sync(&face, &short, &out, &[]);
    let err = failure_stderr(next.env("TMPDIR", &tmp).env("G_DEBUG", "fatal-criticals"));
    assert!(
        err.contains("too short") && err.contains("removed"),
        "{err}"
    );
    assert!(!partial.exists(), "{} was not swept", partial.display());
    assert!(!bank.exists(), "{} was not swept", bank.display());
    for f in &live {
        assert!(f.is_file(), "{} of a live process was removed", f.display());
    }
}
