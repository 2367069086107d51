//! The streaming side of `iplaplandmarks`: the running [`State`] (models, engine, queued
//! buffers) and one aggregate step (feed one buffer, take out every ready frame with its meta).
//! Nothing here pushes or posts: the element does that after releasing the state lock.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::subclass::prelude::*;
use gst_video::prelude::*;
use iplap::audio::SAMPLE_RATE;
use iplap::engine::bank::ReferenceBank;
use iplap::engine::bank_template::TemplateScan;
use iplap::engine::landmarks::{BankMode, FrameStatus, LandmarkEngine};
use iplap::face::tracker::{FaceTracker, Mode};
use iplap::graph::package::ModelPackage;
use iplap::image::{ChannelOrder, ImageRef};
use iplap::runtime::{DeviceConfig, SessionConfig};

use super::imp::{CAT, IplapLandmarks};
use super::reference::build_from_file;
use super::settings::Settings;
use crate::data::resolve;
use crate::meta::{LandmarkMeta, add_roi_mirror};
use iplap::data_files::DataFile;

/// Frame duration assumed when neither the buffer nor the caps give one (25 fps).
pub(super) const FALLBACK_FRAME_DURATION: gst::ClockTime = gst::ClockTime::from_mseconds(40);

/// A video buffer handed to the engine and waiting for its result.
struct Queued {
    buffer: gst::Buffer,
    running_time: u64,
    caps: gst::Caps,
    segment: gst::Segment,
}

/// One frame ready to leave, with what must be sent before it.
pub(super) struct Output {
    pub(super) buffer: gst::Buffer,
    pub(super) caps: Option<gst::Caps>,
    pub(super) segment: Option<gst::Segment>,
    /// Running time just after the frame (the `audio_src` release point).
    pub(super) running_end: u64,
}

/// Everything that exists only while running. Locked by the streaming thread (aggregate, serialized
/// events, flush) and by start/stop, which never run concurrently with it, so holding it while the
/// models run blocks no other thread; it is never held across a push, a post or `set_latency`.
pub(super) struct State {
    engine: LandmarkEngine,
    tracker: FaceTracker,
    video_caps: Option<gst::Caps>,
    video_info: Option<gst_video::VideoInfo>,
    audio_info: Option<gst_audio::AudioInfo>,
    queue: VecDeque<Queued>,
    /// Frames with their result that wait for the audio up to their end to have arrived, so
    /// that `audio_src` can always carry the audio of a frame before the frame leaves: a sink
    /// prerolling on the frame must not keep the audio sink from prerolling (live pipelines
    /// reach PLAYING only when both have).
    held: VecDeque<Output>,
    /// Caps and segment last sent on `src`.
    src_caps: Option<gst::Caps>,
    src_segment: Option<gst::Segment>,
    audio_finished: bool,
    video_finished: bool,
    /// Running time just after the last audio sample (for buffers without PTS).
    audio_next: Option<u64>,
    samples: Vec<f32>,
    /// Whether the last output frame had a face (warnings fire on transitions only).
    had_face: Option<bool>,
    bank_save: Option<PathBuf>,
    pub(super) reported_latency: u64,
}

impl State {
    /// New video caps; a new resolution resets tracking (windows do not reach across it) but
    /// keeps the bank. Returns whether the resolution changed.
    pub(super) fn set_video_caps(&mut self, caps: gst::Caps, info: gst_video::VideoInfo) -> bool {
        let changed = self
            .video_info
            .as_ref()
            .is_some_and(|old| (old.width(), old.height()) != (info.width(), info.height()));
        if changed {
            self.engine.caps_changed();
            self.tracker.reset();
        }
        self.video_info = Some(info);
        self.video_caps = Some(caps);
        changed
    }

    /// New audio caps (already checked: 16 kHz mono).
    pub(super) fn set_audio_info(&mut self, info: gst_audio::AudioInfo) {
        self.audio_info = Some(info);
    }

    pub(super) fn reset_stream(&mut self) {
        self.engine.reset();
        self.tracker.reset();
        self.queue.clear();
        self.held.clear();
        self.src_segment = None;
        self.audio_finished = false;
        self.video_finished = false;
        self.audio_next = None;
        self.had_face = None;
    }
}

/// What one aggregate step produced; pushed and posted after the state lock is released.
#[derive(Default)]
pub(super) struct Step {
    pub(super) outputs: Vec<Output>,
    pub(super) warnings: Vec<String>,
    pub(super) latency: Option<u64>,
    pub(super) eos: bool,
    /// The consumed audio buffer's running time and duration (for `audio_src`).
    pub(super) audio_span: Option<(Option<u64>, u64)>,
}

