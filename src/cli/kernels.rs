//! `iplap kernels`: compiles every CUDA kernel family with NVRTC for the architectures named and
//! writes one cubin per family and architecture. No GPU needed; exits non-zero on any error or
//! warning (CI runs it for every architecture we ship).
//!
//! `iplap kernels --check` (the GPU check's kernel step) runs every kernel on the GPU against its
//! host build on a frame-sized case, with the device time of each step.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::kernels::{Arch, CI_ARCHS, GpuKernels, KERNELS, KernelCache, check, launch, nvrtc};

#[derive(clap::Args)]
pub struct KernelsArgs {
    /// Architectures, comma-separated (`sm_90,sm_86`, `90` or `9.0`); `all` = sm_75, 80, 86, 89,
    /// 90 and 120; `native` = this machine's GPUs.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "check",
        requires = "out"
    )]
    pub arch: Vec<String>,
    /// Folder for the cubins (`<family>.<arch>.cubin`); created if missing.
    #[arg(long, requires = "arch")]
    pub out: Option<PathBuf>,
    /// Instead: run every kernel on the GPU against its host build (1920x1080 frame, 577x455
    /// face, 25 references) and time each step; fails if any output differs beyond its limit.
    #[arg(long, conflicts_with_all = ["arch", "out"])]
    pub check: bool,
    /// GPU index for --check.
    #[arg(long, default_value_t = 0)]
    pub device_id: u32,
    /// Timed repetitions per step for --check (the median is reported).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub iterations: u32,
}

pub fn run(args: KernelsArgs) -> anyhow::Result<()> {
    if args.check {
        return run_check(&args);
    }
    let out = args.out.clone().expect("clap requires --out with --arch");
    let mut archs: Vec<Arch> = Vec::new();
    for a in &args.arch {
        if a.trim() == "all" {
            archs.extend(CI_ARCHS);
        } else if a.trim() == "native" {
            let driver = crate::runtime::nvidia::driver()?;
            archs.extend(driver.gpus.iter().map(|g| {
                let (major, minor) = g.compute_capability;
                Arch(major, minor)
            }));
        } else {
            archs.push(a.parse().map_err(anyhow::Error::msg)?);
        }
    }
    archs.sort();
    archs.dedup();
    let nvrtc = nvrtc()?;
    eprintln!(
        "NVRTC {} ({}): {} kernel families x {} architectures",
        nvrtc.version_text(),
        nvrtc.library.display(),
        KERNELS.len(),
        archs.len()
    );
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut failed = 0;
    for arch in &archs {
        for unit in &KERNELS {
            let started = std::time::Instant::now();
            match nvrtc.compile(unit, *arch) {
                Ok(cubin) => {
                    let path = out.join(format!("{}.{arch}.cubin", unit.name));
                    std::fs::write(&path, &cubin.bytes)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!(
                        "{:<7} {arch:<7} {:>7} bytes  {:>4} ms",
                        unit.name,
                        cubin.bytes.len(),
                        started.elapsed().as_millis()
                    );
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("error: {e}");
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} kernel compilation(s) failed");
    }
    Ok(())
}

fn run_check(args: &KernelsArgs) -> anyhow::Result<()> {
    let cache = KernelCache::new(KernelCache::default_root());
    let started = std::time::Instant::now();
    let kernels = GpuKernels::load(args.device_id, &cache)?;
    println!(
        "kernels loaded for {} in {:.2} s (cache {})",
        kernels.arch(),
        started.elapsed().as_secs_f64(),
        cache.root().display()
    );
    println!(
        "{:<7} {:<28} {:>10} {:>17} {:>7} {:>9}  result",
        "family", "step", "max diff", "differing", "limit", "GPU ms"
    );
    let mut failed = 0;
    let mut frame_ms = 0.0;
    for result in launch::check_all(&kernels, args.iterations as usize) {
        match result {
            Ok(steps) => {
                for s in steps {
                    let verdict = if s.passed() { "ok" } else { "FAIL" };
                    failed += usize::from(!s.passed());
                    frame_ms += s.gpu_ms;
                    println!(
                        "{:<7} {:<28} {:>10.3e} {:>8}/{:<8} {:>7.0e} {:>9.4}  {verdict}",
                        s.family,
                        s.step,
                        s.max_abs_diff,
                        s.differing,
                        s.compared,
                        s.limit,
                        s.gpu_ms
                    );
                }
            }
            Err(e) => {
                failed += 1;
                println!("error: {e}");
            }
        }
    }
    println!(
        "all steps together: {frame_ms:.3} ms on the GPU ({}x{} frame, {}x{} face, N = {})",
        check::FRAME.0,
        check::FRAME.1,
        check::FACE.0,
        check::FACE.1,
        check::REFERENCES
    );
    if failed > 0 {
        bail!("{failed} kernel check(s) failed");
    }
    Ok(())
}
