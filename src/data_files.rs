//! Where iplap finds the files it does not compile in: the converted face models, the default
//! model package and the ONNX Runtime library — for a copy installed anywhere (`scripts/setup.sh
//! --install`) as well as for the checkout it was built in. Nothing here depends on the path the
//! code was built at, except the last step, which applies only to binaries still inside their
//! checkout.
//!
//! Search order for each [`DataFile`] (the first that holds it wins):
//! 1. its explicit setting (element property, CLI flag) — callers pass it and nothing is searched;
//! 2. its environment variable ([`DataFile::env_var`]); set but pointing nowhere is an error;
//! 3. `$IPLAP_DATA_DIR`;
//! 4. `$XDG_DATA_HOME/iplap` (default `~/.local/share/iplap`);
//! 5. the install prefix of the running code: `PREFIX/share/iplap` for the nearest `PREFIX` above
//!    the plugin library or the executable (`PREFIX/lib/gstreamer-1.0/libgstiplap.so`,
//!    `PREFIX/bin/iplap`, …);
//! 6. `$XDG_DATA_DIRS/iplap` (default `/usr/local/share/iplap`, `/usr/share/iplap`);
//! 7. the checkout, when the running code lies inside it (`target/…`): `models/generated/face`,
//!    `models/ip_lap`, `.venv/ort/libonnxruntime.so`, `.venv/nvrtc/nvidia/cu13/lib/libnvrtc.so.13`.
//!
//! A data folder holds `face/` (the two converted MediaPipe models), `models/ip_lap/` (a model
//! package made by `iplap convert`), `onnxruntime/libonnxruntime.so` and, for the CUDA kernels,
//! `nvrtc/libnvrtc.so.13`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming a data folder (step 3).
pub const DATA_DIR_ENV: &str = "IPLAP_DATA_DIR";
/// The data folder's name under `share/` and the XDG data folders.
pub const DATA_DIR_NAME: &str = "iplap";
/// The default model package's folder name (inside `models/`).
pub const DEFAULT_PACKAGE_NAME: &str = "ip_lap";

/// A file (or folder) iplap looks for at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFile {
    /// The converted MediaPipe face detector and mesh (a folder).
    FaceModels,
    /// The model package used when none is named (a folder made by `iplap convert`).
    ModelPackage,
    /// `libonnxruntime.so`.
    OnnxRuntime,
    /// NVIDIA's runtime compiler `libnvrtc.so.13`, for the CUDA kernels (`crate::kernels`).
    Nvrtc,
}

impl DataFile {
    /// The environment variable that names it directly (step 2).
    pub fn env_var(self) -> &'static str {
        match self {
            DataFile::FaceModels => "IPLAP_FACE_MODELS",
            DataFile::ModelPackage => "IPLAP_MODELS",
            // The `ort` crate's own variable.
            DataFile::OnnxRuntime => "ORT_DYLIB_PATH",
            DataFile::Nvrtc => "IPLAP_NVRTC",
        }
    }

    /// Its place inside a data folder.
    pub fn in_data_dir(self) -> &'static str {
        match self {
            DataFile::FaceModels => "face",
            DataFile::ModelPackage => "models/ip_lap",
            DataFile::OnnxRuntime => "onnxruntime/libonnxruntime.so",
            DataFile::Nvrtc => "nvrtc/libnvrtc.so.13",
        }
    }

    /// Its place in the checkout (where `scripts/setup.sh` and the README put it).
    pub fn in_checkout(self) -> &'static str {
        match self {
            DataFile::FaceModels => crate::face::prepare::DEFAULT_OUT_DIR,
            DataFile::ModelPackage => "models/ip_lap",
            DataFile::OnnxRuntime => ".venv/ort/libonnxruntime.so",
            DataFile::Nvrtc => ".venv/nvrtc/nvidia/cu13/lib/libnvrtc.so.13",
        }
    }

    /// What it is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            DataFile::FaceModels => "the face models",
            DataFile::ModelPackage => "a model package",
            DataFile::OnnxRuntime => "the ONNX Runtime library",
            DataFile::Nvrtc => "NVIDIA's runtime compiler (NVRTC)",
        }
    }

    /// How to make it, for messages.
    pub fn hint(self) -> &'static str {
        match self {
            DataFile::FaceModels => {
                "run scripts/setup.sh (and scripts/setup.sh --install for an installed copy), or \
                 `iplap prepare-face-models <mediapipe-0.10.21 wheel> --out DIR`"
            }
            DataFile::ModelPackage => {
                "convert the official checkpoints with `iplap convert --landmark-checkpoint … \
                 --renderer-checkpoint … --out DIR` and name DIR (property `models`, flag \
                 --models or IPLAP_MODELS), or put it in a data folder as models/ip_lap"
            }
            DataFile::OnnxRuntime => {
                "run scripts/setup.sh (it installs the pinned onnxruntime wheel), or set \
                 ORT_DYLIB_PATH to a libonnxruntime.so 1.31"
            }
            DataFile::Nvrtc => {
                "run scripts/setup.sh (it installs the pinned nvidia-cuda-nvrtc 13.0 wheel), or set \
                 IPLAP_NVRTC to a libnvrtc.so.13 from CUDA 13.0"
            }
        }
    }

    /// Whether `path` holds a usable copy (not just any file of that name).
    pub fn is_present(self, path: &Path) -> bool {
        match self {
            DataFile::FaceModels => [
                crate::face::prepare::DETECTOR.onnx_name,
                crate::face::prepare::MESH.onnx_name,
            ]
            .iter()
            .all(|n| path.join(n).is_file()),
            DataFile::ModelPackage => path.join("manifest.json").is_file(),
            DataFile::OnnxRuntime | DataFile::Nvrtc => path.is_file(),
        }
    }
}

