//! The pull plan, decided per path against the base:
//!
//! | S3 since base        | local since base     | pull does                      |
//! |----------------------|----------------------|--------------------------------|
//! | new or changed       | unchanged or absent  | download                       |
//! | deleted              | unchanged            | delete the local file          |
//! | unchanged or deleted | new or changed       | keep it (pending push)         |
//! | unchanged            | deleted              | keep it deleted (pending push) |
//! | changed              | changed              | same bytes: record; else keep  |
//! |                      |                      | both (local → conflict name)   |
//!
//! Without a base (first sync of this directory) nothing local is known to
//! have been synced, so nothing local is lost: local-only files are kept
//! for the next push, and a local file that differs from its object is kept
//! under a conflict name beside S3's version. `ConflictPolicy::Overwrite`
//! mirrors S3 instead, as upstream did (differing files replaced, local-only
//! files deleted, behind the first-sync mass-deletion guard). In every case a file changed after
//! the pull was called is left alone, and so is any path an unwritable key
//! names or that lies under an unreadable directory.

use std::collections::{BTreeSet, HashMap};

use super::{is_mass_delete, is_mass_first_delete, ConflictPolicy, Local, LocalView, RemoteFiles};
use crate::base::BaseEntry;
use crate::error::{Error, FileError};
use crate::hashing::is_composite;
use crate::local::{FileStat, Folding};
use crate::store::{etag_hash, RemoteObject};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub rel: String,
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<std::time::SystemTime>,
    /// The local file this download replaces, as scanned: it is replaced
    /// only if still so. `None`: there must be no file at the path.
    pub replaces: Option<FileStat>,
    /// Move the local file (as `replaces`) to a conflict name first.
    pub keep_local: bool,
}

#[derive(Debug, Default)]
pub struct PullPlan {
    pub downloads: Vec<Download>,
    /// Local files to delete, with the stat they must still have.
    pub deletes: Vec<(String, FileStat)>,
    /// Paths whose two sides hold the same content: (new) base entries.
    pub record: Vec<(String, BaseEntry)>,
    /// Base entries of paths gone from both sides.
    pub forget: Vec<String>,
    /// Local changes kept for the next push.
    pub pending: Vec<String>,
    /// Paths already in sync.
    pub unchanged: usize,
    pub errors: Vec<FileError>,
}

/// Local files whose content hash the plan needs: changed by stat, and the same size
/// as the base entry or the object (else they differ without hashing).
pub fn pull_hash_candidates(remote: &RemoteFiles, local: &LocalView) -> Vec<String> {
    local
        .scan
        .files
        .iter()
        .filter(|(rel, stat)| !local.base.unchanged_by_stat(rel, stat))
        .filter(|(rel, stat)| {
            local
                .base
                .get(rel)
                .is_some_and(|e| e.stat.size == stat.size)
                || remote
                    .files
                    .get(*rel)
                    .is_some_and(|o| o.size == Some(stat.size))
        })
        .map(|(rel, _)| rel.clone())
        .collect()
}

/// Objects whose content hash only their metadata can tell, among those
/// that may equal a local file of unknown relation (new on both sides, or
/// changed on both): their ETag is not the local hash, and is not an MD5
/// that settles it against a small file's (a multipart ETag of other part
/// sizes, an encrypted object's, a large file sent in one PUT). Their hash is
/// looked up (HEAD) before planning so identical content is recognised
/// without a download.
pub fn stored_hash_candidates<'a>(
    remote: &'a RemoteFiles,
    local: &LocalView,
) -> Vec<&'a RemoteObject> {
    remote
        .files
        .iter()
        .filter(|(rel, obj)| {
            let Local::Modified {
                hash: Some(hash), ..
            } = local.classify(rel)
            else {
                return false;
            };
            let etag = obj.etag.as_deref().and_then(etag_hash);
            let settled = match &etag {
                Some(etag) => *etag == hash || !(is_composite(etag) || is_composite(&hash)),
                None => false,
            };
            !remote_unchanged(obj, local.base.get(rel)) && !settled
        })
        .map(|(_, obj)| obj)
        .collect()
}

fn remote_unchanged(obj: &RemoteObject, base: Option<&BaseEntry>) -> bool {
    base.is_some_and(|b| b.etag.is_some() && b.etag == obj.etag)
}

