//! The push plan, decided per path against the base. Every write is
//! conditional on S3 still holding what the base says (unless the policy is
//! `Overwrite`), so another agent's newer object is never replaced:
//!
//! | local since base | S3 write                                     |
//! |------------------|----------------------------------------------|
//! | unchanged        | none                                         |
//! | changed          | PUT `If-Match: <base ETag>`                  |
//! | new              | PUT `If-None-Match: *`                       |
//! | deleted          | DELETE `If-Match: <base ETag>`               |
//!
//! Without a base (this directory never synced with the prefix) the
//! listing stands in for it: identical objects are recorded, different
//! ones are conflicts, absent ones are uploaded with `If-None-Match: *`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    mass_delete, ConflictPolicy, Local, LocalView, PlanSummary, DEFAULT_MAX_DELETE_PERCENT,
};
use crate::base::{BaseEntries, BaseEntry};
use crate::error::{Error, FileError, Warning, WarningCode};
use crate::hashing::{etag_hash, PART_SIZE};
use crate::model::{Condition, FileStat, RemoteObject};

/// A local file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The workspace-relative path.
    pub rel: String,
    /// The file as scanned and hashed.
    pub stat: FileStat,
    /// Its content hash (see `hashing`); `None`: not hashed before the
    /// upload (see `hashed_as_sent`).
    pub hash: Option<String>,
    /// MD5s of its parts as hashed, for a file of several.
    pub parts: Arc<[[u8; 16]]>,
    /// When hashing began, for the base entry.
    pub hashed_ns: i128,
    /// What the object being replaced must be (see the module docs).
    pub condition: Condition,
    /// An upload of these very bytes was sent by an earlier push that never
    /// learned its outcome (killed): if the object is gone now, it may have
    /// been stored and then deleted by another agent, whose deletion stands.
    pub interrupted: bool,
    /// The content hash an earlier push sent for this path and never
    /// learned the outcome of (its base intent), if any: an object with it
    /// is that push's write, not another agent's.
    pub intended: Option<String>,
}

/// Whether a file that changed by stat is uploaded without being hashed
/// first, its parts hashed as they are sent (`store::Content::Unhashed`),
/// so the first part leaves at once: where the hash decides nothing before
/// the upload. That is a file of `PART_SIZE` or more (smaller ones go in one
/// PUT with their MD5), no earlier upload of it left unanswered (its intent
/// names bytes the hash would be compared with), and of another size than
/// its base entry or never hashed (`UNHASHED`), or new: no entry in an existing base, or (without a
/// base) no object in `listing`.
pub fn hashed_as_sent(
    rel: &str,
    stat: &FileStat,
    base: &BaseEntries,
    listing: Option<&BTreeMap<String, RemoteObject>>,
) -> bool {
    stat.size >= PART_SIZE
        && base.intent(rel).is_none()
        && match base.get(rel) {
            Some(e) => e.stat().size != stat.size || !e.is_hashed(),
            None => base.exists() || listing.is_some_and(|l| !l.contains_key(rel)),
        }
}

impl Upload {
    /// The base entry once S3 holds the uploaded bytes, of content hash
    /// `hash` when they were not hashed first, as `etag`.
    pub fn synced(&self, etag: Option<String>, hash: Option<String>) -> BaseEntry {
        BaseEntry {
            etag,
            hash: hash.or_else(|| self.hash.clone()).unwrap_or_default(),
            stat: self.stat,
            recorded_ns: self.hashed_ns,
            born: 0,
        }
    }
}

/// An object to delete: its file was deleted here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDelete {
    /// The workspace-relative path.
    pub rel: String,
    /// The base ETag the object must still have (`None`: unconditional,
    /// unless `intended` says otherwise).
    pub if_match: Option<String>,
    /// The base intent of the path (an upload an earlier push sent and
    /// never learned the outcome of): an object holding it is that push's
    /// write, deleted too. With no `if_match`, the base never recorded the
    /// path (a new file), and only that write is deleted.
    pub intended: Option<String>,
}

