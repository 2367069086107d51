//! NVRTC compiles every kernel family, clean, for every architecture we ship (no GPU needed), and
//! reports broken sources as errors (never a panic). NVRTC comes from the pinned wheel
//! `scripts/setup.sh` installs; without it these tests skip loudly, and fail under CI.

use iplap::kernels::{
    Arch, CI_ARCHS, KERNELS, KernelCache, KernelSource, Nvrtc, NvrtcError, nvrtc,
};

fn compiler() -> Option<&'static Nvrtc> {
    match nvrtc() {
        Ok(n) => Some(n),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI needs NVRTC (scripts/setup.sh installs it): {e}")
        }
        Err(e) => {
            eprintln!("!!!! SKIPPED: {e} !!!!");
            None
        }
    }
}

#[test]
fn every_kernel_compiles_clean_for_every_shipped_architecture() {
    let Some(nvrtc) = compiler() else { return };
    assert_eq!(
        nvrtc.version,
        (13, 0),
        "the pinned NVRTC is 13.0 (cubins a 580 driver loads)"
    );
    let mut failures = Vec::new();
    for arch in CI_ARCHS {
        for unit in &KERNELS {
            match nvrtc.compile(unit, arch) {
                Ok(cubin) => {
                    assert!(cubin.bytes.starts_with(b"\x7fELF"));
                    assert_eq!((cubin.family, cubin.arch), (unit.name, arch));
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn entry_points_are_named_in_the_cubin() {
    let Some(nvrtc) = compiler() else { return };
    for unit in &KERNELS {
        let cubin = nvrtc.compile(unit, Arch(9, 0)).unwrap();
        let entries: Vec<&str> = unit
            .text
            .lines()
            .filter_map(|l| l.split("__global__ void ").nth(1))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        assert!(!entries.is_empty(), "{} has no entry point", unit.name);
        for name in entries {
            let found = cubin
                .bytes
                .windows(name.len())
                .any(|w| w == name.as_bytes());
            assert!(
                found,
                "{} lacks entry point {name} (extern \"C\"?)",
                unit.name
            );
        }
    }
}

#[test]
fn a_broken_kernel_is_an_error_with_the_log() {
    let Some(nvrtc) = compiler() else { return };
    let broken = KernelSource {
        name: "broken",
        text: "#include \"common.cuh\"\nextern \"C\" __global__ void k(float* p) { p[0] = nope; }\n",
    };
    match nvrtc.compile(&broken, Arch(9, 0)) {
        Err(NvrtcError::Compile { log, .. }) => assert!(log.contains("nope"), "{log}"),
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn a_warning_fails_the_compile() {
    let Some(nvrtc) = compiler() else { return };
    let noisy = KernelSource {
        name: "noisy",
        text: "extern \"C\" __global__ void k(float* p) { int unused; p[0] = 1.0f; }\n",
    };
    match nvrtc.compile(&noisy, Arch(9, 0)) {
        Err(NvrtcError::Compile { what, log, .. }) => {
            assert!(what.contains("warning"), "{what}: {log}")
        }
        other => panic!("expected a warning failure, got {other:?}"),
    }
}

#[test]
fn an_architecture_nvrtc_lacks_is_refused() {
    let Some(nvrtc) = compiler() else { return };
    let err = nvrtc.compile(&KERNELS[0], Arch(3, 5)).unwrap_err();
    assert!(matches!(err, NvrtcError::Unsupported { .. }), "{err}");
}

#[test]
fn the_cache_compiles_once_and_then_loads() {
    let Some(nvrtc) = compiler() else { return };
    let dir = std::env::temp_dir().join(format!("iplap-kernel-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = KernelCache::new(&dir);
    let unit = &KERNELS[0];
    let first = cache.get_or_compile(nvrtc, unit, Arch(8, 6)).unwrap();
    let name = KernelCache::file_name(unit, Arch(8, 6), &nvrtc.version_text()).unwrap();
    let stored = dir.join(&name);
    assert_eq!(std::fs::read(&stored).unwrap(), first.bytes);
    // A stored file is what comes back (mark it to tell it from a fresh compile).
    let mut marked = first.bytes.clone();
    marked.push(0);
    std::fs::write(&stored, &marked).unwrap();
    assert_eq!(
        cache.get_or_compile(nvrtc, unit, Arch(8, 6)).unwrap().bytes,
        marked
    );
    // A corrupt file is compiled again and replaced.
    std::fs::write(&stored, b"junk").unwrap();
    assert_eq!(
        cache.get_or_compile(nvrtc, unit, Arch(8, 6)).unwrap().bytes,
        first.bytes
    );
    assert_eq!(std::fs::read(&stored).unwrap(), first.bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_driver_loading_the_kernels_is_a_clean_error() {
    if iplap::runtime::nvidia::driver().is_ok() {
        eprintln!("a GPU is present: the no-driver path is not exercised here");
        return;
    }
    let cache = KernelCache::new(std::env::temp_dir().join("iplap-kernel-cache-unused"));
    let err = iplap::kernels::GpuKernels::load(0, &cache).unwrap_err();
    assert!(matches!(err, iplap::kernels::GpuError::Driver(_)), "{err}");
    assert!(err.to_string().contains("driver"), "{err}");
}
