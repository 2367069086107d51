//! Locating the shared reference data (`shared/`: goldens, media, docs) for tests, benches and examples.
//!
//! Tests find the data through `IPLAP_SHARED` (default: `../shared` next to the workspace). When it
//! is missing they skip *loudly*; with `IPLAP_REQUIRE_SHARED=1` (set by `scripts/test.sh` in CI) a
//! missing folder is a failure instead, so a CI run can never pass by skipping everything.

use std::path::{Path, PathBuf};

/// Environment variable naming the shared data folder.
pub const SHARED_ENV: &str = "IPLAP_SHARED";
/// When set to `1`, missing shared data makes tests fail instead of skip.
pub const REQUIRE_ENV: &str = "IPLAP_REQUIRE_SHARED";

/// The shared data folder, if it exists.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(SHARED_ENV) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("shared"),
    };
    dir.is_dir().then_some(dir)
}

/// A path inside the shared folder, or `None` (after a loud message) when it is missing.
///
/// Panics only when `IPLAP_REQUIRE_SHARED=1`, which is what a test run that must not skip wants.
pub fn shared_path(relative: &str) -> Option<PathBuf> {
    let found = shared_dir()
        .map(|d| d.join(relative))
        .filter(|p| p.exists());
    if found.is_none() {
        let msg = format!(
            "shared data `{relative}` not found (set {SHARED_ENV} to the folder holding golden/, media/, docs/)"
        );
        if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
            panic!("{msg}; {REQUIRE_ENV}=1 forbids skipping");
        }
        eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    }
    found
}

/// The checkout's converted face models (`scripts/setup.sh` makes them), or `None` after a loud
/// message; panics instead under `IPLAP_REQUIRE_SHARED=1`.
pub fn face_models_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/generated/face");
    if crate::data_files::DataFile::FaceModels.is_present(&dir) {
        return Some(dir);
    }
    let msg = format!(
        "converted face models not found in {} (run scripts/setup.sh)",
        dir.display()
    );
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{msg}; {REQUIRE_ENV}=1 forbids skipping");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    None
}

/// `let path = require_shared!("golden/public/audio");` — returns from the test when missing.
#[macro_export]
macro_rules! require_shared {
    ($rel:expr) => {
        match $crate::testdata::shared_path($rel) {
            Some(p) => p,
            None => return,
        }
    };
}
