//! SECTION:element-iplaplandmarks
//!
//! Tracks the face in every video frame, runs IP_LAP's landmark generator over the T = 5 window
//! (frames at t − 80 … +80 ms and the five mel chunks of the audio around t) and attaches the
//! result to the frame as a `LandmarkMeta` (see `gstiplap::meta`) plus a
//! `GstVideoRegionOfInterestMeta` mirror (roi type `face`, parameter structure `landmarks`).
//! Pixels are never modified. `iplaprender` downstream draws the lip-synced face.
//!
//! Pads: `video_sink` (packed RGB-family video; put `videoconvert` in front for anything else),
//! `audio_sink` (16 kHz mono F32LE/S16LE; put `audioconvert ! audioresample` in front), `src`
//! (the video, same caps) and `audio_src` (the audio it consumed, same caps, forwarded in step
//! with the video; link it to the muxer or audio sink instead of splitting the audio with a `tee`
//! in front of `audio_sink`, which deadlocks behind encoders that hold frames back, see
//! `audio_out`). `audio_src` may stay unlinked.
//!
//! Starvation: when video waits for audio and none has arrived for `audio-stall-timeout`
//! milliseconds, a warning says that the audio branch upstream is blocked and how to fix it.
//!
//! Reference bank (spec §1.5): `reference-bank` (a saved bank) wins over `reference-location`
//! (a video or image file converted to 25 fps, then the official selection over those frames: the
//! bank `iplap sync` makes from the same file), which wins over enrolment from the stream's first
//! `enroll-duration` seconds. Until the bank is ready, face frames carry "enrolling" meta.
//!
//! Latency: a frame leaves once the audio up to its last mel chunk (212.5 ms after it) and the
//! frame 80 ms after it have arrived, so the element reports `max(212.5 ms, 80 ms + one frame)`
//! plus the `processing-latency` budget (the time tracking and the generator may take per frame;
//! a frame that takes longer is logged as a warning).
//!
//! ```text
//! gst-launch-1.0 filesrc location=129.mp4 ! decodebin name=d \
//!   d. ! videoconvert ! iplaplandmarks name=l models=pkg/ ! videoconvert ! autovideosink \
//!   l.audio_src ! audioconvert ! autoaudiosink \
//!   d. ! audioconvert ! audioresample ! l.audio_sink
//! ```
//!
//! Since: 0.1

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::audio_out::{AudioOut, TaskStep};
use super::settings::{Settings, param_specs};
use super::stall::StallWatch;
use super::stream::State;
use iplap::audio::SAMPLE_RATE;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "iplaplandmarks",
        gst::DebugColorFlags::empty(),
        Some("IP_LAP landmarks: face tracking + audio-driven landmark generator"),
    )
});

pub struct IplapLandmarks {
    video_pad: gst_base::AggregatorPad,
    audio_pad: gst_base::AggregatorPad,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Whether the first video buffer since `start` was seen (the unlinked-audio check).
    video_seen: AtomicBool,
    /// The `audio_src` pad's forwarding queue (it owns the pad).
    audio_out: AudioOut,
    /// Watches for video waiting on audio that does not come (runs between start and stop).
    stall: Mutex<Option<StallWatch>>,
}

impl IplapLandmarks {
    fn latency(&self, engine_ns: u64) -> gst::ClockTime {
        let budget = self.settings.lock().unwrap().processing_latency_ms as u64;
        gst::ClockTime::from_nseconds(engine_ns) + gst::ClockTime::from_mseconds(budget)
    }

    /// The latency the element reports now (None before `start`).
    fn current_latency(&self) -> Option<gst::ClockTime> {
        let engine_ns = self.state.lock().unwrap().as_ref()?.reported_latency;
        Some(self.latency(engine_ns))
    }

    fn update_latency(&self) {
        let Some(latency) = self.current_latency() else {
            return;
        };
        gst::debug!(CAT, imp = self, "Latency {latency}");
        self.obj().set_latency(latency, gst::ClockTime::NONE);
    }

