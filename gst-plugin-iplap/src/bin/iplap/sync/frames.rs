//! Where `iplap sync` keeps the template frames the ping-pong loop replays. The official script
//! holds every frame in memory (a minute of 1080p is about 9 GB); here the first
//! [`MEMORY_BUDGET`] bytes stay in memory and the rest go to an anonymous temporary file in the
//! output's folder (deleted by the OS when the command ends, even on a crash), read back one frame
//! at a time by the feeder.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;

/// Frame bytes kept in memory before spilling to disk.
pub const MEMORY_BUDGET: usize = 1 << 30;

/// A frame handed to [`FrameStore::put`].
#[derive(Clone, Debug)]
pub enum StoredFrame {
    /// In memory (shared by the timeline's repeats).
    Memory(Arc<Vec<u8>>),
    /// `len` bytes at `offset` of the spill file.
    Disk { offset: u64, len: usize },
}

/// Frames in memory up to a budget, the rest in a spill file.
#[derive(Debug)]
pub struct FrameStore {
    budget: usize,
    in_memory: usize,
    spill_dir: std::path::PathBuf,
    /// Created at the first spill; the mutex orders appends (reads use positional I/O).
    spill: Mutex<Option<(File, u64)>>,
}

impl FrameStore {
    /// A store that spills into `dir` (which must be writable) past `budget` bytes.
    pub fn new(dir: &Path, budget: usize) -> Self {
        FrameStore {
            budget,
            in_memory: 0,
            spill_dir: dir.to_path_buf(),
            spill: Mutex::new(None),
        }
    }

    /// Bytes held in memory.
    #[cfg(test)]
    pub fn in_memory(&self) -> usize {
        self.in_memory
    }

    /// Keeps `data`; past the budget it is written to the spill file.
    pub fn put(&mut self, data: Vec<u8>) -> anyhow::Result<StoredFrame> {
        if self.in_memory + data.len() <= self.budget {
            self.in_memory += data.len();
            return Ok(StoredFrame::Memory(Arc::new(data)));
        }
        let mut spill = self.spill.lock().unwrap_or_else(|e| e.into_inner());
        if spill.is_none() {
            let file = tempfile::tempfile_in(&self.spill_dir).with_context(|| {
                format!(
                    "cannot create a temporary file in {} for the template frames",
                    self.spill_dir.display()
                )
            })?;
            *spill = Some((file, 0));
        }
        let Some((file, end)) = spill.as_mut() else {
            unreachable!("created above")
        };
        file.write_all(&data).with_context(|| {
            format!(
                "cannot write template frames to a temporary file in {} (disk full?)",
                self.spill_dir.display()
            )
        })?;
        let offset = *end;
        *end += data.len() as u64;
        Ok(StoredFrame::Disk {
            offset,
            len: data.len(),
        })
    }

    /// The bytes of a frame this store returned from [`Self::put`].
    pub fn get(&self, frame: &StoredFrame) -> anyhow::Result<Arc<Vec<u8>>> {
        match frame {
            StoredFrame::Memory(data) => Ok(data.clone()),
            StoredFrame::Disk { offset, len } => {
                let spill = self.spill.lock().unwrap_or_else(|e| e.into_inner());
                let (file, _) = spill
                    .as_ref()
                    .context("internal error: a spilled frame without a spill file")?;
                let mut data = vec![0u8; *len];
                read_exact_at(file, &mut data, *offset)
                    .context("cannot read template frames back from the temporary file")?;
                Ok(Arc::new(data))
            }
        }
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_past_the_budget_round_trip_through_the_spill_file() {
        let dir = std::env::temp_dir().join(format!("iplap-frames-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = FrameStore::new(&dir, 250);
        let frames: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 100]).collect();
        let stored: Vec<StoredFrame> = frames
            .iter()
            .map(|f| store.put(f.clone()).unwrap())
            .collect();
        assert_eq!(store.in_memory(), 200);
        assert!(matches!(stored[1], StoredFrame::Memory(_)));
        assert!(matches!(stored[2], StoredFrame::Disk { offset: 0, .. }));
        assert!(matches!(stored[5], StoredFrame::Disk { offset: 300, .. }));
        // Any order, repeatedly (the ping-pong loop reads backwards too).
        for i in [5, 0, 3, 2, 4, 1, 5] {
            assert_eq!(*store.get(&stored[i]).unwrap(), frames[i]);
        }
        // The spill file is anonymous: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_spill_folder_is_named() {
        let mut store = FrameStore::new(Path::new("/nonexistent/iplap"), 0);
        let e = store.put(vec![1, 2, 3]).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/iplap"), "{e:#}");
    }
}
