//! The output file and the temporary files of a run. The MP4 is written under a hidden temporary
//! name in the output's folder and renamed only when complete, so an interrupted or failed run
//! never leaves a half-written file under the output name (a rename within one folder is
//! atomic). Only a regular file is ever replaced. What a killed run (SIGKILL, a crash, a second
//! Ctrl-C) leaves behind is swept at the start of the next one ([`sweep_stale`]).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Prefix of the run's files in the system temporary folder (`iplap-sync-PID-TAG`).
const TEMP_PREFIX: &str = "iplap-sync-";

/// The temporary file the muxer writes; removed on drop unless [`PartialOutput::commit`] renamed
/// it to the output name.
pub struct PartialOutput {
    temp: PathBuf,
    output: PathBuf,
    committed: bool,
}

impl PartialOutput {
    /// Creates `.NAME.partial-PID` next to `output` (next to its target when it is a symbolic
    /// link), which proves the folder is writable before any heavy work starts. An output that
    /// exists and is not a regular file is refused.
    pub fn create(output: &Path) -> anyhow::Result<Self> {
        let output = resolve_output(output)?;
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
        let temp = folder.join(partial_name(name, std::process::id()));
        File::create(&temp).with_context(|| {
            format!(
                "cannot write {}: folder {} is not writable (choose another -o)",
                output.display(),
                folder.display()
            )
        })?;
        Ok(PartialOutput {
            temp,
            output,
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

    /// Renames the finished file to the output name (replacing an existing regular file).
    pub fn commit(mut self) -> anyhow::Result<()> {
        // Checked again: something may have taken the name while the run worked.
        if let Ok(meta) = std::fs::symlink_metadata(&self.output)
            && !meta.is_file()
        {
            bail!(
                "output {} is now a {}, not a regular file: not replaced, no output written",
                self.output.display(),
                kind(&meta.file_type())
            );
        }
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

    /// Removes the temporary outputs of dead processes for the same output name
    /// (`.NAME.partial-PID`); returns what was removed.
    pub fn sweep_stale(&self) -> Vec<PathBuf> {
        let (Some(folder), Some(name)) = (self.temp.parent(), self.output.file_name()) else {
            return Vec::new();
        };
        // (A name that is not UTF-8 matches nothing: such outputs are not swept.)
        let prefix = format!(".{}.partial-", name.to_string_lossy());
        sweep(folder, |file| {
            file.strip_prefix(prefix.as_str())
                .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|pid| pid.parse().ok())
        })
    }
}

impl Drop for PartialOutput {
    fn drop(&mut self) {
        if !self.committed {
            self.discard();
        }
    }
}

/// `.NAME.partial-PID`.
fn partial_name(name: &std::ffi::OsStr, pid: u32) -> std::ffi::OsString {
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".partial-{pid}"));
    temp
}

/// The path `-o` will replace: `output` itself when it is new or a regular file, the target of
/// a symbolic link (so that the link stays and its target is replaced). A folder, a FIFO, a
/// device or a socket is refused: renaming over it would turn a special file into an MP4, and
/// an MP4 cannot be streamed into one (the muxer seeks back to write its index).
fn resolve_output(output: &Path) -> anyhow::Result<PathBuf> {
    let meta = match std::fs::symlink_metadata(output) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(output.to_path_buf()),
        Err(e) => bail!("cannot use output {}: {e}", output.display()),
        Ok(meta) => meta,
    };
    let (target, meta) = if meta.file_type().is_symlink() {
        let Ok(target) = std::fs::canonicalize(output) else {
            let to = std::fs::read_link(output).unwrap_or_default();
            bail!(
                "output {} is a symbolic link to {}, which does not exist (create the file or \
                 choose another -o)",
                output.display(),
                to.display()
            );
        };
        let meta = std::fs::metadata(&target)
            .with_context(|| format!("cannot use output {}", target.display()))?;
        (target, meta)
    } else {
        (output.to_path_buf(), meta)
    };
    if meta.is_dir() {
        bail!(
            "output {} is a folder; give a file name such as {}",
            output.display(),
            output.join("out.mp4").display()
        );
    }
    if !meta.is_file() {
        bail!(
            "output {} is a {}, not a regular file: iplap sync writes an MP4 file and replaces \
             only regular files (choose another -o)",
            output.display(),
            kind(&meta.file_type())
        );
    }
    Ok(target)
}