    /// At the first video buffer: an `audio_sink` with no peer would never get data nor EOS, and
    /// a non-live aggregator would wait for it forever. Treat the audio as ended (silence).
    fn check_audio_linked(&self) {
        if self.video_seen.swap(true, Ordering::SeqCst) || self.audio_pad.is_linked() {
            return;
        }
        gst::element_imp_warning!(
            self,
            gst::StreamError::Failed,
            ("audio_sink is not linked: no audio, the landmarks follow silence")
        );
        // Through the pad, so the aggregator sees a regular (serialized) EOS.
        let group = gst::GroupId::next();
        let _ = self.audio_pad.send_event(
            gst::event::StreamStart::builder("iplaplandmarks-no-audio")
                .group_id(group)
                .build(),
        );
        let _ = self.audio_pad.send_event(gst::event::Eos::new());
    }
}

impl IplapLandmarks {
    /// Video waits for audio that does not come: a video buffer is queued, `audio_sink` is
    /// linked and holds nothing and has not ended. A live element counts only while PLAYING (a
    /// paused live source sends nothing, rightly).
    pub(super) fn audio_starved(&self) -> bool {
        let obj = self.obj();
        if obj.latency().is_some() && obj.current_state() != gst::State::Playing {
            return false;
        }
        self.video_pad.has_buffer()
            && !self.video_pad.is_eos()
            && self.audio_pad.is_linked()
            && !self.audio_pad.has_buffer()
            && !self.audio_pad.is_eos()
    }

    pub(super) fn warn_audio_stall(&self, waited: Duration) {
        gst::element_imp_warning!(
            self,
            gst::StreamError::Failed,
            (
                "no audio reached audio_sink for {:.1} s while video waits for it: the audio branch upstream is blocked. If the audio is split with a tee to also feed a muxer or sink, take that audio from iplaplandmarks' audio_src pad instead (no tee), or give the tee's other queue max-size-time=0 max-size-buffers=0 max-size-bytes=0",
                waited.as_secs_f64()
            )
        );
    }

    /// `audio_src` follows `audio_sink`: flushes at once, serialized events in stream order
    /// (caps once accepted, see `sink_event`; GAP events come back as GAP buffers).
    fn mirror_audio_event(&self, event: &gst::Event) {
        let pad = self.audio_out.pad();
        match event.view() {
            gst::EventView::FlushStart(_) => {
                self.audio_out.set_flushing();
                let _ = pad.push_event(event.clone());
                let _ = pad.pause_task();
            }
            gst::EventView::FlushStop(_) => {
                self.audio_out.start();
                let _ = pad.push_event(event.clone());
                self.start_audio_task(pad);
            }
            gst::EventView::Caps(_) | gst::EventView::Gap(_) => {}
            _ if event.is_serialized() => self.audio_out.hold_event(event.clone()),
            _ => {}
        }
    }

    fn activate_audio_src(&self, pad: &gst::Pad, active: bool) -> Result<(), gst::LoggableError> {
        if active {
            self.audio_out.start();
            self.start_audio_task(pad);
        } else {
            self.audio_out.set_flushing();
            pad.stop_task()
                .map_err(|e| gst::loggable_error!(CAT, "cannot stop the audio_src task: {e}"))?;
        }
        Ok(())
    }

    fn start_audio_task(&self, pad: &gst::Pad) {
        let weak = self.obj().downgrade();
        let result = pad.start_task(move || {
            let Some(obj) = weak.upgrade() else { return };
            let imp = obj.imp();
            match imp.audio_out.task_step() {
                TaskStep::Continue => {}
                TaskStep::Pause => {
                    let _ = imp.audio_out.pad().pause_task();
                }
                TaskStep::Error(e) => {
                    gst::element_imp_error!(
                        imp,
                        gst::StreamError::Failed,
                        ("audio_src: downstream of the forwarded audio failed: {e:?}")
                    );
                    let _ = imp.audio_out.pad().pause_task();
                }
            }
        });
        if let Err(e) = result {
            gst::error!(CAT, imp = self, "Cannot start the audio_src task: {e}");
        }
    }

    /// Upstream events on `audio_src`: a seek goes where the video's seeks go (the aggregator
    /// drops the copy with the same seqnum that arrives through `src`); the rest concern only
    /// this branch and are answered here.
    fn audio_src_event(&self, _pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Seek(_) => self.obj().static_pad("src").is_some_and(|src| {
                // The src pad's own event function (the aggregator's seek handling).
                src.send_event(event)
            }),
            _ => true,
        }
    }

    /// Queries on `audio_src`: caps are those of `audio_sink`; latency, position, duration and
    /// the rest are the element's, answered by its `src` pad.
    fn audio_src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                let caps = self
                    .audio_pad
                    .current_caps()
                    .unwrap_or_else(|| pad.pad_template_caps());
                let caps = match q.filter() {
                    Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
                    None => caps,
                };
                q.set_result(&caps);
                true
            }
            gst::QueryViewMut::AcceptCaps(_) | gst::QueryViewMut::Allocation(_) => {
                gst::Pad::query_default(pad, Some(&*self.obj()), query)
            }
            _ => self
                .obj()
                .static_pad("src")
                .is_some_and(|src| src.query(query)),
        }
    }
}

