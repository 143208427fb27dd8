//! Small objects the engine writes and reads whole (its own state under
//! the prefix, such as the change journal of live workspaces), through any
//! `Store`: the same conditional writes and answers as the files it syncs.

use std::sync::Arc;

use futures::StreamExt;

use super::answers::is_not_found;
use super::{Content, PutRequest, Store};
use crate::error::{Error, Result};
use crate::hashing::hash_bytes;
use crate::model::{Condition, FileStat};
use crate::progress::{FileProgress, Phase, PhaseProgress, Silent};

/// Puts `body` at `key` under `condition`; returns the new ETag when the
/// server gave one. Stores upload from a file, so the bytes go through an
/// unlinked temp file.
pub async fn put_bytes(
    store: &dyn Store,
    key: &str,
    body: &[u8],
    content_type: &str,
    condition: &Condition,
) -> Result<Option<String>> {
    let path = std::env::temp_dir().join(format!(
        "s3ws-{}-{}",
        std::process::id(),
        crate::local::temp_name()
    ));
    std::fs::write(&path, body).map_err(|e| Error::io("write", &path, e))?;
    let file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e));
    // Gone from the directory at once; the open handle still reads it.
    let _ = std::fs::remove_file(&path);
    let file = file?;
    let stat = FileStat::of(&file.metadata().map_err(|e| Error::io("stat", &path, e))?);
    let phase = Arc::new(PhaseProgress::new(Arc::new(Silent), Phase::Upload, 1, 0));
    store
        .put(PutRequest {
            key,
            file: &file,
            path: &path,
            stat,
            content_type,
            content: Content::Hashed(&hash_bytes(body)),
            parts: &[],
            condition,
            new: false,
            progress: &FileProgress::new(&phase),
        })
        .await
        .map(|w| w.etag)
}

/// An object read whole by `get_bytes`.
pub struct Fetched {
    /// Its ETag, when the server gave one.
    pub etag: Option<String>,
    /// Its bytes; `None` when it is larger than the limit (not read on).
    pub body: Option<Vec<u8>>,
}

/// The object at `key`; `None` when there is none. An object larger than
/// `limit` bytes is not held: its body is `None`.
pub async fn get_bytes(store: &dyn Store, key: &str, limit: usize) -> Result<Option<Fetched>> {
    let mut got = match store.get(key, None).await {
        Ok(body) => body,
        Err(Error::S3(e)) if is_not_found(&e.code, e.status) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    // Small: never ranged, so its pieces come in order.
    while let Some(piece) = got.stream.next().await {
        out.extend_from_slice(&piece?.bytes);
        if out.len() > limit {
            return Ok(Some(Fetched {
                etag: got.etag,
                body: None,
            }));
        }
    }
    Ok(Some(Fetched {
        etag: got.etag,
        body: Some(out),
    }))
}
