//! NVRTC: compiles the kernel sources to cubins for one GPU architecture.
//!
//! Cubins, never PTX: PTX from an NVRTC newer than the driver is rejected at load time, while a
//! cubin for the device's exact architecture loads on any driver of the same major CUDA version.
//! NVRTC is loaded dynamically (cudarc), from the pinned `nvidia-cuda-nvrtc` 13.0 wheel that
//! `scripts/setup.sh` installs, `IPLAP_NVRTC` or the loader's path ([`DataFile::Nvrtc`]); cudarc
//! panics when the library is missing, so it is looked for first and every call is guarded.
//!
//! A compile that prints anything (errors or warnings) fails: the kernels build clean on every
//! architecture we ship, and CI holds them to it.

use std::ffi::{CStr, CString, c_char, c_int};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;

use cudarc::nvrtc::sys;

use super::KernelSource;
use crate::data_files::{self, DataFile};

/// The options every kernel is compiled with (besides the architecture). `--fmad=false` keeps
/// multiply-adds apart so the float maths rounds exactly as the host build (`-ffp-contract=off`)
/// and the Rust code do.
pub const COMPILE_OPTIONS: [&str; 2] = ["--std=c++17", "--fmad=false"];

/// The library NVRTC loads at every compile, from beside itself.
const BUILTINS_LIBRARY: &str = "libnvrtc-builtins.so.13.0";

/// The architectures CI compiles every kernel for (Turing to Blackwell consumer).
pub const CI_ARCHS: [Arch; 6] = [
    Arch(7, 5),
    Arch(8, 0),
    Arch(8, 6),
    Arch(8, 9),
    Arch(9, 0),
    Arch(12, 0),
];

/// A GPU architecture (compute capability), written `sm_90`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch(pub u32, pub u32);

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sm_{}{}", self.0, self.1)
    }
}

impl FromStr for Arch {
    type Err = String;
    /// `sm_90`, `90` or `9.0`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a GPU architecture (write it as sm_90, 90 or 9.0)");
        let t = s.trim();
        let t = t.strip_prefix("sm_").unwrap_or(t);
        let (major, minor) = match t.split_once('.') {
            Some((a, b)) => (a, b),
            None if t.len() >= 2 => t.split_at(t.len() - 1),
            None => return Err(bad()),
        };
        let major: u32 = major.parse().map_err(|_| bad())?;
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        if !(1..=99).contains(&major) || minor > 9 {
            return Err(bad());
        }
        Ok(Arch(major, minor))
    }
}

/// Why a kernel could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NvrtcError {
    /// No NVRTC library could be loaded.
    #[error("NVRTC is not available: {0}")]
    Missing(String),
    /// NVRTC cannot target the architecture.
    #[error("NVRTC {version} cannot compile for {arch} (it supports {supported})")]
    Unsupported {
        arch: Arch,
        version: String,
        supported: String,
    },
    /// The source did not compile, or printed warnings.
    #[error("kernel {family} for {arch}: {what}:\n{log}")]
    Compile {
        family: &'static str,
        arch: Arch,
        what: &'static str,
        log: String,
    },
    /// An NVRTC call failed outside compilation.
    #[error("NVRTC {call} failed: {status}")]
    Call { call: &'static str, status: String },
}

/// A compiled kernel family for one architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cubin {
    pub family: &'static str,
    pub arch: Arch,
    pub bytes: Vec<u8>,
}

/// The loaded NVRTC library.
#[derive(Debug)]
pub struct Nvrtc {
    /// `major.minor` as NVRTC reports it.
    pub version: (u32, u32),
    /// Where it was loaded from (a path, or a bare name left to the loader).
    pub library: PathBuf,
    /// The architectures it can compile for.
    pub archs: Vec<Arch>,
}

