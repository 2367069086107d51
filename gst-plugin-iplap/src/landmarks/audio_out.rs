//! The `audio_src` pad of `iplaplandmarks`: the audio the element consumed, forwarded in step with
//! the video it emits, so that a muxer or a live sink can take both streams from the element and
//! no `tee` in front of `audio_sink` is needed.
//!
//! Why a queue and a task of its own: the element needs the audio up to 212.5 ms *after* a frame
//! before the frame can leave, while a muxer behind an encoder with look-ahead (`x264enc` holds
//! ~40 frames) takes audio only once the matching video arrives. If the audio were pushed from
//! the aggregate thread, a full downstream audio queue would block that thread, no more video
//! would leave, and the encoder would never give the muxer the frames it waits for: the deadlock
//! the README's old `tee` pipeline had. Here the aggregate thread only hands buffers over; the
//! pad's own task pushes them and may block for as long as downstream wants.
//!
//! In step: a consumed audio buffer is *held* until the video has caught up with it (the end of
//! the last emitted frame passes its start), or until it is older than the element's latency
//! behind the newest audio (so that audio keeps flowing with the declared latency while the video
//! stalls). Released items are pushed in order by the task; serialized events (stream-start,
//! caps, segment, tags, gaps, EOS) keep their place between the buffers.
//!
//! Bounded: at most [`MAX_QUEUED_NS`] of released audio waits for a downstream that does not take
//! it; beyond that the aggregate thread waits (normal back-pressure) and a warning says why.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use gst::prelude::*;

use super::imp::CAT;

/// Released audio the task may hold for a downstream that does not take it (30 s: far beyond any
/// encoder's look-ahead, about 2 MB of 16 kHz mono f32).
pub(super) const MAX_QUEUED_NS: u64 = 30_000_000_000;

/// One thing to forward, in stream order.
#[derive(Debug)]
enum Item {
    Event(gst::Event),
    Buffer {
        buffer: gst::Buffer,
        /// Running time of its first sample (None: travels with the previous item).
        start: Option<u64>,
        duration: u64,
    },
}

#[derive(Debug, Default)]
struct Inner {
    /// Consumed, waiting for the video to catch up.
    held: VecDeque<Item>,
    /// Released, waiting for the task to push them.
    ready: VecDeque<Item>,
    /// Nanoseconds of audio in `ready`.
    ready_ns: u64,
    /// Running time just after the newest held audio.
    newest_end: Option<u64>,
    /// Set while flushing or inactive: nothing is taken, the task pauses.
    flushing: bool,
    /// An EOS was queued (once per stream).
    eos_queued: bool,
    /// Downstream answered EOS: later buffers are dropped.
    downstream_eos: bool,
    /// Whether the back-pressure warning was logged for this stall.
    warned_full: bool,
}

/// The forwarding queue shared by the aggregate thread (producer) and the pad task (consumer).
#[derive(Debug)]
pub(super) struct AudioOut {
    pad: gst::Pad,
    inner: Mutex<Inner>,
    cond: Condvar,
}

/// What the task should do after one step.
pub(super) enum TaskStep {
    /// Pushed or dropped an item; call again.
    Continue,
    /// Flushing or inactive: pause the task.
    Pause,
    /// A downstream flow error to report (the task pauses).
    Error(gst::FlowError),
}

impl AudioOut {
    pub(super) fn new(pad: gst::Pad) -> Self {
        AudioOut {
            pad,
            inner: Mutex::new(Inner {
                flushing: true,
                ..Inner::default()
            }),
            cond: Condvar::new(),
        }
    }

    pub(super) fn pad(&self) -> &gst::Pad {
        &self.pad
    }

    /// A serialized event of `audio_sink` (after the buffers before it).
    pub(super) fn hold_event(&self, event: gst::Event) {
        let mut inner = self.inner.lock().unwrap();
        if inner.flushing {
            return;
        }
        if matches!(event.view(), gst::EventView::Eos(_)) {
            if inner.eos_queued {
                return;
            }
            inner.eos_queued = true;
        }
        if matches!(event.view(), gst::EventView::StreamStart(_)) {
            // A new stream (e.g. after EOS on a restarted source): it may end again.
            inner.eos_queued = false;
            inner.downstream_eos = false;
        }
        inner.held.push_back(Item::Event(event));
    }

