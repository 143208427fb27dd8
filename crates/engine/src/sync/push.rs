//! `push()`: upload what changed here since the base and delete on S3 what
//! was deleted here, each write conditional on S3 still holding the base's
//! version (see `plan::push`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinError;

use super::checkpoint::Version;
use super::{Opened, Report, Run, State, Workspace};
use crate::base::{BaseEntry, SyncBase};
use crate::blocking::blocking;
use crate::content_type::guess_content_type;
use crate::error::{Action, Error, FileError, Result};
use crate::ignore_rules::IgnoreRules;
use crate::keys::{check_key_length, key_for};
use crate::local::{rand_u64, scan, split_parent, Dir, Kind};

use crate::model::{nanos, Condition, Folding, RemoteObject, SkipReason, Skipped};
use crate::plan::{
    hashed_as_sent, plan_push, predict_push, remote_files, shapes_clash, LocalView, PushPlan,
    RemoteDelete, Upload,
};
use crate::progress::{FileProgress, Level, Phase, PhaseProgress};
use crate::store::{list_all, Store};
use crate::transfer::{run_bounded, upload_checked, CopyNames, Halt, UploadTo, Uploaded};

/// A planned push, nothing changed yet.
struct PreparedPush {
    /// The workspace, opened and locked until the operation ends.
    opened: Opened,
    store: Arc<dyn Store>,
    base: SyncBase,
    rules: IgnoreRules,
    /// What the scan could not sync.
    skipped: Vec<Skipped>,
    /// Files that cannot be uploaded (skipped, or failed to hash).
    errors: Vec<FileError>,
    /// The objects under the prefix, when they were listed.
    listing: Option<BTreeMap<String, RemoteObject>>,
    plan: PushPlan,
}

impl PreparedPush {
    /// What the push would do (a dry run's report; a dry run always lists).
    fn summary(self) -> Report {
        let mut errors = self.errors;
        errors.extend(self.plan.errors.iter().cloned());
        Report {
            unchanged: self.plan.unchanged,
            errors,
            skipped: self.skipped,
            plan: self
                .listing
                .as_ref()
                .map(|listing| predict_push(&self.plan, listing)),
            ..Report::default()
        }
    }
}

impl Workspace {
    /// Uploads files that are new or changed since the base and deletes on
    /// S3 the synced files that are gone here. A file changed on S3 since
    /// the base is never overwritten or deleted (unless the conflict policy
    /// is `Overwrite`): it is reported as a conflict.
    ///
    /// Rejects, deleting nothing, when the workspace cannot be scanned.
    pub async fn push(&self) -> Result<Report> {
        self.push_with(&Run::default()).await
    }

    /// `push()` run as `run` says (cancellable, or a dry run).
    pub async fn push_with(&self, run: &Run) -> Result<Report> {
        let started_ns = nanos(SystemTime::now());
        let cfg = &self.config;
        let announce = format!(
            "Pushing changes from {} to s3://{}/{}",
            cfg.workspace_dir.display(),
            cfg.bucket,
            cfg.prefix
        );
        self.operation(run, ("Push", "uploaded"), announce, async |state| {
            self.push_locked(state, started_ns, run.dry_run).await
        })
        .await
    }

    async fn push_locked(
        &self,
        state: &mut State,
        started_ns: i128,
        dry_run: bool,
    ) -> Result<Report> {
        let prepared = self.prepare_push(state, started_ns, dry_run).await?;
        if dry_run {
            return Ok(prepared.summary());
        }
        self.execute_push(state, prepared).await
    }

