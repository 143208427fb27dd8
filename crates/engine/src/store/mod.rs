//! The object store the engine syncs with. The S3 implementation is in
//! `s3.rs`, an in-memory one in `memory`; the binding may add others (a
//! JavaScript `send()` client).

pub mod answers;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod memory;
pub mod s3;
pub mod small;
pub mod transport;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{Result, S3Error};
use crate::hashing::{is_composite, parse_hash};
use crate::life::Life;
use crate::model::{Condition, FileStat, RemoteObject, StoredMeta};
use crate::progress::FileProgress;

/// The body of a GET, streamed.
pub struct ObjectBody {
    /// The object's bytes in pieces, each at its offset: in order, or (the
    /// ranges of a large object) as they arrive. An `Err` is why the body
    /// broke off.
    pub stream: BoxStream<'static, Result<Piece>>,
    /// The object's ETag, unquoted, when the server gave one.
    pub etag: Option<String>,
    /// The whole object's length, as the answer gave it (the listing's
    /// may be of an older version).
    pub size: Option<u64>,
    /// The content hash this engine stored in the object's metadata (see
    /// `hashing`; an older version stored the whole-object MD5 there).
    pub hash: Option<String>,
    /// Whether an MD5-shaped ETag is the MD5 of the bytes: not for objects
    /// encrypted with KMS keys or customer keys (SSE-KMS, DSSE, SSE-C).
    pub etag_is_md5: bool,
    /// The whole object's checksum, where the server keeps one and
    /// verifies checksums (asked of a large object only).
    pub checksum: Option<Checksum>,
    /// See `ObjectInfo::written_new`.
    pub written_new: bool,
    /// When bytes of the body last arrived: a store that hands them over in
    /// pieces larger than what arrives at a time notes each arrival here.
    pub life: Arc<Life>,
    /// The store cuts a body that stalls itself (and asks for the rest
    /// again); else the download cuts it.
    pub watched: bool,
}

/// A whole-object CRC a server keeps (`x-amz-checksum-*` of a checksum
/// type `FULL_OBJECT`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checksum {
    /// Which CRC.
    pub algorithm: crc_fast::CrcAlgorithm,
    /// Its value.
    pub value: u64,
}

/// Some of an object's bytes.
#[derive(Debug)]
pub struct Piece {
    /// Where in the object they start.
    pub offset: u64,
    /// The bytes.
    pub bytes: Bytes,
}

impl ObjectBody {
    /// The body of the object `info` describes, its bytes in order.
    pub fn new(info: ObjectInfo, stream: BoxStream<'static, Result<Bytes>>) -> Self {
        let mut offset = 0;
        let stream = futures::StreamExt::map(stream, move |chunk| {
            let bytes = chunk?;
            let piece = Piece { offset, bytes };
            offset += piece.bytes.len() as u64;
            Ok(piece)
        });
        Self::pieces(info, Box::pin(stream))
    }

    /// The body of the object `info` describes, in pieces at their offsets.
    pub fn pieces(info: ObjectInfo, stream: BoxStream<'static, Result<Piece>>) -> Self {
        ObjectBody {
            stream,
            etag: info.etag,
            size: info.size,
            hash: info.hash,
            etag_is_md5: info.etag_is_md5,
            checksum: None,
            written_new: info.written_new,
            life: Arc::default(),
            watched: false,
        }
    }

    /// The same, from a store that notes each arrival in `life` and cuts
    /// (or resumes) a body that stalls itself.
    pub fn watched(
        info: ObjectInfo,
        stream: BoxStream<'static, Result<Piece>>,
        life: Arc<Life>,
    ) -> Self {
        ObjectBody {
            life,
            watched: true,
            ..Self::pieces(info, stream)
        }
    }

    /// What the downloaded bytes must hash to, when the server says it.
    pub fn expected_hash(&self) -> Option<String> {
        expected_hash(self.hash.as_deref(), self.etag.as_deref(), self.etag_is_md5)
    }
}

