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
//! An object written as new (`answers::NEW_META`) that would replace an
//! unchanged synced file is a writer that never saw that file's version:
//! the file is kept as a conflict copy first (decided as the GET answers:
//! `Download::keep_if_new`).
//!
//! Without a base (first sync of this directory) nothing local is known to
//! have been synced, so nothing local is lost: local-only files are kept
//! for the next push, and a local file that differs from its object is kept
//! under a conflict name beside S3's version. `ConflictPolicy::Overwrite`
//! mirrors S3 instead, as upstream did (differing files replaced, local-only
//! files deleted, behind the first-sync mass-deletion guard).
//!
//! A file changed after the pull was called is never deleted, replaced or
//! moved: when S3 changed it too, S3's version is saved beside it under a
//! conflict name and becomes its base, so the next push sends the agent's
//! version over it (both kept, and an agent that edits in a tight loop still
//! makes progress). Paths an unwritable key names, or under an unreadable
//! directory, are left alone. Local deletions that would be a mass deletion
//! on S3 (an emptied workspace) are restored instead of kept for the push,
//! and so are all of them on request. A path may have at most `MAX_COPIES`
//! conflict copies beside it; past that, it is left in conflict (both
//! versions where they are) until someone merges the copies.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{
    is_mass_first_delete, mass_delete, ConflictPolicy, Local, LocalView, RemoteFiles, Scope,
};
use crate::base::{BaseEntries, BaseEntry, Entry};
use crate::error::{Error, FileError, Warning, WarningCode};
use crate::hashing::{etag_hash, is_composite};
use crate::local::conflict_origin;
use crate::model::{FileStat, Folding, RemoteObject, StoredMeta};

/// Conflict copies one path may have beside it (see the module docs).
pub const MAX_COPIES: usize = 10;

/// An object to download, as the listing showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The workspace-relative path to write.
    pub rel: String,
    /// The object key.
    pub key: String,
    /// The object's size in bytes, when the listing said.
    pub size: Option<u64>,
    /// The listed ETag, recorded in the base when the GET gives none.
    pub etag: Option<String>,
    /// The listed time, given to the file as its mtime.
    pub last_modified: Option<std::time::SystemTime>,
    /// The local file this download replaces, as scanned: it is replaced
    /// only if still so. `None`: there must be no file at the path.
    pub replaces: Option<FileStat>,
    /// Move the local file (as `replaces`) to a conflict name first.
    pub keep_local: bool,
    /// `keep_local` if the object turns out to be written as a new one
    /// (`answers::NEW_META`): the synced version `replaces` was then never
    /// seen by its writer.
    pub keep_if_new: bool,
    /// Save S3's version under a conflict name beside the path, leaving
    /// what is there (the agent's current file, or a directory) alone; the
    /// base then holds S3's version as the one the local side changed from.
    pub beside: bool,
}

/// A local file to delete: its object is gone (or shadowed), and it is
/// unchanged since the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDelete {
    /// The workspace-relative path.
    pub rel: String,
    /// The stat it must still have.
    pub stat: FileStat,
    /// The object is shadowed, not gone: the base entry stays, so the next
    /// push deletes it on S3.
    pub keep_base: bool,
}

/// How a pull decides what the table leaves open.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullRules {
    /// What to do with a path changed on both sides.
    pub policy: ConflictPolicy,
    /// The share of files (in percent) past which deletions count as a
    /// mass deletion (see `mass_delete`).
    pub max_delete_percent: u8,
    /// Bring back every synced file deleted here and not yet pushed.
    pub restore_deleted: bool,
}