fn time_segment(pad: &gst_base::AggregatorPad) -> Option<gst::FormattedSegment<gst::ClockTime>> {
    pad.segment().downcast::<gst::ClockTime>().ok()
}

#[glib::object_subclass]
impl ObjectSubclass for IplapLandmarks {
    const NAME: &'static str = "GstIplapLandmarks";
    type Type = super::IplapLandmarks;
    type ParentType = gst_base::Aggregator;

    fn with_class(klass: &Self::Class) -> Self {
        // Events the aggregator does not handle itself go to a sink pad's internal links (by
        // default every src pad): video ones must not reach audio_src, and audio_src is fed only
        // by its own task (a second pushing thread would block on the stream lock downstream).
        let pad = |name: &str| {
            let templ = klass.pad_template(name).expect("pad template exists");
            let video = name == "video_sink";
            gst::PadBuilder::<gst_base::AggregatorPad>::from_template(&templ)
                .iterate_internal_links_function(move |_pad, parent| {
                    let src = parent
                        .and_then(|p| p.downcast_ref::<gst::Element>())
                        .filter(|_| video)
                        .and_then(|e| e.static_pad("src"));
                    gst::Iterator::from_vec(src.into_iter().collect())
                })
                .build()
        };
        let templ = klass
            .pad_template("audio_src")
            .expect("pad template exists");
        let audio_src = gst::Pad::builder_from_template(&templ)
            .activatemode_function(|pad, parent, _mode, active| {
                IplapLandmarks::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "panic activating audio_src")),
                    |imp| imp.activate_audio_src(pad, active),
                )
            })
            .event_function(|pad, parent, event| {
                IplapLandmarks::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.audio_src_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                IplapLandmarks::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.audio_src_query(pad, query),
                )
            })
            .build();
        IplapLandmarks {
            video_pad: pad("video_sink"),
            audio_pad: pad("audio_sink"),
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            video_seen: AtomicBool::new(false),
            audio_out: AudioOut::new(audio_src),
            stall: Mutex::new(None),
        }
    }
}

impl ObjectImpl for IplapLandmarks {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(param_specs);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        let mut s = self.settings.lock().unwrap();
        let old = s.get(name);
        s.set(name, value);
        let new = s.get(name);
        drop(s);
        if format!("{old:?}") != format!("{new:?}") {
            gst::info!(CAT, imp = self, "Changing {name} from {old:?} to {new:?}");
        }
        if name == "processing-latency" {
            self.update_latency();
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.settings.lock().unwrap().get(pspec.name())
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.video_pad)
            .expect("adding the video_sink pad");
        obj.add_pad(&self.audio_pad)
            .expect("adding the audio_sink pad");
        obj.add_pad(self.audio_out.pad())
            .expect("adding the audio_src pad");
        let weak = obj.downgrade();
        self.video_pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, _| {
                if let Some(obj) = weak.upgrade() {
                    obj.imp().check_audio_linked();
                }
                gst::PadProbeReturn::Ok
            },
        );
        let engine_ns = iplap::engine::window::AUDIO_LOOKAHEAD_NS;
        obj.set_latency(self.latency(engine_ns), gst::ClockTime::NONE);
    }
}

impl GstObjectImpl for IplapLandmarks {}

