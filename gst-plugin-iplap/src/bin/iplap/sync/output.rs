//! The output file and Ctrl-C: the MP4 is written under a hidden temporary name in the output's
//! folder and renamed only when complete, so an interrupted or failed run never leaves a
//! half-written file under the output name (a rename within one folder is atomic).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The error a run ends with after Ctrl-C (`main` turns it into exit status 130).
#[derive(Debug, Clone, Copy)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted: no output written")
    }
}

impl std::error::Error for Interrupted {}

/// Whether Ctrl-C (SIGINT) or SIGTERM arrived since [`install_interrupt_handler`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[cfg(unix)]
extern "C" fn on_signal(signum: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // A second Ctrl-C kills at once (the default action), for when stopping takes too long: the
    // first one already had the temporary file removed.
    // SAFETY: signal() is async-signal-safe; restoring the default disposition is always valid.
    unsafe {
        libc::signal(signum, libc::SIG_DFL);
    }
}

/// Makes SIGINT and SIGTERM set a flag that the run polls, instead of killing the process while
/// the MP4 is half written. Only an atomic store happens inside the handler.
pub fn install_interrupt_handler() {
    #[cfg(unix)]
    for signum in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic and calls signal(), both async-signal-safe.
        unsafe {
            libc::signal(
                signum,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// The temporary file the muxer writes; removed on drop unless [`PartialOutput::commit`] renamed
/// it to the output name.
pub struct PartialOutput {
    temp: PathBuf,
    output: PathBuf,
    committed: bool,
}

impl PartialOutput {
    /// Creates `.NAME.partial-PID` next to `output`, which proves the folder is writable before
    /// any heavy work starts.
    pub fn create(output: &Path) -> anyhow::Result<Self> {
        if output.is_dir() {
            bail!(
                "output {} is a folder; give a file name such as {}",
                output.display(),
                output.join("out.mp4").display()
            );
        }
        let name = output
            .file_name()
            .with_context(|| format!("output {} has no file name", output.display()))?;
        let folder = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !folder.is_dir() {
            bail!(
                "cannot write {}: folder {} does not exist (create it first)",
                output.display(),
                folder.display()
            );
        }
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".partial-{}", std::process::id()));
        let temp = folder.join(temp_name);
        File::create(&temp).with_context(|| {
            format!(
                "cannot write {}: folder {} is not writable (choose another -o)",
                output.display(),
                folder.display()
            )
        })?;
        Ok(PartialOutput {
            temp,
            output: output.to_path_buf(),
            committed: false,
        })
    }

    /// Where the muxer writes.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Removes the temporary file now (Ctrl-C: a writer still holding it open is harmless).
    pub fn discard(&self) {
        let _ = std::fs::remove_file(&self.temp);
    }

    /// Renames the finished file to the output name (replacing an existing file).
    pub fn commit(mut self) -> anyhow::Result<()> {
        std::fs::rename(&self.temp, &self.output).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.temp.display(),
                self.output.display()
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialOutput {
    fn drop(&mut self) {
        if !self.committed {
            self.discard();
        }
    }
}

/// A file in the system temporary folder, removed on drop (the reference bank handed to
/// `iplaplandmarks`).
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(tag: &str) -> Self {
        TempFile(std::env::temp_dir().join(format!("iplap-sync-{}-{tag}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_output_is_removed_unless_committed() {
        let dir = std::env::temp_dir().join(format!("iplap-sync-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out.mp4");
        let p = PartialOutput::create(&out).unwrap();
        let temp = p.temp_path().to_path_buf();
        assert!(temp.is_file());
        assert_eq!(temp.parent(), Some(dir.as_path()));
        drop(p);
        assert!(!temp.exists() && !out.exists());
        let p = PartialOutput::create(&out).unwrap();
        std::fs::write(p.temp_path(), b"mp4").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"mp4");
        assert!(PartialOutput::create(&dir).is_err());
        assert!(PartialOutput::create(&dir.join("missing").join("x.mp4")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
