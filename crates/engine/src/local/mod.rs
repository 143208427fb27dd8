//! The local side: a workspace opened once per operation and reached only
//! through directory handles (`anchor`), its scan, checked atomic writes and
//! deletes, and the engine's own state directory (lock, probes).

pub mod anchor;
mod lock;
mod probes;
mod read;
mod scan;
mod state;
mod syncignore;
mod write;

use std::time::UNIX_EPOCH;

pub use anchor::{split_parent, Dir, Kind};
pub use lock::{lock_workspace, WorkspaceLock};
pub use probes::{
    observe_racy_window, probe_folding, probe_racy_window, COARSE_WINDOW, FINE_WINDOW,
};
pub use read::{
    content_hash_file, content_hash_of, hash_file, hash_file_alone, md5_reader, read_at, read_part,
    whole_md5,
};
pub use scan::{open_scanned, scan, scan_part};
pub use state::{check_workspace_path, open_state_dir, open_workspace};
pub use syncignore::{with_syncignore, MAX_SYNCIGNORE_BYTES, MAX_SYNCIGNORE_PATTERNS};
pub use write::{
    commit_beside, commit_temp_file, conflict_copy_name, conflict_origin, create_temp_file,
    delete_if_unchanged, held_for_writing, open_for_writing, remove_file_and_empty_parents,
    set_aside, write_at, ConflictCopy,
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
