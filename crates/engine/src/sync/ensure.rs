//! `ensure(paths)`: the named paths current on disk, now. A running pull
//! serves the call (its inbox): the paths jump its queue, listed on their
//! own if its listing has not reached them. With no pull running, the call
//! is a pull of just those paths.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use super::schedule::{Ensured, Mode, Reply, Want};
use super::{Report, Run, Workspace};
use crate::error::{Error, Result};
use crate::keys::{validate_relative_path, Root};
use crate::model::nanos;

/// Where a running pull takes `ensure` calls.
#[derive(Default)]
pub(crate) struct Inboxes(Arc<Mutex<Option<mpsc::UnboundedSender<Want>>>>);

/// A pull's inbox for `ensure` calls, open until dropped (see
/// `Workspace::open_inbox`).
pub struct Inbox {
    slot: Arc<Mutex<Option<mpsc::UnboundedSender<Want>>>>,
    tx: mpsc::UnboundedSender<Want>,
    rx: Option<mpsc::UnboundedReceiver<Want>>,
}

impl Inbox {
    /// The receiving end, for the pull's run.
    pub(crate) fn take(&mut self) -> Option<mpsc::UnboundedReceiver<Want>> {
        self.rx.take()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|tx| tx.same_channel(&self.tx)) {
            *slot = None;
        }
    }
}

impl Workspace {
    /// Opens the inbox of a pull about to start (`pull_served`), unless
    /// another pull's is open (which then serves the calls). Opened when
    /// the pull is called, not when it first runs, so an `ensure` called
    /// just after it is served by it.
    pub fn open_inbox(&self) -> Option<Inbox> {
        let mut slot = self.inboxes.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        *slot = Some(tx.clone());
        Some(Inbox {
            slot: self.inboxes.0.clone(),
            tx,
            rx: Some(rx),
        })
    }

    /// Resolves when each of `paths` (a file, or a directory as `dir/`) is
    /// current on disk by the pull rules: downloaded if S3 changed it
    /// (once, even when a running pull reaches it later), left alone if
    /// changed here. A running pull serves the call; else it is a pull of
    /// just those paths (one listing each, one GET per changed file).
    /// Cancelling `run` stops the wait, not the pull serving it.
    pub async fn ensure(&self, paths: &[String], run: &Run) -> Result<Ensured> {
        let roots = ensure_roots(paths)?;
        let inbox = self
            .inboxes
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(tx) = inbox {
            let (reply, answer) = oneshot::channel();
            let want = Want {
                roots: roots.clone(),
                reply: Reply::Ensure(reply),
            };
            if tx.send(want).is_ok() {
                // Stopping the wait leaves the pull running.
                let served = tokio::select! {
                    _ = run.cancel.cancelled() => {
                        return Err(Error::Cancelled("the operation was aborted".into()))
                    }
                    _ = self.cancel.cancelled() => {
                        return Err(Error::Cancelled("the instance was closed".into()))
                    }
                    served = answer => served,
                };
                // `Err`: the pull ended (or failed) before it answered.
                if let Ok(ensured) = served {
                    return Ok(ensured);
                }
            }
        }
        let (reply, mut answer) = oneshot::channel();
        let reply = Reply::Ensure(reply);
        self.pull_only(paths, roots, reply, run, ("Ensure", "Ensuring"))
            .await?;
        answer
            .try_recv()
            .map_err(|_| Error::Task("the pull ended without answering".into()))
    }

    /// A pull of just `paths` (files, or directories as `dir/`): each
    /// listed on its own where that can decide it, as `ensure` does.
    pub(crate) async fn pull_paths(&self, paths: &[String], run: &Run) -> Result<Report> {
        let roots = ensure_roots(paths)?;
        self.pull_only(paths, roots, Reply::Changed, run, ("Pull", "Pulling"))
            .await
    }

    /// Runs `Mode::Only` for `roots`, answering `reply` when they are done.
    async fn pull_only(
        &self,
        paths: &[String],
        roots: Vec<Root>,
        reply: Reply,
        run: &Run,
        (name, doing): (&str, &str),
    ) -> Result<Report> {
        let want = Want { roots, reply };
        let started_ns = nanos(SystemTime::now());
        let announce = format!(
            "{doing} {} of s3://{}/{}",
            paths.join(", "),
            self.config.bucket,
            self.config.prefix
        );
        let mut want = Some(want);
        self.operation(run, (name, "downloaded"), announce, async |state| {
            let mode = (Mode::Only(want.take().expect("run once")), false);
            self.run_pull(state, started_ns, mode, None).await
        })
        .await
    }
}

/// The paths as roots: workspace-relative, `dir/` for a directory.
pub(crate) fn ensure_roots(paths: &[String]) -> Result<Vec<Root>> {
    if paths.is_empty() {
        return Err(Error::InvalidOption {
            field: "paths",
            problem: "must name at least one path".into(),
        });
    }
    paths
        .iter()
        .map(|given| {
            // `./a` as `a`, as `priorityPrefix` takes it.
            let p = given.trim_start_matches("./");
            let path = p.strip_suffix('/').unwrap_or(p);
            validate_relative_path(path).map_err(|e| Error::InvalidOption {
                field: "paths",
                problem: format!("{given:?} is not a workspace path: {e}"),
            })?;
            Ok(p.to_owned())
        })
        .collect()
}
