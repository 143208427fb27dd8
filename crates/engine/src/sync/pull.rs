//! `pull()`: bring S3's changes into the workspace, three-way against the
//! sync base (see `plan::pull` for the table), keeping every local change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinError;

use super::{Opened, Report, Run, State, Workspace};
use crate::base::SyncBase;
use crate::blocking::blocking;
use crate::error::{Action, Error, FileError, Result, Warning, WarningCode};
use crate::ignore_rules::IgnoreRules;
use crate::keys::key_for;
use crate::local::{
    delete_if_unchanged, probe_folding, remove_file_and_empty_parents, scan, set_aside,
    split_parent, Dir,
};
use crate::model::{nanos, FileStat, Folding, Scan};
use crate::plan::{
    plan_pull, pull_hash_candidates, remote_files, shapes_clash, stored_hash_candidates, Download,
    LocalDelete, LocalView, PlanSummary, PullPlan, PullRules,
};
use crate::progress::{FileProgress, Level, Phase, PhaseProgress};
use crate::store::{list_all, Store};
use crate::transfer::{download, join_rel, run_bounded, CopyNames, Downloaded, Halt};

/// A planned pull, nothing changed yet.
struct PreparedPull {
    /// The workspace, opened and locked until the operation ends.
    opened: Opened,
    store: Arc<dyn Store>,
    base: SyncBase,
    rules: IgnoreRules,
    local: Scan,
    plan: PullPlan,
}

impl PreparedPull {
    /// What the pull would do (a dry run's report).
    fn summary(self) -> Report {
        let plan = self.plan;
        let summary = PlanSummary {
            download: plan.downloads.iter().map(|d| d.rel.clone()).collect(),
            delete_local: plan.deletes.iter().map(|d| d.rel.clone()).collect(),
            conflicts: plan
                .downloads
                .iter()
                .filter(|d| d.keep_local || d.beside)
                .map(|d| d.rel.clone())
                .chain(plan.conflicts.iter().cloned())
                .collect(),
            ..PlanSummary::default()
        };
        Report {
            unchanged: plan.unchanged,
            errors: plan.errors,
            warnings: plan.warnings,
            plan: Some(summary.sorted()),
            ..Report::default()
        }
    }
}

/// What the download batches of one pull share.
struct Batch<'a> {
    store: &'a Arc<dyn Store>,
    progress: Arc<PhaseProgress>,
    root: &'a Arc<Dir>,
    names: &'a Arc<CopyNames>,
    halt: Halt,
}

impl Workspace {
    /// Downloads what changed on S3 since the base, deletes local files
    /// whose objects were deleted (and that were not changed here), keeps
    /// local changes for the next push, and keeps both versions of a file
    /// changed on both sides. Without a base, mirrors S3 (as upstream), but
    /// never touches a file changed after the call.
    ///
    /// Rejects (with `S3_OPERATION_ERROR`, `WORKSPACE_ERROR`, …) only when
    /// nothing could be synced; failures of single files are in the report.
    pub async fn pull(&self) -> Result<Report> {
        self.pull_with(SystemTime::now(), &Run::default()).await
    }

    /// `pull()` for a call made at `called` (the JS wrapper's own time:
    /// files written since then are the agent's and stay untouched), run
    /// as `run` says (cancellable, or a dry run).
    pub async fn pull_with(&self, called: SystemTime, run: &Run) -> Result<Report> {
        let started_ns = nanos(called.min(SystemTime::now()));
        let cfg = &self.config;
        let announce = format!(
            "Pulling from s3://{}/{} into {}",
            cfg.bucket,
            cfg.prefix,
            cfg.workspace_dir.display()
        );
        self.operation(run, ("Pull", "downloaded"), announce, async |state| {
            self.pull_locked(state, started_ns, run).await
        })
        .await
    }

    async fn pull_locked(&self, state: &mut State, started_ns: i128, run: &Run) -> Result<Report> {
        if run.dry_run && !self.config.workspace_dir.exists() {
            return self.dry_run_into_nothing().await;
        }
        let prepared = self.prepare_pull(state, started_ns, run).await?;
        if run.dry_run {
            return Ok(prepared.summary());
        }
        self.execute_pull(state, prepared).await
    }

