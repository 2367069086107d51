//! The `iplaprender-stats` element message (property `post-stats`): where one frame's render time
//! went, for applications that report it (`iplap sync`'s summary) without parsing debug logs.

use iplap::engine::compose::FrameStats;

/// Name of the message structure.
pub const STATS_MESSAGE: &str = "iplaprender-stats";

/// Fields of the message, each a `u64` of nanoseconds, in the order the steps run.
pub const STATS_FIELDS: [&str; 10] = [
    "sketches",
    "crop",
    "reference-encoding",
    "modulation",
    "flow-head",
    "warp",
    "translation",
    "paste",
    "overlay",
    "total",
];

/// The message structure for one rendered frame (`pts` of its buffer, if any).
pub fn stats_structure(stats: &FrameStats, pts: Option<gst::ClockTime>) -> gst::Structure {
    let r = &stats.render;
    let values = [
        stats.sketches,
        stats.crop,
        stats.reference_encoding,
        r.modulation,
        r.flow_head,
        r.warp,
        r.translation,
        stats.paste,
        stats.overlay,
        stats.total,
    ];
    let mut s = gst::Structure::builder(STATS_MESSAGE)
        .field("pts", pts)
        .field("encoded-references", stats.encoded_references)
        .build();
    for (name, d) in STATS_FIELDS.iter().zip(values) {
        s.set(*name, u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_field_in_nanoseconds() {
        gst::init().unwrap();
        let mut stats = FrameStats {
            total: Duration::from_millis(1500),
            ..Default::default()
        };
        stats.render.flow_head = Duration::from_micros(1234);
        let s = stats_structure(&stats, Some(gst::ClockTime::from_mseconds(80)));
        assert_eq!(s.name(), STATS_MESSAGE);
        for name in STATS_FIELDS {
            assert!(s.get::<u64>(name).is_ok(), "{name}");
        }
        assert_eq!(s.get::<u64>("flow-head").unwrap(), 1_234_000);
        assert_eq!(s.get::<u64>("total").unwrap(), 1_500_000_000);
        assert_eq!(
            s.get::<Option<gst::ClockTime>>("pts").unwrap(),
            Some(gst::ClockTime::from_mseconds(80))
        );
    }
}