/// What a push will do, and what it found while deciding.
#[derive(Debug, Default)]
pub struct PushPlan {
    /// Files to upload.
    pub uploads: Vec<Upload>,
    /// Objects of files deleted here (the caller confirms each is really
    /// gone before deleting it on S3).
    pub deletes: Vec<RemoteDelete>,
    /// New base entries for paths whose sides already hold the same bytes.
    pub record: Vec<(String, BaseEntry)>,
    /// Paths whose object differs and that have no base to say which side
    /// is newer: left as they are, reported.
    pub conflicts: Vec<String>,
    /// Paths already in sync.
    pub unchanged: usize,
    /// A refused mass deletion (its deletes are dropped).
    pub errors: Vec<FileError>,
    /// Paths a recovering base did not know, uploaded as new (see
    /// `SyncBase::recovering`).
    pub warnings: Vec<Warning>,
    /// The deletions go through only because `maxDeletePercent` was raised
    /// past the default: once done, the deletion guard counts from here.
    pub consented: bool,
}

/// Plans a push. `listing`: the objects under the prefix by relative path,
/// needed only when there is no base yet. `unhashed`: whether files
/// `hashed_as_sent` were left unhashed (not in a dry run).
pub fn plan_push(
    local: &LocalView,
    listing: Option<&BTreeMap<String, RemoteObject>>,
    policy: ConflictPolicy,
    max_delete_percent: u8,
    unhashed: bool,
) -> PushPlan {
    let mut plan = PushPlan::default();
    let overwrite = policy == ConflictPolicy::Overwrite;
    // Base paths seen in the scan: when that is all of them, nothing was
    // deleted and the base need not be walked again.
    let mut in_base = 0;
    for (rel, stat) in &local.scan.files {
        let entry = local.base.get(rel);
        in_base += usize::from(entry.is_some());
        let (stat, hash) = match local.classify_file(rel, stat, entry) {
            Local::Unchanged { refresh } => {
                plan.unchanged += 1;
                if let Some(e) = refresh {
                    plan.record.push((rel.clone(), e));
                }
                continue;
            }
            Local::Modified {
                stat,
                hash: Some(m),
                ..
            } => (stat, Some(m)),
            Local::Modified { stat, .. }
                if unhashed && hashed_as_sent(rel, &stat, local.base, listing) =>
            {
                (stat, None)
            }
            // Not hashed: its read error is already reported.
            _ => continue,
        };
        // Unhashed: its entry's stat is the scanned one, trusted from when
        // the push began (its parts are read after).
        let hashed_ns = local.hashes.get(rel).map_or(local.started_ns, |h| h.at_ns);
        let condition = match (entry, listing.and_then(|l| l.get(rel))) {
            _ if overwrite => Condition::None,
            (Some(e), _) => e.etag().map_or(Condition::None, Condition::IfMatch),
            (None, Some(obj)) => {
                let same = |h: &String| obj.etag.as_deref().and_then(etag_hash).as_ref() == Some(h);
                // (Never unhashed: an object is there.)
                if let Some(hash) = hash.filter(same) {
                    let entry = BaseEntry {
                        etag: obj.etag.clone(),
                        hash,
                        stat,
                        recorded_ns: hashed_ns,
                        born: 0,
                    };
                    plan.unchanged += 1;
                    plan.record.push((rel.clone(), entry));
                } else {
                    plan.conflicts.push(rel.clone());
                }
                continue;
            }
            (None, None) => Condition::IfNoneMatch,
        };
        if entry.is_none() && local.base.recovering() {
            plan.warnings.push(Warning::new(
                rel.clone(),
                WarningCode::UnknownToBase,
                format!(
                    "{rel} is uploaded as new: the sync base, being recovered, does not know \
                     whether it was synced and deleted on S3 since (delete it again if so)"
                ),
            ));
        }
        plan.uploads.push(Upload {
            interrupted: hash.is_some() && local.base.intent(rel) == hash.as_deref(),
            intended: local.base.intent(rel).map(str::to_owned),
            rel: rel.clone(),
            stat,
            hash,
            parts: local
                .hashes
                .get(rel)
                .map(|h| h.parts.clone())
                .unwrap_or_default(),
            hashed_ns,
            condition,
        });
    }
    let deleted = match in_base < local.base.len() {
        true => local
            .base
            .paths_where(|rel| local.classify(rel) == Local::Absent),
        false => Vec::new(),
    };
    let mut deletes: Vec<RemoteDelete> = deleted
        .into_iter()
        .map(|rel| RemoteDelete {
            if_match: if overwrite {
                None
            } else {
                local.base.get(&rel).and_then(|e| e.etag())
            },
            intended: (!overwrite)
                .then(|| local.base.intent(&rel).map(str::to_owned))
                .flatten(),
            rel,
        })
        .collect();
    // New files deleted here after an upload of them went unanswered: if
    // it was stored, its object is this workspace's to delete.
    let unrecorded = local
        .base
        .intents()
        .filter(|(rel, _)| local.base.get(rel).is_none() && local.classify(rel) == Local::Absent)
        .map(|(rel, intent)| RemoteDelete {
            rel: rel.clone(),
            if_match: None,
            intended: Some(intent.clone()),
        });
    deletes.extend(unrecorded);
    deletes.sort_by(|a, b| a.rel.cmp(&b.rel));
    let established = deletes
        .iter()
        .filter(|d| {
            local
                .base
                .get(&d.rel)
                .is_some_and(|e| local.base.is_established(e))
        })
        .count();
    let synced = deletes
        .iter()
        .filter(|d| local.base.get(&d.rel).is_some())
        .count();
    let max = max_delete_percent;
    let guard = |max| mass_delete(local.base, synced, established, max, true);
    plan.consented =
        max > DEFAULT_MAX_DELETE_PERCENT && guard(DEFAULT_MAX_DELETE_PERCENT).is_some();
    if let Some(what) = guard(max) {
        let err = Error::MassDelete(format!(
            "the push would delete {what} on S3; none was deleted. Is the workspace empty \
             or unmounted by mistake? If the deletions are intended, raise maxDeletePercent \
             (now {max}); to bring the files back here instead, pull with restoreDeleted"
        ));
        plan.errors.push(FileError::whole(&err));
        deletes.clear();
    }
    plan.deletes = deletes;
    plan
}