    /// Scans, hashes what changed, lists where the base cannot tell, and
    /// plans: everything a push does before it changes anything (all a dry
    /// run does).
    async fn prepare_push(
        &self,
        state: &mut State,
        started_ns: i128,
        dry_run: bool,
    ) -> Result<PreparedPush> {
        let opened = self.open(false, dry_run).await?;
        let root = opened.root.clone();
        let rules = self.current_rules(&root).await?;
        let store = self.store().await?;
        let scanning = {
            let (root, rules) = (root.clone(), rules.clone());
            blocking(move || scan(&root, &rules))
        };
        // The base load, then the listing where it is needed, overlap the
        // scan; and so do the once-per-instance requests (the cleanup, and
        // the bucket's versioning the checkpoint asks after the uploads).
        let listed = async {
            let base = self.base(state, &opened, dry_run).await?;
            // Without a base, the listing tells which files S3 already has.
            // A dry run lists anyway, to tell which conditional writes would
            // hold.
            let objects = match base.exists() && !dry_run {
                true => None,
                false => Some(list_all(&*store, &self.config.prefix).await?),
            };
            Ok::<_, Error>((base, objects))
        };
        let once = async {
            if dry_run {
                return None;
            }
            let (cleanup, _) = tokio::join!(
                self.abort_abandoned_uploads(&*store),
                self.versioned(&*store)
            );
            cleanup
        };
        let (cleanup, listed, scanned) = tokio::join!(once, listed, scanning);
        // A failure every request would repeat ends the push now rather
        // than after the uploads retry it too.
        if let Some(e) = cleanup {
            return Err(e);
        }
        let ((base, objects), local) = (listed?, scanned?);
        for s in &local.skipped {
            self.log(
                Level::Warn,
                &format!("Not uploaded: {}: {}", s.path, s.message),
            );
        }
        let skip_errors = local
            .skipped
            .iter()
            .filter(|s| s.reason != SkipReason::Symlink)
            .map(Skipped::to_error)
            .collect::<Vec<_>>();
        let listing = objects.map(|objects| {
            remote_files(&self.config.prefix, &objects, &rules, Folding::default()).files
        });
        // Large files whose hash decides nothing go unhashed, their parts
        // hashed as they are sent (a dry run hashes them, to predict).
        let unhashed = !dry_run;
        let todo = local
            .files
            .iter()
            .filter(|(rel, stat)| !base.unchanged_by_stat(rel, stat))
            .filter(|(rel, stat)| {
                !(unhashed && hashed_as_sent(rel, stat, base.entries(), listing.as_ref()))
            })
            .map(|(rel, stat)| (rel.clone(), *stat))
            .collect();
        let (hashes, hash_errors) = self.hash_files(&root, todo).await;
        let view = LocalView {
            scan: &local,
            hashes: &hashes,
            base: &base,
            started_ns,
        };
        let plan = plan_push(
            &view,
            listing.as_ref(),
            self.config.conflict_policy,
            self.config.max_delete_percent,
            unhashed,
        );
        Ok(PreparedPush {
            opened,
            store,
            base,
            rules,
            skipped: local.skipped,
            errors: skip_errors.into_iter().chain(hash_errors).collect(),
            listing,
            plan,
        })
    }

