//! `pull()`: bring S3's changes into the workspace, three-way against the
//! sync base (see `plan::pull` for the table), keeping every local change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::task::JoinError;

use crate::base::SyncBase;
use crate::blocking::blocking;
use crate::error::{Action, Error, FileError, Result};
use crate::keys::key_for;
use crate::local::{
    delete_if_unchanged, nanos, probe_folding, remove_file_and_empty_parents, scan, Dir, FileStat,
    Folding,
};
use crate::plan::{
    plan_pull, pull_hash_candidates, remote_files, stored_hash_candidates, Download, LocalView,
    PlanSummary,
};
use crate::progress::{FileProgress, Level, Phase, PhaseProgress};
use crate::store::{list_all, Store};
use crate::sync::{Report, Run, State, Workspace};
use crate::transfer::{download, run_bounded, Downloaded, Halt};

/// What the download batches of one pull share.
struct Batch<'a> {
    store: &'a Arc<dyn Store>,
    progress: Arc<PhaseProgress>,
    root: &'a Arc<Dir>,
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
        let cancel = &run.cancel;
        let started = Instant::now();
        let started_ns = nanos(called.min(SystemTime::now()));
        let mut state = self
            .cancellable(cancel, async { Ok(self.state.lock().await) })
            .await?;
        let cfg = &self.config;
        self.log(
            Level::Info,
            &format!(
                "Pulling from s3://{}/{} into {}",
                cfg.bucket,
                cfg.prefix,
                cfg.workspace_dir.display()
            ),
        );
        let result = self
            .cancellable(
                cancel,
                self.pull_locked(&mut state, started_ns, run.dry_run),
            )
            .await;
        self.finish("Pull", "downloaded", started, result)
    }

    async fn pull_locked(
        &self,
        state: &mut State,
        started_ns: i128,
        dry_run: bool,
    ) -> Result<Report> {
        if dry_run && !self.config.workspace_dir.exists() {
            return self.dry_run_into_nothing().await;
        }
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
            let base = self.base(state, &opened.state, dry_run).await?;
            let rules = self.current_rules(&root).await?;
            let local = {
                let (root, rules) = (root.clone(), rules.clone());
                blocking(move || scan(&root, &rules)).await?
            };
            Ok::<_, Error>((folding, base, rules, local))
        };
        let (local_side, listing) =
            tokio::join!(local_side, list_all(&*store, &self.config.prefix));
        let (folding, mut base, rules, local) = local_side?;
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
        let plan = plan_pull(
            remote,
            &view,
            &stored_hashes,
            self.config.conflict_policy,
            self.config.max_delete_percent,
        );
        for e in &plan.errors {
            self.log(Level::Warn, &format!("Skipping: {}", e.message));
        }
        for rel in &plan.pending {
            self.log(
                Level::Debug,
                &format!("Keeping local change {rel} for the next push"),
            );
        }

        if dry_run {
            let summary = PlanSummary {
                download: plan.downloads.iter().map(|d| d.rel.clone()).collect(),
                delete_local: plan.deletes.iter().map(|(rel, _)| rel.clone()).collect(),
                conflicts: plan
                    .downloads
                    .iter()
                    .filter(|d| d.keep_local)
                    .map(|d| d.rel.clone())
                    .collect(),
                ..PlanSummary::default()
            };
            return Ok(Report {
                unchanged: plan.unchanged,
                errors: plan.errors,
                plan: Some(summary.sorted()),
                ..Report::default()
            });
        }
        let mut report = Report {
            unchanged: plan.unchanged,
            errors: plan.errors,
            ..Report::default()
        };
        for (rel, entry) in plan.record {
            self.journal(base.record(rel, entry));
        }
        for rel in &plan.forget {
            self.journal(base.forget(rel));
        }
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
            halt: Halt::default(),
        };
        self.download_all(&batch, first, &mut base, &mut report)
            .await;
        self.observer.priority_settled();
        self.download_all(&batch, rest, &mut base, &mut report)
            .await;

        report.deleted = self
            .delete_local(&root, plan.deletes, &mut base, &mut report.errors)
            .await;
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
        self.journal(base.start());
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
    /// finished one in the base at once.
    async fn download_all(
        &self,
        batch: &Batch<'_>,
        downloads: Vec<Download>,
        base: &mut SyncBase,
        report: &mut Report,
    ) {
        let stall = self.config.stall_timeout;
        let start = |d: Download| {
            let (store, root) = (batch.store.clone(), batch.root.clone());
            let halt = batch.halt.clone();
            let progress = FileProgress::new(&batch.progress);
            async move {
                let result = halt
                    .run(download(&*store, &root, &d, stall, &progress))
                    .await;
                progress.finish(&d.rel, d.size.unwrap_or(0));
                (d.rel, result)
            }
        };
        type Joined = std::result::Result<(String, Option<Result<Downloaded>>), JoinError>;
        let finished = |joined: Joined| {
            let (rel, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    report.errors.push(FileError::new(
                        Action::Download,
                        "",
                        &Error::Io(format!("download task failed: {e}")),
                    ));
                    return;
                }
            };
            let Some(result) = result else { return };
            match result {
                Ok(done) => {
                    if let Some(copy) = &done.conflict_copy {
                        self.log(
                            Level::Warn,
                            &format!(
                                "Conflict: {rel} changed both here and on S3; S3's version \
                                 was downloaded and the local one kept as {}",
                                copy.display()
                            ),
                        );
                        report.conflicts.push(rel.clone());
                    }
                    report.bytes += done.entry.stat.size;
                    self.journal(base.record(rel, done.entry));
                    report.transferred += 1;
                }
                // The agent wrote the file while it downloaded: its version stays.
                Err(Error::Changed(m)) => self.log(Level::Info, &m),
                Err(e) if !batch.halt.report(&e) => {}
                Err(e) => {
                    self.log(Level::Error, &format!("Download failed: {rel}: {e}"));
                    report.errors.push(FileError::new(
                        Action::Download,
                        key_for(&self.config.prefix, &rel),
                        &e,
                    ));
                }
            }
        };
        let limit = self.config.download_concurrency;
        run_bounded(&self.transfers, downloads, limit, start, finished).await;
    }

    /// Deletes local files whose objects are gone, each only if it is still
    /// as scanned, and the directories they leave empty.
    async fn delete_local(
        &self,
        root: &Arc<Dir>,
        deletes: Vec<(String, FileStat)>,
        base: &mut SyncBase,
        errors: &mut Vec<FileError>,
    ) -> usize {
        let progress = PhaseProgress::new(self.observer.clone(), Phase::Cleanup, deletes.len(), 0);
        let mut deleted = 0;
        for (rel, stat) in deletes {
            let root = root.clone();
            let r = rel.clone();
            match blocking(move || delete_if_unchanged(&root, &r, stat)).await {
                Ok(true) => {
                    self.log(Level::Debug, &format!("Deleted local file {rel}"));
                    self.journal(base.forget(&rel));
                    deleted += 1;
                }
                Ok(false) => self.log(
                    Level::Info,
                    &format!("Kept {rel}: it changed locally during the pull"),
                ),
                Err(e) => errors.push(FileError::new(Action::Delete, rel.clone(), &e)),
            }
            progress.advance(&rel, 0);
        }
        deleted
    }
}
