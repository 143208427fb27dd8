//! The sync engine for one workspace: configuration, shared state, and the
//! helpers `pull` and `push` have in common.

pub mod checkpoint;
mod config;
mod ensure;
mod hash;
mod live;
mod pull;
mod push;
mod report;
pub mod restore;
mod schedule;

pub use config::{
    Config, DEFAULT_ABANDONED_UPLOAD_AGE, DEFAULT_DOWNLOAD_CONCURRENCY, DEFAULT_LOCK_TIMEOUT,
    DEFAULT_STALL_TIMEOUT, DEFAULT_UPLOAD_CONCURRENCY,
};
pub use ensure::Inbox;
pub use live::RemoteCheck;
pub use report::Report;
pub use schedule::Ensured;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OnceCell};

use crate::base::{Identity, SyncBase};
use crate::blocking::blocking;
use crate::error::{Error, Result, Warning, WarningCode};
use crate::ignore_rules::IgnoreRules;
use crate::local::{
    lock_workspace, observe_racy_window, open_state_dir, open_workspace, probe_racy_window,
    with_syncignore, Dir, WorkspaceLock, STATE_DIR,
};
use crate::model::FileStat;
use crate::plan::REMOTE_STATE;
use crate::progress::{Level, Observer};
use crate::store::s3::{S3Settings, S3Store};
use crate::store::Store;
use crate::transfer::Halt;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest wait for a cancelled operation's transfer tasks to be dropped.
const CANCEL_SETTLE: Duration = Duration::from_millis(300);

/// How one pull or push runs.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Stops the operation with `Error::Cancelled`.
    pub cancel: CancellationToken,
    /// Pull: bring back every synced file deleted here and not yet pushed
    /// (S3 still holds it as synced), instead of keeping the deletion for
    /// the next push.
    pub restore_deleted: bool,
    /// Decide exactly as a real run would (same listing, scan, base, rules)
    /// and change nothing anywhere: no S3 write, no local write, no state
    /// write, no lock. The report's `plan` says what a real run would do.
    pub dry_run: bool,
}

/// The base as last loaded or saved by this instance, with the stat of its
/// file then: reused while the file is unchanged (no other instance wrote).
#[derive(Default)]
pub(crate) struct State {
    base: Option<(SyncBase, Option<FileStat>)>,
}

/// Syncs one S3 prefix with one local directory. Operations on one
/// instance run one at a time.
pub struct Workspace {
    pub(crate) config: Config,
    /// Cancels every running and later operation (see `cancel_all`).
    cancel: CancellationToken,
    store: OnceCell<Arc<dyn Store>>,
    pub(crate) base_rules: IgnoreRules,
    pub(crate) state: Mutex<State>,
    pub(crate) observer: Arc<dyn Observer>,
    /// Whether this instance already looked for abandoned multipart uploads.
    pub(crate) abandoned_uploads_checked: AtomicBool,
    /// The running operation's transfer tasks: a cancelled operation waits
    /// until they are dropped (their temp files removed, their multipart
    /// uploads being aborted) before it returns.
    pub(crate) transfers: TaskTracker,
    /// The running pull's inbox for `ensure` calls.
    inboxes: ensure::Inboxes,
    /// This instance, as it signs its pushes in the live journal.
    id: String,
    /// Where `follow` and the remote pulls since left the live journal.
    cursor: std::sync::Mutex<Option<live::Cursor>>,
    /// What this instance knows of the checkpoint chain.
    chain: Mutex<checkpoint::Chain>,
    /// What this instance changed on S3 that no checkpoint records yet.
    unrecorded: std::sync::Mutex<checkpoint::Changes>,
}