    /// Carries out a prepared push: each transfer recorded in the base as
    /// it completes.
    async fn execute_push(&self, state: &mut State, prepared: PreparedPush) -> Result<Report> {
        let PreparedPush {
            opened,
            store,
            mut base,
            rules,
            skipped,
            errors,
            plan,
            ..
        } = prepared;
        let root = opened.root.clone();
        // A server that does not apply conditional writes is found out (or
        // refused, when they are required) before anything is written.
        let conditional = plan.uploads.iter().any(|u| u.condition != Condition::None)
            || plan
                .deletes
                .iter()
                .any(|d| d.if_match.is_some() || d.intended.is_some());
        if conditional {
            store.check_conditions().await?;
        }
        let mut report = Report {
            unchanged: plan.unchanged,
            errors,
            skipped,
            ..Report::default()
        };
        self.report_trouble(&mut base, &mut report);
        for e in plan.errors {
            self.log(Level::Warn, &e.message);
            report.errors.push(e);
        }
        self.add_warnings(&mut report, plan.warnings);
        for (rel, entry) in plan.record {
            self.warn_if_unrecorded(base.record(rel, entry));
        }
        for rel in plan.conflicts {
            let err = Error::Conflict(format!(
                "{rel} differs on S3 and this directory never synced it: not uploaded. \
                 Pull first (a pull keeps both versions) or set conflictPolicy: 'overwrite'"
            ));
            self.conflict(&mut report, Action::Upload, rel, &err);
        }
        let consented = plan.consented;
        // What each write replaces: its checkpoint's order check.
        let replacing = plan.uploads.iter().filter_map(|u| match &u.condition {
            Condition::IfMatch(etag) => Some((u.rel.clone(), etag.clone())),
            _ => None,
        });
        let deleting = plan
            .deletes
            .iter()
            .filter_map(|d| Some((d.rel.clone(), d.if_match.clone()?)));
        report.replaced = replacing.chain(deleting).collect();
        let mut uploads = plan.uploads;
        uploads.retain(
            |u| match check_key_length(&key_for(&self.config.prefix, &u.rel)) {
                Ok(()) => true,
                Err(e) => {
                    self.log(Level::Warn, &format!("Not uploaded: {}: {e}", u.rel));
                    report
                        .errors
                        .push(FileError::new(Action::Upload, u.rel.clone(), &e));
                    false
                }
            },
        );
        // A file replaced by a directory (or back) is one change: the old
        // key is deleted (conditionally) before the new keys are written,
        // and they are not written if it could not be.
        let (first, later): (Vec<RemoteDelete>, Vec<RemoteDelete>) = plan
            .deletes
            .into_iter()
            .partition(|d| uploads.iter().any(|u| shapes_clash(&d.rel, &u.rel)));
        let halt = Halt::new(self.config.stall_timeout);
        let clearing: Vec<String> = first.iter().map(|d| d.rel.clone()).collect();
        let removed = self
            .delete_remote(&*store, &root, first, &mut base, &mut report, &halt)
            .await;
        // A directory replaced by a file: a server that keeps directories of
        // their own (SeaweedFS's filer) keeps the emptied one, and refuses a
        // file of its name until its folder key is deleted too (on others
        // there is no such key, and deleting it is a no-op).
        let cleared: Vec<&String> = clearing
            .iter()
            .filter(|r| !removed.kept.contains(r))
            .collect();
        for dir in emptied_dirs(&cleared, &uploads) {
            let marker = format!("{}/", key_for(&self.config.prefix, &dir));
            let _ = store.delete(&marker, None).await;
        }
        uploads.retain(|u| {
            let blocked = removed.kept.iter().any(|k| shapes_clash(k, &u.rel));
            if blocked {
                let err = Error::Conflict(format!(
                    "{} was not uploaded: the object it replaces (a file where it needs a \
                     directory, or files where it is one) could not be deleted on S3",
                    u.rel
                ));
                report
                    .errors
                    .push(FileError::new(Action::Upload, u.rel.clone(), &err));
            }
            !blocked
        });
        self.upload_all(
            &store,
            &root,
            &rules,
            uploads,
            &mut base,
            &mut report,
            &halt,
        )
        .await;
        let rest = self
            .delete_remote(&*store, &root, later, &mut base, &mut report, &halt)
            .await;
        report.deleted = removed.deleted + rest.deleted;
        if consented && report.deleted > 0 {
            self.warn_if_unrecorded(base.accept_deletions());
        }
        self.add_warnings(&mut report, store.take_warnings());
        // A push without a base compared every local file with the listing:
        // the deletion guard counts from here.
        if !base.exists() && !base.recovering() {
            self.warn_if_unrecorded(base.full_sync_done());
        }
        self.warn_if_unrecorded(base.ensure_written());
        self.save_base(state, base).await;
        // Before the push resolves, so a watcher elsewhere can learn of it.
        self.announce(&*store, &report).await;
        self.record_checkpoint(&*store, &mut report).await;
        Ok(report)
    }

    /// Once per instance: aborts the multipart uploads a killed process left
    /// under the prefix (older than `abandoned_upload_age`). Best effort: a
    /// policy without `s3:ListBucketMultipartUploads` only logs.
    /// Returns a failure every request would repeat (the bucket, the
    /// credentials, the endpoint); a missing permission for the listing
    /// (`AccessDenied`: it is optional) only logs.
    async fn abort_abandoned_uploads(&self, store: &dyn Store) -> Option<Error> {
        let age = self.config.abandoned_upload_age?;
        if self.abandoned_uploads_checked.swap(true, Ordering::Relaxed) {
            return None;
        }
        match store
            .abort_abandoned_uploads(&self.config.prefix, age)
            .await
        {
            Ok(0) => None,
            Ok(n) => {
                self.log(
                    Level::Info,
                    &format!("Aborted {n} multipart uploads left unfinished under the prefix by an earlier process"),
                );
                None
            }
            Err(e)
                if e.s3()
                    .is_some_and(|s| s.is_global() && s.code != "AccessDenied") =>
            {
                // Looked for again by the next push.
                self.abandoned_uploads_checked
                    .store(false, Ordering::Relaxed);
                Some(e)
            }
            Err(e) => {
                self.log(
                    Level::Debug,
                    &format!("Could not look for abandoned multipart uploads: {e}"),
                );
                None
            }
        }
    }