/// What a pull will do, and what it found while deciding.
#[derive(Debug, Default)]
pub struct PullPlan {
    /// Objects to download.
    pub downloads: Vec<Download>,
    /// Local files to delete.
    pub deletes: Vec<LocalDelete>,
    /// Local files moved to a conflict name before the downloads, because
    /// S3 now has a directory where they are (and they changed here).
    pub set_aside: Vec<(String, FileStat)>,
    /// Paths whose two sides hold the same content: (new) base entries.
    pub record: Vec<(String, BaseEntry)>,
    /// Base entries of paths gone from both sides.
    pub forget: Vec<String>,
    /// Local changes kept for the next push.
    pub pending: Vec<String>,
    /// Paths left in conflict (both versions where they are).
    pub conflicts: Vec<String>,
    /// Paths already in sync.
    pub unchanged: usize,
    /// Synced files deleted here that S3 still holds as synced (kept
    /// deleted for the push, or restored): a share of the workspace, so a
    /// part of it planned alone leaves them to the whole plan.
    pub deleted_here: usize,
    /// Paths the pull leaves alone as failures: keys that cannot be
    /// written, conflicts past `MAX_COPIES`, a refused mass deletion.
    pub errors: Vec<FileError>,
    /// What the caller should know though nothing failed: paths a
    /// recovering base did not know, shape clashes, restored deletions.
    pub warnings: Vec<Warning>,
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
                .is_some_and(|e| e.stat().size == stat.size)
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
/// without a download. Also objects changed since the base where an upload
/// of this workspace went unanswered, unless their ETag shows they are that
/// write: their metadata tells whether they are (see `SyncBase::intend`).
pub fn stored_hash_candidates<'a>(
    remote: &'a RemoteFiles,
    local: &LocalView,
) -> Vec<&'a RemoteObject> {
    remote
        .files
        .iter()
        .filter(|(rel, obj)| {
            if remote_unchanged(obj, local.base.get(rel)) {
                return false;
            }
            let etag = obj.etag.as_deref().and_then(etag_hash);
            if let Some(intent) = local.base.intent(rel) {
                if etag.as_deref() != Some(intent) {
                    return true;
                }
            }
            let Local::Modified {
                hash: Some(hash), ..
            } = local.classify(rel)
            else {
                return false;
            };
            match &etag {
                Some(etag) => *etag != hash && (is_composite(etag) || is_composite(&hash)),
                None => true,
            }
        })
        .map(|(_, obj)| obj)
        .collect()
}

/// Upstream's mirror: only on request, and only for a first sync.
fn mirrors(base: &BaseEntries, policy: ConflictPolicy) -> bool {
    !base.exists() && policy == ConflictPolicy::Overwrite
}

fn remote_unchanged(obj: &RemoteObject, base: Option<Entry>) -> bool {
    base.is_some_and(|b| b.etag_is(obj.etag.as_deref()))
}

/// Plans a pull. `stored`: what the HEADs of `stored_hash_candidates`
/// told, by path.
pub fn plan_pull(
    remote: RemoteFiles,
    local: &LocalView,
    stored: &HashMap<String, StoredMeta>,
    rules: PullRules,
) -> PullPlan {
    let mut plan = plan_pull_part(remote, local, stored, rules, &Scope::all());
    guard_local_deletes(&mut plan, local.scan.files.len(), local.base, rules);
    plan
}

