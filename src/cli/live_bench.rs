//! `bench live`: synthetic live streams through the compositor, each its own thread: frames
//! arrive at the stream's frame rate (1080p, a 577 × 455 face, the frame bench's inputs), a frame
//! is composed when the stream's compositor is free, and when newer frames arrived meanwhile only
//! the newest is composed — the older ones would pass through untouched (counted `skipped`), as a
//! live element must do rather than build a backlog. Reported per stream count: frames composed,
//! skipped and over the latency budget, latency percentiles from a frame's arrival to its
//! composed output, the process's CPU use per stream, and the GPU memory the streams hold.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::json;

use super::frame_bench::{Case, FrameFormat, compositor};
use crate::engine::compose::FrameCompositor;

#[derive(clap::Args)]
pub struct LiveArgs {
    #[command(flatten)]
    pub common: super::bench::Common,
    /// Layout of the frames.
    #[arg(long, value_enum, default_value_t = FrameFormat::Nv12)]
    pub format: FrameFormat,
    /// Number of references (1-25).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..=25))]
    pub references: u16,
    /// Frames per second of each stream.
    #[arg(long, default_value_t = 25.0)]
    pub fps: f64,
    /// Seconds each run streams.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Concurrent stream counts to run, one run each (comma list).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub streams: Vec<usize>,
    /// Latency budget: a composed frame later than this after its arrival counts as over budget.
    #[arg(long, default_value_t = 400)]
    pub latency_ms: u64,
}

/// One stream's run.
#[derive(Default)]
struct StreamResult {
    composed: usize,
    skipped: usize,
    over_budget: usize,
    latencies: Vec<Duration>,
}

/// Streams frames arriving every `period` for `frames` frames through `compositor`.
fn stream(
    case: &Case,
    format: FrameFormat,
    compositor: &mut FrameCompositor,
    start: Instant,
    period: Duration,
    frames: usize,
    budget: Duration,
) -> anyhow::Result<StreamResult> {
    let mut r = StreamResult::default();
    let mut next = 0usize;
    while next < frames {
        let arrival = |i: usize| start + period.mul_f64(i as f64);
        let now = Instant::now();
        if now < arrival(next) {
            std::thread::sleep(arrival(next) - now);
        }
        // The newest frame that has arrived; the older ones since the last are skipped.
        let elapsed = start.elapsed().as_secs_f64();
        let newest = ((elapsed / period.as_secs_f64()) as usize).clamp(next, frames - 1);
        r.skipped += newest - next;
        case.compose(compositor, format)?;
        let latency = arrival(newest).elapsed();
        r.over_budget += usize::from(latency > budget);
        r.latencies.push(latency);
        r.composed += 1;
        next = newest + 1;
    }
    Ok(r)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64())
}

/// Process CPU seconds so far (user + system).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

pub fn run(args: LiveArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.fps > 0.0 && args.fps <= 1000.0,
        "--fps must be in (0, 1000]"
    );
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    anyhow::ensure!(
        args.streams.iter().all(|&n| (1..=64).contains(&n)),
        "--streams takes counts 1..=64"
    );
    let device = args.common.device.resolve()?;
    let label = device.to_string();
    let gpu = matches!(
        crate::runtime::Placement::for_device(&device),
        crate::runtime::Placement::Cuda { .. }
    );
    let case = Arc::new(Case::new(args.format));
    let period = Duration::from_secs_f64(1.0 / args.fps);
    let frames = (args.seconds * args.fps).ceil() as usize;
    let budget = Duration::from_millis(args.latency_ms);
    let mut runs = Vec::new();
    for &n in &args.streams {
        let memory_before = gpu
            .then(|| crate::runtime::nvidia::memory_in_use(device.device_id))
            .flatten();
        let mut compositors = (0..n)
            .map(|_| compositor(&args.common, args.references, device.clone()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // One frame each first: sessions plan, the bank is encoded, kernels load.
        for c in &mut compositors {
            case.compose(c, args.format)?;
        }
        let memory = gpu
            .then(|| crate::runtime::nvidia::memory_in_use(device.device_id))
            .flatten()
            .zip(memory_before)
            .map(|(after, before)| after.saturating_sub(before) / n as u64);
        let barrier = Arc::new(Barrier::new(n));
        let cpu_start = cpu_seconds();
        let wall_start = Instant::now();
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = compositors
                .iter_mut()
                .map(|c| {
                    let (case, barrier) = (case.clone(), barrier.clone());
                    scope.spawn(move || {
                        barrier.wait();
                        stream(
                            &case,
                            args.format,
                            c,
                            Instant::now(),
                            period,
                            frames,
                            budget,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a stream panicked")))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        let cpu_per_stream =
            (cpu_seconds() - cpu_start) / wall_start.elapsed().as_secs_f64() / n as f64;
        let mut latencies: Vec<Duration> = results
            .iter()
            .flat_map(|r| r.latencies.iter().copied())
            .collect();
        latencies.sort();
        let sum = |f: &dyn Fn(&StreamResult) -> usize| results.iter().map(f).sum::<usize>();
        runs.push(json!({
            "streams": n,
            "frames": frames * n,
            "composed": sum(&|r| r.composed),
            "skipped": sum(&|r| r.skipped),
            "over_budget": sum(&|r| r.over_budget),
            "latency_p50_s": percentile(&latencies, 0.5),
            "latency_p99_s": percentile(&latencies, 0.99),
            "cpu_cores_per_stream": cpu_per_stream,
            "gpu_memory_per_stream_mib": memory.map(|b| b as f64 / 1048576.0),
        }));
        drop(compositors);
    }
    if args.common.json {
        println!(
            "{}",
            json!({"device": label, "format": format!("{:?}", args.format).to_lowercase(),
                   "references": args.references, "fps": args.fps, "seconds": args.seconds,
                   "latency_budget_s": budget.as_secs_f64(), "runs": runs})
        );
        return Ok(());
    }
    println!(
        "live streams on {label}: {:?} 1920x1080 at {} fps for {} s, {} references, latency budget \
         {} ms",
        args.format, args.fps, args.seconds, args.references, args.latency_ms
    );
    println!(
        "  {:>7} {:>7} {:>9} {:>8} {:>11} {:>9} {:>9} {:>10} {:>12}",
        "streams",
        "frames",
        "composed",
        "skipped",
        "over budget",
        "p50 ms",
        "p99 ms",
        "CPU/stream",
        "GPU MiB/str"
    );
    for r in &runs {
        let ms = |k: &str| r[k].as_f64().unwrap_or(f64::NAN) * 1e3;
        let count = |k: &str| r[k].as_u64().unwrap_or(0);
        let gpu_mib = r["gpu_memory_per_stream_mib"]
            .as_f64()
            .map_or("-".to_owned(), |v| format!("{v:.0}"));
        println!(
            "  {:>7} {:>7} {:>9} {:>8} {:>11} {:>9.1} {:>9.1} {:>10.2} {:>12}",
            count("streams"),
            count("frames"),
            count("composed"),
            count("skipped"),
            count("over_budget"),
            ms("latency_p50_s"),
            ms("latency_p99_s"),
            r["cpu_cores_per_stream"].as_f64().unwrap_or(f64::NAN),
            gpu_mib
        );
    }
    Ok(())
}