    /// Notes the object version an upload of `rel` made (`entry` is its
    /// new base entry), when the store said one, for the checkpoint.
    fn made(
        &self,
        rel: &str,
        entry: &BaseEntry,
        version: Option<String>,
        replaced: Option<&String>,
    ) {
        if let Some(id) = version {
            let version = Version {
                id,
                etag: entry.etag.clone(),
                size: entry.stat.size,
                hash: Some(entry.hash.clone()),
            };
            self.note_version(rel, version, replaced);
        }
    }

    pub(crate) fn conflict(&self, report: &mut Report, action: Action, rel: String, err: &Error) {
        self.log(Level::Warn, &format!("Conflict: {err}"));
        report.errors.push(FileError::new(action, rel.clone(), err));
        report.conflicts.push(rel);
    }

    /// Runs the uploads, `uploadConcurrency` at a time, recording each
    /// finished one in the base at once. Each upload is noted in the base
    /// before it is sent (see `SyncBase::intend`).
    #[allow(clippy::too_many_arguments)]
    async fn upload_all(
        &self,
        store: &Arc<dyn Store>,
        root: &Arc<Dir>,
        rules: &IgnoreRules,
        uploads: Vec<Upload>,
        base: &mut SyncBase,
        report: &mut Report,
        halt: &Halt,
    ) {
        let total_bytes = uploads.iter().map(|u| u.stat.size).sum();
        let progress = Arc::new(PhaseProgress::new(
            self.observer.clone(),
            Phase::Upload,
            uploads.len(),
            total_bytes,
        ));
        halt.follow(&progress);
        let names = Arc::new(CopyNames {
            rules: rules.clone(),
            tag: base.copy_tag(),
        });
        // Both the start and the end of an upload write to the base (one
        // after the other, never at once: the lock is never contended).
        let base = std::sync::Mutex::new(base);
        let lock = || base.lock().unwrap_or_else(|p| p.into_inner());
        let start = |u: Upload| {
            // An unhashed upload is named by a token its object keeps.
            let intent = match &u.hash {
                Some(hash) => hash.clone(),
                None => format!("upload-{:016x}", rand_u64()),
            };
            self.warn_if_unrecorded(lock().intend(&u.rel, &intent));
            let (store, root, names) = (store.clone(), root.clone(), names.clone());
            let prefix = self.config.prefix.clone();
            let resolver = self.config.content_types.clone();
            let halt = halt.clone();
            let progress = FileProgress::new(&progress);
            async move {
                let result = halt
                    .run(|| async {
                        let content_type = match &resolver {
                            Some(r) => r.content_type(&u.rel).await,
                            None => guess_content_type(&u.rel),
                        };
                        let to = UploadTo {
                            store: &*store,
                            root: &root,
                            prefix: &prefix,
                            names: &names,
                            content_type: &content_type,
                            progress: &progress,
                            token: &intent,
                        };
                        upload_checked(&to, &u).await
                    })
                    .await;
                progress.finish(&u.rel, u.stat.size);
                (u.rel, result)
            }
        };
        type Joined = std::result::Result<(String, Option<Result<Uploaded>>), JoinError>;
        let finished = |joined: Joined| {
            let Ok((rel, result)) = joined else {
                report.errors.push(FileError::new(
                    Action::Upload,
                    "",
                    &Error::Task("upload task failed".into()),
                ));
                return;
            };
            let Some(result) = result else {
                if let Some(e) = self.untried(halt) {
                    report.errors.push(FileError::new(Action::Upload, rel, &e));
                }
                return;
            };
            let mut base = lock();
            match result {
                Ok(Uploaded::Synced((entry, version))) => {
                    self.log(Level::Debug, &format!("Uploaded {rel}"));
                    report.bytes += entry.stat.size;
                    report.written.push(rel.clone());
                    self.made(&rel, &entry, version, report.replaced.get(&rel));
                    self.warn_if_unrecorded(base.record(rel, entry));
                    report.transferred += 1;
                }
                Ok(Uploaded::DeletionStands {
                    copy,
                    copy_ignored,
                    copy_entry,
                }) => {
                    self.warn_if_unrecorded(base.forget(&rel));
                    let err = Error::Conflict(format!(
                        "{rel} was deleted on S3 by another agent after (or before) an \
                         interrupted upload of these bytes: the deletion stands, and this \
                         version was kept as {copy}"
                    ));
                    self.conflict(report, Action::Upload, rel.clone(), &err);
                    self.copy_made(report, &rel, &copy, copy_ignored);
                    match copy_entry {
                        Ok((entry, version)) => {
                            report.bytes += entry.stat.size;
                            report.written.push(copy.clone());
                            self.made(&copy, &entry, version, None);
                            self.warn_if_unrecorded(base.record(copy, entry));
                            report.transferred += 1;
                        }
                        Err(e) => {
                            self.log(Level::Error, &format!("Upload failed: {copy}: {e}"));
                            report.errors.push(FileError::new(Action::Upload, copy, &e));
                        }
                    }
                }
                Err(Error::Conflict(m)) => {
                    self.warn_if_unrecorded(base.clear_intent(&rel));
                    let err = Error::Conflict(format!(
                        "{rel} changed on S3 since the last sync; not overwritten (pull to \
                         get both versions) ({m})"
                    ));
                    self.conflict(report, Action::Upload, rel, &err);
                }
                Err(e) if !halt.should_report(&e) => {}
                Err(e) => {
                    self.log(Level::Error, &format!("Upload failed: {rel}: {e}"));
                    report.errors.push(FileError::new(Action::Upload, rel, &e));
                }
            }
        };
        let limit = self.config.upload_concurrency;
        run_bounded(&self.transfers, uploads, limit, start, finished).await;
    }