    /// Lists, scans, hashes what must be compared, and plans: everything a
    /// pull does before it changes anything (all a dry run does).
    async fn prepare_pull(
        &self,
        state: &mut State,
        started_ns: i128,
        run: &Run,
    ) -> Result<PreparedPull> {
        let dry_run = run.dry_run;
        let opened = self.open(true, dry_run).await?;
        let root = opened.root.clone();
        let state_dir = opened.state.clone();
        let store = self.store().await?;
        // The listing's round trips overlap the local work.
        let local_side = async {
            // A dry run writes no probe: it assumes distinct names stay distinct.
            let folding = match dry_run {
                true => Folding::default(),
                false => blocking(move || probe_folding(&state_dir)).await?,
            };
            let base = self.base(state, &opened, dry_run).await?;
            let rules = self.current_rules(&root).await?;
            let local = {
                let (root, rules) = (root.clone(), rules.clone());
                blocking(move || scan(&root, &rules)).await?
            };
            Ok::<_, Error>((folding, base, rules, local))
        };
        let (local_side, listing) =
            tokio::join!(local_side, list_all(&*store, &self.config.prefix));
        let (folding, base, rules, local) = local_side?;
        let listing = listing?;
        let remote = remote_files(&self.config.prefix, &listing, &rules, folding);
        for (key, why) in &remote.skipped {
            self.log(Level::Warn, &format!("Skipping object {key}: {why}"));
        }
        let no_hashes = HashMap::new();
        let unhashed = LocalView {
            scan: &local,
            hashes: &no_hashes,
            base: &base,
            // A file stamped just before the call by a lagging clock may
            // have been written after it: the margin counts it as after.
            started_ns: started_ns - base.clock_lag_ns(),
        };
        let candidates = pull_hash_candidates(&remote, &unhashed)
            .into_iter()
            .map(|rel| {
                let stat = local.files[&rel];
                (rel, stat)
            })
            .collect();
        let (hashes, _) = self.hash_files(&root, candidates).await;
        let view = LocalView {
            hashes: &hashes,
            ..unhashed
        };
        let lookups = stored_hash_candidates(&remote, &view)
            .into_iter()
            .map(|obj| obj.key.clone())
            .collect();
        let stored_hashes = self.stored_hashes(&store, lookups).await;
        let rules_for = PullRules {
            policy: self.config.conflict_policy,
            max_delete_percent: self.config.max_delete_percent,
            restore_deleted: run.restore_deleted,
        };
        let plan = plan_pull(remote, &view, &stored_hashes, rules_for);
        for e in &plan.errors {
            self.log(Level::Warn, &format!("Skipping: {}", e.message));
        }
        for rel in &plan.pending {
            self.log(
                Level::Debug,
                &format!("Keeping local change {rel} for the next push"),
            );
        }

        Ok(PreparedPull {
            opened,
            store,
            base,
            rules,
            local,
            plan,
        })
    }

