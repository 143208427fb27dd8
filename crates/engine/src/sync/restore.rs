//! `restore()`: make S3 and the workspace hold a checkpoint's state again
//! (all of it, or some paths), and `diff()`: what changed between two
//! states. S3 gets the old versions back by server-side copies and delete
//! markers, so history is never rewritten and the restore is a checkpoint
//! of its own; the workspace then pulls what S3 holds, local unpushed work
//! set aside first under conflict names.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;

use super::checkpoint::{Files, Target, Version};
use super::schedule::{Mode, Reply, Want};
use super::{Report, Run, State, Workspace};
use crate::base::{BaseEntries, SyncBase};
use crate::blocking::blocking;
use crate::error::{Action, Error, FileError, Result};
use crate::hashing::etag_hash;
use crate::keys::{key_for, Root};
use crate::local::{hash_file, open_scanned, scan, set_aside, split_parent, Dir};
use crate::model::{nanos, Condition, FileStat, Folding, RemoteObject};
use crate::plan::{remote_files, PlanSummary, Scope};
use crate::progress::{Level, Phase, PhaseProgress};
use crate::store::{list_all, Store, VersionCopy};
use crate::transfer::{join_rel, CopyNames};

/// What changed from one state to another: workspace paths, sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Paths only the later state has.
    pub added: Vec<String>,
    /// Paths whose content differs.
    pub modified: Vec<String>,
    /// Paths only the earlier state has.
    pub deleted: Vec<String>,
}

/// A version to make current again.
struct Restore {
    rel: String,
    version: Version,
    condition: Condition,
}

impl Workspace {
    /// Makes S3 and the workspace hold checkpoint `target`'s state (only
    /// under `paths`, files or directories, when given). A path another
    /// agent changed on S3 since this instance's base is a conflict and left
    /// as it is; local changes not pushed are kept under conflict names.
    pub async fn restore(&self, target: &Target, paths: &[String], run: &Run) -> Result<Report> {
        let started_ns = nanos(SystemTime::now());
        let roots = restore_roots(paths)?;
        let announce = format!(
            "Restoring s3://{}/{} and {} to {}",
            self.config.bucket,
            self.config.prefix,
            self.config.workspace_dir.display(),
            match target {
                Target::Checkpoint(id) => format!("checkpoint {id}"),
                Target::At(t) => format!("the state at {t:?}"),
            }
        );
        self.operation(run, ("Restore", "restored"), announce, async |state| {
            self.run_restore(state, target, roots, started_ns, run)
                .await
        })
        .await
    }