/// The stored hash, else the ETag when it is an MD5. A multipart ETag
/// checks nothing here: its part sizes are the uploader's, unknown.
fn expected_hash(stored: Option<&str>, etag: Option<&str>, etag_is_md5: bool) -> Option<String> {
    stored.map(str::to_owned).or_else(|| {
        etag.filter(|_| etag_is_md5)
            .and_then(parse_hash)
            .filter(|h| !is_composite(h))
    })
}

/// What an upload carries besides its bytes.
#[derive(Debug, Clone)]
pub struct PutRequest<'a> {
    /// The object key to write (prefix and relative path).
    pub key: &'a str,
    /// The file, opened (beneath the workspace root, as scanned).
    pub file: &'a File,
    /// Its path, for messages (and for stores that read by path).
    pub path: &'a Path,
    /// The file as scanned and hashed; an upload that finds it different
    /// fails rather than store bytes that do not match `hash`.
    pub stat: FileStat,
    /// The `Content-Type` to store the object with.
    pub content_type: &'a str,
    /// What is known of the file's content before it is sent.
    pub content: Content<'a>,
    /// The MD5s of its parts as hashed then (see `hashing`), if known: sent
    /// as the parts' Content-MD5 instead of hashing the file again.
    pub parts: &'a [[u8; 16]],
    /// What the object being replaced must be; a mismatch fails the upload
    /// with `Error::Conflict` and leaves the object as it is.
    pub condition: &'a Condition,
    /// The writer never synced a version of the path: the object is marked
    /// as written new (`answers::NEW_META`).
    pub new: bool,
    /// Where a store that sends in parts reports the bytes sent.
    pub progress: &'a FileProgress,
}

/// What an upload knows of the file's content before sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// Hashed before the upload (see `hashing`): the bytes sent must have
    /// this content hash, and the server is given the MD5s to refuse bytes
    /// that changed since.
    Hashed(&'a str),
    /// Not hashed (a file of `PART_SIZE` or more that no comparison needed
    /// hashed): its parts are hashed as they are sent, so the first leaves
    /// at once. The object keeps `token` (`UPLOAD_META`), which the base's
    /// intent names it by, and `PART_SIZE_META`; `Written::hash` says the
    /// content hash.
    Unhashed {
        /// Names this upload (the object keeps it as `UPLOAD_META`).
        token: &'a str,
    },
}

impl PutRequest<'_> {
    /// The file's content hash and its parts' MD5s: as the request says
    /// them, or read now when it is unhashed (for a store that needs the
    /// hash before sending).
    pub async fn hash_first(&self) -> Result<(String, Vec<[u8; 16]>)> {
        if let Content::Hashed(hash) = self.content {
            return Ok((hash.to_owned(), self.parts.to_vec()));
        }
        let file = self
            .file
            .try_clone()
            .map_err(|e| crate::error::Error::io("read", self.path, e))?;
        let (path, size) = (self.path.to_path_buf(), self.stat.size);
        crate::blocking::blocking(move || crate::local::hash_file_alone(&file, &path, size)).await
    }
}

/// What a HEAD tells of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's ETag, unquoted, when the server gave one.
    pub etag: Option<String>,
    /// The content hash this engine stored in the object's metadata, if any.
    pub hash: Option<String>,
    /// See `ObjectBody::etag_is_md5`.
    pub etag_is_md5: bool,
    /// The object's version, on a bucket that keeps versions.
    pub version: Option<String>,
    /// The object's size in bytes: from a HEAD (a ranged GET's answer
    /// gives the range's).
    pub size: Option<u64>,
    /// The token of the unhashed upload that wrote it (see
    /// `Content::Unhashed`), if that is how it was written.
    pub token: Option<String>,
    /// Written by this engine as a new object (`answers::NEW_META`).
    pub written_new: bool,
}

/// What the server answered to a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The new ETag, unquoted, when the server gave one.
    pub etag: Option<String>,
    /// The new object version, on a bucket that keeps versions.
    pub version: Option<String>,
    /// The content hash of the bytes stored, for an unhashed upload.
    pub hash: Option<String>,
}