/// Plans the paths of `scope` only (a part planned early, or the rest of
/// the workspace), against a listing and scan that cover them. Its local
/// deletions are not guarded yet: a part of an emptied prefix is not a
/// mass deletion by itself, so they join the rest's before
/// `guard_local_deletes` weighs them.
pub fn plan_pull_part(
    mut remote: RemoteFiles,
    local: &LocalView,
    stored: &HashMap<String, StoredMeta>,
    rules: PullRules,
    scope: &Scope,
) -> PullPlan {
    let mut plan = PullPlan {
        errors: std::mem::take(&mut remote.errors),
        ..PullPlan::default()
    };
    plan.errors
        .retain(|e| e.path.is_empty() || scope.contains(&e.path));
    let policy = rules.policy;
    let recovering = local.base.recovering();
    let mirror = mirrors(local.base, policy);
    let scan_names = local_names(&remote, local);
    let copies = copies_by_path(local);
    // Synced files deleted here and not pushed (S3 still has them as synced).
    let mut deleted_here: Vec<&String> = Vec::new();
    // Synced paths neither side has now.
    let base_only = local.base.paths_where(|rel| {
        scope.contains(rel)
            && !remote.files.contains_key(rel)
            && !remote.shadowed.contains_key(rel)
            && !scan_names.contains_key(rel)
    });
    let paths: BTreeSet<&String> = remote
        .files
        .keys()
        .chain(remote.shadowed.keys())
        .chain(scan_names.keys())
        .filter(|rel| scope.contains(rel))
        .chain(&base_only)
        .collect();
    for rel in paths {
        if remote.is_blocked(rel) {
            continue;
        }
        // On a name-folding filesystem the local file may be spelled differently.
        let local_rel = scan_names.get(rel).map_or(rel.as_str(), String::as_str);
        let state = local.classify(local_rel);
        let obj = remote.files.get(rel);
        let shadowed = remote.shadowed.contains_key(rel);
        let entry = local.base.get(rel);
        let unknown = recovering && entry.is_none() && !shadowed;
        let keep_both = !mirror && policy == ConflictPolicy::KeepBoth;
        let download = |replaces: Option<FileStat>, keep_local: bool, beside: bool| {
            let obj = obj.expect("downloads are of listed objects");
            Download {
                rel: rel.clone(),
                key: obj.key.clone(),
                size: obj.size,
                etag: obj.etag.clone(),
                last_modified: obj.last_modified,
                keep_if_new: replaces.is_some() && !keep_local && keep_both,
                replaces,
                keep_local,
                beside,
            }
        };
        // Copies of this path already beside it: past the bound, a
        // conflict leaves both versions where they are.
        let over_copies = copies.get(local_rel).is_some_and(|&n| n >= MAX_COPIES);
        // Even rewritten with the base's bytes, a file written since the
        // call is the agent's current work.
        // (Our own writes are recorded with their stat in the base.)
        let touched = local.scan.files.get(local_rel).is_some_and(|s| {
            s.mtime_ns.max(s.ctime_ns) >= local.started_ns && entry.is_none_or(|e| e.stat() != *s)
        });
        // The object is the write of an upload from here that was never
        // answered (a push killed after S3 stored it): not another agent's
        // change, so what was done here since (edited again, deleted) is
        // what the next push sends over it.
        let own = |o: &RemoteObject| {
            local.base.intent(rel).is_some_and(|i| {
                o.etag.as_deref().and_then(etag_hash).as_deref() == Some(i)
                    || stored.get(rel).is_some_and(|m| m.holds(i))
            })
        };
        match (obj, state) {
            (_, Local::Unknown) => {}
            (None, Local::Absent) if shadowed => {}
            (None, Local::Absent) => plan.forget.push(rel.clone()),
            (_, Local::Unchanged { .. }) if touched => plan.pending.push(rel.clone()),
            (None, Local::Unchanged { .. }) => plan.deletes.push(LocalDelete {
                rel: local_rel.to_owned(),
                stat: local.scan.files[local_rel],
                keep_base: shadowed,
            }),
            (
                None,
                Local::Modified {
                    stat, after_start, ..
                },
            ) => {
                if mirror && !after_start && !shadowed {
                    plan.deletes.push(LocalDelete {
                        rel: local_rel.to_owned(),
                        stat,
                        keep_base: false,
                    });
                } else {
                    if unknown {
                        plan.warnings.push(Warning::new(
                            rel.clone(),
                            WarningCode::UnknownToBase,
                            format!(
                                "{rel} is kept for the next push: the sync base, being \
                                 recovered, does not know whether it was deleted on S3 \
                                 since it was synced (delete it again if so)"
                            ),
                        ));
                    }
                    plan.pending.push(rel.clone());
                }
            }
            (Some(o), Local::Unchanged { refresh }) if remote_unchanged(o, entry) => {
                plan.unchanged += 1;
                if let Some(e) = refresh {
                    plan.record.push((rel.clone(), e));
                }
            }
            (Some(o), Local::Absent) if remote_unchanged(o, entry) || own(o) => {
                deleted_here.push(rel);
                plan.pending.push(rel.clone());
            }
            (Some(o), Local::Modified { .. }) if remote_unchanged(o, entry) => {
                plan.pending.push(rel.clone());
            }
            (Some(_), Local::Absent) => {
                if unknown {
                    plan.warnings.push(Warning::new(
                        rel.clone(),
                        WarningCode::UnknownToBase,
                        format!(
                            "{rel} is downloaded: the sync base, being recovered, does not \
                             know whether it was deleted here since it was synced (delete \
                             it again if so)"
                        ),
                    ));
                }
                plan.downloads.push(download(None, false, false));
            }
            (Some(_), Local::Unchanged { .. }) => {
                let stat = local.scan.files[local_rel];
                plan.downloads.push(download(Some(stat), false, false));
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
                    let stored_hash = stored.get(rel).and_then(|s| s.hash.as_ref());
                    (etag.as_ref() == Some(m) || stored_hash == Some(m))
                        && Some(stat.size) == o.size
                });
                if same {
                    let at_ns = local.hashes[local_rel].at_ns;
                    let entry = BaseEntry {
                        etag: o.etag.clone(),
                        hash: hash.expect("compared above"),
                        stat,
                        recorded_ns: at_ns,
                        born: 0,
                    };
                    plan.unchanged += 1;
                    plan.record.push((rel.clone(), entry));
                } else if own(o) {
                    plan.pending.push(rel.clone());
                } else if keep_both && over_copies {
                    let err = Error::Conflict(format!(
                        "{rel} changed here and on S3, and already has {MAX_COPIES} conflict \
                         copies beside it: both versions stay where they are (S3's on S3) \
                         until the copies are merged into {rel} and deleted"
                    ));
                    plan.errors.push(FileError::new(
                        crate::error::Action::Download,
                        rel.clone(),
                        &err,
                    ));
                    plan.conflicts.push(rel.clone());
                    plan.pending.push(rel.clone());
                } else if after_start && keep_both {
                    plan.downloads.push(download(None, false, true));
                } else if after_start {
                    plan.pending.push(rel.clone());
                } else if keep_both {
                    plan.downloads.push(download(Some(stat), true, false));
                } else {
                    plan.downloads.push(download(Some(stat), false, false));
                }
            }
        }
    }
    plan.deleted_here = deleted_here.len();
    restore_deletions(&mut plan, local, rules, &deleted_here, &remote.files);
    clear_the_way(&mut plan, local);
    for (rel, dir_won) in remote.clashes.iter().filter(|(rel, _)| scope.contains(rel)) {
        let (kept, left) = if *dir_won {
            (
                format!("the files under {rel}/"),
                format!("the object {rel}"),
            )
        } else {
            (
                format!("the file {rel}"),
                format!("the objects under {rel}/"),
            )
        };
        plan.warnings.push(Warning::new(
            rel.clone(),
            WarningCode::ShapeClash,
            format!(
                "S3 holds {rel} both as a file and as a directory (written by an older \
                 version or another tool): {kept}, the newer, are synced here; {left} \
                 stays on S3 until a push from a workspace that synced it deletes it"
            ),
        ));
    }
    plan
}