/// Which step of the search found a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The file's own environment variable.
    Environment(&'static str),
    /// `IPLAP_DATA_DIR`.
    DataDirEnv,
    /// `$XDG_DATA_HOME/iplap`.
    UserData,
    /// `PREFIX/share/iplap` above the running code.
    InstallPrefix,
    /// `$XDG_DATA_DIRS/iplap` or the standard system folders.
    SystemData,
    /// The checkout the running code was built in.
    Checkout,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Environment(v) => write!(f, "{v}"),
            Origin::DataDirEnv => write!(f, "{DATA_DIR_ENV}"),
            Origin::UserData => write!(f, "user data folder"),
            Origin::InstallPrefix => write!(f, "install prefix"),
            Origin::SystemData => write!(f, "system data folder"),
            Origin::Checkout => write!(f, "checkout"),
        }
    }
}

/// A file found by [`locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub origin: Origin,
}

/// Nothing found: what was looked for, every place tried, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct NotFound {
    pub file: DataFile,
    /// `(step, path)` in search order.
    pub tried: Vec<(Origin, PathBuf)>,
    /// The environment variable was set to a path that does not hold the file.
    pub bad_env: Option<PathBuf>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.bad_env {
            return write!(
                f,
                "{}={} does not hold {} ({})",
                self.file.env_var(),
                p.display(),
                self.file.describe(),
                self.file.hint()
            );
        }
        write!(f, "cannot find {}; tried ", self.file.describe())?;
        for (i, (origin, path)) in self.tried.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{} ({origin})", path.display())?;
        }
        write!(f, ". To fix: {}", self.file.hint())
    }
}

/// What the search depends on, so that it can be tested without touching the process.
#[derive(Debug, Clone, Default)]
pub struct SearchContext {
    /// Environment lookup results by name.
    pub env: Vec<(&'static str, OsString)>,
    /// `$HOME`, for the default `XDG_DATA_HOME`.
    pub home: Option<PathBuf>,
    /// The file holding the running code (plugin library or executable).
    pub module: Option<PathBuf>,
    /// The checkout the code was built in.
    pub checkout: PathBuf,
}

impl SearchContext {
    /// The running process's context.
    pub fn current() -> Self {
        let names = [
            DataFile::FaceModels.env_var(),
            DataFile::ModelPackage.env_var(),
            DataFile::OnnxRuntime.env_var(),
            DataFile::Nvrtc.env_var(),
            DATA_DIR_ENV,
            "XDG_DATA_HOME",
            "XDG_DATA_DIRS",
        ];
        SearchContext {
            env: names
                .into_iter()
                .filter_map(|n| std::env::var_os(n).map(|v| (n, v)))
                .collect(),
            home: std::env::var_os("HOME").map(PathBuf::from),
            module: module_path(),
            checkout: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        }
    }

