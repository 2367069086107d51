//! Properties of `iplaplandmarks`: the [`Settings`] they set, their defaults and param specs.

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;

use super::Tracking;
use crate::device::DeviceSettings;

const DEFAULT_TRACKING: Tracking = Tracking::Static;
const DEFAULT_THREADS: u32 = 0;
const MAX_THREADS: u32 = 256;
const DEFAULT_ENROLL_DURATION_S: f64 = 3.0;
const MIN_ENROLL_DURATION_S: f64 = 0.04;
const MAX_ENROLL_DURATION_S: f64 = 60.0;
const DEFAULT_PROCESSING_LATENCY_MS: u32 = 100;
const MAX_PROCESSING_LATENCY_MS: u32 = 10_000;
const DEFAULT_AUDIO_STALL_TIMEOUT_MS: u32 = 5_000;
const MAX_AUDIO_STALL_TIMEOUT_MS: u32 = 600_000;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) models: Option<PathBuf>,
    pub(super) face_models: Option<PathBuf>,
    pub(super) tracking: Tracking,
    pub(super) threads: u32,
    pub(super) device: DeviceSettings,
    pub(super) enroll_duration_s: f64,
    pub(super) reference_location: Option<PathBuf>,
    pub(super) reference_bank: Option<PathBuf>,
    pub(super) reference_bank_save: Option<PathBuf>,
    pub(super) processing_latency_ms: u32,
    pub(super) audio_stall_timeout_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            models: None,
            face_models: None,
            tracking: DEFAULT_TRACKING,
            threads: DEFAULT_THREADS,
            device: DeviceSettings::default(),
            enroll_duration_s: DEFAULT_ENROLL_DURATION_S,
            reference_location: None,
            reference_bank: None,
            reference_bank_save: None,
            processing_latency_ms: DEFAULT_PROCESSING_LATENCY_MS,
            audio_stall_timeout_ms: DEFAULT_AUDIO_STALL_TIMEOUT_MS,
        }
    }
}

/// The param specs, defaults read from [`Settings::default`].
pub(super) fn param_specs() -> Vec<glib::ParamSpec> {
    let d = Settings::default();
    let mut specs = vec![
        glib::ParamSpecString::builder("models")
            .nick("Model Package")
            .blurb("Folder with the converted model package (written by `iplap convert`). Unset: $IPLAP_MODELS, then models/ip_lap in the data folders ($IPLAP_DATA_DIR, ~/.local/share/iplap, PREFIX/share/iplap, /usr/local/share/iplap, /usr/share/iplap), then the checkout.")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("face-models")
            .nick("Face Models")
            .blurb("Folder with the converted MediaPipe face detector and mesh (scripts/setup.sh makes it). Unset: $IPLAP_FACE_MODELS, then face/ in the data folders (as for `models`), then the checkout.")
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("tracking", d.tracking)
            .nick("Tracking")
            .blurb("static: detect the face on every frame (official); tracking: follow it and detect only when lost (cheaper).")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("threads")
            .nick("Threads")
            .blurb("Threads per network (ONNX Runtime intra-op threads); 0 = one per physical core.")
            .minimum(0)
            .maximum(MAX_THREADS)
            .default_value(d.threads)
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("enroll-duration")
            .nick("Enrolment Duration")
            .blurb("Seconds of face frames collected from the stream to select the reference bank when no reference-bank or reference-location is set; frames before that carry \"enrolling\" meta.")
            .minimum(MIN_ENROLL_DURATION_S)
            .maximum(MAX_ENROLL_DURATION_S)
            .default_value(d.enroll_duration_s)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("reference-location")
            .nick("Reference Location")
            .blurb("Video or image file whose frames make the reference bank at start, as the official script and `iplap sync` choose it (the file converted to 25 fps, then the official selection over those frames); slows the start by one decode + tracking pass.")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("reference-bank")
            .nick("Reference Bank")
            .blurb("Reference bank file saved by reference-bank-save; loaded at start (instant start, wins over reference-location).")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("reference-bank-save")
            .nick("Save Reference Bank")
            .blurb("File to save the reference bank to once it is ready (after enrolment, or at start).")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("processing-latency")
            .nick("Processing Latency")
            .blurb("Time budget for tracking and the landmark generator per frame, in milliseconds. Will count towards total latency.")
            .minimum(0)
            .maximum(MAX_PROCESSING_LATENCY_MS)
            .default_value(d.processing_latency_ms)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("audio-stall-timeout")
            .nick("Audio Stall Timeout")
            .blurb("Milliseconds that video may wait for audio that does not arrive before a warning says the audio branch upstream is blocked (typically a tee whose other branch is full: take the audio from audio_src instead); 0 = never warn.")
            .minimum(0)
            .maximum(MAX_AUDIO_STALL_TIMEOUT_MS)
            .default_value(d.audio_stall_timeout_ms)
            .mutable_ready()
            .build(),
    ];
    specs.extend(DeviceSettings::param_specs());
    specs
}

impl Settings {
    /// Sets property `name` (type-checked by GObject already).
    pub(super) fn set(&mut self, name: &str, value: &glib::Value) {
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        let get = "type checked upstream";
        match name {
            "models" => self.models = path(value),
            "face-models" => self.face_models = path(value),
            "tracking" => self.tracking = value.get().expect(get),
            "threads" => self.threads = value.get().expect(get),
            "enroll-duration" => self.enroll_duration_s = value.get().expect(get),
            "reference-location" => self.reference_location = path(value),
            "reference-bank" => self.reference_bank = path(value),
            "reference-bank-save" => self.reference_bank_save = path(value),
            "processing-latency" => self.processing_latency_ms = value.get().expect(get),
            "audio-stall-timeout" => self.audio_stall_timeout_ms = value.get().expect(get),
            _ if self.device.set(name, value) => {}
            _ => unimplemented!("no property {name}"),
        }
    }

    /// The value of property `name`.
    pub(super) fn get(&self, name: &str) -> glib::Value {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        match name {
            "models" => path(&self.models).to_value(),
            "face-models" => path(&self.face_models).to_value(),
            "tracking" => self.tracking.to_value(),
            "threads" => self.threads.to_value(),
            "enroll-duration" => self.enroll_duration_s.to_value(),
            "reference-location" => path(&self.reference_location).to_value(),
            "reference-bank" => path(&self.reference_bank).to_value(),
            "reference-bank-save" => path(&self.reference_bank_save).to_value(),
            "processing-latency" => self.processing_latency_ms.to_value(),
            "audio-stall-timeout" => self.audio_stall_timeout_ms.to_value(),
            _ => self
                .device
                .get(name)
                .unwrap_or_else(|| unimplemented!("no property {name}")),
        }
    }
}