/// What the conditional writes of `plan` would meet on S3 as `listing`
/// shows it (a push dry run): the uploads and deletes that would go through
/// and the paths that would be conflicts. An object that already holds the
/// local bytes counts as uploaded, as the real push recognises its own
/// earlier upload; a delete of an object already gone is nothing to do.
pub fn predict_push(plan: &PushPlan, listing: &BTreeMap<String, RemoteObject>) -> PlanSummary {
    let mut out = PlanSummary {
        conflicts: plan.conflicts.clone(),
        ..PlanSummary::default()
    };
    let etag_of = |rel: &str| listing.get(rel).and_then(|o| o.etag.clone());
    for u in &plan.uploads {
        let now = etag_of(&u.rel);
        let holds = match &u.condition {
            Condition::None => true,
            // A missing object is created again (see `upload_checked`).
            Condition::IfMatch(etag) => now.is_none() || now.as_deref() == Some(etag.as_str()),
            Condition::IfNoneMatch => !listing.contains_key(&u.rel),
        };
        let same_bytes = u.hash.is_some() && now.as_deref().and_then(etag_hash) == u.hash;
        if holds || same_bytes {
            out.upload.push(u.rel.clone());
        } else {
            out.conflicts.push(u.rel.clone());
        }
    }
    for d in &plan.deletes {
        let Some(o) = listing.get(&d.rel) else {
            continue;
        };
        let own = d.intended.is_some() && o.etag.as_deref().and_then(etag_hash) == d.intended;
        match &d.if_match {
            _ if own => out.delete_remote.push(d.rel.clone()),
            // Another agent's object where an unanswered upload went: not
            // this workspace's to delete, nor a conflict.
            None if d.intended.is_some() => {}
            Some(etag) if o.etag.as_deref() != Some(etag.as_str()) => {
                out.conflicts.push(d.rel.clone())
            }
            _ => out.delete_remote.push(d.rel.clone()),
        }
    }
    out.sorted()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::fixtures::{stat, NOW};
    use super::*;
    use crate::base::BaseEntries;
    use crate::model::{Hashed, Scan};

    fn view<'a>(
        base: &'a BaseEntries,
        scan: &'a Scan,
        hashes: &'a HashMap<String, Hashed>,
    ) -> LocalView<'a> {
        LocalView {
            scan,
            hashes,
            base,
            started_ns: NOW,
        }
    }

    /// A listed object of `rel`, keyed by `rel`.
    fn object(rel: &str, etag: &str) -> (String, RemoteObject) {
        let o = RemoteObject {
            key: format!("p/{rel}"),
            size: Some(1),
            etag: Some(etag.into()),
            last_modified: None,
        };
        (rel.to_owned(), o)
    }

    fn setup(
        synced: &[&str],
        local: &[(&str, i128, &str)],
    ) -> (BaseEntries, Scan, HashMap<String, Hashed>) {
        let mut base = BaseEntries::new(0);
        for rel in synced {
            let entry = BaseEntry {
                etag: Some(format!("etag-{rel}")),
                hash: "m0".into(),
                stat: stat(1),
                recorded_ns: NOW,
                born: 0,
            };
            base.set((*rel).into(), entry);
            base.mark_existing();
        }
        let mut scan = Scan::default();
        let mut hashes = HashMap::new();
        for (rel, mtime, hash) in local {
            scan.files.insert((*rel).into(), stat(*mtime));
            hashes.insert(
                (*rel).into(),
                Hashed {
                    parts: Arc::default(),
                    hash: (*hash).into(),
                    at_ns: NOW,
                },
            );
        }
        (base, scan, hashes)
    }

    #[test]
    fn conditions_follow_the_base() {
        let (base, scan, hashes) = setup(
            &["same", "changed", "gone", "locked/inside"],
            &[("same", 1, "m0"), ("changed", 5, "m1"), ("new", 5, "m2")],
        );
        let mut scan = scan;
        scan.unreadable_dirs.push("locked".into());
        let view = view(&base, &scan, &hashes);
        let plan = plan_push(&view, None, ConflictPolicy::KeepBoth, 50, true);
        let ups: Vec<_> = plan
            .uploads
            .iter()
            .map(|u| (u.rel.as_str(), u.condition.clone()))
            .collect();
        assert_eq!(
            ups,
            vec![
                ("changed", Condition::IfMatch("etag-changed".into())),
                ("new", Condition::IfNoneMatch)
            ]
        );
        assert_eq!(plan.unchanged, 1);
        assert_eq!(
            plan.deletes,
            vec![RemoteDelete {
                rel: "gone".into(),
                if_match: Some("etag-gone".into()),
                intended: None,
            }]
        );
        let plan = plan_push(&view, None, ConflictPolicy::Overwrite, 50, true);
        assert!(plan.uploads.iter().all(|u| u.condition == Condition::None));
        assert_eq!(plan.deletes[0].if_match, None);
    }

    #[test]
    fn a_dry_run_predicts_which_conditions_hold() {
        let (base, scan, hashes) = setup(
            &[
                "changed",
                "raced",
                "gone",
                "gone-raced",
                "gone-already",
                "recreated",
            ],
            &[
                ("changed", 5, "m1"),
                ("recreated", 5, "m5"),
                ("raced", 5, "m2"),
                ("new", 5, "m3"),
                ("new-taken", 5, "m4"),
                ("new-same", 5, "0123456789abcdef0123456789abcdef"),
            ],
        );
        let view = view(&base, &scan, &hashes);
        let plan = plan_push(&view, None, ConflictPolicy::KeepBoth, 100, true);
        let listing: BTreeMap<String, RemoteObject> = [
            object("changed", "etag-changed"),
            object("raced", "someone-else"),
            object("gone", "etag-gone"),
            object("gone-raced", "someone-else"),
            object("new-taken", "someone-else"),
            object("new-same", "0123456789abcdef0123456789abcdef"),
        ]
        .into_iter()
        .collect();
        let predicted = predict_push(&plan, &listing);
        assert_eq!(
            predicted.upload,
            ["changed", "new", "new-same", "recreated"]
        );
        assert_eq!(predicted.delete_remote, ["gone"]);
        assert_eq!(predicted.conflicts, ["gone-raced", "new-taken", "raced"]);
    }

    #[test]
    fn a_deleted_file_whose_upload_went_unanswered_deletes_that_write() {
        let (mut base, scan, hashes) = setup(&["synced", "k1", "k2", "k3"], &[]);
        let mut scan = scan;
        for rel in ["k1", "k2", "k3"] {
            scan.files.insert(rel.into(), stat(1));
        }
        base.intend("synced", "h-sent");
        base.intend("new", "h-new");
        base.intend("new-raced", "h-raced");
        let plan_of = |base: &BaseEntries| {
            plan_push(
                &view(base, &scan, &hashes),
                None,
                ConflictPolicy::KeepBoth,
                50,
                true,
            )
        };
        let plan = plan_of(&base);
        let deletes: Vec<_> = plan
            .deletes
            .iter()
            .map(|d| (d.rel.as_str(), d.if_match.as_deref(), d.intended.as_deref()))
            .collect();
        assert_eq!(
            deletes,
            [
                ("new", None, Some("h-new")),
                ("new-raced", None, Some("h-raced")),
                ("synced", Some("etag-synced"), Some("h-sent")),
            ]
        );
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        // A dry run: the write sent is deleted, another agent's object at
        // a path this workspace never synced is left alone.
        let md5 = |c: char| c.to_string().repeat(32);
        base.intend("synced", &md5('a'));
        base.intend("new", &md5('b'));
        let plan = plan_of(&base);
        let listing = BTreeMap::from([
            object("synced", &md5('a')),
            object("new", &md5('b')),
            object("new-raced", &md5('c')),
        ]);
        let predicted = predict_push(&plan, &listing);
        assert_eq!(predicted.delete_remote, ["new", "synced"]);
        assert!(predicted.conflicts.is_empty());
    }

    #[test]
    fn an_emptied_workspace_deletes_nothing() {
        let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (base, scan, hashes) = setup(&refs, &[]);
        let view = view(&base, &scan, &hashes);
        let plan = plan_push(&view, None, ConflictPolicy::KeepBoth, 50, true);
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.errors[0].code, "MASS_DELETE");
        assert_eq!(
            plan_push(&view, None, ConflictPolicy::KeepBoth, 100, true)
                .deletes
                .len(),
            5
        );
    }

    #[test]
    fn deletions_allowed_past_the_default_are_consent() {
        let names: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let kept: Vec<(&str, i128, &str)> = refs[6..].iter().map(|r| (*r, 1, "m0")).collect();
        let (mut base, scan, hashes) = setup(&refs, &kept);
        base.new_epoch();
        let plan = plan_push(
            &view(&base, &scan, &hashes),
            None,
            ConflictPolicy::KeepBoth,
            50,
            true,
        );
        assert!(plan.deletes.is_empty() && !plan.consented);
        let plan = plan_push(
            &view(&base, &scan, &hashes),
            None,
            ConflictPolicy::KeepBoth,
            100,
            true,
        );
        assert_eq!(plan.deletes.len(), 6);
        assert!(plan.consented);
        // Once they are done, a push that deletes nothing is never refused
        // for them.
        for rel in &refs[..6] {
            base.remove(rel);
        }
        let plan = plan_push(
            &view(&base, &scan, &hashes),
            None,
            ConflictPolicy::KeepBoth,
            50,
            true,
        );
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    }

    #[test]
    fn without_a_base_the_listing_decides() {
        let (base, scan, hashes) = setup(
            &[],
            &[
                ("same", 1, "0cc175b9c0f1b6a831c399e269772661"),
                ("differs", 1, "0cc175b9c0f1b6a831c399e269772661"),
                ("new", 1, "0cc175b9c0f1b6a831c399e269772661"),
            ],
        );
        let obj = |key: &str, etag: &str| RemoteObject {
            key: key.into(),
            size: Some(1),
            etag: Some(etag.into()),
            last_modified: None,
        };
        let listing = BTreeMap::from([
            (
                "same".to_owned(),
                obj("p/same", "0cc175b9c0f1b6a831c399e269772661"),
            ),
            (
                "differs".to_owned(),
                obj("p/differs", "92eb5ffee6ae2fec3ad71c777531578f"),
            ),
        ]);
        let view = view(&base, &scan, &hashes);
        let plan = plan_push(&view, Some(&listing), ConflictPolicy::KeepBoth, 50, true);
        assert_eq!(plan.conflicts, vec!["differs"]);
        assert_eq!(plan.record.len(), 1);
        assert_eq!(plan.uploads.len(), 1);
        assert_eq!(plan.uploads[0].condition, Condition::IfNoneMatch);
    }
}
