//! `push()`: upload new and changed files, delete on S3 what was deleted here.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::content_type::guess_content_type;
use crate::error::{Action, Error, FileError, Result};
use crate::keys::key_for;
use crate::plan::{plan_push, Snapshot};
use crate::progress::{Level, Phase, PhaseProgress};
use crate::store::Store;
use crate::sync::{blocking, Report, State, Workspace};
use crate::transfer::upload;
use crate::workspace::{check_dir, lock_workspace, scan};

impl Workspace {
    /// Uploads files that are new or changed since the last pull or push and
    /// deletes on S3 the files of that snapshot that are gone locally.
    ///
    /// Rejects, deleting nothing, when the workspace cannot be scanned.
    pub async fn push(&self) -> Result<Report> {
        let started = Instant::now();
        let mut state = self.state.lock().await;
        let cfg = &self.config;
        self.log(
            Level::Info,
            &format!(
                "Pushing changes from {} to s3://{}/{}",
                cfg.workspace_dir.display(),
                cfg.bucket,
                cfg.prefix
            ),
        );
        let result = self.push_locked(&mut state).await;
        self.finish("Push", "uploaded", started, result)
    }

    async fn push_locked(&self, state: &mut State) -> Result<Report> {
        let root = self.config.workspace_dir.clone();
        let dir = root.clone();
        let _lock = blocking(move || {
            check_dir(&dir)?;
            lock_workspace(&dir)
        })
        .await?;
        let rules = self.current_rules().await?;
        let local = {
            let root = root.clone();
            blocking(move || scan(&root, &rules)).await?
        };
        for s in &local.skipped {
            self.log(
                Level::Warn,
                &format!("Not uploaded: {}: {}", s.path, s.message),
            );
        }
        let files = local
            .files
            .iter()
            .map(|(rel, stat)| (rel.clone(), *stat))
            .collect();
        let cache = self.cache(state).await;
        let (md5s, hash_errors) = self.hash_files(files, cache).await;
        cache.retain(|rel| local.files.contains_key(rel));
        let snapshot = &mut state.snapshot;
        let plan = plan_push(&local, &md5s, snapshot);
        let mut report = Report {
            unchanged: plan.unchanged.len(),
            errors: hash_errors,
            ..Report::default()
        };
        for rel in &plan.unchanged {
            if let Some(entry) = snapshot.get_mut(rel) {
                entry.stat = local.files[rel];
            }
        }

        let store = self.store().await?;
        let progress = PhaseProgress::new(&*self.observer, Phase::Upload, plan.uploads.len());
        let limit = Arc::new(Semaphore::new(self.config.upload_concurrency));
        let root = Arc::new(root);
        let mut tasks = JoinSet::new();
        for rel in plan.uploads {
            let (store, root, limit) = (store.clone(), root.clone(), limit.clone());
            let stat = local.files[&rel];
            let md5 = md5s[&rel].clone();
            let key = key_for(&self.config.prefix, &rel);
            let resolver = self.config.content_types.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let content_type = match resolver {
                    Some(r) => r.content_type(&rel).await,
                    None => guess_content_type(&rel),
                };
                let result = upload(&*store, &root, &rel, &key, stat, &md5, &content_type).await;
                (rel, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((rel, result)) = joined else {
                report.errors.push(FileError::new(
                    Action::Upload,
                    "",
                    &Error::Io("upload task failed".into()),
                ));
                continue;
            };
            progress.advance(&rel);
            match result {
                Ok(entry) => {
                    self.log(Level::Debug, &format!("Uploaded {rel}"));
                    snapshot.insert(rel, entry);
                    report.transferred += 1;
                }
                Err(e) => {
                    self.log(Level::Error, &format!("Upload failed: {rel}: {e}"));
                    report.errors.push(FileError::new(Action::Upload, rel, &e));
                }
            }
        }

        report.deleted = self
            .delete_remote(&*store, plan.deletes, snapshot, &mut report.errors)
            .await;
        self.save_cache(state).await;
        Ok(report)
    }

    /// Deletes on S3 each file that is confirmed gone from the workspace.
    async fn delete_remote(
        &self,
        store: &dyn Store,
        rels: Vec<String>,
        snapshot: &mut Snapshot,
        errors: &mut Vec<FileError>,
    ) -> usize {
        let progress = PhaseProgress::new(&*self.observer, Phase::Cleanup, rels.len());
        let mut deleted = 0;
        for rel in rels {
            progress.advance(&rel);
            let path = self.config.workspace_dir.join(&rel);
            // The scan did not see it; make sure it is really gone (not
            // merely ignored now, or unreadable) before deleting on S3.
            match tokio::fs::symlink_metadata(&path).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                _ => {
                    snapshot.remove(&rel);
                    continue;
                }
            }
            match store.delete(&key_for(&self.config.prefix, &rel)).await {
                Ok(()) => {
                    self.log(Level::Debug, &format!("Deleted s3 object {rel}"));
                    snapshot.remove(&rel);
                    deleted += 1;
                }
                Err(e) => {
                    self.log(Level::Error, &format!("Delete failed: {rel}: {e}"));
                    errors.push(FileError::new(Action::Delete, rel, &e));
                }
            }
        }
        deleted
    }
}
