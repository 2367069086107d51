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
//! (the video, same caps).
//!
//! Reference bank (spec §1.5): `reference-bank` (a saved bank) wins over `reference-location`
//! (a video or image file, all frames, the official selection), which wins over enrolment from
//! the stream's first `enroll-duration` seconds. Until the bank is ready, face frames carry
//! "enrolling" meta.
//!
//! Latency: a frame leaves once the audio up to its last mel chunk (212.5 ms after it) and the
//! frame 80 ms after it have arrived, so the element reports `max(212.5 ms, 80 ms + one frame)`
//! plus the `processing-latency` budget (the time tracking and the generator may take per frame;
//! a frame that takes longer is logged as a warning).
//!
//! ```text
//! gst-launch-1.0 filesrc location=129.mp4 ! decodebin name=d \
//!   d. ! videoconvert ! iplaplandmarks name=l models=pkg/ ! videoconvert ! autovideosink \
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

use super::settings::{Settings, param_specs};
use super::stream::{AUDIO_RATE, State};

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
}

impl IplapLandmarks {
    fn latency(&self, engine_ns: u64) -> gst::ClockTime {
        let budget = self.settings.lock().unwrap().processing_latency_ms as u64;
        gst::ClockTime::from_nseconds(engine_ns) + gst::ClockTime::from_mseconds(budget)
    }

    fn update_latency(&self) {
        let engine_ns = match &*self.state.lock().unwrap() {
            Some(s) => s.reported_latency,
            None => return,
        };
        let latency = self.latency(engine_ns);
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

fn time_segment(pad: &gst_base::AggregatorPad) -> Option<gst::FormattedSegment<gst::ClockTime>> {
    pad.segment().downcast::<gst::ClockTime>().ok()
}

#[glib::object_subclass]
impl ObjectSubclass for IplapLandmarks {
    const NAME: &'static str = "GstIplapLandmarks";
    type Type = super::IplapLandmarks;
    type ParentType = gst_base::Aggregator;

    fn with_class(klass: &Self::Class) -> Self {
        let pad = |name| {
            let templ = klass.pad_template(name).expect("pad template exists");
            gst::PadBuilder::<gst_base::AggregatorPad>::from_template(&templ).build()
        };
        IplapLandmarks {
            video_pad: pad("video_sink"),
            audio_pad: pad("audio_sink"),
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            video_seen: AtomicBool::new(false),
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
                .rate(AUDIO_RATE)
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
            vec![
                templ("src", gst::PadDirection::Src, &video),
                templ("video_sink", gst::PadDirection::Sink, &video),
                templ("audio_sink", gst::PadDirection::Sink, &audio),
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
        gst::info!(CAT, imp = self, "Started, latency {latency}");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
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
            Some(false) => self.audio_pad.drop_buffer(),
            None => false,
        };
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
            self.obj().finish_buffer(out.buffer)?;
        }
        if step.eos {
            gst::debug!(CAT, imp = self, "All frames out after video EOS");
            return Err(gst::FlowError::Eos);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn sink_event(&self, pad: &gst_base::AggregatorPad, event: gst::Event) -> bool {
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
                if info.rate() != AUDIO_RATE as u32 || info.channels() != 1 {
                    gst::error!(
                        CAT,
                        obj = pad,
                        "Audio must be 16000 Hz mono: put audioconvert ! audioresample in front"
                    );
                    return false;
                }
                state.set_audio_info(info);
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