/// Plans a pull. `stored_hashes`: content hashes read from object metadata, by path.
pub fn plan_pull(
    mut remote: RemoteFiles,
    local: &LocalView,
    stored_hashes: &HashMap<String, String>,
    policy: ConflictPolicy,
    max_delete_percent: u8,
) -> PullPlan {
    let mut plan = PullPlan {
        errors: std::mem::take(&mut remote.errors),
        ..PullPlan::default()
    };
    // Upstream's mirror: only on request, and only for a first sync.
    let mirror = !local.base.exists() && policy == ConflictPolicy::Overwrite;
    let scan_names = local_names(&remote, local);
    let paths: BTreeSet<&String> = remote
        .files
        .keys()
        .chain(scan_names.keys())
        .chain(local.base.paths())
        .collect();
    for rel in paths {
        if remote.is_blocked(rel) {
            continue;
        }
        // On a name-folding filesystem the local file may be spelled differently.
        let local_rel = scan_names.get(rel).map_or(rel.as_str(), String::as_str);
        let state = local.classify(local_rel);
        let obj = remote.files.get(rel);
        let entry = local.base.get(rel);
        let download = |replaces: Option<FileStat>, keep_local: bool| {
            let obj = obj.expect("downloads are of listed objects");
            Download {
                rel: rel.clone(),
                key: obj.key.clone(),
                size: obj.size,
                etag: obj.etag.clone(),
                last_modified: obj.last_modified,
                replaces,
                keep_local,
            }
        };
        // Even rewritten with the base's bytes, a file written since the
        // call is the agent's current work.
        // (Our own writes are recorded with their stat in the base.)
        let touched = local.scan.files.get(local_rel).is_some_and(|s| {
            s.mtime_ns.max(s.ctime_ns) >= local.started_ns && entry.is_none_or(|e| e.stat != *s)
        });
        match (obj, state) {
            (_, Local::Unknown) => {}
            (None, Local::Absent) => plan.forget.push(rel.clone()),
            (_, Local::Unchanged { .. }) if touched => plan.pending.push(rel.clone()),
            (None, Local::Unchanged { .. }) => {
                let stat = local.scan.files[local_rel];
                plan.deletes.push((local_rel.to_owned(), stat));
            }
            (
                None,
                Local::Modified {
                    stat, after_start, ..
                },
            ) => {
                if mirror && !after_start {
                    plan.deletes.push((local_rel.to_owned(), stat));
                } else {
                    plan.pending.push(rel.clone());
                }
            }
            (Some(o), Local::Unchanged { refresh }) if remote_unchanged(o, entry) => {
                plan.unchanged += 1;
                if let Some(e) = refresh {
                    plan.record.push((rel.clone(), e));
                }
            }
            (Some(o), Local::Absent | Local::Modified { .. }) if remote_unchanged(o, entry) => {
                plan.pending.push(rel.clone());
            }
            (Some(_), Local::Absent) => plan.downloads.push(download(None, false)),
            (Some(_), Local::Unchanged { .. }) => {
                let stat = local.scan.files[local_rel];
                plan.downloads.push(download(Some(stat), false));
            }
            (
                Some(o),
                Local::Modified {
                    stat,
                    hash,
                    after_start,
                },
            ) => {
                let etag = o.etag.as_deref().and_then(etag_hash);
                let same = hash.as_ref().is_some_and(|m| {
                    (etag.as_ref() == Some(m) || stored_hashes.get(rel) == Some(m))
                        && Some(stat.size) == o.size
                });
                if same {
                    let at_ns = local.hashes[local_rel].at_ns;
                    let entry = BaseEntry {
                        etag: o.etag.clone(),
                        hash: hash.expect("compared above"),
                        stat,
                        recorded_ns: at_ns,
                    };
                    plan.unchanged += 1;
                    plan.record.push((rel.clone(), entry));
                } else if after_start {
                    plan.pending.push(rel.clone());
                } else if mirror || policy == ConflictPolicy::Overwrite {
                    plan.downloads.push(download(Some(stat), false));
                } else {
                    plan.downloads.push(download(Some(stat), true));
                }
            }
        }
    }
    // Local deletions are checked as a whole: S3 emptied by mistake, or a
    // first pull into the wrong directory, must not wipe the local copies.
    let (total, guard): (usize, fn(usize, usize, u8) -> bool) = if mirror {
        (local.scan.files.len(), is_mass_first_delete)
    } else {
        (local.base.len(), is_mass_delete)
    };
    if guard(plan.deletes.len(), total, max_delete_percent) {
        let err = Error::MassDelete(format!(
            "the pull would delete {} of {} local files ({}); none was deleted. \
             If that is intended, raise maxDeletePercent (now {max_delete_percent})",
            plan.deletes.len(),
            total,
            if mirror {
                "first sync of this directory"
            } else {
                "their objects are gone from S3"
            }
        ));
        plan.errors.push(FileError::whole(&err));
        plan.deletes.clear();
    }
    plan
}