impl Workspace {
    /// A workspace that talks to S3 as `config.s3` says (connecting lazily).
    pub fn new(config: Config, observer: Arc<dyn Observer>) -> Result<Self> {
        let config = config.validate()?;
        Ok(Workspace {
            base_rules: IgnoreRules::new(&config.ignore_patterns)?,
            config,
            store: OnceCell::new(),
            state: Mutex::new(State::default()),
            cancel: CancellationToken::new(),
            observer,
            abandoned_uploads_checked: AtomicBool::new(false),
            transfers: TaskTracker::new(),
            inboxes: ensure::Inboxes::default(),
            id: format!("{:016x}", crate::local::rand_u64()),
            cursor: std::sync::Mutex::new(None),
            chain: Mutex::new(checkpoint::Chain::default()),
            unrecorded: std::sync::Mutex::default(),
        })
    }

    /// A workspace on another store.
    pub fn with_store(
        config: Config,
        store: Arc<dyn Store>,
        observer: Arc<dyn Observer>,
    ) -> Result<Self> {
        let ws = Self::new(config, observer)?;
        ws.store
            .set(store)
            .unwrap_or_else(|_| unreachable!("fresh cell"));
        Ok(ws)
    }

    pub(crate) async fn store(&self) -> Result<Arc<dyn Store>> {
        self.store
            .get_or_try_init(|| async {
                let settings = S3Settings {
                    read_timeout: Some(self.config.stall_timeout),
                    scratch_prefix: Some(format!("{}{REMOTE_STATE}", self.config.prefix)),
                    ..self.config.s3.clone()
                };
                let store = S3Store::connect(&self.config.bucket, &settings).await?;
                Ok::<_, Error>(Arc::new(store) as Arc<dyn Store>)
            })
            .await
            .cloned()
    }

    /// Stops every running operation at its next await point (transfers
    /// are dropped: a temp file may stay, never a torn file; the lock is
    /// released) and makes later ones fail at once. For an environment
    /// that is going away (a terminated worker thread).
    pub fn cancel_all(&self) {
        self.cancel.cancel();
    }

