//! The installed plugin and CLI work with nothing but the installed files (issue 13 §2):
//! `scripts/install.sh` into a temporary prefix outside the checkout, then `gst-inspect-1.0`, a
//! short pipeline of both elements and `iplap track` with an environment that names no iplap
//! path (no `GST_PLUGIN_PATH` into the build folder, no `ORT_DYLIB_PATH`, no `IPLAP_*`, a fresh
//! `HOME`). An installed copy never searches the checkout (its code does not lie inside it), so
//! the files it uses must be the installed ones; the logs say which it took.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A temporary folder outside the checkout, removed on drop.
fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("iplap-install-{tag}-"))
        .tempdir_in(std::env::temp_dir())
        .unwrap()
}

/// `program args` with a clean environment: only PATH and what `env` adds.
fn run(program: &Path, args: &[&str], home: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        // Neither the system data folders nor a real user's: only what the test installs.
        .env("XDG_DATA_DIRS", home.join("no-system-data"))
        .env("GST_REGISTRY", home.join("registry.bin"))
        .current_dir(home)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(300));
        // SAFETY: signalling our own child (a no-op once it has exited and been reaped).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().unwrap();
    drop(watchdog);
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn install(args: &[&str], home: &Path) -> String {
    let script = Path::new(CHECKOUT).join("scripts/install.sh");
    let out = run(
        Path::new("bash"),
        &[&[script.to_str().unwrap()], args].concat(),
        home,
        &[],
    );
    let t = text(&out);
    assert!(out.status.success(), "install.sh {args:?} failed:\n{t}");
    t
}

fn package() -> PathBuf {
    common::formula_package("install-package", &["landmark_generator", "renderer"])
}

