//! `pull()`: make the workspace equal to the S3 prefix (minus ignored paths).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Action, Error, FileError, Result};
use crate::hash_cache::HashCache;
use crate::keys::key_for;
use crate::plan::{
    hash_candidates, needs_stored_md5, plan_pull, remote_files, Download, Snapshot, SnapshotEntry,
};
use crate::progress::{Level, Phase, PhaseProgress};
use crate::store::{list_all, Store};
use crate::sync::{blocking, Report, State, Workspace};
use crate::transfer::download;
use crate::workspace::{
    ensure_workspace, lock_workspace, nanos, probe_folding, remove_file_and_empty_parents, scan,
    KnownDirs,
};

/// What the download batches of one pull share.
struct Batch<'a> {
    store: &'a Arc<dyn Store>,
    progress: &'a PhaseProgress<'a>,
    /// Directories already made or checked by this pull.
    known: Arc<KnownDirs>,
}

impl Workspace {
    /// Downloads what changed on S3, deletes local files that are not on S3
    /// (unless ignored), and records the snapshot `push` diffs against.
    ///
    /// Rejects (with `S3_OPERATION_ERROR`, `WORKSPACE_ERROR`, …) only when
    /// nothing could be synced; failures of single files are in the report.
    pub async fn pull(&self) -> Result<Report> {
        let started = Instant::now();
        let mut state = self.state.lock().await;
        let cfg = &self.config;
        let root = cfg.workspace_dir.clone();
        self.log(
            Level::Info,
            &format!(
                "Pulling from s3://{}/{} into {}",
                cfg.bucket,
                cfg.prefix,
                root.display()
            ),
        );
        let result = self.pull_locked(&mut state).await;
        self.finish("Pull", "downloaded", started, result)
    }

    async fn pull_locked(&self, state: &mut State) -> Result<Report> {
        let root = self.config.workspace_dir.clone();
        let dir = root.clone();
        let (_lock, folding) = blocking(move || {
            ensure_workspace(&dir)?;
            let lock = lock_workspace(&dir)?;
            Ok((lock, probe_folding(&dir)?))
        })
        .await?;
        let store = self.store().await?;
        let listing = list_all(&*store, &self.config.prefix).await?;
        let rules = self.current_rules().await?;
        let local = {
            let (root, rules) = (root.clone(), rules.clone());
            blocking(move || scan(&root, &rules)).await?
        };
        let remote = remote_files(&self.config.prefix, &listing, &rules, folding);
        let cache = self.cache(state).await;
        let candidates = hash_candidates(&remote, &local);
        let stored_md5s = self
            .stored_md5s(
                &store,
                needs_stored_md5(&remote, &candidates)
                    .into_iter()
                    .map(|obj| obj.key.clone())
                    .collect(),
            )
            .await;
        let with_stats = candidates
            .into_iter()
            .map(|rel| {
                let stat = local.files[&rel];
                (rel, stat)
            })
            .collect();
        let (md5s, _) = self.hash_files(with_stats, cache).await;
        let plan = plan_pull(remote, &local, &md5s, &stored_md5s);
        for e in &plan.errors {
            self.log(
                Level::Warn,
                &format!("Skipping object {}: {}", e.path, e.message),
            );
        }

        let mut report = Report {
            unchanged: plan.unchanged.len(),
            errors: plan.errors,
            ..Report::default()
        };
        let mut next: Snapshot = plan.unchanged.into_iter().collect();
        let progress = PhaseProgress::new(&*self.observer, Phase::Download, plan.downloads.len());
        let priority = self.config.priority_prefix.as_deref();
        let (first, rest): (Vec<_>, Vec<_>) = plan
            .downloads
            .into_iter()
            .partition(|d| priority.is_some_and(|p| d.rel.starts_with(p)));
        let batch = Batch {
            store: &store,
            progress: &progress,
            known: Arc::new(KnownDirs::default()),
        };
        let mut failed = self
            .download_all(&batch, first, &mut next, cache, &mut report)
            .await;
        self.observer.priority_settled();
        let more = self
            .download_all(&batch, rest, &mut next, cache, &mut report)
            .await;
        failed.extend(more);
        // A file that failed to download keeps its local content; record that
        // content so a push uploads it only if the agent then changes it.
        let kept = failed
            .into_iter()
            .filter_map(|rel| local.files.get(&rel).map(|stat| (rel, *stat)))
            .collect();
        let (md5s, _) = self.hash_files(kept, cache).await;
        for (rel, md5) in md5s {
            let stat = local.files[&rel];
            next.insert(
                rel,
                SnapshotEntry {
                    stat,
                    md5,
                    etag: None,
                },
            );
        }

        report.deleted = self.delete_local(plan.deletes, &mut report.errors).await;
        for rel in local.temp_files {
            let root = root.clone();
            // Leftovers of an interrupted pull: never real content.
            let _ = blocking(move || remove_file_and_empty_parents(&root, &rel)).await;
        }
        cache.retain(|rel| next.contains_key(rel));
        state.snapshot = next;
        self.save_cache(state).await;
        Ok(report)
    }