/// Turns the local deletions kept for the push into downloads when asked
/// to, or when they would be a mass deletion on S3 (an emptied workspace:
/// the push would refuse them anyway, and the agent needs its files).
fn restore_deletions(
    plan: &mut PullPlan,
    local: &LocalView,
    rules: PullRules,
    deleted_here: &[&String],
    files: &BTreeMap<String, RemoteObject>,
) {
    if deleted_here.is_empty() {
        return;
    }
    let established = deleted_here
        .iter()
        .filter(|rel| {
            local
                .base
                .get(rel)
                .is_some_and(|e| local.base.is_established(e))
        })
        .count();
    let n = deleted_here.len();
    let max = rules.max_delete_percent;
    let message = if rules.restore_deleted {
        format!("{n} files deleted here and not pushed were restored from S3, as asked")
    } else if let Some(what) = mass_delete(local.base, n, established, max, true) {
        format!(
            "{n} files were deleted here since the last sync, which pushed would delete \
             {what} on S3: more than maxDeletePercent ({max}%) allows. They were restored \
             from S3 (an emptied or unmounted workspace?). To delete them on S3, push with \
             a higher maxDeletePercent before pulling"
        )
    } else {
        return;
    };
    let restored: HashSet<&str> = deleted_here.iter().map(|r| r.as_str()).collect();
    plan.pending.retain(|rel| !restored.contains(rel.as_str()));
    for rel in deleted_here {
        let obj = &files[*rel];
        plan.downloads.push(Download {
            rel: (*rel).clone(),
            key: obj.key.clone(),
            size: obj.size,
            etag: obj.etag.clone(),
            last_modified: obj.last_modified,
            replaces: None,
            keep_local: false,
            keep_if_new: false,
            beside: false,
        });
    }
    plan.warnings
        .push(Warning::new("", WarningCode::DeletionsRestored, message));
}