    /// A consumed audio buffer starting at running time `start` and lasting `duration` ns.
    pub(super) fn hold_buffer(&self, buffer: gst::Buffer, start: Option<u64>, duration: u64) {
        let mut inner = self.inner.lock().unwrap();
        if inner.flushing || inner.eos_queued {
            return;
        }
        if let Some(s) = start {
            let end = s + duration;
            inner.newest_end = Some(inner.newest_end.map_or(end, |e| e.max(end)));
        }
        inner.held.push_back(Item::Buffer {
            buffer,
            start,
            duration,
        });
    }

    /// Releases the held audio that starts before running time `video_end` (the end of the last
    /// emitted frame) or lies more than `latency_ns` behind the newest audio. Waits while more
    /// than [`MAX_QUEUED_NS`] of released audio is queued (downstream does not take it).
    pub(super) fn release_until(&self, video_end: Option<u64>, latency_ns: u64) {
        let mut inner = self.inner.lock().unwrap();
        let by_latency = inner.newest_end.map(|e| e.saturating_sub(latency_ns));
        let limit = match (video_end, by_latency) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let Some(limit) = limit else { return };
        while let Some(front) = inner.held.front() {
            let due = match front {
                Item::Event(_) => true,
                Item::Buffer { start, .. } => start.is_none_or(|s| s < limit),
            };
            if !due {
                break;
            }
            let item = inner.held.pop_front().expect("front exists");
            inner.push_ready(item);
        }
        self.cond.notify_all();
        self.wait_for_room(inner);
    }

    /// The video is finished: everything held goes out, then EOS (once).
    pub(super) fn release_all_and_eos(&self) {
        let mut inner = self.inner.lock().unwrap();
        if inner.flushing {
            return;
        }
        while let Some(item) = inner.held.pop_front() {
            inner.push_ready(item);
        }
        if !inner.eos_queued {
            inner.eos_queued = true;
            inner.push_ready(Item::Event(gst::event::Eos::new()));
        }
        self.cond.notify_all();
    }

