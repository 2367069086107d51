//! The audio-starvation watch of `iplaplandmarks`: a frame can leave only once the audio up to
//! 212.5 ms after it has arrived, so an `audio_sink` that stops receiving while video waits stops
//! the element. That is never the element's fault — typically the audio was split with a `tee`
//! whose other branch (a muxer behind an encoder that holds frames back) is full — but without a
//! word it looks like a hang. A small thread samples the pads and posts one warning per stall
//! that names the fix.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::IplapLandmarks;

/// How often the pads are sampled.
const TICK: Duration = Duration::from_millis(100);

/// The running watch; dropping it stops and joins the thread.
pub(super) struct StallWatch {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl StallWatch {
    /// Watches `element` until dropped; warns after `timeout` of starvation.
    pub(super) fn start(element: &IplapLandmarks, timeout: Duration) -> StallWatch {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let weak: glib::WeakRef<IplapLandmarks> = element.downgrade();
        let stop_thread = stop.clone();
        let thread = std::thread::Builder::new()
            .name("iplap-stall-watch".into())
            .spawn(move || {
                let mut starved = Duration::ZERO;
                let mut warned = false;
                let (lock, cond) = &*stop_thread;
                let mut stopped = lock.lock().unwrap();
                while !*stopped {
                    stopped = cond.wait_timeout(stopped, TICK).unwrap().0;
                    let Some(element) = weak.upgrade() else {
                        return;
                    };
                    if element.imp().audio_starved() {
                        starved += TICK;
                    } else {
                        starved = Duration::ZERO;
                        warned = false;
                    }
                    if starved >= timeout && !warned {
                        warned = true;
                        element.imp().warn_audio_stall(starved);
                    }
                }
            })
            .ok();
        StallWatch { stop, thread }
    }
}

impl Drop for StallWatch {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