/// Makes room for downloads where S3 changed a file into a directory or
/// back: a local file where a download needs a directory is set aside (or
/// deleted, when unchanged and gone on S3); a download whose name is a
/// local directory that keeps files is saved beside it instead.
fn clear_the_way(plan: &mut PullPlan, local: &LocalView) {
    let deleting: HashSet<&str> = plan.deletes.iter().map(|d| d.rel.as_str()).collect();
    let mut set_aside: BTreeMap<String, FileStat> = BTreeMap::new();
    let mut dropped: Vec<String> = Vec::new();
    for d in &mut plan.downloads {
        if d.beside {
            continue;
        }
        for dir in ancestors(&d.rel) {
            let Some(stat) = local.scan.files.get(dir) else {
                continue;
            };
            if deleting.contains(dir) || set_aside.contains_key(dir) {
                continue;
            }
            match local.classify(dir) {
                // The agent's current work: this download waits.
                Local::Modified {
                    after_start: true, ..
                } => dropped.push(d.rel.clone()),
                _ => {
                    set_aside.insert(dir.to_owned(), *stat);
                }
            }
        }
        let below = format!("{}/", d.rel);
        let kept_below = local
            .scan
            .files
            .range(below.clone()..)
            .take_while(|(rel, _)| rel.starts_with(&below))
            .any(|(rel, _)| !deleting.contains(rel.as_str()));
        if kept_below {
            d.beside = true;
            d.replaces = None;
            d.keep_local = false;
        }
    }
    plan.downloads.retain(|d| !dropped.contains(&d.rel));
    plan.pending.extend(dropped);
    plan.pending.retain(|rel| !set_aside.contains_key(rel));
    plan.set_aside = set_aside.into_iter().collect();
}

/// Local deletions are checked as a whole: S3 emptied by mistake, or a
/// first pull into the wrong directory, must not wipe the local copies.
/// `local_files`: how many files the workspace holds (the reference of a
/// first sync's guard).
pub fn guard_local_deletes(
    plan: &mut PullPlan,
    local_files: usize,
    base: &BaseEntries,
    rules: PullRules,
) {
    let mirror = mirrors(base, rules.policy);
    let n = plan.deletes.len();
    let max = rules.max_delete_percent;
    let what = if mirror {
        let total = local_files;
        is_mass_first_delete(n, total, max)
            .then(|| format!("{n} of {total} local files (first sync of this directory)"))
    } else {
        mass_delete(base, n, 0, max, false)
            .map(|what| format!("{what} (their objects are gone from S3)"))
    };
    if let Some(what) = what {
        let err = Error::MassDelete(format!(
            "the pull would delete {what}; none was deleted. If that is intended, raise \
             maxDeletePercent (now {max})"
        ));
        plan.errors.push(FileError::whole(&err));
        plan.deletes.clear();
    }
}

