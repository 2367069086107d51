//! Where `libonnxruntime.so` is found, in priority order:
//!
//! 1. `ORT_DYLIB_PATH` (the `ort` crate's own variable): always wins when set.
//! 2. `libonnxruntime.so` next to the running executable or in its `lib/` sibling (installed layouts).
//! 3. The link `scripts/setup.sh` makes in this checkout: `<workspace>/.venv/ort/libonnxruntime.so`.
//! 4. The dynamic loader's own search (`LD_LIBRARY_PATH`, system folders) by bare name.

use std::path::{Path, PathBuf};

use super::RuntimeError;

/// The file name setup links and the loader searches for.
pub const LIBRARY_NAME: &str = "libonnxruntime.so";

/// How the library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibrarySource {
    /// `ORT_DYLIB_PATH`.
    Environment,
    /// Next to the running executable.
    Executable,
    /// The link made by `scripts/setup.sh` in this checkout.
    Setup,
    /// Left to the dynamic loader's search path.
    LoaderPath,
}

/// A library path and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedLibrary {
    pub path: PathBuf,
    pub source: LibrarySource,
}

/// The link `scripts/setup.sh` creates, baked in at build time so no variable is needed.
pub fn setup_link() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv")
        .join("ort")
        .join(LIBRARY_NAME)
}

/// Finds the ONNX Runtime shared library (see the module doc for the order).
pub fn locate_library() -> Result<LocatedLibrary, RuntimeError> {
    locate_with(
        std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from),
        std::env::current_exe().ok(),
        setup_link(),
    )
}

fn locate_with(
    env: Option<PathBuf>,
    exe: Option<PathBuf>,
    setup: PathBuf,
) -> Result<LocatedLibrary, RuntimeError> {
    let mut searched = Vec::new();
    if let Some(path) = env.filter(|p| !p.as_os_str().is_empty()) {
        // An explicit override that points nowhere is a mistake to report, not to paper over.
        if path.is_file() {
            return Ok(LocatedLibrary {
                path,
                source: LibrarySource::Environment,
            });
        }
        return Err(RuntimeError::LibraryNotFound {
            searched: format!("ORT_DYLIB_PATH={} (no such file)", path.display()),
        });
    }
    if let Some(dir) = exe.as_deref().and_then(Path::parent) {
        for candidate in [dir.join(LIBRARY_NAME), dir.join("lib").join(LIBRARY_NAME)] {
            if candidate.is_file() {
                return Ok(LocatedLibrary {
                    path: candidate,
                    source: LibrarySource::Executable,
                });
            }
            searched.push(candidate.display().to_string());
        }
    }
    if setup.is_file() {
        return Ok(LocatedLibrary {
            path: setup,
            source: LibrarySource::Setup,
        });
    }
    searched.push(setup.display().to_string());
    if let Some(path) = search_loader_path() {
        return Ok(LocatedLibrary {
            path,
            source: LibrarySource::LoaderPath,
        });
    }
    searched.push("LD_LIBRARY_PATH and /usr/lib, /usr/local/lib".into());
    Err(RuntimeError::LibraryNotFound {
        searched: searched.join(", "),
    })
}

fn search_loader_path() -> Option<PathBuf> {
    let from_env = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .unwrap_or_default();
    from_env
        .into_iter()
        .chain(["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"].map(PathBuf::from))
        .map(|d| d.join(LIBRARY_NAME))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("iplap-locate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn environment_wins() {
        let d = tmpdir("env");
        let env = touch(&d, "custom.so");
        let exe_lib = touch(&d, "bin/libonnxruntime.so");
        let got = locate_with(
            Some(env.clone()),
            Some(exe_lib.with_file_name("iplap")),
            d.join("x"),
        )
        .unwrap();
        assert_eq!(
            got,
            LocatedLibrary {
                path: env,
                source: LibrarySource::Environment
            }
        );
    }

    #[test]
    fn missing_environment_file_is_an_error() {
        let d = tmpdir("envmissing");
        let err = locate_with(Some(d.join("nope.so")), None, touch(&d, "setup.so")).unwrap_err();
        assert!(err.to_string().contains("ORT_DYLIB_PATH"), "{err}");
    }

    #[test]
    fn executable_then_setup() {
        let d = tmpdir("order");
        let setup = touch(&d, "venv/libonnxruntime.so");
        let exe = d.join("bin/iplap");
        let got = locate_with(None, Some(exe.clone()), setup.clone()).unwrap();
        assert_eq!(got.source, LibrarySource::Setup);
        let beside = touch(&d, "bin/lib/libonnxruntime.so");
        let got = locate_with(None, Some(exe), setup).unwrap();
        assert_eq!(
            got,
            LocatedLibrary {
                path: beside,
                source: LibrarySource::Executable
            }
        );
    }

    #[test]
    fn not_found_names_what_to_do() {
        let d = tmpdir("none");
        if search_loader_path().is_some() {
            return; // a system-wide install would be found; nothing to check here
        }
        let err = locate_with(None, Some(d.join("bin/iplap")), d.join("missing.so")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("scripts/setup.sh") && msg.contains("missing.so"),
            "{msg}"
        );
    }
}
