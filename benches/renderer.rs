//! Renderer bench (STYLE B6): per-stage and per-frame medians of the staged renderer (spec §7.3) at
//! N = 25 and N = 5 references, plus the warp stage alone and the peak RSS.
//!
//! Plain timing loop (`harness = false`): one frame takes seconds on a 2-core machine, too slow for
//! criterion's sampling. Inputs are the reference formula inputs and weights
//! (`shared/docs/reference-weights.md`), so no shared data is needed.
//!
//! `cargo bench -p iplap --bench renderer`; environment: `IPLAP_BENCH_THREADS` (default 2),
//! `IPLAP_BENCH_ITERS` (frames per N, default 5), `IPLAP_BENCH_CHUNK` (references per flow-head run,
//! default [`DEFAULT_CHUNK`]), `IPLAP_BENCH_N` (comma list, default `25,5`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use iplap::runtime::SessionConfig;
use iplap::runtime::renderer::{
    DEFAULT_CHUNK, RendererConfig, RendererInput, RendererModel, RendererTimings,
};
use iplap::warp::{WarpChunk, warp_accumulate};
use iplap::weights::formula::{golden_image, golden_input, golden_sketch};
use ndarray::{Array4, s};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn array(shape: [usize; 4], data: Vec<f32>) -> Array4<f32> {
    Array4::from_shape_vec(shape, data).expect("formula input has the requested size")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:8.1} ms", d.as_secs_f64() * 1e3)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// User + system CPU time of this process (all threads), from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        });
    Duration::from_millis(ticks.unwrap_or(0) * 10)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cpu}, {cores} cores, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("renderer: bench");
        return;
    }
    let threads = env_usize("IPLAP_BENCH_THREADS", 2);
    let iters = env_usize("IPLAP_BENCH_ITERS", 5).max(1);
    let chunk = env_usize("IPLAP_BENCH_CHUNK", DEFAULT_CHUNK);
    let ns: Vec<usize> = std::env::var("IPLAP_BENCH_N")
        .unwrap_or_else(|_| "25,5".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    if let Err(e) = iplap::runtime::init() {
        eprintln!("renderer bench skipped: {e}");
        return;
    }
    println!("machine: {}", machine());
    println!("threads {threads}, chunk {chunk}, {iters} frames per N");

    let n_max = ns.iter().copied().max().unwrap_or(25);
    let refs = array(
        [n_max, 3, 128, 128],
        golden_image("ref_N_frame_img", &[1, n_max, 3, 128, 128]),
    );
    let sketches =
        golden_sketch("ref_N_frame_sketch", &[1, n_max, 3, 128, 128]).expect("sketch shape");
    let ref_sketches = array([n_max, 3, 128, 128], sketches);
    let face = array(
        [1, 3, 128, 128],
        golden_image("face_frame_img", &[1, 1, 3, 128, 128]),
    );
    let target = array(
        [5, 3, 128, 128],
        golden_sketch("target_sketches", &[1, 5, 3, 128, 128]).expect("sketch shape"),
    );
    let audio = array(
        [1, 1, 80, 16],
        golden_input("audio_mels", &[1, 1, 1, 80, 16], 0.0, 4.0),
    );

    let config = RendererConfig {
        session: SessionConfig {
            intra_threads: threads,
            ..SessionConfig::default()
        },
        chunk,
        ..RendererConfig::default()
    };
    let t = Instant::now();
    let mut engine =
        match RendererModel::from_weights(&iplap::weights::FormulaWeights::new(), config) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("renderer bench: could not build the engine: {e}");
                return;
            }
        };
    println!("graphs + sessions: {}", ms(t.elapsed()));

    for &n in &ns {
        let t = Instant::now();
        let bank = engine.set_reference_bank(
            refs.slice(s![0..n, .., .., ..]),
            ref_sketches.slice(s![0..n, .., .., ..]),
        );
        if let Err(e) = bank {
            eprintln!("N = {n}: {e}");
            continue;
        }
        let encode = t.elapsed();
        let frame = RendererInput {
            face: face.view(),
            target_sketches: target.view(),
            audio: audio.view(),
        };
        let mut stages: Vec<RendererTimings> = Vec::new();
        let mut frames = Vec::new();
        let mut cpu = Vec::new();
        for i in 0..=iters {
            let t = Instant::now();
            let c = cpu_time();
            let out = match engine.render(black_box(&frame)) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("N = {n}: {e}");
                    break;
                }
            };
            let wall = t.elapsed();
            let used = cpu_time().saturating_sub(c);
            black_box(&out.generated_face);
            if i > 0 {
                // the first frame warms up the sessions (and creates the one for a new chunk size)
                stages.push(out.timings);
                frames.push(wall);
                cpu.push(used);
            }
        }
        let pick = |f: fn(&RendererTimings) -> Duration| median(stages.iter().map(f).collect());
        println!("N = {n:2}  (a) reference bank, once     {}", ms(encode));
        println!(
            "N = {n:2}  (b) flow modulation         {}",
            ms(pick(|t| t.modulation))
        );
        println!(
            "N = {n:2}  (c) flow head               {}",
            ms(pick(|t| t.flow_head))
        );
        println!(
            "N = {n:2}  (d) warp + accumulate       {}",
            ms(pick(|t| t.warp))
        );
        println!(
            "N = {n:2}  (e) translation             {}",
            ms(pick(|t| t.translation))
        );
        let best = frames.iter().min().copied().unwrap_or_default();
        println!(
            "N = {n:2}  per frame (median of {})    {}   (best {})",
            frames.len(),
            ms(median(frames)),
            ms(best).trim()
        );
        println!("N = {n:2}  CPU time per frame          {}", ms(median(cpu)));
        println!(
            "N = {n:2}  peak RSS so far             {:8.0} MiB",
            peak_rss_mib()
        );
    }

    // The warp stage alone, on synthetic flows (N = 25).
    let n = 25;
    let flow = Array4::from_shape_fn((n, 2, 128, 128), |(r, c, i, j)| {
        ((r + c * 3 + i + j) % 7) as f32 * 0.5 - 1.5
    });
    let weight = Array4::from_elem((n, 1, 128, 128), 0.5f32);
    let h1 = Array4::from_elem((n, 32, 128, 128), 0.25f32);
    let h2 = Array4::from_elem((n, 256, 64, 64), 0.25f32);
    let img = refs.slice(s![0..n.min(n_max), .., .., ..]).to_owned();
    if img.shape()[0] == n {
        let chunk = WarpChunk {
            flow: flow.view(),
            weight: weight.view(),
            h1: h1.view(),
            h2: h2.view(),
            ref_img: img.view(),
        };
        let times: Vec<Duration> = (0..iters.max(3))
            .map(|_| {
                let t = Instant::now();
                black_box(
                    warp_accumulate(black_box(&chunk), threads)
                        .map(|o| o.ref_avg.len())
                        .ok(),
                );
                t.elapsed()
            })
            .collect();
        println!(
            "warp_accumulate N = 25, {threads} threads {}",
            ms(median(times))
        );
    }
    println!("peak RSS (process): {:.0} MiB", peak_rss_mib());
}