    /// Deletes on S3 each file that is confirmed gone from the workspace,
    /// if its object is still the one the base knows. A file that is there
    /// again stays in the base, its deletion pending (the agent rewrote it
    /// while the push ran: the next push uploads it over the synced
    /// version).
    async fn delete_remote(
        &self,
        store: &dyn Store,
        root: &Arc<Dir>,
        deletes: Vec<RemoteDelete>,
        base: &mut SyncBase,
        report: &mut Report,
        halt: &Halt,
    ) -> Deleted {
        let mut out = Deleted::default();
        let progress = PhaseProgress::new(self.observer.clone(), Phase::Cleanup, deletes.len(), 0);
        // The scan did not see them; make sure each is really gone (not
        // merely ignored now, nor written again) before deleting it on S3.
        let mut gone = Vec::with_capacity(deletes.len());
        for d in deletes {
            let (dir, rel) = (root.clone(), d.rel.clone());
            let absent = blocking(move || Ok(no_file_at(&dir, &rel)))
                .await
                .unwrap_or(false);
            if absent {
                gone.push(d);
            } else {
                progress.advance(&d.rel, 0);
                out.kept.push(d.rel);
            }
        }
        if gone.is_empty() || halt.halted() {
            for d in gone {
                if let Some(e) = self.untried(halt) {
                    report
                        .errors
                        .push(FileError::new(Action::Delete, d.rel.clone(), &e));
                }
                out.kept.push(d.rel);
            }
            return out;
        }
        // A path the base never recorded: its object is deleted only if it
        // is the write its intent names (by its ETag now).
        let mut objects = Vec::with_capacity(gone.len());
        let mut batch = Vec::with_capacity(gone.len());
        for d in gone {
            let key = key_for(&self.config.prefix, &d.rel);
            let condition = match (&d.if_match, &d.intended) {
                (None, Some(intent)) => match own_write(store, &key, intent).await {
                    Ok(Some(etag)) => Some(etag),
                    Ok(None) => {
                        progress.advance(&d.rel, 0);
                        self.warn_if_unrecorded(base.clear_intent(&d.rel));
                        continue;
                    }
                    Err(e) => {
                        progress.advance(&d.rel, 0);
                        report
                            .errors
                            .push(FileError::new(Action::Delete, d.rel.clone(), &e));
                        out.kept.push(d.rel);
                        continue;
                    }
                },
                _ => d.if_match.clone(),
            };
            objects.push((key, condition));
            batch.push(d);
        }
        let mut results: HashMap<String, Result<()>> =
            store.delete_many(&objects).await.into_iter().collect();
        for (d, (key, _)) in batch.into_iter().zip(objects) {
            progress.advance(&d.rel, 0);
            // Missing: not attempted (the store stopped at a global failure).
            let Some(result) = results.remove(&key) else {
                out.kept.push(d.rel);
                continue;
            };
            // The object is not the base's: gone, or the write of a push
            // that never learned its outcome (deleted too), or another's.
            let result = match result {
                Err(Error::Conflict(m)) => match store.head(&key).await {
                    Ok(None) => {
                        // Deleted by someone else meanwhile: nothing to do.
                        self.warn_if_unrecorded(base.forget(&d.rel));
                        continue;
                    }
                    Ok(Some(info)) => match (&d.intended, &info.etag) {
                        (Some(intent), Some(etag)) if info.stored().holds(intent) => {
                            store.delete(&key, Some(etag)).await
                        }
                        _ => Err(Error::Conflict(m)),
                    },
                    Err(_) => Err(Error::Conflict(m)),
                },
                result => result,
            };
            match result {
                Ok(()) => {
                    self.log(Level::Debug, &format!("Deleted s3 object {}", d.rel));
                    self.warn_if_unrecorded(base.forget(&d.rel));
                    self.note_removed(&d.rel, d.if_match.as_ref());
                    report.removed.push(d.rel.clone());
                    out.deleted += 1;
                }
                Err(Error::Conflict(m)) => {
                    let err = Error::Conflict(format!(
                        "{} changed on S3 since the last sync; not deleted (pull to get it \
                         back) ({m})",
                        d.rel
                    ));
                    self.conflict(report, Action::Delete, d.rel.clone(), &err);
                    out.kept.push(d.rel);
                }
                Err(e) if !halt.should_report(&e) => out.kept.push(d.rel),
                Err(e) => {
                    self.log(Level::Error, &format!("Delete failed: {}: {e}", d.rel));
                    report
                        .errors
                        .push(FileError::new(Action::Delete, d.rel.clone(), &e));
                    out.kept.push(d.rel);
                }
            }
        }
        out
    }
}