/// Whether a bucket keeps every version of its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Every write makes a new version; deletions add delete markers.
    Enabled,
    /// It did once; new writes replace the current ("null") version.
    Suspended,
    /// Never enabled, or the store has no versions.
    Off,
}

/// A version to make current again (see `Store::copy_version`).
#[derive(Debug, Clone, Copy)]
pub struct VersionCopy<'a> {
    /// The object key.
    pub key: &'a str,
    /// The version to copy.
    pub version: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// What the key must hold now; a mismatch is `Error::Conflict`.
    pub condition: &'a Condition,
}

/// An object's current version, as a listing of versions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentVersion {
    /// The object as a listing shows it.
    pub object: RemoteObject,
    /// Its version id.
    pub version: String,
}

impl ObjectInfo {
    /// The content hash of the object, when known.
    pub fn content_hash(&self) -> Option<String> {
        expected_hash(self.hash.as_deref(), self.etag.as_deref(), self.etag_is_md5)
    }

    /// What the planner weighs of it (see `StoredMeta`).
    pub fn stored(&self) -> StoredMeta {
        StoredMeta {
            hash: self.content_hash(),
            token: self.token.clone(),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    /// The objects on this page (ETags unquoted).
    pub objects: Vec<RemoteObject>,
    /// More pages follow.
    pub truncated: bool,
    /// The continuation token for the next page.
    pub next_token: Option<String>,
}

/// An object store under one bucket: what the engine lists, reads, writes
/// and deletes. Keys are whole object keys (prefix included).
#[async_trait]
pub trait Store: Send + Sync {
    /// One page of the objects under `prefix`, after `token`.
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage>;
    /// The object's body; `size_hint` (from the listing) lets large objects
    /// come as parallel ranges.
    async fn get(&self, key: &str, size_hint: Option<u64>) -> Result<ObjectBody>;
    /// The object's ETag and stored MD5; `None` when there is no object.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;
    /// Uploads the file; returns what the server said of the new object.
    async fn put(&self, req: PutRequest<'_>) -> Result<Written>;
    /// Deletes the object, only if it still has ETag `if_match` when given
    /// (else `Error::Conflict`, also when there is no object to match: see
    /// `missing_is_conflict`).
    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<()>;
    /// Deletes many objects, each only if it still has its ETag when given;
    /// returns each key's outcome (`Error::Conflict` for a failed
    /// condition). A key missing from the answer was not attempted: the
    /// store stopped at a failure every request would repeat. Stores with a
    /// batch request override this; here, one delete at a time.
    async fn delete_many(&self, objects: &[(String, Option<String>)]) -> Vec<(String, Result<()>)> {
        let mut out = Vec::with_capacity(objects.len());
        for (key, if_match) in objects {
            let result = self.delete(key, if_match.as_deref()).await;
            let global = result
                .as_ref()
                .err()
                .and_then(|e| e.s3())
                .is_some_and(|s| s.is_global());
            out.push((key.clone(), result));
            if global {
                break;
            }
        }
        out
    }
    /// Waits (briefly) for clean-up requests still under way, such as the
    /// aborts of multipart uploads an operation dropped when cancelled, so a
    /// process that exits right after sees them sent.
    async fn settle(&self) {}
    /// What the store found out about the server that the caller should
    /// pass on (a condition it ignores, and what is done instead); each once.
    fn take_warnings(&self) -> Vec<crate::error::Warning> {
        Vec::new()
    }
    /// Before a push that relies on conditional writes: fails (with
    /// `Error::Unsupported`) when the server does not apply them and they
    /// are required; else says once (see `take_warnings`) what is done
    /// instead. Stores that apply them as sent have nothing to check.
    async fn check_conditions(&self) -> Result<()> {
        Ok(())
    }
    /// The first `max` objects under `prefix`, in key order (one request,
    /// where the store can be told how many).
    async fn list_first(&self, prefix: &str, max: usize) -> Result<ListPage> {
        let mut page = self.list_page(prefix, None).await?;
        page.objects.truncate(max);
        Ok(page)
    }
    /// Whether the bucket keeps versions: stores without them say `Off`.
    async fn versioning(&self) -> Result<Versioning> {
        Ok(Versioning::Off)
    }
    /// The current version of every object under `prefix` (older versions
    /// and delete markers left out), all pages.
    async fn current_versions(&self, _prefix: &str) -> Result<Vec<CurrentVersion>> {
        Err(no_versions())
    }
    /// Whether version `version` of `key` still exists.
    async fn version_exists(&self, _key: &str, _version: &str) -> Result<bool> {
        Err(no_versions())
    }
    /// Makes an older version of a key current again by a server-side copy
    /// (history is kept: the copy is a new version).
    async fn copy_version(&self, _copy: VersionCopy<'_>) -> Result<Written> {
        Err(no_versions())
    }
    /// Whether the store applies `If-Match` and `If-None-Match` on writes
    /// as sent (probed where that is not documented). Stores that apply
    /// them as sent say so.
    async fn conditions_applied(&self) -> bool {
        true
    }
    /// Aborts the multipart uploads under `prefix` started more than `age`
    /// ago; returns how many. Stores without multipart uploads have none.
    async fn abort_abandoned_uploads(&self, _prefix: &str, _age: Duration) -> Result<usize> {
        Ok(0)
    }
}

fn no_versions() -> crate::Error {
    crate::Error::VersioningRequired("this store keeps no object versions".into())
}

/// Every object under `prefix`, all pages. Fails rather than return a
/// partial listing: a truncated page must carry a new continuation token.
pub async fn list_all(store: &dyn Store, prefix: &str) -> Result<Vec<RemoteObject>> {
    use futures::TryStreamExt;
    let pages: Vec<Vec<RemoteObject>> = list_pages(store, prefix).try_collect().await?;
    Ok(pages.concat())
}

/// The objects under `prefix`, a page at a time, in key order (so a pull
/// can start on what a page settles while the next is listed). Ends with
/// an error rather than early: a truncated page must carry a new
/// continuation token.
pub fn list_pages<'a>(
    store: &'a dyn Store,
    prefix: &'a str,
) -> impl futures::Stream<Item = Result<Vec<RemoteObject>>> + Send + 'a {
    // `None`: the last page was listed; `Some(token)`: the next page's.
    let start: Option<Option<String>> = Some(None);
    futures::stream::try_unfold(start, move |next| async move {
        let Some(token) = next else {
            return Ok(None);
        };
        let page = store.list_page(prefix, token.as_deref()).await?;
        if !page.truncated {
            return Ok(Some((page.objects, None)));
        }
        match page.next_token {
            Some(next) if token.as_deref() != Some(next.as_str()) => {
                Ok(Some((page.objects, Some(Some(next)))))
            }
            _ => Err(S3Error::new(
                "ListObjectsV2",
                prefix,
                "InvalidResponse",
                format!(
                    "listing {prefix:?} failed: a truncated page came without a new \
                     continuation token"
                ),
            )
            .into()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::etag_hash;

    #[test]
    fn etags() {
        assert_eq!(
            etag_hash("\"D41D8CD98F00B204E9800998ECF8427E\"").as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(
            etag_hash("d41d8cd98f00b204e9800998ecf8427e-2").as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e-2")
        );
        assert_eq!(etag_hash("xyz"), None);
        // Only an MD5 ETag verifies a download by itself.
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        assert_eq!(expected_hash(None, Some(md5), true).as_deref(), Some(md5));
        assert_eq!(expected_hash(None, Some(md5), false), None);
        assert_eq!(expected_hash(None, Some(&format!("{md5}-2")), true), None);
        assert_eq!(
            expected_hash(Some("stored-3"), Some(md5), true).as_deref(),
            Some("stored-3")
        );
    }
}