    /// Carries out a prepared pull: each transfer recorded in the base as
    /// it completes.
    async fn execute_pull(&self, state: &mut State, prepared: PreparedPull) -> Result<Report> {
        let PreparedPull {
            opened,
            store,
            mut base,
            rules,
            local,
            plan,
        } = prepared;
        let root = opened.root.clone();
        let mut report = Report {
            unchanged: plan.unchanged,
            errors: plan.errors,
            conflicts: plan.conflicts,
            ..Report::default()
        };
        self.report_trouble(&mut base, &mut report);
        self.add_warnings(&mut report, plan.warnings);
        for (rel, entry) in plan.record {
            self.warn_if_unrecorded(base.record(rel, entry));
        }
        for rel in &plan.forget {
            self.warn_if_unrecorded(base.forget(rel));
        }
        let names = Arc::new(CopyNames {
            rules,
            tag: base.copy_tag(),
        });
        // What stands where a download must go (a file where S3 now has a
        // directory, files where it has a file) goes first.
        self.set_aside(&root, &names, plan.set_aside, &mut report)
            .await;
        let (first_deletes, later_deletes): (Vec<_>, Vec<_>) =
            plan.deletes.into_iter().partition(|del| {
                plan.downloads
                    .iter()
                    .any(|d| shapes_clash(&del.rel, &d.rel))
            });
        let mut deleted = self
            .delete_local(&root, first_deletes, &mut base, &mut report)
            .await;
        let total_bytes = plan.downloads.iter().filter_map(|d| d.size).sum();
        let progress = PhaseProgress::new(
            self.observer.clone(),
            Phase::Download,
            plan.downloads.len(),
            total_bytes,
        );
        let priority = self.config.priority_prefix.as_deref();
        let (first, rest): (Vec<_>, Vec<_>) = plan
            .downloads
            .into_iter()
            .partition(|d| priority.is_some_and(|p| d.rel.starts_with(p)));
        let batch = Batch {
            store: &store,
            progress: Arc::new(progress),
            root: &root,
            names: &names,
            halt: Halt::default(),
        };
        let mut failed = self
            .download_all(&batch, first, &mut base, &mut report)
            .await;
        self.observer.priority_settled();
        failed += self
            .download_all(&batch, rest, &mut base, &mut report)
            .await;

        deleted += self
            .delete_local(&root, later_deletes, &mut base, &mut report)
            .await;
        report.deleted = deleted;
        if !local.temp_files.is_empty() {
            let n = local.temp_files.len();
            self.log(
                Level::Info,
                &format!("Removing {n} temp files left by an interrupted sync"),
            );
        }
        for rel in local.temp_files {
            let root = root.clone();
            self.log(Level::Debug, &format!("Removing leftover temp file {rel}"));
            let _ = blocking(move || remove_file_and_empty_parents(&root, &rel)).await;
        }
        // Every path was compared with S3: the reference of the deletion
        // guard, and the end of a recovery (unless some download failed:
        // that path is still unknown).
        if failed == 0 && !batch.halt.halted() {
            self.warn_if_unrecorded(base.full_sync_done());
        }
        self.warn_if_unrecorded(base.ensure_written());
        self.save_base(state, base).await;
        Ok(report)
    }

    /// A dry run into a workspace that does not exist yet: every object
    /// would be downloaded.
    async fn dry_run_into_nothing(&self) -> Result<Report> {
        let store = self.store().await?;
        let listing = list_all(&*store, &self.config.prefix).await?;
        let remote = remote_files(
            &self.config.prefix,
            &listing,
            &self.base_rules,
            Folding::default(),
        );
        Ok(Report {
            plan: Some(
                PlanSummary {
                    download: remote.files.keys().cloned().collect(),
                    ..PlanSummary::default()
                }
                .sorted(),
            ),
            ..Report::default()
        })
    }

