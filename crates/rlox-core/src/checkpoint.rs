//! Atomic file writes, and the checkpoint directory every rlox trainer uses.
//!
//! A file is written to a temporary file in the same directory, synced, then renamed over the
//! target. A crash at any moment leaves either the previous good file or the new complete one, never
//! a truncated mix.
//!
//! ## The checkpoint layout (one for every trainer)
//!
//! ```text
//! <run dir>/checkpoints/
//!   latest                   the name of the newest complete checkpoint ("step-000000004096")
//!   step-000000004096/
//!     trainer_state.json     counters, random-stream states, env state, ... (serde-typed per trainer)
//!     *.safetensors          weights (one file per network), optimizer moments, replay buffer, ...
//! ```
//!
//! [`CheckpointDir::save`] writes a new checkpoint as `.step-N.tmp/`, syncs it, renames it to
//! `step-N/`, then rewrites `latest` atomically, then removes older checkpoints: a process killed at
//! any moment leaves `latest` naming a complete checkpoint (or no `latest` at all before the first).
//! [`CheckpointDir::load_latest`] resolves `latest` and reads `trainer_state.json`; a missing,
//! truncated or corrupted file is an [`Error::Checkpoint`] naming it, never a silent fresh start.

use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Create the parent directory of `path` if needed.
pub fn create_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
    }
    Ok(())
}

/// Write `bytes` to `path` atomically (temp file + fsync + rename).
pub fn atomic_write(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    create_parent(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Persist the rename itself; not every platform allows opening a directory, so ignore failure.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The file in each checkpoint that holds the trainer's typed state.
pub const TRAINER_STATE: &str = "trainer_state.json";

/// A trainer's checkpoint root (`<run dir>/checkpoints`): see the module docs.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
}

/// A checkpoint being written: files go into its temporary directory until [`CheckpointDir::save`]
/// publishes it.
#[derive(Debug)]
pub struct CheckpointWriter {
    dir: PathBuf,
}

impl CheckpointWriter {
    /// The directory to write this checkpoint's files into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write `bytes` as `name` inside the checkpoint.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.dir.join(name);
        let mut f = File::create(&p).map_err(|e| Error::io(&p, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&p, e))?;
        f.sync_all().map_err(|e| Error::io(&p, e))
    }
}

/// A loaded checkpoint: where it is and its trainer state.
#[derive(Debug, Clone)]
pub struct Loaded<S> {
    /// The `step-N` directory (read the weights from here).
    pub dir: PathBuf,
    /// Its `trainer_state.json`.
    pub state: S,
}

impl CheckpointDir {
    /// The checkpoint root `root` (created on the first save).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CheckpointDir { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The name of checkpoint `step`.
    pub fn name(step: u64) -> String {
        format!("step-{step:012}")
    }

    /// Write checkpoint `step`: `fill` puts the weights and other files into the writer's directory,
    /// then `state` goes to `trainer_state.json`, and the checkpoint is published (see the module docs).
    pub fn save<S: Serialize>(
        &self,
        step: u64,
        state: &S,
        fill: impl FnOnce(&CheckpointWriter) -> Result<()>,
    ) -> Result<PathBuf> {
        fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let name = Self::name(step);
        let tmp = self.root.join(format!(".{name}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let writer = CheckpointWriter { dir: tmp.clone() };
        fill(&writer)?;
        let text = serde_json::to_string_pretty(state)
            .map_err(|e| Error::checkpoint(tmp.join(TRAINER_STATE), format!("cannot serialise the state: {e}")))?;
        writer.write(TRAINER_STATE, text.as_bytes())?;
        if let Ok(d) = File::open(&tmp) {
            let _ = d.sync_all();
        }
        let dest = self.root.join(&name);
        if dest.exists() {
            fs::remove_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
        }
        fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
        atomic_write(self.root.join("latest"), name.as_bytes())?;
        // Older checkpoints (and leftovers of killed writes) go only once `latest` names the new one.
        if let Ok(entries) = fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if (n.starts_with("step-") || n.starts_with(".step-")) && n != name {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(dest)
    }

    /// Whether a complete checkpoint exists (`latest` is there).
    pub fn exists(&self) -> bool {
        self.root.join("latest").is_file()
    }

    /// The directory `latest` names.
    pub fn latest(&self) -> Result<PathBuf> {
        let latest = self.root.join("latest");
        let name = fs::read_to_string(&latest).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::checkpoint(&self.root, "no checkpoint here (no `latest` file)"),
            _ => Error::io(&latest, e),
        })?;
        let name = name.trim();
        if !name.starts_with("step-") || name.contains('/') {
            return Err(Error::checkpoint(&latest, format!("names `{name}`, which is not a step-N checkpoint")));
        }
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Err(Error::checkpoint(&dir, "named by `latest` but missing"));
        }
        Ok(dir)
    }

    /// Read the newest checkpoint's trainer state.
    pub fn load_latest<S: DeserializeOwned>(&self) -> Result<Loaded<S>> {
        let dir = self.latest()?;
        let state = read_state(&dir)?;
        Ok(Loaded { dir, state })
    }
}

/// Read `dir/trainer_state.json` as `S`; a missing, truncated or malformed file names the file.
pub fn read_state<S: DeserializeOwned>(dir: &Path) -> Result<S> {
    let p = dir.join(TRAINER_STATE);
    let text = fs::read_to_string(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::checkpoint(&p, "missing"),
        _ => Error::checkpoint(&p, format!("unreadable: {e}")),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::checkpoint(&p, format!("corrupted or from another version: {e}")))
}

/// Read a whole checkpoint file, naming it when it is missing.
pub fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    fs::read(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::checkpoint(&p, "missing"),
        _ => Error::checkpoint(&p, format!("unreadable: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct St {
        step: u64,
    }

    #[test]
    fn checkpoints_publish_prune_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let c = CheckpointDir::new(dir.path().join("checkpoints"));
        assert!(!c.exists());
        assert!(c.load_latest::<St>().unwrap_err().to_string().contains("no checkpoint"));
        c.save(5, &St { step: 5 }, |w| w.write("w.bin", b"five")).unwrap();
        let p = c.save(9, &St { step: 9 }, |w| w.write("w.bin", b"nine")).unwrap();
        let l = c.load_latest::<St>().unwrap();
        assert_eq!((l.dir.clone(), l.state), (p.clone(), St { step: 9 }));
        assert_eq!(read_file(&l.dir, "w.bin").unwrap(), b"nine");
        let names: Vec<String> =
            fs::read_dir(c.root()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "older checkpoints are pruned: {names:?}");
        // A failed write leaves the previous checkpoint as `latest`.
        let err = c.save(12, &St { step: 12 }, |_| Err(Error::invalid("x", "killed"))).unwrap_err();
        assert!(err.to_string().contains("killed"));
        assert_eq!(c.load_latest::<St>().unwrap().state, St { step: 9 });
        // Corruption is an error naming the file.
        fs::write(p.join(TRAINER_STATE), b"{\"step\": ").unwrap();
        let e = c.load_latest::<St>().unwrap_err().to_string();
        assert!(e.contains(TRAINER_STATE) && e.contains("corrupted"), "{e}");
        fs::remove_dir_all(&p).unwrap();
        assert!(c.load_latest::<St>().unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/ckpt.bin");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn failed_write_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ckpt.bin");
        atomic_write(&p, b"good").unwrap();
        // Renaming a file over a non-empty directory fails: the target stays as it was.
        let blocked = dir.path().join("blocked");
        fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(atomic_write(&blocked, b"bad").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"good");
    }
}