impl ElementImpl for IplapLandmarks {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "IP_LAP Landmarks",
                "Filter/Analyzer/Video/Audio",
                "Tracks the face and predicts audio-driven mouth and jaw landmarks (IP_LAP), attached to each frame as meta",
                "iplap developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            use gst_video::VideoFormat as F;
            // Packed formats the face tracker reads in place; others need videoconvert.
            let video = gst_video::VideoCapsBuilder::new()
                .format_list([
                    F::Rgb,
                    F::Bgr,
                    F::Rgbx,
                    F::Bgrx,
                    F::Xrgb,
                    F::Xbgr,
                    F::Rgba,
                    F::Bgra,
                    F::Argb,
                    F::Abgr,
                ])
                .build();
            // The landmark generator's mel spectrogram is defined on 16 kHz mono.
            let audio = gst_audio::AudioCapsBuilder::new_interleaved()
                .format_list([gst_audio::AudioFormat::F32le, gst_audio::AudioFormat::S16le])
                .rate(SAMPLE_RATE as i32)
                .channels(1)
                .build();
            let templ = |name, dir, caps: &gst::Caps| {
                gst::PadTemplate::with_gtype(
                    name,
                    dir,
                    gst::PadPresence::Always,
                    caps,
                    gst_base::AggregatorPad::static_type(),
                )
                .expect("valid pad template")
            };
            let audio_src = gst::PadTemplate::new(
                "audio_src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &audio,
            )
            .expect("valid pad template");
            vec![
                templ("src", gst::PadDirection::Src, &video),
                templ("video_sink", gst::PadDirection::Sink, &video),
                templ("audio_sink", gst::PadDirection::Sink, &audio),
                audio_src,
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl AggregatorImpl for IplapLandmarks {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let state = State::load(self, &settings)?;
        let latency = self.latency(state.reported_latency);
        *self.state.lock().unwrap() = Some(state);
        self.video_seen.store(false, Ordering::SeqCst);
        self.obj().set_latency(latency, gst::ClockTime::NONE);
        if settings.audio_stall_timeout_ms > 0 {
            let timeout = Duration::from_millis(settings.audio_stall_timeout_ms as u64);
            *self.stall.lock().unwrap() = Some(StallWatch::start(&self.obj(), timeout));
        }
        gst::info!(CAT, imp = self, "Started, latency {latency}");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Joined outside the lock: the watch thread may be taking it to post.
        let stall = self.stall.lock().unwrap().take();
        drop(stall);
        let _ = self.state.lock().unwrap().take();
        gst::info!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn next_time(&self) -> Option<gst::ClockTime> {
        self.obj().simple_get_next_time()
    }

    fn flush(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Runs with the src stream lock held: aggregate() is not running.
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            gst::debug!(CAT, imp = self, "Flush: resetting window and mel state");
            state.reset_stream();
        }
        self.parent_flush()
    }

    fn clip(&self, pad: &gst_base::AggregatorPad, mut buffer: gst::Buffer) -> Option<gst::Buffer> {
        // Called from peek_buffer() (maybe inside aggregate): must not take the state lock.
        let Some(segment) = time_segment(pad) else {
            return Some(buffer);
        };
        let Some(pts) = buffer.pts() else {
            return Some(buffer);
        };
        if pad == &self.audio_pad {
            let info = pad
                .current_caps()
                .and_then(|c| gst_audio::AudioInfo::from_caps(&c).ok())?;
            return gst_audio::audio_buffer_clip(
                buffer,
                segment.upcast_ref(),
                info.rate(),
                info.bpf(),
            );
        }
        let end = buffer.duration().map(|d| pts + d);
        let (start, stop) = segment.clip(pts, end)?;
        let b = buffer.make_mut();
        b.set_pts(start);
        if let (Some(start), Some(stop)) = (start, stop) {
            b.set_duration(stop.checked_sub(start));
        }
        Some(buffer)
    }

    fn aggregate(&self, _timeout: bool) -> Result<gst::FlowSuccess, gst::FlowError> {
        // peek_buffer() may call clip(); peek before taking the state lock.
        let video = self.video_pad.peek_buffer();
        let audio = self.audio_pad.peek_buffer();
        let video_eos = video.is_none() && self.video_pad.is_eos();
        let audio_eos = audio.is_none() && self.audio_pad.is_eos();
        let with_segment = |b: Option<gst::Buffer>, pad: &gst_base::AggregatorPad| match b {
            None => Ok(None),
            Some(b) => time_segment(pad)
                .map(|s| Some((b, s)))
                .ok_or(gst::FlowError::NotSupported),
        };
        let video = with_segment(video, &self.video_pad)?;
        let audio = with_segment(audio, &self.audio_pad)?;
        let audio_buffer = audio.as_ref().map(|(b, _)| b.clone());
        let budget =
            Duration::from_millis(self.settings.lock().unwrap().processing_latency_ms as u64);

        let result = {
            let mut guard = self.state.lock().unwrap();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            state.step(self, video, audio, video_eos, audio_eos, budget)
        };
        let (step, consumed) = match result {
            Ok(r) => r,
            Err(e) => {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{e}"));
                return Err(gst::FlowError::Error);
            }
        };
        match consumed {
            Some(true) => self.video_pad.drop_buffer(),
            Some(false) => {
                if let (Some(buffer), Some(span)) = (audio_buffer, step.audio_span) {
                    self.audio_out.hold_buffer(buffer, span.0, span.1);
                }
                self.audio_pad.drop_buffer()
            }
            None => false,
        };
        if consumed.is_none() && step.outputs.is_empty() && !step.eos && video_eos && audio_eos {
            // Both inputs ended and nothing is left to feed: the aggregator would call again at
            // once, forever. The engine must always finish here; report a broken promise.
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("internal error: both inputs ended but frames are still pending")
            );
            return Err(gst::FlowError::Error);
        }
        for w in step.warnings {
            gst::element_imp_warning!(self, gst::StreamError::Failed, ("{w}"));
        }
        if step.latency.is_some() {
            self.update_latency();
        }
        for out in step.outputs {
            if let Some(caps) = out.caps {
                self.obj().set_src_caps(&caps);
            }
            if let Some(segment) = out.segment {
                self.obj().update_segment(&segment);
            }
            gst::log!(
                CAT,
                imp = self,
                "Pushing frame {}",
                out.buffer.pts().display()
            );
            // The frame's audio goes first: a sink that prerolls on the frame blocks this
            // thread, and the audio sink must be able to preroll meanwhile.
            let latency = self.current_latency().map_or(0, |l| l.nseconds());
            self.audio_out.release_until(Some(out.running_end), latency);
            self.obj().finish_buffer(out.buffer)?;
        }
        if consumed == Some(false) {
            // Audio keeps flowing with the declared latency while the video stalls.
            let latency = self.current_latency().map_or(0, |l| l.nseconds());
            self.audio_out.release_until(None, latency);
        }
        if step.eos {
            gst::debug!(CAT, imp = self, "All frames out after video EOS");
            self.audio_out.release_all_and_eos();
            return Err(gst::FlowError::Eos);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn sink_event(&self, pad: &gst_base::AggregatorPad, event: gst::Event) -> bool {
        if pad == &self.audio_pad {
            self.mirror_audio_event(&event);
        }
        if let gst::EventView::Caps(c) = event.view() {
            let caps = c.caps_owned();
            gst::debug!(CAT, obj = pad, "Caps {caps}");
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return false;
            };
            if pad == &self.video_pad {
                let Ok(info) = gst_video::VideoInfo::from_caps(&caps) else {
                    gst::error!(CAT, obj = pad, "Invalid video caps {caps}");
                    return false;
                };
                if state.set_video_caps(caps, info) {
                    gst::debug!(CAT, obj = pad, "Resolution changed: tracking reset");
                }
            } else {
                let Ok(info) = gst_audio::AudioInfo::from_caps(&caps) else {
                    gst::error!(CAT, obj = pad, "Invalid audio caps {caps}");
                    return false;
                };
                if info.rate() != SAMPLE_RATE || info.channels() != 1 {
                    gst::error!(
                        CAT,
                        obj = pad,
                        "Audio must be 16000 Hz mono: put audioconvert ! audioresample in front"
                    );
                    return false;
                }
                state.set_audio_info(info);
                drop(guard);
                // Only accepted caps go out on audio_src.
                self.audio_out.hold_event(event.clone());
            }
        }
        self.parent_sink_event(pad, event)
    }

    fn sink_query(&self, pad: &gst_base::AggregatorPad, query: &mut gst::QueryRef) -> bool {
        if pad == &self.video_pad
            && let gst::QueryViewMut::Caps(q) = query.view_mut()
        {
            // Video caps pass through: ask downstream, within what the tracker reads.
            let templ = pad.pad_template_caps();
            let mut peer = gst::query::Caps::new(q.filter_owned().as_ref());
            let src = self.obj().static_pad("src").expect("src pad exists");
            if src.peer_query(&mut peer) {
                let result = peer
                    .result()
                    .map(|c| c.intersect_with_mode(&templ, gst::CapsIntersectMode::First))
                    .unwrap_or(templ);
                q.set_result(&result);
                return true;
            }
        }
        self.parent_sink_query(pad, query)
    }

    fn negotiate(&self) -> bool {
        // The video caps are passed through (set_src_caps before each caps change).
        true
    }
}