    fn var(&self, name: &str) -> Option<&OsString> {
        self.env
            .iter()
            .find(|(n, v)| *n == name && !v.is_empty())
            .map(|(_, v)| v)
    }

    /// Whether the running code lives inside the checkout it was built in (a development build).
    pub fn in_checkout(&self) -> bool {
        self.module
            .as_deref()
            .is_some_and(|m| m.starts_with(&self.checkout))
    }

    /// The data folders of steps 3-6, in order, without duplicates.
    pub fn data_dirs(&self) -> Vec<(Origin, PathBuf)> {
        let mut dirs: Vec<(Origin, PathBuf)> = Vec::new();
        let mut add = |origin: Origin, dir: PathBuf| {
            if !dirs.iter().any(|(_, d)| *d == dir) {
                dirs.push((origin, dir));
            }
        };
        if let Some(d) = self.var(DATA_DIR_ENV) {
            add(Origin::DataDirEnv, PathBuf::from(d));
        }
        let user = self
            .var("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| self.home.as_ref().map(|h| h.join(".local/share")));
        if let Some(u) = user {
            add(Origin::UserData, u.join(DATA_DIR_NAME));
        }
        // The nearest PREFIX/share/iplap above the code: bin/iplap, lib/gstreamer-1.0/x.so,
        // lib/<triplet>/gstreamer-1.0/x.so, share/gstreamer-1.0/plugins/x.so.
        if let Some(module) = &self.module
            && let Some(dir) = module
                .ancestors()
                .skip(1)
                .take(4)
                .map(|a| a.join("share").join(DATA_DIR_NAME))
                .find(|d| d.is_dir())
        {
            add(Origin::InstallPrefix, dir);
        }
        let system = self
            .var("XDG_DATA_DIRS")
            .map(|v| std::env::split_paths(v).collect::<Vec<_>>())
            .unwrap_or_default();
        for d in system
            .into_iter()
            .chain(["/usr/local/share", "/usr/share"].map(PathBuf::from))
        {
            add(Origin::SystemData, d.join(DATA_DIR_NAME));
        }
        dirs
    }

    /// Finds `file` (steps 2-7; step 1 is the caller's).
    pub fn locate(&self, file: DataFile) -> Result<Located, NotFound> {
        if let Some(v) = self.var(file.env_var()) {
            let path = PathBuf::from(v);
            if file.is_present(&path) {
                return Ok(Located {
                    path,
                    origin: Origin::Environment(file.env_var()),
                });
            }
            return Err(NotFound {
                file,
                tried: vec![(Origin::Environment(file.env_var()), path.clone())],
                bad_env: Some(path),
            });
        }
        let mut tried = Vec::new();
        let checkout = self
            .in_checkout()
            .then(|| (Origin::Checkout, self.checkout.join(file.in_checkout())));
        let candidates = self
            .data_dirs()
            .into_iter()
            .map(|(o, d)| (o, d.join(file.in_data_dir())))
            .chain(checkout);
        for (origin, path) in candidates {
            if file.is_present(&path) {
                return Ok(Located { path, origin });
            }
            tried.push((origin, path));
        }
        Err(NotFound {
            file,
            tried,
            bad_env: None,
        })
    }
}

/// Finds `file` for the running process (see the module documentation).
pub fn locate(file: DataFile) -> Result<Located, NotFound> {
    SearchContext::current().locate(file)
}

/// The shared library or executable that holds this code: the GStreamer plugin when loaded as
/// one (so that an installed plugin finds the files installed beside it, not beside
/// `gst-launch-1.0`), else the running executable.
pub fn module_path() -> Option<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let addr = module_path as *const () as *const libc::c_void;
        // SAFETY: dladdr only reads the loader's tables; `info` is a valid out-parameter.
        let found = unsafe { libc::dladdr(addr, &mut info) } != 0;
        if found && !info.dli_fname.is_null() {
            // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
            let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
            // The main program is reported as given on the command line; only libraries are
            // reported by their loaded path.
            if path.is_absolute()
                && path
                    .extension()
                    .is_some_and(|e| e == "so" || e.to_string_lossy().starts_with("so."))
            {
                return Some(path.canonicalize().unwrap_or(path));
            }
        }
    }
    std::env::current_exe()
        .ok()
        .map(|p| p.canonicalize().unwrap_or(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("iplap-data-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn faces(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for n in [
            crate::face::prepare::DETECTOR.onnx_name,
            crate::face::prepare::MESH.onnx_name,
        ] {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
    }

    fn context(root: &Path) -> SearchContext {
        SearchContext {
            env: vec![("XDG_DATA_DIRS", root.join("sys").into_os_string())],
            home: Some(root.join("home")),
            module: Some(root.join("prefix/lib/gstreamer-1.0/libgstiplap.so")),
            checkout: root.join("checkout"),
        }
    }

    #[test]
    fn install_prefix_is_found_from_the_plugin_and_the_checkout_is_not_searched() {
        let root = tmp("prefix");
        let ctx = context(&root);
        faces(
            &root
                .join("checkout")
                .join(DataFile::FaceModels.in_checkout()),
        );
        let err = ctx.locate(DataFile::FaceModels).unwrap_err();
        let msg = err.to_string();
        assert!(
            !msg.contains("checkout"),
            "an installed copy never looks there: {msg}"
        );
        assert!(msg.contains("home/.local/share/iplap/face"), "{msg}");
        assert!(msg.contains("iplap prepare-face-models"), "{msg}");
        faces(&root.join("prefix/share/iplap/face"));
        let got = ctx.locate(DataFile::FaceModels).unwrap();
        assert_eq!(got.origin, Origin::InstallPrefix);
        // The user's data folder comes first.
        faces(&root.join("home/.local/share/iplap/face"));
        assert_eq!(
            ctx.locate(DataFile::FaceModels).unwrap().origin,
            Origin::UserData
        );
    }

    #[test]
    fn environment_wins_and_a_wrong_one_is_an_error() {
        let root = tmp("env");
        let mut ctx = context(&root);
        faces(&root.join("home/.local/share/iplap/face"));
        faces(&root.join("mine"));
        ctx.env
            .push(("IPLAP_FACE_MODELS", root.join("mine").into_os_string()));
        assert_eq!(
            ctx.locate(DataFile::FaceModels).unwrap(),
            Located {
                path: root.join("mine"),
                origin: Origin::Environment("IPLAP_FACE_MODELS")
            }
        );
        ctx.env[1].1 = root.join("nothing").into_os_string();
        let msg = ctx.locate(DataFile::FaceModels).unwrap_err().to_string();
        assert!(msg.starts_with("IPLAP_FACE_MODELS="), "{msg}");
        // IPLAP_DATA_DIR is a data folder searched before the user's.
        ctx.env.truncate(1);
        faces(&root.join("data/face"));
        ctx.env
            .push((DATA_DIR_ENV, root.join("data").into_os_string()));
        assert_eq!(
            ctx.locate(DataFile::FaceModels).unwrap().origin,
            Origin::DataDirEnv
        );
    }

    #[test]
    fn a_development_build_falls_back_to_its_checkout() {
        let root = tmp("checkout");
        let mut ctx = context(&root);
        ctx.module = Some(root.join("checkout/target/release/iplap"));
        let lib = root.join("checkout/.venv/ort/libonnxruntime.so");
        std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
        std::fs::write(&lib, b"x").unwrap();
        assert_eq!(
            ctx.locate(DataFile::OnnxRuntime).unwrap(),
            Located {
                path: lib,
                origin: Origin::Checkout
            }
        );
        // A system data folder from XDG_DATA_DIRS comes before it.
        let sys = root.join("sys/iplap/onnxruntime/libonnxruntime.so");
        std::fs::create_dir_all(sys.parent().unwrap()).unwrap();
        std::fs::write(&sys, b"x").unwrap();
        assert_eq!(
            ctx.locate(DataFile::OnnxRuntime).unwrap().origin,
            Origin::SystemData
        );
    }

    #[test]
    fn the_running_module_is_a_real_file() {
        let m = module_path().unwrap();
        assert!(m.is_file(), "{}", m.display());
    }
}