    /// Runs `op` unless and until `cancel_all` is called or `token` is
    /// cancelled. Dropping `op` stops its transfers where they stand: each
    /// finished one is already in the base's journal, a temp file may stay
    /// (never a torn file under a final name), a started multipart upload is
    /// aborted, the lock is released.
    pub(crate) async fn cancellable<T>(
        &self,
        token: &CancellationToken,
        op: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(Error::Cancelled(
                "the operation was cancelled: the instance was closed or its JavaScript \
                 environment ended".into(),
            )),
            _ = token.cancelled() => Err(Error::Cancelled("the operation was aborted".into())),
            result = op => result,
        };
        // `op` is dropped now, its transfer tasks are being aborted: wait for
        // them to be dropped (temp files removed), then for the clean-up
        // requests they started (multipart aborts) to go out.
        if let Err(Error::Cancelled(_)) = &result {
            self.transfers.close();
            let _ = tokio::time::timeout(CANCEL_SETTLE, self.transfers.wait()).await;
            self.transfers.reopen();
            if let Some(store) = self.store.get() {
                store.settle().await;
            }
        }
        result
    }

    pub(crate) fn log(&self, level: Level, message: &str) {
        self.observer.log(level, message);
    }

    /// Logs how an operation ended (upstream's wording) and stamps its duration.
    /// Runs one operation (`name`, which `verb`s files): waits for the
    /// instance's turn (cancellably), says what it does, runs `body` with
    /// the instance's state, and reports how it ended.
    pub(crate) async fn operation(
        &self,
        run: &Run,
        (name, verb): (&str, &str),
        announce: String,
        body: impl AsyncFnOnce(&mut State) -> Result<Report>,
    ) -> Result<Report> {
        let started = Instant::now();
        let mut state = self
            .cancellable(&run.cancel, async { Ok(self.state.lock().await) })
            .await?;
        self.log(Level::Info, &announce);
        let result = self.cancellable(&run.cancel, body(&mut state)).await;
        // What the operation left running to clean up after itself (a
        // probe object's deletion) ends with it.
        if let Some(store) = self.store.get() {
            store.settle().await;
        }
        self.finish(name, verb, started, result)
    }

    /// Logs the warnings a plan or store gave and adds them to the report.
    pub(crate) fn add_warnings(&self, report: &mut Report, warnings: Vec<Warning>) {
        for w in warnings {
            self.log(Level::Warn, &w.message);
            report.warnings.push(w);
        }
    }

    pub(crate) fn finish(
        &self,
        op: &str,
        transferred: &str,
        started: Instant,
        result: Result<Report>,
    ) -> Result<Report> {
        let elapsed = started.elapsed();
        match &result {
            Ok(r) => {
                self.log(
                    Level::Info,
                    &format!(
                        "{op} complete: {} {transferred}, {} deleted in {}ms ({} unchanged)",
                        r.transferred,
                        r.deleted,
                        elapsed.as_millis(),
                        r.unchanged
                    ),
                );
                if !r.errors.is_empty() {
                    self.log(
                        Level::Warn,
                        &format!("{op} completed with {} errors", r.errors.len()),
                    );
                }
            }
            // A stop the caller asked for (an abort, a close) is no failure.
            Err(Error::Cancelled(why)) => self.log(Level::Info, &format!("{op} stopped: {why}")),
            Err(e) => self.log(Level::Error, &format!("{op} failed: {e}")),
        }
        result.map(|r| Report {
            duration: elapsed,
            ..r
        })
    }

    /// Opens the workspace (made if missing with `create`) and the state
    /// directory, and takes the lock: what every operation starts with.
    pub(crate) async fn open(&self, create: bool, dry_run: bool) -> Result<Opened> {
        let path = self.config.workspace_dir.clone();
        let custom = self.config.state_dir.clone();
        if dry_run {
            // Existing directories only; without a state directory the base
            // is empty (read from the root, where no base file is).
            return blocking(move || {
                let root = Arc::new(open_workspace(&path, false)?);
                let state = match &custom {
                    Some(dir) => Dir::open_root(dir).ok(),
                    None => root.open_sub(STATE_DIR).ok(),
                };
                Ok(Opened {
                    state: state.map_or_else(|| root.clone(), Arc::new),
                    root,
                    _lock: None,
                })
            })
            .await;
        }
        let (root, state) = blocking(move || {
            let root = open_workspace(&path, create)?;
            let state = open_state_dir(&root, custom.as_deref())?;
            Ok((Arc::new(root), Arc::new(state)))
        })
        .await?;
        let timeout = self.config.lock_timeout;
        let observer = self.observer.clone();
        let dir = state.clone();
        let lock = blocking(move || {
            lock_workspace(&dir, timeout, || {
                observer.log(
                    Level::Info,
                    "Waiting for another instance's sync of this workspace to finish",
                )
            })
        })
        .await?;
        Ok(Opened {
            root,
            state,
            _lock: Some(lock),
        })
    }

    /// The rules in force: defaults, `ignorePatterns`, then `.syncignore`
    /// (whose invalid patterns are skipped with a warning).
    pub(crate) async fn current_rules(&self, root: &Arc<Dir>) -> Result<IgnoreRules> {
        let base = self.base_rules.clone();
        let root = root.clone();
        let known = self.base_rules.skipped_patterns().len();
        let rules = blocking(move || with_syncignore(&base, &root)).await?;
        for (pattern, why) in &rules.skipped_patterns()[known..] {
            self.log(
                Level::Warn,
                &format!(".syncignore pattern {pattern:?} skipped: {why}"),
            );
        }
        Ok(rules)
    }

    /// Reports a failed append to the base's journal (at most once per
    /// operation: see `SyncBase::record`); the final save still writes it.
    pub(crate) fn warn_if_unrecorded(&self, appended: Result<()>) {
        if let Err(e) = appended {
            self.log(
                Level::Warn,
                &format!(
                    "Could not record progress in the sync base (saved at the end instead): {e}"
                ),
            );
        }
    }

    /// The sync base (the cached one while its file is unchanged since this
    /// instance last wrote it), for the workspace `opened`. In a dry run
    /// nothing is probed or written, and the cache is left in place. Why a
    /// base on disk was not used as it was is logged here and left in the
    /// base for the operation's result (`take_trouble`).
    pub(crate) async fn base(
        &self,
        state: &mut State,
        opened: &Opened,
        dry_run: bool,
    ) -> Result<SyncBase> {
        let (bucket, prefix) = (self.config.bucket.clone(), self.config.prefix.clone());
        let (dir, root) = (opened.state.clone(), opened.root.clone());
        let cached = if dry_run { None } else { state.base.take() };
        let base = blocking(move || {
            if let Some((mut base, Some(seen))) = cached {
                if base_file_stat(&dir, base.file_name()).as_ref() == Some(&seen) {
                    base.set_dir(dir);
                    return Ok(base);
                }
            }
            let window = if dry_run {
                observe_racy_window(&dir)
            } else {
                probe_racy_window(&dir)
            };
            let mut base = SyncBase::load(dir, &bucket, &prefix, &Identity::of(&root));
            base.set_racy_window(window);
            Ok(base)
        })
        .await?;
        Ok(base)
    }

    /// Why a file the operation's halt kept from moving did not move, when
    /// the result must name it (see `Halt::untried`); the first is logged,
    /// for the operation as a whole.
    pub(crate) fn untried(&self, halt: &Halt) -> Option<Error> {
        let (err, first) = halt.untried()?;
        if first {
            self.log(
                Level::Error,
                &format!("Stopped: {err}; each file it left is named in the errors"),
            );
        }
        Some(err)
    }

    /// Reports a conflict copy this operation made (and, when the ignore
    /// rules hide its name, that it will not be pushed).
    pub(crate) fn copy_made(&self, report: &mut Report, rel: &str, copy: &str, ignored: bool) {
        report
            .conflict_copies
            .push((rel.to_owned(), copy.to_owned()));
        if ignored {
            let message = format!(
                "The conflict copy {copy} of {rel} is hidden by the ignore rules, so it will \
                 not be pushed: it exists on this disk only. Merge it into {rel}, or move it \
                 to a name that syncs"
            );
            self.log(Level::Warn, &message);
            report
                .warnings
                .push(Warning::new(copy, WarningCode::CopyIgnored, message));
        }
    }

    /// Reports (log and result) why the base on disk was not used as it was.
    pub(crate) fn report_trouble(&self, base: &mut SyncBase, report: &mut Report) {
        if let Some((trouble, file)) = base.take_trouble() {
            let message = trouble.describe(&file);
            self.log(Level::Warn, &message);
            report
                .warnings
                .push(Warning::new("", WarningCode::BaseDamaged, message));
        }
    }

    /// Writes the base compactly and keeps it for the next operation. A
    /// failure is logged: the journal already holds every transfer.
    pub(crate) async fn save_base(&self, state: &mut State, mut base: SyncBase) {
        let saved = blocking(move || {
            let r = base.save();
            let seen = base_file_stat(base.dir(), base.file_name());
            Ok((base, seen, r))
        })
        .await;
        match saved {
            Ok((base, seen, r)) => {
                if let Err(e) = r {
                    self.log(Level::Warn, &format!("Could not save the sync base: {e}"));
                }
                state.base = Some((base, seen));
            }
            Err(e) => self.log(Level::Warn, &format!("Could not save the sync base: {e}")),
        }
    }
}

/// What an operation holds while it runs: the workspace root and the state
/// directory, opened once, and the workspace lock.
pub(crate) struct Opened {
    pub root: Arc<Dir>,
    pub state: Arc<Dir>,
    /// `None` in a dry run.
    _lock: Option<WorkspaceLock>,
}

fn base_file_stat(dir: &Dir, name: &str) -> Option<FileStat> {
    dir.stat(name).ok().flatten().map(|(_, stat)| stat)
}
