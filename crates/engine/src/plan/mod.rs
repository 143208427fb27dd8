//! What a pull or push will do, decided without I/O: three-way, from the
//! listing (remote), a scan with hashes (local) and the sync base.

mod pull;
mod push;
mod remote;
mod scope;

use std::collections::HashMap;

pub use pull::{
    guard_local_deletes, plan_pull, plan_pull_part, pull_hash_candidates, stored_hash_candidates,
    Download, LocalDelete, PullPlan, PullRules, MAX_COPIES,
};
pub use push::{hashed_as_sent, plan_push, predict_push, PushPlan, RemoteDelete, Upload};
pub use remote::{remote_files, RemoteFiles, REMOTE_STATE};
pub use scope::Scope;

use crate::base::{BaseEntries, BaseEntry, Entry};
use crate::model::{FileStat, Hashed, Scan};

/// What to do when both sides changed one path since the base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Keep both: a pull saves the local version under a conflict name
    /// before it downloads; a push leaves the newer object and reports it.
    #[default]
    KeepBoth,
    /// Upstream's last writer wins: a pull overwrites local changes (never
    /// those made after the pull was called), a push overwrites S3.
    Overwrite,
}

/// What the plan knows of the local side.
pub struct LocalView<'a> {
    /// The workspace as scanned.
    pub scan: &'a Scan,
    /// Content hashes of the scanned files that needed hashing (see
    /// `pull_hash_candidates`), by relative path; a file changed by stat
    /// and not here counts as modified.
    pub hashes: &'a HashMap<String, Hashed>,
    /// The sync base: each path as last synced.
    pub base: &'a BaseEntries,
    /// When the operation was called (ns since the epoch): a file changed
    /// since is the agent's current work, never deleted or overwritten.
    pub started_ns: i128,
}

/// How the local file at a path compares with the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Local {
    Absent,
    /// Under a directory the scan could not read: unknown, left alone.
    Unknown,
    /// Holds the base's content (and `refresh` holds a new base entry when
    /// only its stat changed).
    Unchanged {
        refresh: Option<BaseEntry>,
    },
    /// New since the base, or changed; `hash` when it was hashed.
    Modified {
        stat: FileStat,
        hash: Option<String>,
        after_start: bool,
    },
}

impl LocalView<'_> {
    pub(crate) fn classify(&self, rel: &str) -> Local {
        match self.scan.files.get(rel) {
            Some(stat) => self.classify_file(rel, stat, self.base.get(rel)),
            None if self.scan.is_under_unreadable(rel) => Local::Unknown,
            None => Local::Absent,
        }
    }

    /// `classify` of the scanned file `rel`, its base entry already looked
    /// up (a plan over a million files does each lookup once).
    pub(crate) fn classify_file(&self, rel: &str, stat: &FileStat, entry: Option<Entry>) -> Local {
        if entry.is_some_and(|e| self.base.settled(e, stat)) {
            return Local::Unchanged { refresh: None };
        }
        let hashed = self.hashes.get(rel);
        if let (Some(entry), Some(h)) = (entry, hashed) {
            if entry.hash_is(&h.hash) {
                let refresh = BaseEntry {
                    stat: *stat,
                    recorded_ns: h.at_ns,
                    ..entry.to_entry()
                };
                return Local::Unchanged {
                    refresh: Some(refresh),
                };
            }
        }
        Local::Modified {
            stat: *stat,
            hash: hashed.map(|h| h.hash.clone()),
            after_start: stat.mtime_ns.max(stat.ctime_ns) >= self.started_ns,
        }
    }
}

/// Whether deleting `deletes` synced paths, `established` of them synced
/// at the last full sync, is a mass deletion that needs the user's consent;
/// if so, what it amounts to (for the message). A workspace emptied by
/// mistake, an unmounted volume, an agent that deletes far more than it
/// meant to look like this; an agent tidying up a few files does not.
///
/// Two thresholds, each "more than `max_percent`, and at least 2 files":
/// of the synced files, for this operation alone (so a tree of 3 files
/// cannot lose 2 at once); and, with `cumulative`, of the files synced at
/// the last full sync, counting the deletions of every operation since
/// (so a tree cannot be emptied a few files at a time either). Files
/// created since the last full sync do not count towards the second; and
/// deletions the user allowed past the default share (a raised
/// `maxDeletePercent`) start the count again (see `PushPlan::consented`).
pub fn mass_delete(
    base: &BaseEntries,
    deletes: usize,
    established: usize,
    max_percent: u8,
    cumulative: bool,
) -> Option<String> {
    if deletes == 0 {
        return None;
    }
    if over_percent(deletes, base.len(), max_percent) && deletes >= 2 {
        return Some(format!("{deletes} of {} synced files", base.len()));
    }
    let (reference, earlier) = base.since_full_sync().filter(|_| cumulative)?;
    let total = earlier + established;
    (over_percent(total, reference, max_percent) && total >= 2).then(|| {
        format!(
            "{total} of the {reference} files synced at the last pull ({earlier} of them \
             deleted by earlier pushes)"
        )
    })
}

