//! One file's upload: conditional, retried on a lost race only when the
//! object is still what the base says, recorded in the base once answered.

use std::sync::Arc;
use std::time::Duration;

use super::{join_rel, CopyNames};
use crate::base::BaseEntry;
use crate::blocking::blocking;
use crate::error::{Error, Result};
use crate::keys::key_for;
use crate::local::{hash_file_alone, open_scanned, set_aside, split_parent, Dir};
use crate::model::Condition;
use crate::plan::Upload;
use crate::progress::FileProgress;
use crate::store::{Content, PutRequest, Store};

/// A file S3 now holds: its new base entry, and the object version made
/// (on a bucket that keeps versions).
pub type Stored = (BaseEntry, Option<String>);

/// How an upload ended.
#[derive(Debug)]
pub enum Uploaded {
    /// S3 holds the file's bytes under its key.
    Synced(Stored),
    /// The object was deleted on S3 by another agent, after an earlier
    /// push of these very bytes that never learned its outcome (or before
    /// it: that cannot be told). The deletion stands: the local file was
    /// moved to `copy` (workspace-relative), which was then uploaded as a
    /// new file (`copy_entry`, or the error that upload met).
    DeletionStands {
        copy: String,
        copy_ignored: bool,
        copy_entry: Result<Stored>,
    },
}

/// Attempts of a conditional write that S3 answers 409
/// `ConditionalRequestConflict` (a concurrent write to the key), as AWS
/// documents: fetch the state again and retry.
const CONFLICT_ATTEMPTS: usize = 3;

/// What an upload needs besides the file.
pub struct UploadTo<'a> {
    pub store: &'a dyn Store,
    pub root: &'a Arc<Dir>,
    pub prefix: &'a str,
    pub names: &'a Arc<CopyNames>,
    pub content_type: &'a str,
    pub progress: &'a FileProgress,
    /// Names an unhashed upload (see `Content::Unhashed`): the base's
    /// intent for it.
    pub token: &'a str,
}

/// `upload`, then what a failed condition means: our own earlier upload
/// (a push killed before it recorded it: the object holds these bytes) is
/// success; so is an object holding what such a push sent before the file
/// changed again (replaced, as the base would have had it); an object
/// deleted on S3 since the base is created again (the local change wins
/// over nothing), unless these bytes were sent before by a push that never
/// learned its outcome (see `Uploaded`); anything else is a conflict.
pub async fn upload_checked(to: &UploadTo<'_>, u: &Upload) -> Result<Uploaded> {
    let key = key_for(to.prefix, &u.rel);
    let conflict = match upload_retrying(to, u, &key, false).await {
        Err(Error::Conflict(m)) => m,
        other => return other.map(Uploaded::Synced),
    };
    // What is on S3 is weighed against the file's hash.
    let hashed;
    let u = match u.hash {
        Some(_) => u,
        None => {
            hashed = hash_now(to.root, u).await?;
            &hashed
        }
    };
    match to.store.head(&key).await {
        Ok(Some(info)) if info.content_hash().is_some() && info.content_hash() == u.hash => {
            Ok(Uploaded::Synced((u.synced(info.etag, None), info.version)))
        }
        // An earlier push of this instance's workspace wrote it and was
        // stopped before the answer (the file changed again since): that
        // write is what this one replaces, not another agent's. (An
        // unhashed upload's intent is its token.)
        Ok(Some(info))
            if u.intended
                .as_deref()
                .is_some_and(|i| info.stored().holds(i)) =>
        {
            let Some(etag) = info.etag else {
                return Err(Error::Conflict(conflict));
            };
            let again = Upload {
                condition: Condition::IfMatch(etag),
                intended: None,
                ..u.clone()
            };
            upload_retrying(to, &again, &key, false)
                .await
                .map(Uploaded::Synced)
        }
        Ok(None) if u.interrupted => deletion_stands(to, u).await,
        Ok(None) if matches!(u.condition, Condition::IfMatch(_)) => {
            let again = Upload {
                condition: Condition::IfNoneMatch,
                ..u.clone()
            };
            // Not new to this writer: it synced the version deleted since.
            upload_retrying(to, &again, &key, true)
                .await
                .map(Uploaded::Synced)
        }
        _ => Err(Error::Conflict(conflict)),
    }
}