/// A few frames of 129.mp4 through both elements with no path property set.
fn short_pipeline(video: &Path) -> Vec<String> {
    format!(
        "iplaplandmarks name=lm reference-location={v} ! iplaprender references=1 ! fakesink \
         filesrc location={v} ! decodebin ! identity eos-after=6 ! videoconvert \
           ! video/x-raw,format=BGRx ! lm.video_sink \
         audiotestsrc num-buffers=30 ! audioconvert ! audioresample ! lm.audio_sink",
        v = video.display()
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

#[test]
fn an_installed_prefix_works_without_the_checkout() {
    let video = iplap::require_shared!("media/129.mp4");
    let tmp = scratch("prefix");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let prefix = tmp.path().join("prefix");
    let said = install(&[prefix.to_str().unwrap()], &home);
    assert!(said.contains("GST_PLUGIN_PATH"), "{said}");
    let data = prefix.join("share/iplap");
    // The model package a user would convert into the data folder.
    // (install.sh copied the checkout's own package when it has one.)
    if !data.join("models/ip_lap").exists() {
        std::fs::create_dir_all(data.join("models")).unwrap();
        std::os::unix::fs::symlink(package(), data.join("models/ip_lap")).unwrap();
    }
    let plugins = prefix.join("lib/gstreamer-1.0");
    let gst_env = [("GST_PLUGIN_PATH", plugins.as_path())];

    // The installed CLI loads the installed ONNX Runtime: the GPU build (with its provider
    // libraries and CUDA wheels beside it) when setup installed the GPU runtime.
    let out = run(&prefix.join("bin/iplap"), &["devices"], &home, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let ort_line = t.lines().next().unwrap_or_default();
    assert!(
        ort_line.contains(data.join("onnxruntime").to_str().unwrap()),
        "{t}"
    );
    let gpu_runtime = Path::new(CHECKOUT).join(".venv/gpu/.installed").is_file();
    assert_eq!(ort_line.contains("(GPU build)"), gpu_runtime, "{t}");
    if gpu_runtime {
        // With the GPU runtime comes NVRTC: the installed CLI compiles the kernels with the
        // installed copy, not the checkout's.
        let cubins = tmp.path().join("cubins");
        let out = run(
            &prefix.join("bin/iplap"),
            &[
                "kernels",
                "--arch",
                "sm_86",
                "--out",
                cubins.to_str().unwrap(),
            ],
            &home,
            &[],
        );
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(t.contains(data.join("nvrtc").to_str().unwrap()), "{t}");
    }

    let out = run(
        Path::new("gst-inspect-1.0"),
        &["iplaplandmarks"],
        &home,
        &gst_env,
    );
    let t = text(&out);
    assert!(out.status.success() && t.contains("audio_src"), "{t}");

    let args = short_pipeline(&video);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let debug = Path::new("iplaplandmarks:4,iplaprender:4");
    let log_env = [gst_env[0], ("GST_DEBUG", debug)];
    let out = run(Path::new("gst-launch-1.0"), &args, &home, &log_env);
    let t = text(&out);
    assert!(out.status.success() && t.contains("Got EOS"), "{t}");
    let checkout = Path::new(CHECKOUT).canonicalize().unwrap();
    for (what, at) in [
        ("a model package", data.join("models/ip_lap")),
        ("the face models", data.join("face")),
        ("ONNX Runtime:", data.join("onnxruntime/libonnxruntime.so")),
    ] {
        let line = t
            .lines()
            .find(|l| l.contains(what) && (l.contains("Using") || what.ends_with(':')))
            .unwrap_or_else(|| panic!("no log line for {what}:\n{t}"));
        assert!(
            line.contains(at.to_str().unwrap()) && line.contains("install prefix")
                || line.contains("InstallPrefix"),
            "{what} not from the prefix: {line}"
        );
        assert!(!line.contains(checkout.to_str().unwrap()), "{line}");
    }

    // The installed CLI finds the same files beside itself.
    let json = home.join("landmarks.json");
    let cut = tmp.path().join("cut.mp4");
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc", &format!("location={}", video.display())])
        .args([
            "!",
            "decodebin",
            "!",
            "identity",
            "eos-after=5",
            "!",
            "videoconvert",
        ])
        .args([
            "!",
            "video/x-raw,format=I420",
            "!",
            "x264enc",
            "!",
            "mp4mux",
            "!",
        ])
        .args(["filesink", &format!("location={}", cut.display())])
        .status()
        .unwrap();
    assert!(status.success());
    let out = run(
        &prefix.join("bin/iplap"),
        &["track", cut.to_str().unwrap(), "-o", json.to_str().unwrap()],
        &home,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(json.is_file());

    // Without the face models, the error names every place it tried and how to make them.
    std::fs::remove_dir_all(data.join("face")).unwrap();
    let out = run(Path::new("gst-launch-1.0"), &args, &home, &gst_env);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains(data.join("face").to_str().unwrap())
            && t.contains(home.join(".local/share/iplap/face").to_str().unwrap())
            && t.contains("prepare-face-models"),
        "{t}"
    );
    assert!(
        !t.contains(checkout.to_str().unwrap()),
        "the checkout was searched:\n{t}"
    );
}

/// `--user`: GStreamer's own user plugin folder, found with no `GST_PLUGIN_PATH` at all.
#[test]
fn a_user_install_is_found_by_gstreamer_as_is() {
    let tmp = scratch("user");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // install.sh reads HOME (and XDG_DATA_HOME, unset here) like GStreamer does.
    let script = Path::new(CHECKOUT).join("scripts/install.sh");
    let out = run(
        Path::new("bash"),
        &[script.to_str().unwrap(), "--user"],
        &home,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        home.join(".local/share/gstreamer-1.0/plugins/libgstiplap.so")
            .is_file()
    );
    assert!(home.join(".local/share/iplap/face").is_dir());
    let out = run(Path::new("gst-inspect-1.0"), &["iplaprender"], &home, &[]);
    assert!(out.status.success(), "{}", text(&out));
}