    /// The content hashes kept in the metadata of the objects `keys` (by relative path). An
    /// object whose metadata cannot be read is simply downloaded again.
    async fn stored_hashes(
        &self,
        store: &Arc<dyn Store>,
        keys: Vec<String>,
    ) -> HashMap<String, String> {
        use futures::StreamExt;
        let prefix_len = self.config.prefix.len();
        let lookups: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let store = store.clone();
                async move {
                    let info = store.head(&key).await.ok().flatten();
                    (key[prefix_len..].to_owned(), info.and_then(|i| i.hash))
                }
            })
            .collect();
        let found: Vec<(String, Option<String>)> = futures::stream::iter(lookups)
            .buffer_unordered(self.config.download_concurrency)
            .collect()
            .await;
        found
            .into_iter()
            .filter_map(|(rel, hash)| Some((rel, hash?)))
            .collect()
    }

    /// Runs the downloads, `downloadConcurrency` at a time, recording each
    /// finished one in the base at once. Returns how many failed.
    async fn download_all(
        &self,
        batch: &Batch<'_>,
        downloads: Vec<Download>,
        base: &mut SyncBase,
        report: &mut Report,
    ) -> usize {
        let stall = self.config.stall_timeout;
        let start = |d: Download| {
            let (store, root) = (batch.store.clone(), batch.root.clone());
            let (halt, names) = (batch.halt.clone(), batch.names.clone());
            let progress = FileProgress::new(&batch.progress);
            async move {
                let result = halt
                    .run(|| download(&*store, &root, &d, &names, stall, &progress))
                    .await;
                progress.finish(&d.rel, d.size.unwrap_or(0));
                (d.rel, d.beside, result)
            }
        };
        let mut failed = 0;
        type Joined = std::result::Result<(String, bool, Option<Result<Downloaded>>), JoinError>;
        let finished = |joined: Joined| {
            let (rel, beside, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    failed += 1;
                    report.errors.push(FileError::new(
                        Action::Download,
                        "",
                        &Error::task("download task", e),
                    ));
                    return;
                }
            };
            let Some(result) = result else {
                failed += 1;
                return;
            };
            match result {
                Ok(done) => {
                    if let Some((copy, c)) = &done.conflict_copy {
                        let message = if beside {
                            format!(
                                "Conflict: {rel} changed both here (after the pull was \
                                 called) and on S3; the local version stays, S3's was saved \
                                 as {copy}"
                            )
                        } else {
                            format!(
                                "Conflict: {rel} changed both here and on S3; S3's version \
                                 was downloaded and the local one kept as {copy}"
                            )
                        };
                        self.log(Level::Warn, &message);
                        report.conflicts.push(rel.clone());
                        self.copy_made(report, &rel, copy, c.ignored);
                    }
                    self.log(Level::Debug, &format!("Downloaded {rel}"));
                    report.bytes += done.entry.stat.size;
                    self.warn_if_unrecorded(base.record(rel, done.entry));
                    report.transferred += 1;
                }
                // The agent wrote the file while it downloaded: its version stays.
                Err(Error::Changed(m)) => self.log(Level::Info, &m),
                Err(Error::InUse(m)) => {
                    self.log(Level::Warn, &m);
                    report
                        .warnings
                        .push(Warning::new(rel, WarningCode::OpenForWriting, m));
                }
                Err(e) if !batch.halt.should_report(&e) => failed += 1,
                Err(e) => {
                    failed += 1;
                    self.log(Level::Error, &format!("Download failed: {rel}: {e}"));
                    let key = key_for(&self.config.prefix, &rel);
                    report.errors.push(FileError::download(key, Some(rel), &e));
                }
            }
        };
        let limit = self.config.download_concurrency;
        run_bounded(&self.transfers, downloads, limit, start, finished).await;
        failed
    }

    /// Moves local files where S3 now has a directory to conflict names.
    async fn set_aside(
        &self,
        root: &Arc<Dir>,
        names: &Arc<CopyNames>,
        files: Vec<(String, FileStat)>,
        report: &mut Report,
    ) {
        for (rel, stat) in files {
            let (root, names, r) = (root.clone(), names.clone(), rel.clone());
            let moved = blocking(move || {
                let (parent, name) = split_parent(&r);
                let dir = root
                    .open_sub(parent)
                    .map_err(|e| Error::io("open", &root.path().join(parent), e))?;
                let copy = set_aside(&dir, name, stat, &names.namer(parent))?;
                Ok((join_rel(parent, &copy.name), copy.ignored))
            })
            .await;
            match moved {
                Ok((copy, ignored)) => {
                    self.log(
                        Level::Warn,
                        &format!(
                            "Conflict: S3 now has a directory at {rel}, which changed here as \
                             a file: the file was kept as {copy}"
                        ),
                    );
                    report.conflicts.push(rel.clone());
                    self.copy_made(report, &rel, &copy, ignored);
                }
                Err(e) => {
                    self.log(Level::Info, &format!("Kept {rel}: {e}"));
                }
            }
        }
    }

    /// Deletes local files whose objects are gone (or shadowed), each only
    /// if it is still as scanned and not open for writing, and the
    /// directories they leave empty. Returns how many.
    async fn delete_local(
        &self,
        root: &Arc<Dir>,
        deletes: Vec<LocalDelete>,
        base: &mut SyncBase,
        report: &mut Report,
    ) -> usize {
        let progress = PhaseProgress::new(self.observer.clone(), Phase::Cleanup, deletes.len(), 0);
        let mut deleted = 0;
        for d in deletes {
            let root = root.clone();
            let (r, stat) = (d.rel.clone(), d.stat);
            match blocking(move || delete_if_unchanged(&root, &r, stat)).await {
                Ok(true) => {
                    self.log(Level::Debug, &format!("Deleted local file {}", d.rel));
                    if !d.keep_base {
                        self.warn_if_unrecorded(base.forget(&d.rel));
                    }
                    deleted += 1;
                }
                Ok(false) => self.log(
                    Level::Info,
                    &format!(
                        "Kept {}: it changed locally during the pull, or a process has it \
                         open for writing",
                        d.rel
                    ),
                ),
                Err(e) => report
                    .errors
                    .push(FileError::new(Action::Delete, d.rel.clone(), &e)),
            }
            progress.advance(&d.rel, 0);
        }
        deleted
    }
}