/// What a file that is neither a regular file nor a folder is, in words.
fn kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_char_device() {
            return "character device";
        }
        if file_type.is_block_device() {
            return "block device";
        }
        if file_type.is_fifo() {
            return "named pipe (FIFO)";
        }
        if file_type.is_socket() {
            return "socket";
        }
    }
    if file_type.is_dir() {
        return "folder";
    }
    if file_type.is_symlink() {
        return "symbolic link";
    }
    "special file"
}

/// A file in the system temporary folder, removed on drop (the reference bank handed to
/// `iplaplandmarks`).
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(tag: &str) -> Self {
        TempFile(std::env::temp_dir().join(format!("{TEMP_PREFIX}{}-{tag}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes the [`TempFile`]s of dead processes from the system temporary folder
/// (`iplap-sync-PID-*`, and `.iplap-sync-PID-*.partial-*`, the output `iplap bench sync` writes
/// there); returns what was removed.
pub fn sweep_stale_temp_files() -> Vec<PathBuf> {
    sweep(&std::env::temp_dir(), temp_file_owner)
}

/// The PID in a temporary file name of ours (`[.]iplap-sync-PID-TAG`).
fn temp_file_owner(file: &str) -> Option<u32> {
    let rest = file.strip_prefix('.').unwrap_or(file);
    let (pid, tag) = rest.strip_prefix(TEMP_PREFIX)?.split_once('-')?;
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (digits && !tag.is_empty()).then(|| pid.parse().ok())?
}

/// Removes the regular files in `folder` for which `owner` names a process that no longer runs.
fn sweep(folder: &Path, owner: impl Fn(&str) -> Option<u32>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(&owner) else {
            continue;
        };
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if regular && !process_alive(pid) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// Whether `pid` may still be running. Only a definite "no such process" counts as dead, so a
/// live process's files (another user's, or ours) are never touched.
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 || pid as u32 == std::process::id() {
        return true;
    }
    // SAFETY: signal 0 sends nothing; it only checks that the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("iplap-output-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The PID of a process that has exited (and been reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn partial_output_is_removed_unless_committed() {
        let dir = test_dir("commit");
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

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_followed_to_a_regular_file_only() {
        let dir = test_dir("links");
        let target = dir.join("target.mp4");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.join("link.mp4");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let p = PartialOutput::create(&link).unwrap();
        std::fs::write(p.temp_path(), b"new").unwrap();
        p.commit().unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let to_dir = dir.join("to-dir");
        std::os::unix::fs::symlink(&dir, &to_dir).unwrap();
        let e = format!("{:#}", PartialOutput::create(&to_dir).err().unwrap());
        assert!(e.contains("is a folder"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_files_of_dead_processes_are_swept() {
        let dir = test_dir("sweep");
        let out = dir.join("out.mp4");
        let (dead, me) = (dead_pid(), std::process::id());
        let stale = dir.join(format!(".out.mp4.partial-{dead}"));
        let keep = [
            dir.join(format!(".out.mp4.partial-{me}-x")),
            dir.join(format!(".other.mp4.partial-{dead}")),
            dir.join(format!("out.mp4.partial-{dead}")),
        ];
        for f in keep.iter().chain([&stale]) {
            std::fs::write(f, b"").unwrap();
        }
        let p = PartialOutput::create(&out).unwrap();
        assert_eq!(p.sweep_stale(), vec![stale.clone()]);
        assert!(p.temp_path().is_file(), "our own partial stays");
        assert!(keep.iter().all(|f| f.is_file()));
        drop(p);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_file_names_give_their_owner() {
        let dir = test_dir("names");
        let dead = dead_pid();
        let me = std::process::id();
        let names = [
            (format!("iplap-sync-{dead}-reference.bank"), true),
            (
                format!(".iplap-sync-{dead}-bench-out.mp4.partial-{dead}"),
                true,
            ),
            (format!("iplap-sync-{me}-reference.bank"), false),
            (format!("iplap-sync-{dead}-"), false),
            ("iplap-sync-output-12".to_string(), false),
            (format!("iplap-syncx-{dead}-a"), false),
        ];
        for (name, _) in &names {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        // What sweep_stale_temp_files does, on a folder of our own.
        let removed = sweep(&dir, temp_file_owner);
        for (name, swept) in &names {
            assert_eq!(!dir.join(name).exists(), *swept, "{name}");
        }
        assert_eq!(removed.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