/// The NVRTC library, loaded once per process.
pub fn nvrtc() -> Result<&'static Nvrtc, NvrtcError> {
    static NVRTC: OnceLock<Result<Nvrtc, NvrtcError>> = OnceLock::new();
    NVRTC.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Nvrtc, NvrtcError> {
    // Preload our pinned copy globally under its soname, so cudarc's own by-name `dlopen` of
    // `libnvrtc.so.13` resolves to it instead of searching the loader path.
    let found = data_files::locate(DataFile::Nvrtc);
    let library = match &found {
        Ok(located) => {
            // NVRTC `dlopen`s its builtins library by bare name at each compile; the wheel sets
            // no search path, so load the one beside it first (an already-loaded soname wins).
            if let Some(dir) = located.path.parent() {
                load_global(&dir.join(BUILTINS_LIBRARY));
            }
            if !load_global(&located.path) {
                return Err(NvrtcError::Missing(format!(
                    "{} does not load",
                    located.path.display()
                )));
            }
            located.path.clone()
        }
        Err(_) => PathBuf::from("libnvrtc.so.13"),
    };
    // SAFETY: probing only loads the library and drops the handle.
    if !unsafe { sys::is_culib_present() } {
        // The search's own message names every place tried and how to fix it.
        return Err(NvrtcError::Missing(match found {
            Err(e) => format!("libnvrtc.so.13 is not on the loader's path either: {e}"),
            Ok(l) => format!("{} does not load", l.path.display()),
        }));
    }
    let guarded = std::panic::catch_unwind(|| {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two out-pointers to live integers.
        check("nvrtcVersion", unsafe {
            sys::nvrtcVersion(&mut major, &mut minor)
        })?;
        let mut n: c_int = 0;
        // SAFETY: an out-pointer to a live integer.
        check("nvrtcGetNumSupportedArchs", unsafe {
            sys::nvrtcGetNumSupportedArchs(&mut n)
        })?;
        let mut raw = vec![0 as c_int; n.max(0) as usize];
        // SAFETY: `raw` holds the `n` entries NVRTC said it writes.
        check("nvrtcGetSupportedArchs", unsafe {
            sys::nvrtcGetSupportedArchs(raw.as_mut_ptr())
        })?;
        let archs = raw
            .into_iter()
            .map(|a| Arch(a as u32 / 10, a as u32 % 10))
            .collect();
        Ok((major as u32, minor as u32, archs))
    });
    let (major, minor, archs) = guarded.unwrap_or_else(|_| {
        Err(NvrtcError::Missing(format!(
            "{} lacks an NVRTC 13 entry point",
            library.display()
        )))
    })?;
    Ok(Nvrtc {
        version: (major, minor),
        library,
        archs,
    })
}

fn load_global(path: &std::path::Path) -> bool {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading NVRTC runs only its initialisers; the handle is leaked on purpose so the
    // library stays loaded for cudarc.
    match unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) } {
        Ok(lib) => {
            std::mem::forget(lib);
            true
        }
        Err(_) => false,
    }
}

fn check(call: &'static str, status: sys::nvrtcResult) -> Result<(), NvrtcError> {
    if status == sys::nvrtcResult::NVRTC_SUCCESS {
        return Ok(());
    }
    // SAFETY: NVRTC returns a static string for every status.
    let text = unsafe { CStr::from_ptr(sys::nvrtcGetErrorString(status)) };
    Err(NvrtcError::Call {
        call,
        status: text.to_string_lossy().into_owned(),
    })
}

impl Nvrtc {
    /// `13.0`: part of the cache key (a newer NVRTC may emit different code).
    pub fn version_text(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }

