//! Blocking file-system work, run off the async threads.

use crate::error::{Error, Result};

/// Runs blocking file-system work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::task("file-system task", e))?
}