    fn wait_for_room(&self, mut inner: std::sync::MutexGuard<'_, Inner>) {
        while !inner.flushing && inner.ready_ns > MAX_QUEUED_NS {
            if !inner.warned_full {
                inner.warned_full = true;
                gst::warning!(
                    CAT,
                    obj = &self.pad,
                    "audio_src: {} s of audio are waiting for downstream to take them; video waits",
                    inner.ready_ns / 1_000_000_000
                );
            }
            inner = self
                .cond
                .wait_timeout(inner, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }

    /// Starts taking data (pad activation, flush-stop): empties the queues.
    pub(super) fn start(&self) {
        let mut inner = self.inner.lock().unwrap();
        *inner = Inner::default();
        self.cond.notify_all();
    }

    /// Stops taking data (pad deactivation, flush-start): empties the queues and wakes the task
    /// and a producer waiting for room.
    pub(super) fn set_flushing(&self) {
        let mut inner = self.inner.lock().unwrap();
        *inner = Inner {
            flushing: true,
            ..Inner::default()
        };
        self.cond.notify_all();
    }

    /// One iteration of the pad task: waits for a released item and pushes it.
    pub(super) fn task_step(&self) -> TaskStep {
        let item = {
            let mut inner = self.inner.lock().unwrap();
            loop {
                if inner.flushing {
                    return TaskStep::Pause;
                }
                if let Some(item) = inner.ready.pop_front() {
                    if let Item::Buffer { duration, .. } = &item {
                        inner.ready_ns = inner.ready_ns.saturating_sub(*duration);
                        if inner.ready_ns <= MAX_QUEUED_NS {
                            inner.warned_full = false;
                        }
                    }
                    self.cond.notify_all();
                    break item;
                }
                inner = self.cond.wait(inner).unwrap();
            }
        };
        match item {
            Item::Event(event) => {
                // Sticky events are stored on the pad even when nobody is linked.
                if !self.pad.push_event(event) {
                    gst::debug!(
                        CAT,
                        obj = &self.pad,
                        "audio_src: event not handled downstream"
                    );
                }
                TaskStep::Continue
            }
            Item::Buffer { buffer, .. } => {
                if self.inner.lock().unwrap().downstream_eos {
                    return TaskStep::Continue;
                }
                // A GAP buffer (the aggregator's stand-in for a GAP event) goes out as a GAP.
                if buffer.flags().contains(gst::BufferFlags::GAP) && buffer.size() == 0 {
                    if let Some(pts) = buffer.pts() {
                        let gap = gst::event::Gap::builder(pts)
                            .duration(buffer.duration())
                            .build();
                        let _ = self.pad.push_event(gap);
                    }
                    return TaskStep::Continue;
                }
                match self.pad.push(buffer) {
                    Ok(_) | Err(gst::FlowError::NotLinked) => TaskStep::Continue,
                    Err(gst::FlowError::Flushing) => TaskStep::Pause,
                    Err(gst::FlowError::Eos) => {
                        gst::debug!(CAT, obj = &self.pad, "audio_src: downstream is at EOS");
                        self.inner.lock().unwrap().downstream_eos = true;
                        TaskStep::Continue
                    }
                    Err(e) => TaskStep::Error(e),
                }
            }
        }
    }
}

impl Inner {
    fn push_ready(&mut self, item: Item) {
        if let Item::Buffer { duration, .. } = &item {
            self.ready_ns += duration;
        }
        self.ready.push_back(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out() -> AudioOut {
        gst::init().unwrap();
        let pad = gst::Pad::builder(gst::PadDirection::Src)
            .name("audio_src")
            .build();
        let out = AudioOut::new(pad);
        out.start();
        out
    }

    fn buffer(ms: u64) -> gst::Buffer {
        let mut b = gst::Buffer::with_size(320).unwrap();
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(ms));
        b
    }

    fn ready_starts(out: &AudioOut) -> Vec<Option<u64>> {
        out.inner
            .lock()
            .unwrap()
            .ready
            .iter()
            .map(|i| match i {
                Item::Buffer { start, .. } => *start,
                Item::Event(_) => None,
            })
            .collect()
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn audio_leaves_with_the_video_or_after_the_latency() {
        let out = out();
        for k in 0..10u64 {
            out.hold_buffer(buffer(k * 10), Some(k * 10 * MS), 10 * MS);
        }
        // Video up to 25 ms: buffers starting at 0, 10, 20 ms. Latency 1 s: nothing more.
        out.release_until(Some(25 * MS), 1_000 * MS);
        assert_eq!(
            ready_starts(&out),
            vec![Some(0), Some(10 * MS), Some(20 * MS)]
        );
        // No video progress, newest audio ends at 100 ms, latency 50 ms: up to 50 ms.
        out.release_until(Some(25 * MS), 50 * MS);
        assert_eq!(ready_starts(&out).len(), 5);
        out.release_all_and_eos();
        let inner = out.inner.lock().unwrap();
        assert_eq!(inner.ready.len(), 11);
        assert!(matches!(inner.ready.back(), Some(Item::Event(_))));
        assert_eq!(inner.ready_ns, 100 * MS);
    }

    #[test]
    fn events_keep_their_place_and_flushing_empties() {
        let out = out();
        out.hold_buffer(buffer(0), Some(0), 10 * MS);
        out.hold_event(gst::event::Eos::new());
        out.hold_buffer(buffer(10), Some(10 * MS), 10 * MS);
        // After EOS nothing more is taken, and a second EOS is not queued.
        out.release_all_and_eos();
        assert_eq!(out.inner.lock().unwrap().ready.len(), 2);
        out.set_flushing();
        assert!(matches!(out.task_step(), TaskStep::Pause));
        assert!(out.inner.lock().unwrap().ready.is_empty());
    }

    #[test]
    fn unlinked_pad_drops_without_error() {
        let out = out();
        out.pad().set_active(true).unwrap();
        out.hold_event(gst::event::StreamStart::new("s"));
        out.hold_buffer(buffer(0), Some(0), 10 * MS);
        out.release_all_and_eos();
        for _ in 0..3 {
            assert!(matches!(out.task_step(), TaskStep::Continue));
        }
        assert!(out.inner.lock().unwrap().ready.is_empty());
    }
}