    /// The MD5s kept in the metadata of the objects `keys` (by relative path). An
    /// object whose metadata cannot be read is simply downloaded again.
    async fn stored_md5s(
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
                    let md5 = store.head_md5(&key).await.ok().flatten();
                    (key[prefix_len..].to_owned(), md5)
                }
            })
            .collect();
        let found: Vec<(String, Option<String>)> = futures::stream::iter(lookups)
            .buffer_unordered(self.config.download_concurrency)
            .collect()
            .await;
        found
            .into_iter()
            .filter_map(|(rel, md5)| Some((rel, md5?)))
            .collect()
    }

    /// Runs the downloads, `downloadConcurrency` at a time. Returns the
    /// relative paths that failed.
    async fn download_all(
        &self,
        batch: &Batch<'_>,
        downloads: Vec<Download>,
        snapshot: &mut Snapshot,
        cache: &mut HashCache,
        report: &mut Report,
    ) -> Vec<String> {
        let limit = Arc::new(Semaphore::new(self.config.download_concurrency));
        let root = Arc::new(self.config.workspace_dir.clone());
        let stall = self.config.stall_timeout;
        let mut tasks = JoinSet::new();
        for d in downloads {
            let (store, root, limit, known) = (
                batch.store.clone(),
                root.clone(),
                limit.clone(),
                batch.known.clone(),
            );
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = download(&*store, &root, &d, stall, &known).await;
                (d.rel, result)
            });
        }
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (rel, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    report.errors.push(FileError::new(
                        Action::Download,
                        "",
                        &Error::Io(format!("download task failed: {e}")),
                    ));
                    continue;
                }
            };
            batch.progress.advance(&rel);
            match result {
                Ok(entry) => {
                    let now = nanos(SystemTime::now());
                    cache.insert(rel.clone(), entry.stat, entry.md5.clone(), now);
                    snapshot.insert(rel, entry);
                    report.transferred += 1;
                }
                Err(e) => {
                    self.log(Level::Error, &format!("Download failed: {rel}: {e}"));
                    report.errors.push(FileError::new(
                        Action::Download,
                        key_for(&self.config.prefix, &rel),
                        &e,
                    ));
                    failed.push(rel);
                }
            }
        }
        failed
    }

    /// Deletes local-only files and the directories they leave empty.
    async fn delete_local(&self, rels: Vec<String>, errors: &mut Vec<FileError>) -> usize {
        let progress = PhaseProgress::new(&*self.observer, Phase::Cleanup, rels.len());
        let mut deleted = 0;
        for rel in rels {
            let root = self.config.workspace_dir.clone();
            let r = rel.clone();
            match blocking(move || remove_file_and_empty_parents(&root, &r)).await {
                Ok(()) => {
                    self.log(Level::Debug, &format!("Deleted local file {rel}"));
                    deleted += 1;
                }
                Err(e) => errors.push(FileError::new(Action::Delete, rel.clone(), &e)),
            }
            progress.advance(&rel);
        }
        deleted
    }
}
