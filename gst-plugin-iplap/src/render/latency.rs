//! `iplaprender`'s latency: the time a frame spends in the element (its render) is added to the
//! latency a live pipeline declares, measured by the element or pinned by the
//! `processing-latency` property. Measured: when a render (not counting a frame that encoded the
//! reference bank: once per bank, and the first frame's warm-up) takes longer than declared, the
//! slowest render so far with 20 % headroom, rounded up to 10 ms, and the pipeline is told (a
//! `latency` message); it only grows, so the declaration holds rather than follows every frame.

use std::time::Duration;

use gst::glib;
use gst::prelude::*;

/// The property's name; -1 (its default) = measured, else pinned milliseconds.
pub const PROPERTY: &str = "processing-latency";
/// Value of [`PROPERTY`] for "measured".
pub const MEASURED: i32 = -1;
/// Largest pinned value, one minute.
pub const MAX_PINNED_MS: i32 = 60_000;
/// Rounding step of the measured latency.
const STEP: Duration = Duration::from_millis(10);

/// The property's specification.
pub fn param_spec() -> glib::ParamSpec {
    glib::ParamSpecInt::builder(PROPERTY)
        .nick("Processing Latency")
        .blurb(
            "Time a frame spends in the element, added to a live pipeline's latency, in ms: -1 \
             = measured (when a render takes longer than declared: the slowest so far, not \
             counting frames that encoded the reference bank, +20 %, rounded up to 10 ms; the \
             pipeline is told), 0-60000 = pinned.",
        )
        .minimum(MEASURED)
        .maximum(MAX_PINNED_MS)
        .default_value(MEASURED)
        .mutable_playing()
        .build()
}

/// The slowest render seen and what was declared for it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    slowest: Duration,
    declared: Duration,
}

impl Measured {
    /// Records a render of `took`; returns the new declaration when the render took longer than
    /// what is declared.
    pub fn record(&mut self, took: Duration) -> Option<Duration> {
        self.slowest = self.slowest.max(took);
        if took <= self.declared {
            return None;
        }
        self.declared = with_headroom(self.slowest);
        Some(self.declared)
    }

    /// What is declared now (zero before the first counted frame).
    pub fn declared(&self) -> Duration {
        self.declared
    }
}

/// `took` + 20 %, rounded up to [`STEP`].
fn with_headroom(took: Duration) -> Duration {
    let padded = took.as_nanos() * 6 / 5;
    let step = STEP.as_nanos();
    let steps = padded.div_ceil(step);
    Duration::from_nanos(u64::try_from(steps * step).unwrap_or(u64::MAX))
}

/// The element's latency for a property value and the measurement.
pub fn current(property_ms: i32, measured: &Measured) -> Duration {
    match u64::try_from(property_ms) {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => measured.declared(),
    }
}

/// Adds `ours` to an answered latency query (min, and max when bounded).
pub fn add_to_query(q: &mut gst::query::Latency, ours: Duration) {
    let (live, min, max) = q.result();
    let ours = gst::ClockTime::from_nseconds(u64::try_from(ours.as_nanos()).unwrap_or(u64::MAX));
    q.set(live, min + ours, max.map(|m| m + ours));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_latency_grows_with_headroom_and_never_shrinks() {
        let mut m = Measured::default();
        assert_eq!(m.declared(), Duration::ZERO);
        assert_eq!(
            m.record(Duration::from_millis(100)),
            Some(Duration::from_millis(120))
        );
        // Slower, but within what is declared: no new declaration.
        assert_eq!(m.record(Duration::from_millis(119)), None);
        assert_eq!(m.record(Duration::from_millis(50)), None);
        assert_eq!(m.declared(), Duration::from_millis(120));
        assert_eq!(
            m.record(Duration::from_millis(251)),
            Some(Duration::from_millis(310))
        );
        assert_eq!(m.declared(), Duration::from_millis(310));
        // Rounded up to 10 ms.
        assert_eq!(with_headroom(Duration::from_micros(1)), STEP);
        assert_eq!(with_headroom(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_pinned_value_wins_over_the_measurement() {
        let mut m = Measured::default();
        m.record(Duration::from_secs(2));
        assert_eq!(current(MEASURED, &m), Duration::from_millis(2400));
        assert_eq!(current(0, &m), Duration::ZERO);
        assert_eq!(current(250, &m), Duration::from_millis(250));
    }

    #[test]
    fn the_query_gets_our_latency_added() {
        gst::init().unwrap();
        let mut q = gst::query::Latency::new();
        q.set(
            true,
            gst::ClockTime::from_mseconds(40),
            Some(gst::ClockTime::from_mseconds(100)),
        );
        add_to_query(&mut q, Duration::from_millis(250));
        assert_eq!(
            q.result(),
            (
                true,
                gst::ClockTime::from_mseconds(290),
                Some(gst::ClockTime::from_mseconds(350))
            )
        );
        q.set(false, gst::ClockTime::ZERO, None);
        add_to_query(&mut q, Duration::from_millis(10));
        assert_eq!(q.result(), (false, gst::ClockTime::from_mseconds(10), None));
    }
}
