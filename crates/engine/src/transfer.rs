//! Moving one file: a streamed, verified, atomic download, or an upload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use crate::base::BaseEntry;
use crate::error::{Error, Result};
use crate::plan::{Download, Upload};
use crate::store::{PutRequest, Store};
use crate::sync::blocking;
use crate::workspace::{
    commit_temp_file, create_parent_dirs, create_temp_file, nanos, FileStat, KnownDirs,
};

/// A finished download: the new base entry, and where the local version
/// went when both sides had changed (keep both).
#[derive(Debug)]
pub struct Downloaded {
    pub entry: BaseEntry,
    pub conflict_copy: Option<PathBuf>,
}

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
    known: &Arc<KnownDirs>,
) -> Result<Downloaded> {
    let mut attempt = 1;
    loop {
        let result = download_once(store, root, d, stall, known).await;
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

/// Bodies up to this size are gathered in memory and written with a single
/// blocking call (most workspace files); larger ones stream to the temp file.
const IN_MEMORY_MAX: usize = 1024 * 1024;

async fn download_once(
    store: &dyn Store,
    root: &Path,
    d: &Download,
    stall: Duration,
    known: &Arc<KnownDirs>,
) -> Result<Downloaded> {
    let mut spilled: Option<PathBuf> = None;
    let result = receive(store, root, d, stall, known, &mut spilled).await;
    if let (Err(_), Some(temp)) = (&result, spilled) {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

/// Streams the body, hashing it, into memory or (past `IN_MEMORY_MAX`) a
/// temp file whose path is put in `spilled`; verifies it; commits it.
async fn receive(
    store: &dyn Store,
    root: &Path,
    d: &Download,
    stall: Duration,
    known: &Arc<KnownDirs>,
    spilled: &mut Option<PathBuf>,
) -> Result<Downloaded> {
    let mut body = store.get(&d.key, d.size).await?;
    let mut hasher = Md5::new();
    let mut memory: Vec<u8> = Vec::new();
    let mut file: Option<tokio::fs::File> = None;
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
        if file.is_none() && memory.len() + chunk.len() <= IN_MEMORY_MAX {
            memory.extend_from_slice(&chunk);
            continue;
        }
        let out = match &mut file {
            Some(out) => out,
            None => {
                let (root, rel, known) = (root.to_path_buf(), d.rel.clone(), known.clone());
                let (std_file, temp) = blocking(move || {
                    let dir = create_parent_dirs(&root, &rel, &known)?;
                    create_temp_file(&dir)
                })
                .await?;
                *spilled = Some(temp);
                let out = file.insert(tokio::fs::File::from_std(std_file));
                out.write_all(&std::mem::take(&mut memory))
                    .await
                    .map_err(|e| Error::Io(format!("write {}: {e}", d.rel)))?;
                out
            }
        };
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::Io(format!("write {}: {e}", d.rel)))?;
    }
    // Verified before a byte reaches the final name (or, when gathered in
    // memory, the disk at all).
    let md5 = hex::encode(hasher.finalize());
    if let Some(expected) = body.expected_md5() {
        if expected != md5 {
            return Err(Error::Integrity(format!(
                "{}: downloaded bytes have MD5 {md5}, the object's ETag is {expected}",
                d.rel
            )));
        }
    }
    let etag = body.etag.or_else(|| d.etag.clone());
    let target = Target {
        dest: root.join(&d.rel),
        mtime: d.last_modified,
        replaces: d.replaces,
        keep_local: d.keep_local,
    };
    let (stat, conflict_copy) = match (file, spilled.clone()) {
        (Some(mut out), Some(temp)) => {
            out.flush()
                .await
                .map_err(|e| Error::io("write", &temp, e))?;
            let out = out.into_std().await;
            blocking(move || target.commit(out, &temp)).await?
        }
        _ => {
            let (root, rel, known) = (root.to_path_buf(), d.rel.clone(), known.clone());
            blocking(move || {
                let dir = create_parent_dirs(&root, &rel, &known)?;
                let (mut out, temp) = create_temp_file(&dir)?;
                let written = std::io::Write::write_all(&mut out, &memory)
                    .map_err(|e| Error::io("write", &temp, e))
                    .and_then(|()| target.commit(out, &temp));
                if written.is_err() {
                    let _ = std::fs::remove_file(&temp);
                }
                written
            })
            .await?
        }
    };
    let entry = BaseEntry {
        etag,
        md5,
        stat,
        recorded_ns: nanos(std::time::SystemTime::now()),
    };
    Ok(Downloaded {
        entry,
        conflict_copy,
    })
}

/// Where a verified download goes, and what may be there.
struct Target {
    dest: PathBuf,
    mtime: Option<std::time::SystemTime>,
    replaces: Option<FileStat>,
    keep_local: bool,
}

impl Target {
    /// Gives the finished temp file the object's time as mtime (so the base
    /// trusts its stat at once, and any later local write shows), moves it
    /// into place (see `commit_temp_file`) and returns its stat and the
    /// conflict copy, if one was made. Blocking.
    fn commit(self, file: std::fs::File, temp: &Path) -> Result<(FileStat, Option<PathBuf>)> {
        if let Some(t) = self.mtime {
            file.set_modified(t)
                .map_err(|e| Error::io("set mtime of", temp, e))?;
        }
        drop(file);
        let copy = commit_temp_file(temp, &self.dest, self.replaces, self.keep_local)?;
        let meta = std::fs::symlink_metadata(&self.dest)
            .map_err(|e| Error::io("inspect", &self.dest, e))?;
        Ok((FileStat::of(&meta), copy))
    }
}

/// Uploads `root/u.rel` as `key`, with the MD5 the push hashed (sent as
/// `Content-MD5`, so the server refuses bytes that changed since) and the
/// plan's condition. Returns the new base entry.
pub async fn upload(
    store: &dyn Store,
    root: &Path,
    u: &Upload,
    key: &str,
    content_type: &str,
) -> Result<BaseEntry> {
    let file: PathBuf = root.join(&u.rel);
    let mut md5 = [0u8; 16];
    hex::decode_to_slice(&u.md5, &mut md5)
        .map_err(|e| Error::Io(format!("{}: bad hash {}: {e}", u.rel, u.md5)))?;
    let etag = store
        .put(PutRequest {
            key,
            file: &file,
            stat: u.stat,
            content_type,
            md5,
            condition: &u.condition,
        })
        .await?;
    Ok(BaseEntry {
        etag,
        md5: u.md5.clone(),
        stat: u.stat,
        recorded_ns: u.hashed_ns,
    })
}
