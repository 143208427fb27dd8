//! MD5s of local files, remembered across instances so unchanged files are
//! never read again: `FileStat` → MD5, stored in the workspace's state file.
//!
//! An entry is trusted only if the file's mtime was already more than one
//! timestamp granule (`racy_window`) old when it was hashed: a write in the same timestamp tick as
//! the hashing could otherwise leave the stat unchanged (git's "racy clean"
//! problem). Any later write moves mtime to a newer tick, so an older mtime
//! that still matches proves the content is the one hashed. Racy entries are
//! hashed again next time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::workspace::{FileStat, STATE_FILE};

/// Longer than any filesystem's timestamp granularity (FAT: 2 s): the
/// window unless the filesystem shows finer timestamps.
pub const COARSE_WINDOW: Duration = Duration::from_secs(2);
/// For filesystems with sub-second timestamps: well above the kernel's
/// coarse clock tick (≤ 10 ms) that stamps them.
pub const FINE_WINDOW: Duration = Duration::from_millis(100);
const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    stat: FileStat,
    md5: String,
    /// When hashing started, ns since the epoch.
    hashed_at_ns: i128,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    version: u32,
    entries: HashMap<String, Entry>,
}

#[derive(Debug)]
pub struct HashCache {
    path: PathBuf,
    entries: HashMap<String, Entry>,
    dirty: bool,
    racy_window_ns: i128,
}

impl HashCache {
    /// The cache of `workspace`; empty when missing, unreadable or from
    /// another version (it is only an optimisation).
    pub fn load(workspace: &Path) -> Self {
        let path = workspace.join(STATE_FILE);
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
            .filter(|s| s.version == VERSION)
            .map(|s| s.entries)
            .unwrap_or_default();
        HashCache {
            path,
            entries,
            dirty: false,
            racy_window_ns: COARSE_WINDOW.as_nanos() as i128,
        }
    }

    /// The filesystem's timestamp granularity, or more (see `probe_racy_window`).
    pub fn set_racy_window(&mut self, window: Duration) {
        self.racy_window_ns = window.as_nanos() as i128;
    }

    /// The MD5 of `rel` if it is known for exactly this `stat`.
    pub fn lookup(&self, rel: &str, stat: &FileStat) -> Option<&str> {
        let e = self.entries.get(rel)?;
        let settled = stat.mtime_ns < e.hashed_at_ns - self.racy_window_ns;
        (e.stat == *stat && settled).then_some(e.md5.as_str())
    }

    /// Records that `rel`, with `stat`, has `md5`; hashing began at `hashed_at_ns`.
    pub fn insert(&mut self, rel: String, stat: FileStat, md5: String, hashed_at_ns: i128) {
        let entry = Entry {
            stat,
            md5,
            hashed_at_ns,
        };
        if self.entries.get(&rel) != Some(&entry) {
            self.entries.insert(rel, entry);
            self.dirty = true;
        }
    }

    /// Forgets files that are not in the workspace any more.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|rel, _| keep(rel));
        self.dirty |= self.entries.len() != before;
    }

    /// Writes the cache if it changed (temp file + rename). Blocking.
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let stored = Stored {
            version: VERSION,
            entries: std::mem::take(&mut self.entries),
        };
        let json = serde_json::to_vec(&stored);
        self.entries = stored.entries;
        let json = json.map_err(|e| Error::Io(format!("encode hash cache: {e}")))?;
        let temp = self.path.with_extension("json.partial");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        }
        std::fs::write(&temp, json)
            .and_then(|_| std::fs::rename(&temp, &self.path))
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime_ns: i128) -> FileStat {
        FileStat {
            size: 3,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 7,
        }
    }

    #[test]
    fn trusted_only_for_the_same_settled_stat_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = HashCache::load(dir.path());
        let now = 100 * COARSE_WINDOW.as_nanos() as i128;
        cache.insert("a".into(), stat(1), "m1".into(), now);
        // Modified in the same tick as the hashing: not trusted.
        cache.insert("racy".into(), stat(now - 1), "m2".into(), now);
        cache.save().unwrap();

        let cache = HashCache::load(dir.path());
        assert_eq!(cache.lookup("a", &stat(1)), Some("m1"));
        assert_eq!(cache.lookup("a", &stat(2)), None);
        assert_eq!(cache.lookup("a", &FileStat { ino: 8, ..stat(1) }), None);
        assert_eq!(cache.lookup("a", &FileStat { size: 4, ..stat(1) }), None);
        assert_eq!(cache.lookup("racy", &stat(now - 1)), None);
        assert_eq!(cache.lookup("missing", &stat(1)), None);

        // On a fine-grained filesystem the window is shorter, never zero.
        let mut cache = HashCache::load(dir.path());
        cache.set_racy_window(FINE_WINDOW);
        let fine = FINE_WINDOW.as_nanos() as i128;
        cache.insert("b".into(), stat(now - 2 * fine), "m3".into(), now);
        cache.insert("c".into(), stat(now - fine / 2), "m4".into(), now);
        assert_eq!(cache.lookup("b", &stat(now - 2 * fine)), Some("m3"));
        assert_eq!(cache.lookup("c", &stat(now - fine / 2)), None);
    }

    #[test]
    fn a_corrupt_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".s3ws")).unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        assert_eq!(HashCache::load(dir.path()).lookup("a", &stat(1)), None);
    }
}