    /// Compiles `unit` to a cubin for `arch`; anything NVRTC prints is an error.
    pub fn compile(&self, unit: &KernelSource, arch: Arch) -> Result<Cubin, NvrtcError> {
        if !self.archs.contains(&arch) {
            return Err(NvrtcError::Unsupported {
                arch,
                version: self.version_text(),
                supported: self
                    .archs
                    .iter()
                    .map(Arch::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let source = unit.resolved().map_err(|log| NvrtcError::Compile {
            family: unit.name,
            arch,
            what: "the source does not resolve",
            log,
        })?;
        std::panic::catch_unwind(|| compile_guarded(unit.name, &source, arch)).unwrap_or_else(
            |_| {
                Err(NvrtcError::Missing(
                    "an NVRTC entry point is missing from the loaded library".into(),
                ))
            },
        )
    }
}

/// Owns an `nvrtcProgram` so every path destroys it.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program was created by nvrtcCreateProgram and is destroyed once.
        let _ = unsafe { sys::nvrtcDestroyProgram(&mut self.0) };
    }
}

fn compile_guarded(family: &'static str, source: &str, arch: Arch) -> Result<Cubin, NvrtcError> {
    let fail = |what: &'static str, log: String| NvrtcError::Compile {
        family,
        arch,
        what,
        log,
    };
    let src =
        CString::new(source).map_err(|_| fail("the source holds a NUL byte", String::new()))?;
    let name = CString::new(format!("{family}.cu")).expect("family names have no NUL");
    let mut prog = Program(std::ptr::null_mut());
    // SAFETY: `src` and `name` outlive the call; no headers are passed (includes are resolved).
    check("nvrtcCreateProgram", unsafe {
        sys::nvrtcCreateProgram(
            &mut prog.0,
            src.as_ptr(),
            name.as_ptr(),
            0,
            std::ptr::null(),
            std::ptr::null(),
        )
    })?;
    let options: Vec<CString> = std::iter::once(format!("--gpu-architecture={arch}"))
        .chain(COMPILE_OPTIONS.iter().map(|s| s.to_string()))
        .map(|o| CString::new(o).expect("options have no NUL"))
        .collect();
    let pointers: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: `pointers` holds `options.len()` valid C strings that outlive the call.
    let status =
        unsafe { sys::nvrtcCompileProgram(prog.0, pointers.len() as c_int, pointers.as_ptr()) };
    let log = program_log(&prog)?;
    if status != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(fail("compilation failed", log));
    }
    if !log.trim().is_empty() {
        return Err(fail("warnings (kernels must compile clean)", log));
    }
    let mut size = 0usize;
    // SAFETY: an out-pointer to a live integer.
    check("nvrtcGetCUBINSize", unsafe {
        sys::nvrtcGetCUBINSize(prog.0, &mut size)
    })?;
    let mut bytes = vec![0u8; size];
    // SAFETY: `bytes` holds the `size` bytes NVRTC writes.
    check("nvrtcGetCUBIN", unsafe {
        sys::nvrtcGetCUBIN(prog.0, bytes.as_mut_ptr().cast())
    })?;
    if !bytes.starts_with(b"\x7fELF") {
        return Err(fail("NVRTC returned no cubin", String::new()));
    }
    Ok(Cubin {
        family,
        arch,
        bytes,
    })
}

fn program_log(prog: &Program) -> Result<String, NvrtcError> {
    let mut size = 0usize;
    // SAFETY: an out-pointer to a live integer.
    check("nvrtcGetProgramLogSize", unsafe {
        sys::nvrtcGetProgramLogSize(prog.0, &mut size)
    })?;
    let mut log = vec![0u8; size.max(1)];
    // SAFETY: `log` holds the `size` bytes (NUL included) NVRTC writes.
    check("nvrtcGetProgramLog", unsafe {
        sys::nvrtcGetProgramLog(prog.0, log.as_mut_ptr().cast())
    })?;
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    Ok(String::from_utf8_lossy(&log[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_parses_every_spelling() {
        assert_eq!("sm_90".parse::<Arch>().unwrap(), Arch(9, 0));
        assert_eq!("86".parse::<Arch>().unwrap(), Arch(8, 6));
        assert_eq!("12.0".parse::<Arch>().unwrap(), Arch(12, 0));
        assert_eq!("sm_120".parse::<Arch>().unwrap(), Arch(12, 0));
        assert_eq!(Arch(7, 5).to_string(), "sm_75");
        for bad in ["", "sm_", "9", "sm_9x", "compute_90", "1.10"] {
            assert!(bad.parse::<Arch>().is_err(), "{bad}");
        }
    }
}