impl State {
    /// Loads the models and the bank (called from `start`).
    pub(super) fn load(
        imp: &IplapLandmarks,
        settings: &Settings,
    ) -> Result<State, gst::ErrorMessage> {
        let element = imp.obj();
        let element = element.upcast_ref::<gst::Object>();
        let models = resolve(
            settings.models.as_deref(),
            DataFile::ModelPackage,
            "models",
            element,
            *CAT,
        )?;
        let face_models = resolve(
            settings.face_models.as_deref(),
            DataFile::FaceModels,
            "face-models",
            element,
            *CAT,
        )?;
        crate::data::init_runtime(element, *CAT)?;
        settings
            .device
            .load(imp.obj().upcast_ref::<gst::Element>(), *CAT, |device| {
                Self::load_on(imp, settings, &models, &face_models, device)
            })
    }

    /// [`Self::load`] on a resolved device.
    fn load_on(
        imp: &IplapLandmarks,
        settings: &Settings,
        models: &std::path::Path,
        face_models: &std::path::Path,
        device: DeviceConfig,
    ) -> Result<State, gst::ErrorMessage> {
        let t0 = Instant::now();
        let package = ModelPackage::open(models).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ("cannot open the model package (`models` property): {e}")
            )
        })?;
        let config = SessionConfig {
            device: device.clone(),
            intra_threads: settings.threads as usize,
            ..SessionConfig::default()
        };
        let mode: Mode = settings.tracking.into();
        let tracker_err = |e| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ("cannot load the face models (`face-models` property): {e}")
            )
        };
        let tracker = FaceTracker::load(face_models, mode, &config).map_err(tracker_err)?;
        let bank_mode = if let Some(path) = &settings.reference_bank {
            if settings.reference_location.is_some() {
                gst::warning!(
                    CAT,
                    imp = imp,
                    "Both reference-bank and reference-location are set; using reference-bank"
                );
            }
            let bank = ReferenceBank::load(path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ("cannot load the reference bank (`reference-bank` property): {e}")
                )
            })?;
            BankMode::Fixed(Arc::new(bank))
        } else if let Some(path) = &settings.reference_location {
            // The bank `iplap sync` builds from this file: its 25 fps frames, tracked in static
            // mode as the official script does, whatever the element's `tracking`.
            let scan = TemplateScan::load(face_models, &config).map_err(tracker_err)?;
            let built = build_from_file(path, scan).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ("cannot build the reference bank (`reference-location` property): {e:#}")
                )
            })?;
            gst::info!(
                CAT,
                imp = imp,
                "Reference bank from {}: {} frames decoded, {} at 25 fps ({} tracked), {} with a face",
                path.display(),
                built.decoded,
                built.frames_25fps(),
                built.tracked,
                built.face_frames
            );
            BankMode::Fixed(Arc::new(built.bank))
        } else {
            BankMode::Enrol {
                duration_ns: (settings.enroll_duration_s * 1e9) as u64,
            }
        };
        let engine = LandmarkEngine::from_package(&package, &config, bank_mode).map_err(|e| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ("cannot load the landmark generator from the model package: {e}")
            )
        })?;
        gst::info!(
            CAT,
            imp = imp,
            "Models loaded in {:?} (device {}, {} threads, tracking {:?})",
            t0.elapsed(),
            device,
            settings.threads,
            settings.tracking
        );
        let reported_latency = engine.latency_ns();
        let mut state = State {
            engine,
            tracker,
            video_caps: None,
            video_info: None,
            audio_info: None,
            queue: VecDeque::new(),
            held: VecDeque::new(),
            src_caps: None,
            src_segment: None,
            audio_finished: false,
            video_finished: false,
            audio_next: None,
            samples: Vec::new(),
            had_face: None,
            bank_save: settings.reference_bank_save.clone(),
            reported_latency,
        };
        if let Some(w) = save_bank_if_ready(&mut state) {
            gst::warning!(CAT, imp = imp, "{w}");
        }
        Ok(state)
    }

    /// Converts and feeds one audio buffer; returns its running time (None when outside the
    /// segment) and duration.
    fn feed_audio(
        &mut self,
        buffer: &gst::Buffer,
        segment: &gst::FormattedSegment<gst::ClockTime>,
    ) -> Result<(Option<u64>, u64), String> {
        let info = self
            .audio_info
            .as_ref()
            .ok_or("audio buffer before audio caps")?;
        let bpf = info.bpf() as usize;
        let running_time = match buffer.pts() {
            Some(pts) => match segment.to_running_time(pts) {
                Some(rt) => rt.nseconds(),
                None => return Ok((None, 0)),
            },
            None => match self.audio_next {
                Some(t) => t,
                None => return Err("the first audio buffer has no timestamp".into()),
            },
        };
        let map = buffer
            .map_readable()
            .map_err(|_| "cannot map an audio buffer")?;
        let bytes = &map[..map.len() / bpf * bpf];
        self.samples.clear();
        if info.format() == gst_audio::AUDIO_FORMAT_S16 {
            self.samples.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0),
            );
        } else {
            self.samples.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        let n = self.samples.len() as u64;
        let duration = n * 1_000_000_000 / u64::from(SAMPLE_RATE);
        self.audio_next = Some(running_time + duration);
        self.engine
            .push_audio(running_time, &self.samples)
            .map_err(|e| e.to_string())?;
        Ok((Some(running_time), duration))
    }

    /// Tracks the face in one video buffer and queues it in the engine.
    fn feed_video(
        &mut self,
        imp: &IplapLandmarks,
        buffer: gst::Buffer,
        segment: &gst::FormattedSegment<gst::ClockTime>,
    ) -> Result<(), String> {
        let info = self
            .video_info
            .clone()
            .ok_or("video buffer before video caps")?;
        let caps = self.video_caps.clone().ok_or("video buffer before caps")?;
        let Some(pts) = buffer.pts() else {
            return Err("video buffers need timestamps (PTS)".into());
        };
        let Some(running_time) = segment.to_running_time(pts) else {
            gst::debug!(CAT, imp = imp, "Dropping video buffer outside the segment");
            return Ok(());
        };
        let duration = buffer
            .duration()
            .or_else(|| frame_duration(&info))
            .unwrap_or(FALLBACK_FRAME_DURATION);
        let order = channel_order(info.format()).ok_or("unsupported video format")?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
            .map_err(|_| "cannot map a video frame")?;
        let data = frame.plane_data(0).map_err(|e| e.to_string())?;
        let image = ImageRef::new(
            data,
            info.width() as usize,
            info.height() as usize,
            frame.plane_stride()[0] as usize,
            order,
        )
        .map_err(|e| e.to_string())?;
        let face = self
            .tracker
            .process(&image)
            .map_err(|e| format!("face tracking: {e}"))?;
        self.engine
            .push_video(
                running_time.nseconds(),
                duration.nseconds(),
                &image,
                face.as_ref().map(|f| f.normalized.as_slice()),
            )
            .map_err(|e| e.to_string())?;
        drop(frame);
        self.queue.push_back(Queued {
            buffer,
            running_time: running_time.nseconds(),
            caps,
            segment: segment.clone().upcast(),
        });
        Ok(())
    }

    /// Takes every ready result out of the engine and attaches it to its buffer.
    fn drain(&mut self, imp: &IplapLandmarks, step: &mut Step) -> Result<(), String> {
        while let Some(result) = self.engine.pop_ready().map_err(|e| e.to_string())? {
            let q = self
                .queue
                .pop_front()
                .ok_or("internal error: engine result without a queued buffer")?;
            if q.running_time != result.pts_ns {
                return Err(format!(
                    "internal error: result for {} ns but the queued buffer is at {} ns",
                    result.pts_ns, q.running_time
                ));
            }
            let has_face = !matches!(result.status, FrameStatus::NoFace);
            match (self.had_face, has_face) {
                (Some(true) | None, false) => step.warnings.push(format!(
                    "no face at running time {}: frames pass through without landmarks until one appears",
                    gst::ClockTime::from_nseconds(q.running_time)
                )),
                (Some(false), true) => gst::info!(
                    CAT,
                    imp = imp,
                    "Face found again at {}",
                    gst::ClockTime::from_nseconds(q.running_time)
                ),
                _ => {}
            }
            self.had_face = Some(has_face);
            let mut buffer = q.buffer;
            let running_end = q.running_time + result.duration_ns;
            {
                let b = buffer.make_mut();
                add_roi_mirror(b, &result.status);
                LandmarkMeta::add(b, result.status);
            }
            let caps = (self.src_caps.as_ref() != Some(&q.caps)).then(|| q.caps.clone());
            if caps.is_some() {
                self.src_caps = Some(q.caps);
            }
            let segment =
                (self.src_segment.as_ref() != Some(&q.segment)).then(|| q.segment.clone());
            if segment.is_some() {
                self.src_segment = Some(q.segment);
            }
            self.held.push_back(Output {
                buffer,
                caps,
                segment,
                running_end,
            });
        }
        // A frame leaves once the audio up to its end is in (or the audio ended); frames with a
        // face already waited for 212.5 ms more than that.
        while let Some(front) = self.held.front() {
            let audio_in =
                self.audio_finished || self.audio_next.is_some_and(|t| t >= front.running_end);
            if !audio_in {
                break;
            }
            step.outputs.extend(self.held.pop_front());
        }
        Ok(())
    }

    /// One aggregate step under the state lock: feed at most one buffer, then drain.
    pub(super) fn step(
        &mut self,
        imp: &IplapLandmarks,
        video: Option<(gst::Buffer, gst::FormattedSegment<gst::ClockTime>)>,
        audio: Option<(gst::Buffer, gst::FormattedSegment<gst::ClockTime>)>,
        video_eos: bool,
        audio_eos: bool,
        budget: Duration,
    ) -> Result<(Step, Option<bool>), String> {
        let mut step = Step::default();
        if audio_eos && !self.audio_finished {
            gst::debug!(CAT, imp = imp, "Audio EOS: padding with silence");
            self.engine.finish_audio();
            self.audio_finished = true;
        }
        let t0 = Instant::now();
        // Consume the earlier of the two buffers by running time (audio first on a tie: the
        // video frame needs it). `Some(true)` = video consumed, `Some(false)` = audio.
        let rt = |b: &gst::Buffer, s: &gst::FormattedSegment<gst::ClockTime>| {
            b.pts().and_then(|p| s.to_running_time(p))
        };
        let consumed = match (video, audio) {
            (Some((v, vs)), Some((a, as_))) if rt(&a, &as_) <= rt(&v, &vs) => {
                step.audio_span = Some(self.feed_audio(&a, &as_)?);
                Some(false)
            }
            (Some((v, vs)), _) => {
                self.feed_video(imp, v, &vs)?;
                Some(true)
            }
            (None, Some((a, as_))) => {
                step.audio_span = Some(self.feed_audio(&a, &as_)?);
                Some(false)
            }
            (None, None) => None,
        };
        if video_eos && !self.video_finished {
            gst::debug!(CAT, imp = imp, "Video EOS: draining the last frames");
            self.engine.finish_video().map_err(|e| e.to_string())?;
            self.video_finished = true;
        }
        self.drain(imp, &mut step)?;
        if consumed == Some(true) {
            let elapsed = t0.elapsed();
            if elapsed > budget {
                gst::warning!(
                    CAT,
                    imp = imp,
                    "Frame took {elapsed:?}, more than the processing-latency budget {budget:?}"
                );
            }
            let latency = self.engine.latency_ns();
            if latency != self.reported_latency {
                self.reported_latency = latency;
                step.latency = Some(latency);
            }
        }
        step.warnings.extend(save_bank_if_ready(self));
        step.eos = self.video_finished
            && self.engine.pending() == 0
            && self.queue.is_empty()
            && self.held.is_empty();
        Ok((step, consumed))
    }
}