/// The share of the synced files a sync may delete unless told otherwise.
pub const DEFAULT_MAX_DELETE_PERCENT: u8 = 50;

/// Whether `a` and `b` cannot both be files (or keys): one is a directory
/// of the other.
pub fn shapes_clash(a: &str, b: &str) -> bool {
    let under = |x: &str, dir: &str| {
        x.len() > dir.len() && x.starts_with(dir) && x.as_bytes()[dir.len()] == b'/'
    };
    under(a, b) || under(b, a)
}

/// The same guard for a first pull, which deletes local files it has never
/// seen synced (a pull into the wrong directory): more than `max_percent`
/// of them and more than 50.
pub fn is_mass_first_delete(deletes: usize, total: usize, max_percent: u8) -> bool {
    over_percent(deletes, total, max_percent) && deletes > 50
}

fn over_percent(deletes: usize, total: usize, max_percent: u8) -> bool {
    deletes * 100 > usize::from(max_percent) * total
}

/// What a pull or push would do: workspace-relative paths, sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    /// Files a pull would download.
    pub download: Vec<String>,
    /// Local files a pull would delete.
    pub delete_local: Vec<String>,
    /// Files a push would upload.
    pub upload: Vec<String>,
    /// Objects a push would delete.
    pub delete_remote: Vec<String>,
    /// Paths changed on both sides: a pull would keep both versions (they
    /// are in `download` too), a push would leave the object alone.
    pub conflicts: Vec<String>,
}

impl PlanSummary {
    /// Each list sorted, without duplicates.
    pub fn sorted(mut self) -> Self {
        for list in [
            &mut self.download,
            &mut self.delete_local,
            &mut self.upload,
            &mut self.delete_remote,
            &mut self.conflicts,
        ] {
            list.sort();
            list.dedup();
        }
        self
    }
}

/// What the planner tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::model::FileStat;

    /// "Now" in the tests: every recorded entry is older than it.
    pub const NOW: i128 = 1_000_000_000_000_000_000;

    /// A one-byte file's stat with this mtime (and ctime).
    pub fn stat(mtime_ns: i128) -> FileStat {
        FileStat {
            size: 1,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_delete_guard() {
        let mut base = BaseEntries::new(0);
        let entry = || crate::base::BaseEntry {
            etag: None,
            hash: "h".into(),
            stat: fixtures::stat(1),
            recorded_ns: 0,
            born: 0,
        };
        for i in 0..3 {
            base.set(format!("f{i}"), entry());
        }
        // Small trees: 2 of 3 at once is too many, 1 is not.
        assert!(mass_delete(&base, 2, 0, 50, false).is_some());
        assert!(mass_delete(&base, 1, 0, 50, false).is_none());
        assert!(mass_delete(&base, 2, 0, 100, false).is_none());
        for i in 3..100 {
            base.set(format!("f{i}"), entry());
        }
        base.new_epoch();
        // 40 at a time: once, fine; after 40 deleted by earlier pushes, not.
        assert!(mass_delete(&base, 40, 40, 50, true).is_none());
        for i in 0..40 {
            base.remove(&format!("f{i}"));
        }
        assert!(mass_delete(&base, 24, 24, 50, true).is_some());
        assert!(mass_delete(&base, 24, 24, 50, false).is_none());
        // Files made since the last full sync are free to come and go.
        assert!(mass_delete(&base, 24, 0, 50, true).is_none());
        assert!(!is_mass_first_delete(2, 2, 50));
        assert!(!is_mass_first_delete(50, 60, 50));
        assert!(is_mass_first_delete(51, 60, 50));
        assert!(!is_mass_first_delete(51, 200, 50));
    }
}