    async fn run_restore(
        &self,
        state: &mut State,
        target: &Target,
        roots: Option<Vec<Root>>,
        started_ns: i128,
        run: &Run,
    ) -> Result<Report> {
        let store = self.store().await?;
        self.require_versioning(&*store).await?;
        let seq = self.resolve(&*store, target).await?;
        let wanted = self.state_at(&*store, seq).await?;
        let newest = self.newest_state(&*store).await?;
        let scope = roots.clone().map_or_else(Scope::all, Scope::only);
        let prefix = self.config.prefix.clone();
        let listing = list_all(&*store, &prefix).await?;
        let on_s3 = remote_files(&prefix, &listing, &self.base_rules, Folding::default()).on_s3();
        let total = on_s3.len();
        let current: HashMap<String, RemoteObject> = on_s3
            .into_iter()
            .filter(|(rel, _)| scope.contains(rel))
            .collect();
        // A dry run into a directory not made yet plans against no base,
        // and makes nothing.
        let opened = if run.dry_run && !self.config.workspace_dir.exists() {
            None
        } else {
            Some(self.open(true, run.dry_run).await?)
        };
        let mut base = match &opened {
            Some(opened) => Some(self.base(state, opened, run.dry_run).await?),
            None => None,
        };
        let mut report = Report::default();
        // Decide, per path.
        let none = BaseEntries::new(0);
        let entries = base.as_ref().map_or(&none, SyncBase::entries);
        let fresh = entries.is_empty();
        let paths: BTreeSet<&String> = wanted
            .keys()
            .filter(|r| scope.contains(r) && !self.base_rules.is_ignored(r, false))
            .chain(current.keys())
            .collect();
        let (mut restores, mut deletes) = (Vec::new(), Vec::new());
        for rel in paths {
            let (t, c) = (wanted.get(rel), current.get(rel));
            let same = match (t, c) {
                (Some(t), Some(c)) => t.etag.is_some() && t.etag == c.etag,
                (None, None) => true,
                _ => false,
            };
            if same {
                report.unchanged += usize::from(t.is_some());
                continue;
            }
            // What S3 held when this instance last synced the path: it must
            // still hold it (a fresh instance takes S3 as it is now).
            let expected = entries.get(rel).map(|e| e.etag());
            let untouched = fresh
                || match (c, expected) {
                    (None, None) => true,
                    (Some(c), Some(Some(e))) => c.etag.as_deref() == Some(e.as_str()),
                    _ => false,
                };
            if !untouched {
                let err = Error::Conflict(format!(
                    "{rel} changed on S3 since this workspace last synced it: not restored \
                     (pull, then restore again)"
                ));
                self.conflict(&mut report, Action::Restore, rel.clone(), &err);
                continue;
            }
            let condition = match c.and_then(|c| c.etag.clone()) {
                Some(etag) => Condition::IfMatch(etag),
                None if c.is_some() => Condition::None,
                None => Condition::IfNoneMatch,
            };
            match t {
                Some(v) => restores.push(Restore {
                    rel: rel.clone(),
                    version: v.clone(),
                    condition,
                }),
                None => deletes.push((rel.clone(), c.and_then(|c| c.etag.clone()))),
            }
        }
        self.check_versions_exist(&*store, seq, &restores).await?;
        let max = self.config.max_delete_percent;
        if deletes.len() >= 2 && deletes.len() * 100 > usize::from(max) * total {
            return Err(Error::MassDelete(format!(
                "restoring would delete {} of the {total} files on S3 (more than {max}%); \
                 nothing was restored. Raise maxDeletePercent to restore it",
                deletes.len()
            )));
        }
        for (rel, etag) in restores
            .iter()
            .filter_map(|r| match &r.condition {
                Condition::IfMatch(e) => Some((&r.rel, e)),
                _ => None,
            })
            .chain(
                deletes
                    .iter()
                    .filter_map(|(rel, e)| Some((rel, e.as_ref()?))),
            )
        {
            report.replaced.insert(rel.clone(), etag.clone());
        }
        if run.dry_run {
            report.plan = Some(
                PlanSummary {
                    upload: restores.iter().map(|r| r.rel.clone()).collect(),
                    delete_remote: deletes.iter().map(|d| d.0.clone()).collect(),
                    conflicts: report.conflicts.clone(),
                    ..PlanSummary::default()
                }
                .sorted(),
            );
            return Ok(report);
        }
        let (Some(opened), Some(mut base)) = (opened, base.take()) else {
            return Err(Error::Task("the workspace was not opened".into()));
        };
        self.restore_on_s3(&*store, restores, deletes, &mut report)
            .await;
        self.add_warnings(&mut report, store.take_warnings());
        let in_scope = |rel: &str| scope.contains(rel) && !self.base_rules.is_ignored(rel, false);
        self.repair_drift(&*store, &newest, &current, &in_scope, &mut report)
            .await?;
        // The workspace: local work set aside where the restore replaces
        // it, then a pull of what S3 now holds.
        let rules = self.current_rules(&opened.root).await?;
        let names = CopyNames {
            rules: rules.clone(),
            tag: base.copy_tag(),
        };
        let root = opened.root.clone();
        let scanned = blocking(move || scan(&root, &rules)).await?;
        for (rel, stat) in &scanned.files {
            if !scope.contains(rel)
                || base
                    .entries()
                    .get(rel)
                    .is_some_and(|e| base.entries().settled(e, stat))
            {
                continue;
            }
            if stat.mtime_ns.max(stat.ctime_ns) >= started_ns {
                continue;
            }
            let target = wanted.get(rel);
            // Unchanged since the base (the pull replaces it), or already
            // what the checkpoint holds: nothing to keep.
            let hash = local_hash(&opened.root, rel, *stat).await?;
            let synced = base.entries().get(rel).is_some_and(|e| e.hash_is(&hash));
            if synced
                || target
                    .is_some_and(|t| content_of(t, base.entries(), rel).as_deref() == Some(&hash))
            {
                continue;
            }
            match aside(&opened.root, rel, *stat, &names).await {
                Ok(copy) => {
                    self.copy_made(&mut report, rel, &copy.0, copy.1);
                    report.conflicts.push(rel.clone());
                    self.warn_if_unrecorded(base.forget(rel));
                }
                Err(e) => {
                    self.log(Level::Warn, &format!("Not restored here: {rel}: {e}"));
                    report
                        .errors
                        .push(FileError::new(Action::Restore, rel.clone(), &e));
                }
            }
        }
        self.save_base(state, base).await;
        drop(opened);
        let mode = match roots {
            None => Mode::Whole,
            Some(roots) => Mode::Only(Want {
                roots,
                reply: Reply::Changed,
            }),
        };
        let pulled = self.run_pull(state, started_ns, (mode, true), None).await?;
        report.conflicts.extend(pulled.conflicts);
        report.conflict_copies.extend(pulled.conflict_copies);
        report.errors.extend(pulled.errors);
        report.warnings.extend(pulled.warnings);
        // As a push's: watchers elsewhere pull what the restore changed.
        self.announce(&*store, &report).await;
        self.record_checkpoint(&*store, &mut report).await;
        Ok(report)
    }