/// Each listed path's local spelling when the filesystem folds names and
/// the scan found it spelled otherwise; every scanned path maps to itself.
fn local_names(remote: &RemoteFiles, local: &LocalView) -> HashMap<String, String> {
    let folding = remote.folding;
    let mut names: HashMap<String, String> = local
        .scan
        .files
        .keys()
        .map(|rel| (rel.clone(), rel.clone()))
        .collect();
    if folding == Folding::default() {
        return names;
    }
    let by_fold: HashMap<String, &String> = local
        .scan
        .files
        .keys()
        .map(|rel| (folding.fold(rel), rel))
        .collect();
    for rel in remote.files.keys() {
        if let Some(local_rel) = by_fold.get(&folding.fold(rel)) {
            if *local_rel != rel {
                names.remove(*local_rel);
                names.insert(rel.clone(), (*local_rel).clone());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{stat, NOW};
    use super::super::{remote_files, Hashed};
    use super::*;
    use crate::base::SyncBase;
    use crate::ignore_rules::IgnoreRules;
    use crate::local::Scan;

    const MD5_A: &str = "0cc175b9c0f1b6a831c399e269772661";
    const MD5_B: &str = "92eb5ffee6ae2fec3ad71c777531578f";
    fn obj(key: &str, etag: &str) -> RemoteObject {
        RemoteObject {
            key: key.into(),
            size: Some(1),
            etag: Some(etag.into()),
            last_modified: None,
        }
    }

    struct Case {
        base: SyncBase,
        scan: Scan,
        hashes: HashMap<String, Hashed>,
        _dir: tempfile::TempDir,
    }

    impl Case {
        fn new(with_base: bool) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut base = SyncBase::load(
                std::sync::Arc::new(crate::local::Dir::open_root(dir.path()).unwrap()),
                "b",
                "p/",
            );
            if with_base {
                base.start().unwrap();
            }
            Case {
                base,
                scan: Scan::default(),
                hashes: HashMap::new(),
                _dir: dir,
            }
        }
        /// A path synced at `MD5_A` / etag `MD5_A`, local stat mtime 1.
        fn synced(&mut self, rel: &str) {
            let entry = BaseEntry {
                etag: Some(MD5_A.into()),
                hash: MD5_A.into(),
                stat: stat(1),
                recorded_ns: NOW,
            };
            self.base.record(rel.into(), entry).unwrap();
        }
        fn local(&mut self, rel: &str, mtime: i128, hash: &str) {
            self.scan.files.insert(rel.into(), stat(mtime));
            let h = Hashed {
                parts: Default::default(),
                hash: hash.into(),
                at_ns: NOW,
            };
            self.hashes.insert(rel.into(), h);
        }
        fn plan(&self, listing: &[RemoteObject], policy: ConflictPolicy) -> PullPlan {
            let rules = IgnoreRules::new(&[]).unwrap();
            let remote = remote_files("p/", listing, &rules, Folding::default());
            let view = LocalView {
                scan: &self.scan,
                hashes: &self.hashes,
                base: &self.base,
                started_ns: NOW,
            };
            plan_pull(remote, &view, &HashMap::new(), policy, 50)
        }
    }

    fn rels(d: &[Download]) -> Vec<(&str, bool, bool)> {
        d.iter()
            .map(|d| (d.rel.as_str(), d.replaces.is_some(), d.keep_local))
            .collect()
    }

    #[test]
    fn each_row_of_the_table() {
        let mut c = Case::new(true);
        // S3 changed, local unchanged → download over it.
        c.synced("s3-changed");
        c.local("s3-changed", 1, MD5_A);
        // S3 deleted, local unchanged → delete.
        c.synced("s3-deleted");
        c.local("s3-deleted", 1, MD5_A);
        // S3 unchanged, local changed → keep.
        c.synced("local-changed");
        c.local("local-changed", 5, MD5_B);
        // S3 unchanged, local deleted → keep deleted.
        c.synced("local-deleted");
        // New local file, nothing on S3 → keep.
        c.local("local-new", 5, MD5_B);
        // Both changed, differently → keep both.
        c.synced("both");
        c.local("both", 5, MD5_B);
        // Both changed to the same bytes → record.
        c.synced("same");
        c.local("same", 5, MD5_B);
        // S3 deleted, local changed → keep.
        c.synced("deleted-vs-changed");
        c.local("deleted-vs-changed", 5, MD5_B);
        // Gone on both sides → forget.
        c.synced("gone");
        // New on S3 → download.
        let listing = vec![
            obj("p/s3-changed", MD5_B),
            obj("p/local-changed", MD5_A),
            obj("p/local-deleted", MD5_A),
            obj("p/both", "ffffffffffffffffffffffffffffffff"),
            obj("p/same", MD5_B),
            obj("p/s3-new", MD5_B),
        ];
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(
            rels(&plan.downloads),
            vec![
                ("both", true, true),
                ("s3-changed", true, false),
                ("s3-new", false, false)
            ]
        );
        assert_eq!(plan.deletes.len(), 1);
        assert_eq!(plan.deletes[0].0, "s3-deleted");
        assert_eq!(
            plan.pending,
            vec![
                "deleted-vs-changed",
                "local-changed",
                "local-deleted",
                "local-new"
            ]
        );
        assert_eq!(plan.forget, vec!["gone"]);
        assert_eq!(plan.record.len(), 1);
        assert_eq!(plan.record[0].0, "same");
        assert!(plan.errors.is_empty());

        // Last writer wins: S3's version replaces the local change.
        let plan = c.plan(&listing, ConflictPolicy::Overwrite);
        assert!(rels(&plan.downloads).contains(&("both", true, false)));
    }

    #[test]
    fn first_sync_loses_nothing_local_unless_told_to_mirror() {
        let mut c = Case::new(false);
        c.local("old-local-only", 1, MD5_B);
        c.local("new-local-only", NOW + 1, MD5_B);
        c.local("differs", 1, MD5_B);
        c.local("differs-new", NOW + 5, MD5_B);
        c.local("same", 1, MD5_A);
        let listing = vec![
            obj("p/differs", MD5_A),
            obj("p/differs-new", MD5_A),
            obj("p/same", MD5_A),
        ];
        // Keep both: S3's version lands, the local one is kept beside it;
        // local-only files stay for the next push.
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(rels(&plan.downloads), vec![("differs", true, true)]);
        assert!(plan.deletes.is_empty());
        assert_eq!(
            plan.pending,
            vec!["differs-new", "new-local-only", "old-local-only"]
        );
        assert_eq!(plan.record.len(), 1);

        // Overwrite: upstream's mirror, sparing files written after the call.
        let plan = c.plan(&listing, ConflictPolicy::Overwrite);
        assert_eq!(rels(&plan.downloads), vec![("differs", true, false)]);
        assert_eq!(plan.deletes.len(), 1);
        assert_eq!(plan.deletes[0].0, "old-local-only");
        assert_eq!(plan.pending, vec!["differs-new", "new-local-only"]);
    }

    #[test]
    fn an_unwritable_key_blocks_only_its_own_path() {
        let mut c = Case::new(true);
        c.synced("a");
        c.local("a", 1, MD5_A);
        c.synced("other");
        c.local("other", 1, MD5_A);
        // `a` is both a file and a directory on S3: unknown, left alone;
        // `other` was deleted on S3 and is deleted here all the same.
        let listing = vec![
            obj("p/a", MD5_A),
            obj("p/a/b", MD5_A),
            obj("p/../../etc/x", MD5_A),
        ];
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(plan.errors.len(), 2);
        let deleted: Vec<&str> = plan.deletes.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(deleted, vec!["other"]);
        assert_eq!(rels(&plan.downloads), vec![("a/b", false, false)]);
    }

    #[test]
    fn s3_emptied_is_not_mirrored_locally() {
        let mut c = Case::new(true);
        for i in 0..20 {
            c.synced(&format!("f{i}"));
            c.local(&format!("f{i}"), 1, MD5_A);
        }
        let plan = c.plan(&[], ConflictPolicy::KeepBoth);
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.errors.len(), 1);
        assert_eq!(plan.errors[0].code, "MASS_DELETE");
    }

    #[test]
    fn a_local_file_differing_only_in_case_is_the_remote_one() {
        let c = {
            let mut c = Case::new(false);
            c.local("a.txt", 1, MD5_B);
            c
        };
        let rules = IgnoreRules::new(&[]).unwrap();
        let folding = Folding {
            case: true,
            unicode: false,
        };
        let remote = remote_files("p/", &[obj("p/A.txt", MD5_A)], &rules, folding);
        let view = LocalView {
            scan: &c.scan,
            hashes: &c.hashes,
            base: &c.base,
            started_ns: NOW,
        };
        let plan = plan_pull(remote, &view, &HashMap::new(), ConflictPolicy::KeepBoth, 50);
        assert!(plan.deletes.is_empty());
        // First sync: S3's `A.txt` lands on the local `a.txt`, kept beside it.
        assert_eq!(rels(&plan.downloads), vec![("A.txt", true, true)]);
    }
}
