//! What `iplap sync` tells the user: progress while it works (frames done, frames/s, ETA) and a
//! summary at the end (what was written, where the time went).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde_json::json;

use gstiplap::render::stats::STATS_FIELDS;

use super::SyncArgs;
use super::pipeline::StreamTimes;
use super::timeline::{FPS, Plan};

/// A spinner for the preparation (hidden when not interactive or not on a terminal).
pub fn spinner(interactive: bool, message: &str) -> ProgressBar {
    if !interactive {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message(message.to_owned());
    bar
}

/// The bar over the output frames.
pub fn frames_bar(interactive: bool, frames: usize) -> ProgressBar {
    if !interactive {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(frames as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} frames, {fps}, elapsed {elapsed}, eta {eta}",
        )
        .map(|style| {
            style.with_key(
                "fps",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.2} frames/s", state.per_sec());
                },
            )
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message("lip-syncing");
    // Ticks while the models load and the first window fills, before any frame is done.
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// Everything a run measured.
pub struct Report {
    pub plan: Plan,
    /// Frames decoded from the face file.
    pub decoded: usize,
    /// 25 fps template frames with a usable face.
    pub face_frames: usize,
    pub width: usize,
    pub height: usize,
    pub audio_seconds: f64,
    /// Named preparation steps before the pipeline.
    pub prepare: [(&'static str, Duration); 3],
    pub stream: StreamTimes,
    pub total: Duration,
}

impl Report {
    /// Seconds per output frame, everything included.
    pub fn per_frame(&self) -> f64 {
        self.total.as_secs_f64() / self.plan.output_frames.max(1) as f64
    }

    /// Per-stage seconds: the preparation steps, model loading with the first window, landmark
    /// work and rendering per rendered frame, and the encoder/muxer drain.
    pub fn stages(&self) -> serde_json::Value {
        let s = &self.stream;
        let per = |d: Duration| d.as_secs_f64() / s.rendered.max(1) as f64;
        let mut render_steps = serde_json::Map::new();
        for (name, d) in STATS_FIELDS.iter().zip(s.render_steps) {
            render_steps.insert((*name).into(), json!(per(d)));
        }
        let mut prepare = serde_json::Map::new();
        for (name, d) in &self.prepare {
            prepare.insert((*name).into(), json!(d.as_secs_f64()));
        }
        json!({
            "prepare_s": prepare,
            "start_s": s.start.as_secs_f64(),
            "landmarks_per_frame_s": per(s.landmarks),
            "render_per_frame_s": per(s.render),
            "render_steps_per_frame_s": render_steps,
            "rendered_frames": s.rendered,
            "finish_s": s.finish.as_secs_f64(),
        })
    }

    /// One JSON object (for `iplap bench sync --json`).
    pub fn json(&self, references: u32, threads: u32) -> serde_json::Value {
        json!({
            "references": references,
            "threads": threads,
            "output_frames": self.plan.output_frames,
            "template_frames_25fps": self.plan.template_frames,
            "total_s": self.total.as_secs_f64(),
            "per_output_frame_s": self.per_frame(),
            "stages": self.stages(),
        })
    }

    /// The human summary, on stderr like the progress.
    pub fn print(&self, args: &SyncArgs) {
        let (plan, s) = (&self.plan, &self.stream);
        let no_face = plan.template_frames.saturating_sub(self.face_frames);
        eprintln!("wrote {}", args.output.display());
        eprintln!(
            "  video  {} frames at {FPS} fps ({:.2} s), {}x{} H.264; audio {:.2} s AAC",
            plan.output_frames,
            plan.duration_ns() as f64 / 1e9,
            self.width + self.width % 2,
            self.height + self.height % 2,
            self.audio_seconds,
        );
        let added = match (self.width % 2, self.height % 2) {
            (1, 1) => Some("a black column on the right and a black row at the bottom were"),
            (1, _) => Some("a black column on the right was"),
            (_, 1) => Some("a black row at the bottom was"),
            _ => None,
        };
        if let Some(added) = added {
            eprintln!(
                "         (the face is {}x{}: H.264 needs an even size, so {added} added)",
                self.width, self.height
            );
        }
        eprintln!(
            "  face   {} frame(s) decoded -> {} at {FPS} fps{}; {} reference(s)",
            self.decoded,
            plan.template_frames,
            match no_face {
                0 => String::new(),
                n => format!(", {n} without a face (written unchanged)"),
            },
            args.references
        );
        eprintln!(
            "  time   {:.1} s in all, {:.3} s per output frame:",
            self.total.as_secs_f64(),
            self.per_frame()
        );
        let line = |name: &str, value: String| eprintln!("    {name:<34} {value}");
        for (name, d) in &self.prepare {
            line(name, format!("{:8.2} s", d.as_secs_f64()));
        }
        line(
            "models + first window",
            format!("{:8.2} s", s.start.as_secs_f64()),
        );
        let per = |d: Duration| d.as_secs_f64() / s.rendered.max(1) as f64;
        for (name, d) in [
            ("landmarks (tracking, generator)", s.landmarks),
            ("renderer (sketches, network, paste)", s.render),
        ] {
            line(name, format!("{:8.3} s/frame x {}", per(d), s.rendered));
        }
        // The renderer's own split; reference encoding happens once per bank, not per frame.
        for (name, d) in STATS_FIELDS.iter().zip(s.render_steps) {
            if *name != "total" && !d.is_zero() {
                line(&format!("  {name}"), format!("{:8.3} s/frame", per(d)));
            }
        }
        line(
            "encoder + muxer drain",
            format!("{:8.2} s", s.finish.as_secs_f64()),
        );
    }
}
