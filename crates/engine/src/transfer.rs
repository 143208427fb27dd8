//! Moving one file: a streamed, verified, atomic download, or an upload.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::plan::{Download, SnapshotEntry};
use crate::store::{PutRequest, Store};
use crate::sync::blocking;
use crate::workspace::{commit_temp_file, create_parent_dirs, create_temp_file, FileStat};

/// Attempts per download when the body breaks off or fails verification
/// (request-level failures are retried by the S3 client itself).
const DOWNLOAD_ATTEMPTS: usize = 3;

/// Downloads `d` to `root/d.rel`: streamed into a temp file beside it,
/// checked against the ETag, then renamed into place.
pub async fn download(
    store: &dyn Store,
    root: &Path,
    d: &Download,
    stall: Duration,
) -> Result<SnapshotEntry> {
    let mut attempt = 1;
    loop {
        let result = download_once(store, root, d, stall).await;
        match &result {
            Err(e) if attempt < DOWNLOAD_ATTEMPTS && is_body_error(e) => attempt += 1,
            _ => return result,
        }
    }
}

/// Errors worth another attempt: a broken or corrupt body. A failed request
/// was already retried by the client.
fn is_body_error(e: &Error) -> bool {
    match e {
        Error::Integrity(_) => true,
        Error::S3(m) => m.contains("while reading the body"),
        _ => false,
    }
}

async fn download_once(
    store: &dyn Store,
    root: &Path,
    d: &Download,
    stall: Duration,
) -> Result<SnapshotEntry> {
    let (root2, rel) = (root.to_path_buf(), d.rel.clone());
    let (file, temp) = blocking(move || {
        let dir = create_parent_dirs(&root2, &rel)?;
        create_temp_file(&dir)
    })
    .await?;
    let result = write_verified(store, d, file, &temp, &root.join(&d.rel), stall).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

async fn write_verified(
    store: &dyn Store,
    d: &Download,
    file: std::fs::File,
    temp: &Path,
    dest: &Path,
    stall: Duration,
) -> Result<SnapshotEntry> {
    let mut body = store.get(&d.key, d.size).await?;
    let mut out = tokio::fs::File::from_std(file);
    let mut hasher = Md5::new();
    loop {
        // A body that stops sending is cut here and the download retried.
        let next = tokio::time::timeout(stall, body.stream.next())
            .await
            .map_err(|_| {
                Error::S3(format!(
                    "{}: body stalled for {stall:?} while reading the body",
                    d.key
                ))
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk?;
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::io("write", temp, e))?;
    }
    out.flush().await.map_err(|e| Error::io("write", temp, e))?;
    let file = out.into_std().await;
    let md5 = hex::encode(hasher.finalize());
    let expected = body.expected_md5();
    let etag = body.etag.or_else(|| d.etag.clone());
    if let Some(expected) = expected {
        if expected != md5 {
            return Err(Error::Integrity(format!(
                "{}: downloaded bytes have MD5 {md5}, the object's ETag is {expected}",
                d.rel
            )));
        }
    }
    let (temp, dest, mtime) = (temp.to_path_buf(), dest.to_path_buf(), d.last_modified);
    let stat = blocking(move || {
        // The object's time as mtime: the file then looks settled to the hash
        // cache at once, and any later local write is seen.
        if let Some(t) = mtime {
            file.set_modified(t)
                .map_err(|e| Error::io("set mtime of", &temp, e))?;
        }
        drop(file);
        commit_temp_file(&temp, &dest)?;
        let meta = std::fs::symlink_metadata(&dest).map_err(|e| Error::io("inspect", &dest, e))?;
        Ok(FileStat::of(&meta))
    })
    .await?;
    Ok(SnapshotEntry { stat, md5, etag })
}

/// Uploads `root/rel` as `key`, with the MD5 the push hashed (sent as
/// `Content-MD5`, so the server refuses bytes that changed since).
pub async fn upload(
    store: &dyn Store,
    root: &Path,
    rel: &str,
    key: &str,
    stat: FileStat,
    md5_hex: &str,
    content_type: &str,
) -> Result<SnapshotEntry> {
    let file: PathBuf = root.join(rel);
    let mut md5 = [0u8; 16];
    hex::decode_to_slice(md5_hex, &mut md5)
        .map_err(|e| Error::Io(format!("{rel}: bad hash {md5_hex}: {e}")))?;
    let etag = store
        .put(PutRequest {
            key,
            file: &file,
            stat,
            content_type,
            md5,
        })
        .await?;
    Ok(SnapshotEntry {
        stat,
        md5: md5_hex.to_owned(),
        etag,
    })
}