    /// Fails, before anything is changed, when a version the restore would
    /// copy no longer exists (a lifecycle rule expired it, or someone
    /// deleted it): a restore that stopped halfway would be worse.
    async fn check_versions_exist(
        &self,
        store: &dyn Store,
        seq: u64,
        restores: &[Restore],
    ) -> Result<()> {
        let prefix = &self.config.prefix;
        let asks: Vec<_> = restores
            .iter()
            .map(|r| {
                let (key, rel, id) = (key_for(prefix, &r.rel), r.rel.clone(), r.version.id.clone());
                async move { (rel, store.version_exists(&key, &id).await) }
            })
            .collect();
        let asked: Vec<(String, Result<bool>)> = futures::stream::iter(asks)
            .buffer_unordered(self.requests_in_flight())
            .collect()
            .await;
        let mut gone = Vec::new();
        for (rel, exists) in asked {
            if !exists? {
                gone.push(rel);
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        gone.sort_unstable();
        let some = gone.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        Err(Error::NoCheckpoint(format!(
            "checkpoint {seq} names versions that no longer exist ({} of them: {some}{}), \
             expired by a lifecycle rule or deleted; nothing was restored (restore the \
             other paths with `paths`, or a newer checkpoint)",
            gone.len(),
            if gone.len() > 5 { ", ..." } else { "" }
        )))
    }

    /// The version checks and copies a restore has in flight: as many as a
    /// pull's downloads (`downloadConcurrency`), not as a push's uploads:
    /// no bytes cross the network, the server copies, and each request is a
    /// round trip the restore would otherwise wait for.
    fn requests_in_flight(&self) -> usize {
        self.config.download_concurrency.max(1)
    }

    /// The newest checkpoint's files (empty when there is none).
    async fn newest_state(&self, store: &dyn Store) -> Result<Arc<Files>> {
        match self.newest(store).await? {
            0 => Ok(Arc::default()),
            seq => self.state_at(store, seq).await,
        }
    }

    /// The copies and delete markers, each reported as it is answered.
    async fn restore_on_s3(
        &self,
        store: &dyn Store,
        restores: Vec<Restore>,
        deletes: Vec<(String, Option<String>)>,
        report: &mut Report,
    ) {
        let bytes = restores.iter().map(|r| r.version.size).sum();
        let progress = PhaseProgress::new(
            self.observer.clone(),
            Phase::Restore,
            restores.len() + deletes.len(),
            bytes,
        );
        let prefix = &self.config.prefix;
        let mut copies = futures::stream::iter(restores)
            .map(|r| async move {
                let key = key_for(prefix, &r.rel);
                let copied = store
                    .copy_version(VersionCopy {
                        key: &key,
                        version: &r.version.id,
                        size: r.version.size,
                        condition: &r.condition,
                    })
                    .await;
                (r, copied)
            })
            .buffer_unordered(self.requests_in_flight());
        while let Some((r, copied)) = copies.next().await {
            progress.advance(&r.rel, r.version.size);
            match copied {
                Ok(w) => {
                    self.log(Level::Debug, &format!("Restored {}", r.rel));
                    report.transferred += 1;
                    report.bytes += r.version.size;
                    report.written.push(r.rel.clone());
                    if let Some(id) = w.version {
                        let made = Version {
                            id,
                            etag: w.etag.or_else(|| r.version.etag.clone()),
                            ..r.version.clone()
                        };
                        self.note_version(&r.rel, made, report.replaced.get(&r.rel));
                    }
                }
                Err(Error::Conflict(m)) => {
                    let err = Error::Conflict(format!(
                        "{} changed on S3 during the restore; not restored ({m})",
                        r.rel
                    ));
                    self.conflict(report, Action::Restore, r.rel, &err);
                }
                Err(e) => {
                    self.log(Level::Error, &format!("Restore failed: {}: {e}", r.rel));
                    report
                        .errors
                        .push(FileError::new(Action::Restore, r.rel, &e));
                }
            }
        }
        if deletes.is_empty() {
            return;
        }
        let objects: Vec<(String, Option<String>)> = deletes
            .iter()
            .map(|(rel, etag)| (key_for(prefix, rel), etag.clone()))
            .collect();
        let mut results: HashMap<String, Result<()>> =
            store.delete_many(&objects).await.into_iter().collect();
        for ((rel, _), (key, _)) in deletes.into_iter().zip(objects) {
            progress.advance(&rel, 0);
            match results.remove(&key) {
                Some(Ok(())) => {
                    report.deleted += 1;
                    self.note_removed(&rel, report.replaced.get(&rel));
                    report.removed.push(rel);
                }
                Some(Err(Error::Conflict(m))) => {
                    let err = Error::Conflict(format!(
                        "{rel} changed on S3 during the restore; not deleted ({m})"
                    ));
                    self.conflict(report, Action::Delete, rel, &err);
                }
                Some(Err(e)) => report.errors.push(FileError::new(Action::Delete, rel, &e)),
                None => {}
            }
        }
    }

    /// Paths in scope whose object is not what the newest checkpoint says
    /// (written by another tool, or by a restore or push that was stopped
    /// before its checkpoint) and that this restore left as they are: their
    /// current versions enter its checkpoint, so it names what S3 holds.
    async fn repair_drift(
        &self,
        store: &dyn Store,
        newest: &Files,
        current: &HashMap<String, RemoteObject>,
        in_scope: &(dyn Fn(&str) -> bool + Sync),
        report: &mut Report,
    ) -> Result<()> {
        let touched: BTreeSet<String> = report
            .written
            .iter()
            .chain(&report.removed)
            .chain(&report.conflicts)
            .cloned()
            .collect();
        for (rel, c) in current {
            let known = newest.get(rel);
            if touched.contains(rel) || known.is_some_and(|k| k.etag.is_some() && k.etag == c.etag)
            {
                continue;
            }
            let Some(info) = store.head(&c.key).await? else {
                continue;
            };
            if let Some(id) = info.version.clone() {
                let found = Version {
                    id,
                    etag: info.etag.clone(),
                    size: c.size.unwrap_or(0),
                    hash: info.content_hash(),
                };
                self.note_version(rel, found, None);
            }
        }
        for rel in newest.keys() {
            if in_scope(rel) && !current.contains_key(rel) && !touched.contains(rel) {
                self.note_removed(rel, None);
            }
        }
        Ok(())
    }
}

impl Workspace {
    /// What changed from `from` to `to` (the local workspace when `None`).
    pub async fn diff(&self, from: &Target, to: Option<&Target>) -> Result<Diff> {
        let store = self.store().await?;
        self.require_versioning(&*store).await?;
        let seq = self.resolve(&*store, from).await?;
        let before = self.state_aside(&*store, seq).await?;
        if let Some(to) = to {
            let seq = self.resolve(&*store, to).await?;
            let after = self.state_aside(&*store, seq).await?;
            return Ok(compare(&before, after.keys(), |rel| {
                let (a, b) = (after.get(rel), before.get(rel));
                a.zip(b).is_some_and(|(a, b)| !a.same_content(b))
            }));
        }
        let entries = self.base_for_diff().await?;
        let after = self.local_hashes(&entries).await?;
        Ok(compare(&before, after.keys(), |rel| {
            let local = after.get(rel).cloned().flatten();
            let known = before.get(rel).and_then(|v| content_of(v, &entries, rel));
            local.is_none() || known.is_none() || local != known
        }))
    }

    /// Every local file's content hash (`None`: it could not be read); a
    /// file the base holds as synced is not read again.
    async fn local_hashes(&self, entries: &BaseEntries) -> Result<HashMap<String, Option<String>>> {
        if !self.config.workspace_dir.exists() {
            return Ok(HashMap::new());
        }
        let opened = self.open(false, true).await?;
        let rules = self.current_rules(&opened.root).await?;
        let root = opened.root.clone();
        let scanned = blocking(move || scan(&root, &rules)).await?;
        let mut out = HashMap::new();
        for (rel, stat) in scanned.files {
            let known = entries.get(&rel).filter(|e| e.is_hashed());
            let hash = match known.filter(|e| entries.settled(*e, &stat)) {
                Some(e) => Some(e.hash()),
                None => local_hash(&opened.root, &rel, stat).await.ok(),
            };
            out.insert(rel, hash);
        }
        Ok(out)
    }

    /// The base as a dry run reads it (nothing locked or written).
    async fn base_for_diff(&self) -> Result<BaseEntries> {
        if !self.config.workspace_dir.exists() {
            return Ok(BaseEntries::new(0));
        }
        let opened = self.open(false, true).await?;
        let mut state = State::default();
        let base = self.base(&mut state, &opened, true).await?;
        Ok(base.entries().clone())
    }
}

/// `before` against the paths `after` has; `modified` says whether a path
/// in both differs.
fn compare<'a>(
    before: &Files,
    after: impl Iterator<Item = &'a String>,
    modified: impl Fn(&String) -> bool,
) -> Diff {
    let mut diff = Diff::default();
    let mut seen = BTreeSet::new();
    for rel in after {
        seen.insert(rel.clone());
        if !before.contains_key(rel) {
            diff.added.push(rel.clone());
        } else if modified(rel) {
            diff.modified.push(rel.clone());
        }
    }
    diff.deleted = before
        .keys()
        .filter(|r| !seen.contains(*r))
        .cloned()
        .collect();
    diff.added.sort();
    diff.modified.sort();
    diff
}

/// The content hash of version `v` of `rel`: recorded with it, else the
/// base's when the base synced that very object, else what its ETag says.
fn content_of(v: &Version, base: &BaseEntries, rel: &str) -> Option<String> {
    v.hash
        .clone()
        .or_else(|| {
            base.get(rel)
                .filter(|e| e.is_hashed() && e.etag_is(v.etag.as_deref()))
                .map(|e| e.hash())
        })
        .or_else(|| v.etag.as_deref().and_then(etag_hash))
}

/// The content hash of the scanned file `rel` (still as scanned).
async fn local_hash(root: &Arc<Dir>, rel: &str, stat: FileStat) -> Result<String> {
    let (root, rel) = (root.clone(), rel.to_owned());
    blocking(move || {
        let file = open_scanned(&root, &rel, stat)?;
        let path = root.path().join(&rel);
        Ok(hash_file(&file, &path, stat.size, 2)?.0)
    })
    .await
}

/// Moves the local file `rel` to a conflict name: the copy's path, and
/// whether the ignore rules hide it.
async fn aside(
    root: &Arc<Dir>,
    rel: &str,
    stat: FileStat,
    names: &CopyNames,
) -> Result<(String, bool)> {
    let (parent, name) = split_parent(rel);
    let dir = root
        .open_sub(parent)
        .map_err(|e| Error::io("open", &root.path().join(parent), e))?;
    let copy = set_aside(&dir, name, stat, &names.namer(parent))?;
    Ok((join_rel(parent, &copy.name), copy.ignored))
}

/// `paths` as roots: each names a file, or a directory (`dir` and `dir/`
/// alike). `None`: everything.
fn restore_roots(paths: &[String]) -> Result<Option<Vec<Root>>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let roots = super::ensure::ensure_roots(paths)?;
    Ok(Some(
        roots
            .into_iter()
            .flat_map(|r| {
                let dir = r.trim_end_matches('/').to_owned();
                [dir.clone(), format!("{dir}/")]
            })
            .collect(),
    ))
}
