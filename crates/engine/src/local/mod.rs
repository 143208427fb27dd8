//! The local side: a workspace opened once per operation and reached only
//! through directory handles (`anchor`), its scan, checked atomic writes and
//! deletes, and the engine's own state directory (lock, probes).

pub mod anchor;
mod scan;
mod state;
mod syncignore;
mod write;

use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::error::{Error, Result};

pub use anchor::{split_parent, Dir, Kind};
pub use scan::{open_scanned, scan, Scan, SkipReason, Skipped};
pub use state::{
    check_workspace_path, lock_workspace, observe_racy_window, open_state_dir, open_workspace,
    probe_folding, probe_racy_window, WorkspaceLock, COARSE_WINDOW, FINE_WINDOW,
};
pub use syncignore::{with_syncignore, MAX_SYNCIGNORE_BYTES, MAX_SYNCIGNORE_PATTERNS};
pub use write::{
    commit_beside, commit_temp_file, conflict_copy_name, conflict_origin, create_temp_file,
    delete_if_unchanged, held_for_writing, open_for_writing, remove_file_and_empty_parents,
    set_aside, ConflictCopy,
};

/// The engine's own directory, by default at the workspace root: the sync
/// base and the lock that makes processes on one workspace take turns. A
/// directory of this name is never synced at any depth (a nested
/// workspace keeps its own there), and no key may be written into one.
pub const STATE_DIR: &str = ".s3ws";

/// Temp files of in-flight downloads are named `.s3ws-<16 hex>.partial`;
/// they never sync and a later pull removes leftovers of a killed process.
const TEMP_PREFIX: &str = ".s3ws-";
const TEMP_SUFFIX: &str = ".partial";

/// Whether `name` has the exact shape of the engine's temp files.
pub fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A fresh temp-file name: unguessable (random keys of the std hasher),
/// and created exclusively anyway.
pub(crate) fn temp_name() -> String {
    format!("{TEMP_PREFIX}{:016x}{TEMP_SUFFIX}", rand_u64())
}

/// A random number (the std hasher's random keys): for unguessable names.
pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Paths that belong to the engine: anything in a state directory, and
/// temp files.
pub fn is_reserved_path(rel: &str) -> bool {
    rel.split('/').any(|s| s == STATE_DIR) || is_temp_name(split_parent(rel).1)
}

/// How the workspace's filesystem compares names (see `probe_folding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folding {
    /// `A` and `a` are the same file (macOS, Windows by default).
    pub case: bool,
    /// Unicode NFC and NFD spellings are the same file (macOS).
    pub unicode: bool,
}

impl Folding {
    /// The name under which the filesystem stores `rel`.
    pub fn fold(&self, rel: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let s: String = if self.unicode {
            rel.nfc().collect()
        } else {
            rel.to_owned()
        };
        if self.case {
            s.to_lowercase()
        } else {
            s
        }
    }
}

/// What identifies a version of a regular file without reading it: size,
/// modification and change times, and inode. A rewrite changes mtime or
/// ctime (ctime even when a tool restores mtime); a replace changes the inode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
}

impl FileStat {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let mtime_ns = meta.modified().map(nanos).unwrap_or(0);
        #[cfg(unix)]
        let (ctime_ns, ino) = {
            use std::os::unix::fs::MetadataExt;
            (
                meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
                meta.ino(),
            )
        };
        #[cfg(not(unix))]
        let (ctime_ns, ino) = (meta.created().map(nanos).unwrap_or(0), 0);
        FileStat {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            ino,
        }
    }
}

/// Nanoseconds since the Unix epoch (negative before it).
pub fn nanos(t: std::time::SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `len` bytes of `file` at `offset` (`path` names it in errors). Blocking.
pub fn read_at(file: &std::fs::File, path: &Path, offset: u64, len: u64) -> Result<bytes::Bytes> {
    let mut buf = vec![0u8; len as usize];
    #[cfg(unix)]
    let read = std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, offset);
    #[cfg(windows)]
    let read = {
        let mut done = 0;
        let mut r = Ok(());
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            ) {
                Ok(0) => {
                    r = Err(std::io::ErrorKind::UnexpectedEof.into());
                    break;
                }
                Ok(n) => done += n,
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        r
    };
    read.map_err(|e| Error::io("read", path, e))?;
    Ok(bytes::Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_have_one_exact_shape() {
        assert!(is_temp_name(&temp_name()));
        assert!(is_temp_name(".s3ws-0123456789abcdef.partial"));
        assert!(!is_temp_name(".s3ws-notes.partial"));
        assert!(!is_temp_name(".s3ws-0123456789abcdef0.partial"));
        assert!(is_reserved_path("a/.s3ws/x") && is_reserved_path(".s3ws"));
        assert!(!is_reserved_path("a/.s3wsx/x"));
    }
}