/// Saves the bank to `reference-bank-save` once there is one (once per start).
fn save_bank_if_ready(state: &mut State) -> Option<String> {
    let bank = state.engine.bank()?.clone();
    let path = state.bank_save.take()?;
    bank.save(&path)
        .err()
        .map(|e| format!("cannot save the reference bank (`reference-bank-save`): {e}"))
}

fn channel_order(format: gst_video::VideoFormat) -> Option<ChannelOrder> {
    use gst_video::VideoFormat as F;
    Some(match format {
        F::Rgb => ChannelOrder::Rgb,
        F::Bgr => ChannelOrder::Bgr,
        F::Rgbx => ChannelOrder::Rgbx,
        F::Bgrx => ChannelOrder::Bgrx,
        F::Xrgb => ChannelOrder::Xrgb,
        F::Xbgr => ChannelOrder::Xbgr,
        F::Rgba => ChannelOrder::Rgba,
        F::Bgra => ChannelOrder::Bgra,
        F::Argb => ChannelOrder::Argb,
        F::Abgr => ChannelOrder::Abgr,
        _ => return None,
    })
}

fn frame_duration(info: &gst_video::VideoInfo) -> Option<gst::ClockTime> {
    let fps = info.fps();
    (fps.numer() > 0)
        .then(|| gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64))?
}
