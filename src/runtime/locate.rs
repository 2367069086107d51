//! Where `libonnxruntime.so` is found, in priority order:
//!
//! 1. `ORT_DYLIB_PATH` (the `ort` crate's own variable): always wins when set.
//! 2. `libonnxruntime.so` next to the code that runs — the plugin library when GStreamer loaded
//!    it (not `gst-launch-1.0`), else the executable — or in its `lib/` sibling.
//! 3. The data folders and, for a development build, the checkout's `.venv/ort/` link that
//!    `scripts/setup.sh` makes ([`crate::data_files`], file `onnxruntime/libonnxruntime.so`).
//! 4. The dynamic loader's own search (`LD_LIBRARY_PATH`, system folders) by bare name.

use std::path::PathBuf;

use super::RuntimeError;
use crate::data_files::{DataFile, Origin, SearchContext};

/// The file name setup links and the loader searches for.
pub const LIBRARY_NAME: &str = "libonnxruntime.so";

/// How the library was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibrarySource {
    /// `ORT_DYLIB_PATH`.
    Environment,
    /// Next to the plugin library or the executable.
    BesideModule,
    /// A data folder or the checkout ([`crate::data_files`]).
    DataFolder(Origin),
    /// Left to the dynamic loader's search path.
    LoaderPath,
}

/// A library path and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedLibrary {
    pub path: PathBuf,
    pub source: LibrarySource,
}

/// Finds the ONNX Runtime shared library (see the module doc for the order).
pub fn locate_library() -> Result<LocatedLibrary, RuntimeError> {
    locate_with(&SearchContext::current())
}

fn locate_with(ctx: &SearchContext) -> Result<LocatedLibrary, RuntimeError> {
    let file = DataFile::OnnxRuntime;
    let env_set = ctx
        .env
        .iter()
        .any(|(n, v)| *n == file.env_var() && !v.is_empty());
    if env_set {
        // An explicit override that points nowhere is a mistake to report, not to paper over.
        return match ctx.locate(file) {
            Ok(found) => Ok(LocatedLibrary {
                path: found.path,
                source: LibrarySource::Environment,
            }),
            Err(e) => Err(RuntimeError::LibraryNotFound {
                searched: e.to_string(),
            }),
        };
    }
    let mut searched = Vec::new();
    if let Some(dir) = ctx.module.as_deref().and_then(|m| m.parent()) {
        for candidate in [dir.join(LIBRARY_NAME), dir.join("lib").join(LIBRARY_NAME)] {
            if candidate.is_file() {
                return Ok(LocatedLibrary {
                    path: candidate,
                    source: LibrarySource::BesideModule,
                });
            }
            searched.push(candidate.display().to_string());
        }
    }
    match ctx.locate(file) {
        Ok(found) => {
            return Ok(LocatedLibrary {
                path: found.path,
                source: LibrarySource::DataFolder(found.origin),
            });
        }
        Err(e) => searched.extend(
            e.tried
                .iter()
                .map(|(o, p)| format!("{} ({o})", p.display())),
        ),
    }
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
    use std::path::Path;

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

    /// A context with nothing from the real machine in it.
    fn context(d: &Path, module: &str) -> SearchContext {
        SearchContext {
            env: vec![("XDG_DATA_DIRS", d.join("sys").into_os_string())],
            home: Some(d.join("home")),
            module: Some(d.join(module)),
            checkout: d.join("checkout"),
        }
    }

    #[test]
    fn environment_wins() {
        let d = tmpdir("env");
        let env = touch(&d, "custom.so");
        touch(&d, "bin/libonnxruntime.so");
        let mut ctx = context(&d, "bin/iplap");
        ctx.env
            .push(("ORT_DYLIB_PATH", env.clone().into_os_string()));
        let got = locate_with(&ctx).unwrap();
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
        let mut ctx = context(&d, "bin/iplap");
        ctx.env
            .push(("ORT_DYLIB_PATH", d.join("nope.so").into_os_string()));
        let err = locate_with(&ctx).unwrap_err();
        assert!(err.to_string().contains("ORT_DYLIB_PATH"), "{err}");
    }

    #[test]
    fn beside_the_plugin_then_the_data_folder_then_the_checkout() {
        let d = tmpdir("order");
        let plugin = "prefix/lib/gstreamer-1.0/libgstiplap.so";
        // A development build inside the checkout finds setup's link.
        let mut ctx = context(&d, "checkout/target/release/libgstiplap.so");
        let link = touch(&d, "checkout/.venv/ort/libonnxruntime.so");
        assert_eq!(
            locate_with(&ctx).unwrap(),
            LocatedLibrary {
                path: link,
                source: LibrarySource::DataFolder(Origin::Checkout)
            }
        );
        // An installed plugin finds the copy in its prefix's data folder…
        ctx.module = Some(d.join(plugin));
        let data = touch(&d, "prefix/share/iplap/onnxruntime/libonnxruntime.so");
        assert_eq!(
            locate_with(&ctx).unwrap(),
            LocatedLibrary {
                path: data,
                source: LibrarySource::DataFolder(Origin::InstallPrefix)
            }
        );
        // …and a library right beside the plugin first (not beside gst-launch-1.0).
        let beside = touch(&d, "prefix/lib/gstreamer-1.0/libonnxruntime.so");
        assert_eq!(
            locate_with(&ctx).unwrap(),
            LocatedLibrary {
                path: beside,
                source: LibrarySource::BesideModule
            }
        );
    }

    #[test]
    fn not_found_names_what_to_do() {
        let d = tmpdir("none");
        if search_loader_path().is_some() {
            return; // a system-wide install would be found; nothing to check here
        }
        let err = locate_with(&context(&d, "bin/iplap")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("scripts/setup.sh")
                && msg.contains("home/.local/share/iplap/onnxruntime/libonnxruntime.so"),
            "{msg}"
        );
    }
}
