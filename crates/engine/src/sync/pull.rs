//! `pull()`: bring S3's changes into the workspace, three-way against the
//! sync base (see `plan::pull` for the table), keeping every local change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::ensure::Inbox;
use super::schedule::Mode;
use super::{Report, Run, State, Workspace};
use crate::base::{BaseEntries, SyncBase};
use crate::blocking::blocking;
use crate::error::{Action, Error, FileError, Result};
use crate::local::{delete_if_unchanged, scan, set_aside, split_parent, Dir};
use crate::model::{nanos, FileStat, Folding, Scan, StoredMeta};
use crate::plan::{
    guard_local_deletes, plan_pull_part, pull_hash_candidates, remote_files,
    stored_hash_candidates, LocalDelete, LocalView, PlanSummary, PullPlan, PullRules, RemoteFiles,
    Scope,
};
use crate::progress::{Level, Phase, PhaseProgress};
use crate::store::{list_all, Store};
use crate::transfer::{join_rel, CopyNames};

/// What a dry-run pull would do (its report's `plan`).
fn summary(plan: PullPlan) -> Report {
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
        self.pull_served(called, run, self.open_inbox()).await
    }

    /// `pull_with`, serving the `ensure` calls of `inbox` (opened by the
    /// caller when the pull was called).
    pub async fn pull_served(
        &self,
        called: SystemTime,
        run: &Run,
        mut inbox: Option<Inbox>,
    ) -> Result<Report> {
        let started_ns = nanos(called.min(SystemTime::now()));
        let cfg = &self.config;
        let announce = format!(
            "Pulling from s3://{}/{} into {}",
            cfg.bucket,
            cfg.prefix,
            cfg.workspace_dir.display()
        );
        if run.dry_run {
            // A dry run serves no `ensure`: they run on their own.
            drop(inbox.take());
            return self
                .operation(run, ("Pull", "downloaded"), announce, async |state| {
                    self.dry_run_pull(state, started_ns, run).await
                })
                .await;
        }
        self.operation(run, ("Pull", "downloaded"), announce, async |state| {
            let mode = (Mode::Whole, run.restore_deleted);
            // Called while another pull ran (whose inbox was open then):
            // this one serves the calls made from now on.
            let mut late = None;
            let rx = match inbox.as_mut().and_then(|i| i.take()) {
                Some(rx) => Some(rx),
                None => {
                    late = self.open_inbox();
                    late.as_mut().and_then(|i| i.take())
                }
            };
            let report = self.run_pull(state, started_ns, mode, rx).await;
            drop(late);
            report
        })
        .await
    }

    /// Lists, scans, hashes what must be compared, and plans: everything a
    /// pull does before it changes anything, and all a dry run does.
    async fn dry_run_pull(&self, state: &mut State, started_ns: i128, run: &Run) -> Result<Report> {
        if !self.config.workspace_dir.exists() {
            return self.dry_run_into_nothing().await;
        }
        let opened = self.open(true, true).await?;
        let root = opened.root.clone();
        let store = self.store().await?;
        // The listing's round trips overlap the local work. A dry run
        // writes no probe: it assumes distinct names stay distinct.
        let local_side = async {
            let base = self.base(state, &opened, true).await?;
            let rules = self.current_rules(&root).await?;
            let local = {
                let (root, rules) = (root.clone(), rules.clone());
                blocking(move || scan(&root, &rules)).await?
            };
            Ok::<_, Error>((base, rules, local))
        };
        let (local_side, listing) =
            tokio::join!(local_side, list_all(&*store, &self.config.prefix));
        let (base, rules, local) = local_side?;
        let listing = listing?;
        let remote = remote_files(&self.config.prefix, &listing, &rules, Folding::default());
        for (key, why) in &remote.skipped {
            self.log(Level::Warn, &format!("Skipping object {key}: {why}"));
        }
        let rules_for = PullRules {
            policy: self.config.conflict_policy,
            max_delete_percent: self.config.max_delete_percent,
            restore_deleted: run.restore_deleted,
        };
        let scope = Scope::all();
        let mut plan = self
            .plan_with(
                &store, &root, remote, &local, &base, started_ns, rules_for, &scope,
            )
            .await;
        guard_local_deletes(&mut plan, local.files.len(), &base, rules_for);
        Ok(summary(plan))
    }

    /// Plans the paths of `scope`: hashes the local files it must compare,
    /// reads the stored hashes it needs, and decides (its local deletions
    /// not guarded yet: see `plan_pull_part`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn plan_with(
        &self,
        store: &Arc<dyn Store>,
        root: &Arc<Dir>,
        remote: RemoteFiles,
        local: &Scan,
        base: &BaseEntries,
        started_ns: i128,
        rules: PullRules,
        scope: &Scope,
    ) -> PullPlan {
        let no_hashes = HashMap::new();
        let unhashed = LocalView {
            scan: local,
            hashes: &no_hashes,
            base,
            // A file stamped just before the call by a lagging clock may
            // have been written after it: the margin counts it as after.
            started_ns: started_ns - base.clock_lag_ns(),
        };
        let candidates = pull_hash_candidates(&remote, &unhashed)
            .into_iter()
            .filter(|rel| scope.contains(rel))
            .map(|rel| {
                let stat = local.files[&rel];
                (rel, stat)
            })
            .collect();
        let (hashes, _) = self.hash_files(root, candidates).await;
        let view = LocalView {
            hashes: &hashes,
            ..unhashed
        };
        let prefix_len = self.config.prefix.len();
        let lookups = stored_hash_candidates(&remote, &view)
            .into_iter()
            .filter(|obj| scope.contains(&obj.key[prefix_len..]))
            .map(|obj| obj.key.clone())
            .collect();
        let stored = self.stored_meta(store, lookups).await;
        let plan = plan_pull_part(remote, &view, &stored, rules, scope);
        for e in &plan.errors {
            self.log(Level::Warn, &format!("Skipping: {}", e.message));
        }
        for rel in &plan.pending {
            self.log(
                Level::Debug,
                &format!("Keeping local change {rel} for the next push"),
            );
        }
        plan
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

    /// What the metadata of the objects `keys` tells (by relative path). An
    /// object whose metadata cannot be read is simply downloaded again.
    async fn stored_meta(
        &self,
        store: &Arc<dyn Store>,
        keys: Vec<String>,
    ) -> HashMap<String, StoredMeta> {
        use futures::StreamExt;
        let prefix_len = self.config.prefix.len();
        let lookups: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let store = store.clone();
                async move {
                    let info = store.head(&key).await.ok().flatten();
                    (key[prefix_len..].to_owned(), info.map(|i| i.stored()))
                }
            })
            .collect();
        let found: Vec<(String, Option<StoredMeta>)> = futures::stream::iter(lookups)
            .buffer_unordered(self.config.download_concurrency)
            .collect()
            .await;
        found
            .into_iter()
            .filter_map(|(rel, meta)| Some((rel, meta?)))
            .collect()
    }

    /// Moves local files where S3 now has a directory to conflict names.
    pub(super) async fn set_aside(
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
    pub(super) async fn delete_local(
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
                    report.removed.push(d.rel.clone());
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