/// The ETag of the object at `key` if it is the write `intent` names,
/// `None` if there is none or it is another's.
async fn own_write(store: &dyn Store, key: &str, intent: &str) -> Result<Option<String>> {
    Ok(store
        .head(key)
        .await?
        .filter(|info| info.stored().holds(intent))
        .and_then(|info| info.etag))
}

/// What `delete_remote` did.
#[derive(Default)]
struct Deleted {
    deleted: usize,
    /// Paths whose objects are still on S3.
    kept: Vec<String>,
}

/// Whether there is no file at `rel` now: nothing there, a directory (a
/// file replaced by one), or a parent that is gone or is a file. Blocking.
fn no_file_at(root: &Dir, rel: &str) -> bool {
    let (parent, name) = split_parent(rel);
    match root.open_sub(parent) {
        Ok(dir) => matches!(dir.stat(name), Ok(None) | Ok(Some((Kind::Dir, _)))),
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ),
    }
}

/// The directories a push emptied by deleting `deleted` where an upload
/// puts a file: for an upload of `d` and a deleted `d/x/y`, `d/x` then `d`
/// (deepest first).
fn emptied_dirs(deleted: &[&String], uploads: &[Upload]) -> Vec<String> {
    let mut dirs = Vec::new();
    for u in uploads {
        for d in deleted {
            if d.len() > u.rel.len() && d.starts_with(&u.rel) && d.as_bytes()[u.rel.len()] == b'/' {
                let below_upload = d.match_indices('/').map(|(i, _)| &d[..i]);
                dirs.extend(
                    below_upload
                        .filter(|dir| dir.len() >= u.rel.len())
                        .map(str::to_owned),
                );
            }
        }
    }
    dirs.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Condition;

    #[test]
    fn the_directories_a_file_replaces_are_listed_deepest_first() {
        let upload = |rel: &str| Upload {
            rel: rel.into(),
            stat: Default::default(),
            hash: None,
            parts: Default::default(),
            hashed_ns: 0,
            condition: Condition::IfNoneMatch,
            interrupted: false,
            intended: None,
        };
        let deleted = [
            "d/x/y".to_owned(),
            "d/z".to_owned(),
            "dd/q".to_owned(),
            "e/f".to_owned(),
        ];
        let deleted: Vec<&String> = deleted.iter().collect();
        assert_eq!(emptied_dirs(&deleted, &[upload("d")]), ["d/x", "d"]);
        assert!(emptied_dirs(&deleted, &[upload("d/x/y")]).is_empty());
    }
}