/// `upload`, tried again while S3 answers 409 `ConditionalRequestConflict`.
/// `recreated`: the path's object, which this writer synced, was deleted
/// since, so it is not new to the writer (see `PutRequest::new`).
async fn upload_retrying(
    to: &UploadTo<'_>,
    u: &Upload,
    key: &str,
    recreated: bool,
) -> Result<Stored> {
    let mut attempt = 1;
    loop {
        match upload(to, u, key, recreated).await {
            Err(Error::S3(e))
                if attempt < CONFLICT_ATTEMPTS
                    && (e.code == "ConditionalRequestConflict" || e.status == Some(409)) =>
            {
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Moves the local file aside under a conflict name and uploads it there:
/// another agent's deletion of the path stands, these bytes survive.
async fn deletion_stands(to: &UploadTo<'_>, u: &Upload) -> Result<Uploaded> {
    let (parent, name) = split_parent(&u.rel);
    let (root, names) = (to.root.clone(), to.names.clone());
    let (parent_owned, name_owned, stat) = (parent.to_owned(), name.to_owned(), u.stat);
    let (copy, copy_stat) = blocking(move || {
        let dir = root
            .open_sub(&parent_owned)
            .map_err(|e| Error::io("open", &root.path().join(&parent_owned), e))?;
        let namer = names.namer(&parent_owned);
        let copy = set_aside(&dir, &name_owned, stat, &namer)?;
        let copy_stat = match dir.stat(&copy.name) {
            Ok(Some((_, s))) => s,
            _ => return Err(Error::Changed(format!("{} vanished", copy.name))),
        };
        Ok((copy, copy_stat))
    })
    .await?;
    let copy_rel = join_rel(parent, &copy.name);
    let moved = Upload {
        rel: copy_rel.clone(),
        stat: copy_stat,
        condition: Condition::IfNoneMatch,
        interrupted: false,
        ..u.clone()
    };
    let copy_entry = upload_retrying(to, &moved, &key_for(to.prefix, &copy_rel), false).await;
    Ok(Uploaded::DeletionStands {
        copy: copy_rel,
        copy_ignored: copy.ignored,
        copy_entry,
    })
}

/// `u` with its content hash (and parts' MD5s), read now.
async fn hash_now(root: &Arc<Dir>, u: &Upload) -> Result<Upload> {
    let (dir, rel, stat) = (root.clone(), u.rel.clone(), u.stat);
    let (hash, parts) = blocking(move || {
        let file = open_scanned(&dir, &rel, stat)?;
        hash_file_alone(&file, &dir.path().join(&rel), stat.size)
    })
    .await?;
    Ok(Upload {
        hash: Some(hash),
        parts: parts.into(),
        ..u.clone()
    })
}

/// Uploads `root/u.rel` as `key`, with the content hash the push computed
/// (its MD5s sent as `Content-MD5`, so the server refuses bytes that
/// changed since), or unhashed under `to.token`, and the plan's condition.
/// The file is opened beneath the root, not through a link, and must still
/// be the scanned one. `recreated`: see `upload_retrying`.
async fn upload(to: &UploadTo<'_>, u: &Upload, key: &str, recreated: bool) -> Result<Stored> {
    let (dir, rel, stat) = (to.root.clone(), u.rel.clone(), u.stat);
    let file = blocking(move || open_scanned(&dir, &rel, stat)).await?;
    let path = to.root.path().join(&u.rel);
    let written = to
        .store
        .put(PutRequest {
            key,
            file: &file,
            path: &path,
            stat: u.stat,
            content_type: to.content_type,
            content: match &u.hash {
                Some(hash) => Content::Hashed(hash),
                None => Content::Unhashed { token: to.token },
            },
            parts: &u.parts,
            condition: &u.condition,
            new: u.condition == Condition::IfNoneMatch && !recreated,
            progress: to.progress,
        })
        .await?;
    Ok((u.synced(written.etag, written.hash), written.version))
}
