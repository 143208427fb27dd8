//! The lock that makes instances (in this process or others) take turns
//! on one workspace.

use std::time::Duration;

use super::anchor::Dir;
use crate::error::{Error, Result};

const LOCK_FILE: &str = "lock";

/// An exclusive lock on a workspace, held for one pull or push. The OS
/// releases it if the process dies.
#[derive(Debug)]
pub struct WorkspaceLock {
    /// Holding the open file is holding the lock.
    _file: std::fs::File,
}

/// Takes the workspace lock in the state directory. While another instance
/// (in this process or another) holds it, waits up to `timeout`, calling
/// `waiting` once; then fails with `Error::Busy`. Blocking.
pub fn lock_workspace(
    state: &Dir,
    timeout: Duration,
    waiting: impl FnOnce(),
) -> Result<WorkspaceLock> {
    let path = state.path().join(LOCK_FILE);
    let file = state
        .open_lock(LOCK_FILE)
        .map_err(|e| Error::io("open", &path, e))?;
    let deadline = std::time::Instant::now() + timeout;
    let mut waiting = Some(waiting);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(WorkspaceLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                if let Some(f) = waiting.take() {
                    f();
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Busy(format!(
                    "another instance kept the workspace lock {} for longer than \
                     lockTimeoutMs ({} ms)",
                    path.display(),
                    timeout.as_millis()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
    }
}
