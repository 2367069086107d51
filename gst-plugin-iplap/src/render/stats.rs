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

/// Fields added when the frame was composed on the GPU: each step's GPU time from CUDA events
/// on the renderer's stream (`u64` nanoseconds), in the order the steps run, then their sum.
pub const GPU_STATS_FIELDS: [&str; 7] = [
    "gpu-upload",
    "gpu-sketches",
    "gpu-crop",
    "gpu-networks",
    "gpu-paste",
    "gpu-download",
    "gpu-total",
];

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The message structure for one rendered frame (`pts` of its buffer, if any); on the GPU path
/// also [`GPU_STATS_FIELDS`] and `on-gpu` = true.
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
        .field("on-gpu", stats.device.is_some())
        .build();
    for (name, d) in STATS_FIELDS.iter().zip(values) {
        s.set(*name, nanos(d));
    }
    if let Some(g) = &stats.device {
        let gpu = [
            g.upload,
            g.sketches,
            g.crop,
            g.networks,
            g.paste,
            g.download,
            g.total(),
        ];
        for (name, d) in GPU_STATS_FIELDS.iter().zip(gpu) {
            s.set(*name, nanos(d));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use iplap::engine::compose::DeviceStepTimes;
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
        // On the CPU: no GPU fields.
        assert!(!s.get::<bool>("on-gpu").unwrap());
        assert!(GPU_STATS_FIELDS.iter().all(|f| !s.has_field(*f)));
    }

    #[test]
    fn gpu_frames_add_each_step_in_nanoseconds() {
        gst::init().unwrap();
        let device = DeviceStepTimes {
            upload: Duration::from_micros(40),
            sketches: Duration::from_micros(30),
            crop: Duration::from_micros(10),
            networks: Duration::from_micros(5000),
            paste: Duration::from_micros(60),
            download: Duration::from_micros(50),
        };
        let stats = FrameStats {
            device: Some(device),
            ..Default::default()
        };
        let s = stats_structure(&stats, None);
        assert!(s.get::<bool>("on-gpu").unwrap());
        assert_eq!(s.get::<u64>("gpu-networks").unwrap(), 5_000_000);
        assert_eq!(s.get::<u64>("gpu-download").unwrap(), 50_000);
        assert_eq!(s.get::<u64>("gpu-total").unwrap(), 5_190_000);
    }
}
