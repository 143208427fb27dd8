//! Moving files: the scheduler every transfer runs under (bounded
//! concurrency, one halt for the operation, patience when throttled), and
//! one file's download (`download`) or upload (`upload`).

mod download;
mod upload;

pub use download::{download, Downloaded};
pub use upload::{upload_checked, UploadTo, Uploaded};

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result, S3Error};
use crate::ignore_rules::IgnoreRules;
use crate::life::Life;
use crate::local::{conflict_copy_name, ConflictCopy, Dir};
use crate::progress::PhaseProgress;

/// Stops an operation's remaining transfers after a failure that every
/// other request would repeat (`S3Error::is_global`: a missing bucket,
/// refused credentials, an unreachable endpoint), so the report holds one
/// error rather than one per file; and after a transfer timed out when no
/// transfer has succeeded for twice the stall timeout: a server that
/// accepts connections and answers nothing would otherwise cost every
/// file its attempts (a push of 500 files, 10 at a time, took 10 minutes
/// to fail so). Bytes moving count as progress too (`follow`): a long
/// download that keeps moving is no silence. What was not attempted stays
/// pending, and after a timeout is named in the result (`untried`). And
/// keeps a throttled transfer going while the operation makes progress.
#[derive(Clone)]
pub struct Halt {
    halted: Arc<AtomicBool>,
    /// The failure that halted the operation.
    cause: Arc<OnceLock<S3Error>>,
    reported: Arc<AtomicBool>,
    untried_named: Arc<AtomicBool>,
    /// When a transfer of the operation last succeeded (or it began).
    progressed: Arc<Life>,
    /// The phase whose bytes moving count as progress.
    moving: Arc<OnceLock<Arc<PhaseProgress>>>,
    /// How long no transfer may succeed before one timing out halts.
    silence: Duration,
}

/// How long a throttled transfer is tried again while no transfer of its
/// operation succeeds: a store that throttles everything for this long is
/// not merely busy.
const THROTTLED_PATIENCE: Duration = Duration::from_secs(60);

/// The wait before the `n`th attempt again of a throttled transfer (the
/// SDK's pace already spaces requests): full jitter up to 100 ms × 2ⁿ,
/// capped at 3.2 s.
fn throttled_wait(n: u32) -> Duration {
    let cap = 100u64 << n.min(5);
    Duration::from_millis(crate::local::rand_u64() % cap + 1)
}

impl Halt {
    /// A halt for an operation whose requests are cut after `stall`
    /// without an answer.
    pub fn new(stall: Duration) -> Self {
        Halt {
            halted: Arc::default(),
            cause: Arc::default(),
            reported: Arc::default(),
            untried_named: Arc::default(),
            progressed: Arc::default(),
            moving: Arc::default(),
            silence: stall * 2,
        }
    }

    /// Counts the bytes of `phase` moving as progress.
    pub fn follow(&self, phase: &Arc<PhaseProgress>) {
        let _ = self.moving.set(phase.clone());
    }

    /// How long since a transfer succeeded or a byte moved.
    fn quiet_for(&self) -> Duration {
        let succeeded = self.progressed.last();
        let moved = self.moving.get().map(|p| p.last_moved());
        moved.map_or(succeeded, |m| m.max(succeeded)).elapsed()
    }

    /// Whether a failure stopped the operation's transfers.
    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }

    /// Runs one transfer (`transfer()` makes each attempt) unless halted
    /// (`None`); a global failure, or a timeout in a silence, halts the
    /// rest before the transfer lets go of its concurrency slot. A
    /// throttled transfer is tried again as long as another one succeeded
    /// within `THROTTLED_PATIENCE`.
    pub async fn run<T, F: Future<Output = Result<T>>>(
        &self,
        transfer: impl Fn() -> F,
    ) -> Option<Result<T>> {
        let mut waits = 0;
        loop {
            if self.halted() {
                return None;
            }
            let result = transfer().await;
            match result.as_ref().map_err(|e| e.s3()) {
                Ok(_) => self.progressed.now(),
                Err(Some(s3))
                    if s3.is_global() || (s3.is_timeout() && self.quiet_for() >= self.silence) =>
                {
                    let _ = self.cause.set(s3.clone());
                    self.halted.store(true, Ordering::Relaxed)
                }
                Err(Some(s3)) if s3.is_throttled() && self.quiet_for() < THROTTLED_PATIENCE => {
                    tokio::time::sleep(throttled_wait(waits)).await;
                    waits += 1;
                    continue;
                }
                Err(_) => {}
            }
            return Some(result);
        }
    }

    /// The failure that halted the operation, if one did.
    pub fn cause(&self) -> Option<Error> {
        let cause = self.cause.get()?;
        Some(Error::S3(Box::new(cause.clone())))
    }

    /// Why a transfer the halt kept from running did not move, when each
    /// such file must be named: after a timeout (the operation may have
    /// moved other files, so which did not must be known). After a global
    /// failure, reported once, that one error says it for every file
    /// (`None`). The flag is true the first time, for one log line.
    pub fn untried(&self) -> Option<(Error, bool)> {
        let cause = self.cause.get().filter(|c| !c.is_global())?;
        let message = format!(
            "not tried: the server stopped answering ({} of {} timed out after no \
             transfer had succeeded for {}s); left for the next call",
            cause.operation,
            cause.key,
            self.silence.as_secs_f64()
        );
        let err = S3Error::new(&cause.operation, &cause.key, &cause.code, message);
        let first = !self.untried_named.swap(true, Ordering::Relaxed);
        Some((Error::S3(Box::new(err)), first))
    }

    /// Whether `err` should be reported: a global failure once, not its
    /// repeats from the transfers that were already in flight.
    pub fn should_report(&self, err: &Error) -> bool {
        match err.s3() {
            Some(s3) if s3.is_global() => !self.reported.swap(true, Ordering::Relaxed),
            _ => true,
        }
    }
}

/// Runs `start(item)` for every item, at most `limit` at a time, handing
/// each result to `finished` as it comes. A task is spawned only when a
/// slot is free: 50,000 queued transfers hold no task state (a spawned
/// download is several KB before it even starts). Dropping the future
/// aborts the running tasks; `tracker` lets a cancelled operation wait for
/// them to be dropped.
pub async fn run_bounded<I, T, Fut>(
    tracker: &TaskTracker,
    items: Vec<I>,
    limit: usize,
    mut start: impl FnMut(I) -> Fut,
    mut finished: impl FnMut(std::result::Result<T, tokio::task::JoinError>),
) where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut items = items.into_iter();
    let mut tasks = JoinSet::new();
    loop {
        while tasks.len() < limit.max(1) {
            let Some(item) = items.next() else { break };
            tasks.spawn(tracker.track_future(start(item)));
        }
        match tasks.join_next().await {
            Some(joined) => finished(joined),
            None => return,
        }
    }
}

/// How an operation names conflict copies: with this workspace's tag (see
/// `SyncBase::copy_tag`), avoiding names the ignore rules hide.
pub struct CopyNames {
    pub rules: IgnoreRules,
    pub tag: String,
}

impl CopyNames {
    /// Names copies in the directory `parent` (workspace-relative).
    pub fn namer<'a>(&'a self, parent: &'a str) -> impl Fn(&Dir, &str) -> ConflictCopy + 'a {
        move |dir: &Dir, name: &str| {
            conflict_copy_name(dir, name, &self.tag, &|candidate: &str| {
                self.rules.is_ignored(&join_rel(parent, candidate), false)
            })
        }
    }
}

/// `parent/name`, or `name` at the root.
pub fn join_rel(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}