/// How many conflict copies this workspace made of each scanned path are
/// beside it (other agents' copies, pulled, do not count: one agent's
/// conflicts never stall another).
fn copies_by_path(local: &LocalView) -> HashMap<String, usize> {
    let tag = local.base.copy_tag();
    let mut copies = HashMap::new();
    for rel in local.scan.files.keys() {
        if let Some((origin, Some(made_by))) = conflict_origin(rel) {
            if made_by == tag {
                *copies.entry(origin).or_insert(0) += 1;
            }
        }
    }
    copies
}

/// `a/b/c` → `a`, `a/b`.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
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
    use super::super::remote_files;
    use super::*;
    use crate::base::BaseEntries;
    use crate::ignore_rules::IgnoreRules;
    use crate::model::{Hashed, Scan};

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
        base: BaseEntries,
        scan: Scan,
        hashes: HashMap<String, Hashed>,
        stored: HashMap<String, StoredMeta>,
    }

    impl Case {
        fn new(with_base: bool) -> Self {
            let mut base = BaseEntries::new(0);
            if with_base {
                base.mark_existing();
            }
            Case {
                base,
                scan: Scan::default(),
                hashes: HashMap::new(),
                stored: HashMap::new(),
            }
        }
        /// A path synced at `MD5_A` / etag `MD5_A`, local stat mtime 1.
        fn synced(&mut self, rel: &str) {
            let entry = BaseEntry {
                etag: Some(MD5_A.into()),
                hash: MD5_A.into(),
                stat: stat(1),
                recorded_ns: NOW,
                born: 0,
            };
            self.base.set(rel.into(), entry);
            self.base.mark_existing();
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
            self.plan_with(
                listing,
                PullRules {
                    policy,
                    max_delete_percent: 50,
                    restore_deleted: false,
                },
            )
        }
        fn plan_with(&self, listing: &[RemoteObject], rules_for: PullRules) -> PullPlan {
            let rules = IgnoreRules::new(&[]).unwrap();
            let remote = remote_files("p/", listing, &rules, Folding::default());
            let view = LocalView {
                scan: &self.scan,
                hashes: &self.hashes,
                base: &self.base,
                started_ns: NOW,
            };
            plan_pull(remote, &view, &self.stored, rules_for)
        }
    }

    #[test]
    fn an_unanswered_upload_from_here_is_no_change_on_s3() {
        let mut c = Case::new(true);
        for rel in [
            "deleted", "edited", "unhashed", "theirs", "k1", "k2", "k3", "k4",
        ] {
            c.synced(rel);
        }
        let again = "c".repeat(32);
        for rel in ["edited", "unhashed", "theirs"] {
            c.local(rel, 5, &again);
        }
        for rel in ["k1", "k2", "k3", "k4"] {
            c.local(rel, 1, MD5_A);
        }
        // A push sent these and was killed before S3's answer: by content
        // hash, or by the token of an unhashed upload.
        for rel in ["deleted", "edited", "new"] {
            c.base.intend(rel, MD5_B);
        }
        c.base.intend("unhashed", "upload-0123456789abcdef");
        c.base.intend("theirs", "upload-00000000000000ff");
        let listing: Vec<_> = ["deleted", "edited", "new", "unhashed", "theirs"]
            .iter()
            .map(|rel| obj(&format!("p/{rel}"), MD5_B))
            .chain(["k1", "k2", "k3", "k4"].map(|rel| obj(&format!("p/{rel}"), MD5_A)))
            .collect();
        let token = |t: &str| StoredMeta {
            hash: None,
            token: Some(t.into()),
        };
        // Only the metadata tells whether the unhashed ones are that write.
        let rules = IgnoreRules::new(&[]).unwrap();
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        let view = LocalView {
            scan: &c.scan,
            hashes: &c.hashes,
            base: &c.base,
            started_ns: NOW,
        };
        let heads: Vec<&str> = stored_hash_candidates(&remote, &view)
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(heads, ["p/theirs", "p/unhashed"]);
        c.stored
            .insert("unhashed".into(), token("upload-0123456789abcdef"));
        c.stored
            .insert("theirs".into(), token("upload-0000000000000001"));
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        // What was done here since is kept for the push, which sends it
        // over that write; another agent's write is a conflict as ever.
        assert_eq!(rels(&plan.downloads), [("theirs", true, true)]);
        assert_eq!(plan.pending, ["deleted", "edited", "new", "unhashed"]);
        assert_eq!(plan.deleted_here, 2);
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
        assert_eq!(plan.deletes[0].rel, "s3-deleted");
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
        // Keep both: S3's version lands, the local one is kept beside it
        // (a file written after the call stays, S3's goes beside it);
        // local-only files stay for the next push.
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(
            rels(&plan.downloads),
            vec![("differs", true, true), ("differs-new", false, false)]
        );
        assert!(plan.downloads[1].beside);
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.pending, vec!["new-local-only", "old-local-only"]);
        assert_eq!(plan.record.len(), 1);

        // Overwrite: upstream's mirror, sparing files written after the call.
        let plan = c.plan(&listing, ConflictPolicy::Overwrite);
        assert_eq!(rels(&plan.downloads), vec![("differs", true, false)]);
        assert_eq!(plan.deletes.len(), 1);
        assert_eq!(plan.deletes[0].rel, "old-local-only");
        assert_eq!(plan.pending, vec!["differs-new", "new-local-only"]);
    }

    #[test]
    fn an_unwritable_key_blocks_only_its_own_path() {
        let mut c = Case::new(true);
        for rel in ["a", "b", "c", "other"] {
            c.synced(rel);
            c.local(rel, 1, MD5_A);
        }
        // `other` was deleted on S3 and is deleted here all the same.
        let listing = vec![
            obj("p/a", MD5_A),
            obj("p/b", MD5_A),
            obj("p/c", MD5_A),
            obj("p/../../etc/x", MD5_A),
        ];
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(plan.errors.len(), 1);
        let deleted: Vec<&str> = plan.deletes.iter().map(|d| d.rel.as_str()).collect();
        assert_eq!(deleted, vec!["other"]);
        assert!(plan.downloads.is_empty());
    }

    #[test]
    fn a_file_changed_after_the_call_keeps_its_name_and_s3s_version_goes_beside() {
        let mut c = Case::new(true);
        c.synced("notes.md");
        c.local("notes.md", NOW + 5, MD5_B);
        let listing = vec![obj("p/notes.md", "ffffffffffffffffffffffffffffffff")];
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(plan.downloads.len(), 1);
        let d = &plan.downloads[0];
        assert!(d.beside && d.replaces.is_none() && !d.keep_local);
        // Last writer wins: the push will overwrite S3 anyway; untouched.
        let plan = c.plan(&listing, ConflictPolicy::Overwrite);
        assert!(plan.downloads.is_empty());
        assert_eq!(plan.pending, ["notes.md"]);
    }

    #[test]
    fn a_file_replaced_by_a_directory_on_s3_makes_room_here() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |key: &str, secs: u64| RemoteObject {
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(secs)),
            ..obj(key, MD5_A)
        };
        let listing = vec![
            at("p/a", 1),
            at("p/a/inner.txt", 2),
            at("p/x", 1),
            at("p/y", 1),
        ];
        let mut c = Case::new(true);
        for rel in ["a", "x", "y"] {
            c.synced(rel);
            c.local(rel, 1, MD5_A);
        }
        // Synced and unchanged here: deleted (its base entry stays, so a
        // push deletes the old key), the directory's files downloaded.
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(plan.deletes.len(), 1);
        assert!(plan.deletes[0].rel == "a" && plan.deletes[0].keep_base);
        assert_eq!(rels(&plan.downloads), [("a/inner.txt", false, false)]);
        assert!(plan
            .warnings
            .iter()
            .any(|w| w.code == WarningCode::ShapeClash));
        assert!(plan.errors.is_empty());
        // Changed here: moved to a conflict name first.
        c.local("a", 5, MD5_B);
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.set_aside.len(), 1);
        assert_eq!(plan.set_aside[0].0, "a");
        assert_eq!(rels(&plan.downloads), [("a/inner.txt", false, false)]);
        // The reverse: a local directory with new files where S3 changed
        // the file: S3's version is saved beside the directory.
        let mut c = Case::new(true);
        c.synced("d");
        c.local("d/new.txt", 5, MD5_B);
        let plan = c.plan(&[obj("p/d", MD5_B)], ConflictPolicy::KeepBoth);
        assert_eq!(plan.downloads.len(), 1);
        assert!(plan.downloads[0].beside);
    }

    #[test]
    fn an_emptied_workspace_is_restored_not_pushed_as_deletions() {
        let mut c = Case::new(true);
        let listing: Vec<RemoteObject> = (0..10)
            .map(|i| {
                c.synced(&format!("f{i}"));
                obj(&format!("p/f{i}"), MD5_A)
            })
            .collect();
        c.base.new_epoch();
        // All 10 deleted here: restored, and said so.
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(plan.downloads.len(), 10);
        assert!(plan.pending.is_empty());
        assert!(plan
            .warnings
            .iter()
            .any(|w| w.code == WarningCode::DeletionsRestored));
        // One deleted here: kept for the push, unless restoring is asked for.
        for i in 1..10 {
            c.local(&format!("f{i}"), 1, MD5_A);
        }
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert!(plan.downloads.is_empty());
        assert_eq!(plan.pending, ["f0"]);
        let plan = c.plan_with(
            &listing,
            PullRules {
                restore_deleted: true,
                max_delete_percent: 50,
                ..PullRules::default()
            },
        );
        assert_eq!(rels(&plan.downloads), [("f0", false, false)]);
    }

    #[test]
    fn conflict_copies_stop_piling_up_at_the_bound() {
        let mut c = Case::new(true);
        c.synced("notes.md");
        c.local("notes.md", 5, MD5_B);
        let tag = c.base.copy_tag();
        let other = if tag == "0000" { "0001" } else { "0000" };
        let listing = vec![obj("p/notes.md", "ffffffffffffffffffffffffffffffff")];
        // Other agents' copies (pulled) do not count: they never stall this one.
        for i in 0..MAX_COPIES {
            let copy = format!("notes.conflict-20261201-1200{i:02}-{other}.md");
            c.local(&copy, 5, MD5_B);
        }
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert_eq!(rels(&plan.downloads), [("notes.md", true, true)]);
        // Its own: at the bound, no more.
        for i in 0..MAX_COPIES {
            let copy = format!("notes.conflict-20261201-1300{i:02}-{tag}.md");
            c.local(&copy, 5, MD5_B);
        }
        let plan = c.plan(&listing, ConflictPolicy::KeepBoth);
        assert!(plan.downloads.is_empty());
        assert_eq!(plan.conflicts, ["notes.md"]);
        assert_eq!(plan.errors[0].code, "CONFLICT");
        assert!(plan.pending.contains(&"notes.md".to_owned()));
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
        let rules_for = PullRules {
            max_delete_percent: 50,
            ..PullRules::default()
        };
        let plan = plan_pull(remote, &view, &HashMap::new(), rules_for);
        assert!(plan.deletes.is_empty());
        // First sync: S3's `A.txt` lands on the local `a.txt`, kept beside it.
        assert_eq!(rels(&plan.downloads), vec![("A.txt", true, true)]);
    }
}
