//! A `Store` over a client that sends one S3 request at a time and hands
//! back its answer as it came (the JS `send()` store: a stand-in client in
//! a user's tests, a stubbed client, or a real S3Client with customisations
//! the native client would bypass). The transport only carries requests and
//! answers; what an answer means is decided here, by the rules the native
//! store uses (`answers`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use md5::{Digest, Md5};

use super::answers::{
    answer_error, changed_while_uploaded, check_unchanged, if_match, if_none_match, is_not_found,
    missing_is_conflict, object_info, unquote_etag, upload_metadata,
};
use super::{Content, ListPage, ObjectBody, ObjectInfo, PutRequest, Store, Written};
use crate::error::{Error, Result, S3Error, BODY_ERROR};
use crate::hashing::{plain_md5, ContentHasher, PART_SIZE};
use crate::local::{read_part, whole_md5};
use crate::model::RemoteObject;

/// Chunk size of streamed uploads.
const CHUNK: u64 = 1024 * 1024;
/// Files at least this large upload as a stream; smaller ones in one
/// buffer, checked against their content hash, which below this size is
/// their MD5.
const STREAM_MIN: u64 = PART_SIZE;

/// One S3 request.
pub enum Request<'a> {
    /// `ListObjectsV2` of `prefix`, from `token` on.
    List {
        /// The key prefix listed.
        prefix: &'a str,
        /// The continuation token of the previous page; `None` for the first.
        token: Option<&'a str>,
    },
    /// `GetObject`: answered with `Answer::Object` and a body.
    Get {
        /// The object key.
        key: &'a str,
    },
    /// `HeadObject`: answered with `Answer::Object`.
    Head {
        /// The object key.
        key: &'a str,
    },
    /// `PutObject`: answered with `Answer::Stored`.
    Put(Put<'a>),
    /// `DeleteObject`: answered with `Answer::Deleted`.
    Delete {
        /// The object key.
        key: &'a str,
        /// The `If-Match` header.
        if_match: Option<String>,
    },
}

impl Request<'_> {
    /// The S3 operation, for messages.
    pub fn operation(&self) -> &'static str {
        match self {
            Request::List { .. } => "ListObjectsV2",
            Request::Get { .. } => "GetObject",
            Request::Head { .. } => "HeadObject",
            Request::Put(_) => "PutObject",
            Request::Delete { .. } => "DeleteObject",
        }
    }

    /// The key, or the prefix of a listing.
    pub fn key(&self) -> &str {
        match self {
            Request::List { prefix, .. } => prefix,
            Request::Get { key } | Request::Head { key } | Request::Delete { key, .. } => key,
            Request::Put(put) => put.key,
        }
    }
}

/// A `PutObject` with everything it sends.
pub struct Put<'a> {
    /// The object key.
    pub key: &'a str,
    /// The bytes to send.
    pub body: PutBody,
    /// The body's length in bytes.
    pub size: u64,
    /// The `Content-Type` header.
    pub content_type: &'a str,
    /// Base64 MD5 of the body, for `Content-MD5`.
    pub content_md5: String,
    /// User metadata (the content hash under `HASH_META`).
    pub metadata: HashMap<String, String>,
    /// The `If-Match` header.
    pub if_match: Option<String>,
    /// The `If-None-Match` header.
    pub if_none_match: Option<String>,
}

/// An upload's bytes.
pub enum PutBody {
    /// The whole body (files under `STREAM_MIN`).
    Bytes(Bytes),
    /// A large body, read chunk by chunk as the client asks.
    Chunks(Arc<FileChunks>),
}

/// A large upload's body, read from the checked file handle in order and
/// hashed on the way, to be checked against the content hash afterwards.
pub struct FileChunks {
    file: Arc<std::fs::File>,
    path: PathBuf,
    size: u64,
    offset: Mutex<u64>,
    hasher: Mutex<ContentHasher>,
}

impl FileChunks {
    /// The next chunk, or `None` at the end.
    pub async fn next(&self) -> Result<Option<Bytes>> {
        let (offset, len) = {
            let mut at = self.offset.lock().unwrap_or_else(|p| p.into_inner());
            let len = CHUNK.min(self.size - *at);
            let offset = *at;
            *at += len;
            (offset, len)
        };
        if len == 0 {
            return Ok(None);
        }
        let bytes = read_part(self.file.clone(), self.path.clone(), offset, len).await?;
        self.hasher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(&bytes);
        Ok(Some(bytes))
    }

    /// The content hash of the bytes read so far.
    fn sent_hash(&self) -> String {
        std::mem::take(&mut *self.hasher.lock().unwrap_or_else(|p| p.into_inner())).finish()
    }
}

/// What the client answered, as it came.
pub enum Answer {
    /// A listing page (ETags as the server quoted them).
    Listed {
        /// The objects on the page.
        objects: Vec<RemoteObject>,
        /// More pages follow.
        truncated: bool,
        /// The continuation token for the next page.
        next_token: Option<String>,
    },
    /// A GET's or HEAD's answer; a GET's body streams in `body`.
    Object {
        /// The `ETag` header, quoted or not.
        etag: Option<String>,
        /// User metadata, without the `x-amz-meta-` prefix.
        metadata: HashMap<String, String>,
        /// The `x-amz-server-side-encryption` header.
        sse: Option<String>,
        /// The SSE-C algorithm header.
        sse_customer_algorithm: Option<String>,
        /// Chunks of a GET's body; an `Err` is the reason it broke off.
        body: Option<BoxStream<'static, std::result::Result<Bytes, String>>>,
    },
    /// A PUT's answer.
    Stored {
        /// The new object's `ETag` header, quoted or not.
        etag: Option<String>,
    },
    /// A DELETE's answer.
    Deleted,
    /// An error answer, or the client failed: S3's code (or the exception's
    /// name), the HTTP status when one came, and the text.
    Failed {
        /// S3's error code (`NoSuchKey`, …) or the exception's name.
        code: String,
        /// The HTTP status, when one came.
        status: Option<u16>,
        /// The error's text.
        message: String,
    },
}

impl Answer {
    fn kind(&self) -> &'static str {
        match self {
            Answer::Listed { .. } => "a listing",
            Answer::Object { .. } => "an object",
            Answer::Stored { .. } => "a stored object",
            Answer::Deleted => "a deletion",
            Answer::Failed { .. } => "a failure",
        }
    }
}

/// What an `Answer::Object`'s fields say of the object.
fn info_of(
    etag: &Option<String>,
    metadata: &HashMap<String, String>,
    sse: &Option<String>,
    sse_customer_algorithm: &Option<String>,
) -> ObjectInfo {
    object_info(
        etag.as_deref(),
        |k: &str| metadata.get(k).map(String::as_str),
        sse.as_deref(),
        sse_customer_algorithm.as_deref(),
    )
}

/// Sends one request and hands back the answer.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request`; a failure of any kind comes back as `Answer::Failed`.
    async fn send(&self, request: Request<'_>) -> Answer;
    /// How a request is named in messages (`s3Client.send (GetObject s3://b/k)`).
    fn describe(&self, operation: &str, key: &str) -> String;
}

/// `Store` over a `Transport`.
pub struct TransportStore<T>(pub T);

impl<T: Transport> TransportStore<T> {
    /// Sends `request`; an error answer becomes the engine's error.
    async fn call(&self, request: Request<'_>) -> Result<Answer> {
        let (op, key) = (request.operation(), request.key().to_owned());
        match self.0.send(request).await {
            Answer::Failed {
                code,
                status,
                message,
            } => {
                let what = self.0.describe(op, &key);
                Err(answer_error(op, &key, &what, code, status, &message, None).into())
            }
            answer => Ok(answer),
        }
    }

    fn unexpected(&self, op: &str, key: &str, answer: &Answer) -> Error {
        let what = self.0.describe(op, key);
        S3Error::new(
            op,
            key,
            "InvalidResponse",
            format!("{what} answered with {}", answer.kind()),
        )
        .into()
    }

    /// Sends a put, reporting a missing object under `If-Match` as the
    /// conflict it is.
    async fn send_put(&self, put: Put<'_>) -> Result<Option<String>> {
        let (key, conditional) = (put.key, put.if_match.is_some());
        let answer = self.call(Request::Put(put)).await;
        match missing_is_conflict(answer, conditional)? {
            Answer::Stored { etag } => Ok(etag.as_deref().map(unquote_etag)),
            other => Err(self.unexpected("PutObject", key, &other)),
        }
    }
}

#[async_trait]
impl<T: Transport> Store for TransportStore<T> {
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage> {
        match self.call(Request::List { prefix, token }).await? {
            Answer::Listed {
                objects,
                truncated,
                next_token,
            } => Ok(ListPage {
                objects: objects
                    .into_iter()
                    .map(|o| RemoteObject {
                        etag: o.etag.as_deref().map(unquote_etag),
                        ..o
                    })
                    .collect(),
                truncated,
                next_token,
            }),
            other => Err(self.unexpected("ListObjectsV2", prefix, &other)),
        }
    }

    async fn get(&self, key: &str, _size_hint: Option<u64>) -> Result<ObjectBody> {
        match self.call(Request::Get { key }).await? {
            Answer::Object {
                etag,
                metadata,
                sse,
                sse_customer_algorithm,
                body: Some(body),
            } => {
                let info = info_of(&etag, &metadata, &sse, &sse_customer_algorithm);
                let (key, what) = (key.to_owned(), self.0.describe("GetObject", key));
                let stream = body.map(move |chunk| {
                    chunk.map_err(|reason| {
                        S3Error::new(
                            "GetObject",
                            &key,
                            BODY_ERROR,
                            format!("{what} failed while reading the body: {reason}"),
                        )
                        .into()
                    })
                });
                Ok(ObjectBody::new(info, stream.boxed()))
            }
            other => Err(self.unexpected("GetObject", key, &other)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self.call(Request::Head { key }).await {
            Err(e) if e.s3().is_some_and(|s| is_not_found(&s.code, s.status)) => Ok(None),
            Ok(Answer::Object {
                etag,
                metadata,
                sse,
                sse_customer_algorithm,
                ..
            }) => Ok(Some(info_of(
                &etag,
                &metadata,
                &sse,
                &sse_customer_algorithm,
            ))),
            Ok(other) => Err(self.unexpected("HeadObject", key, &other)),
            Err(e) => Err(e),
        }
    }

    /// Sends the file with `Content-MD5` and the content hash as metadata,
    /// as the native store does; a file that is not the one hashed
    /// (changed since the scan, or while it streamed) fails with
    /// `Error::Changed`. Content-MD5 is of the whole body, sent in one PUT:
    /// for a large file, one more pass over it (this is not the native path).
    async fn put(&self, req: PutRequest<'_>) -> Result<Written> {
        // Its metadata holds the content hash: known before the first byte.
        let (hash, _) = req.hash_first().await?;
        let unhashed = matches!(req.content, Content::Unhashed { .. });
        let file = Arc::new(
            req.file
                .try_clone()
                .map_err(|e| Error::io("read", req.path, e))?,
        );
        let (path, size) = (req.path.to_path_buf(), req.stat.size);
        let (body, chunks, md5) = if size < STREAM_MIN {
            let bytes = read_part(file.clone(), path, 0, size).await?;
            let md5: [u8; 16] = Md5::digest(&bytes).into();
            // Under `PART_SIZE`, the content hash is the MD5.
            if plain_md5(&hash) != Some(md5) {
                return Err(changed_while_uploaded(req.path));
            }
            (PutBody::Bytes(bytes), None, md5)
        } else {
            let md5 = whole_md5(file.clone(), path.clone()).await?;
            let chunks = Arc::new(FileChunks {
                file: file.clone(),
                path,
                size,
                offset: Mutex::new(0),
                hasher: Mutex::new(ContentHasher::default()),
            });
            (PutBody::Chunks(chunks.clone()), Some(chunks), md5)
        };
        let etag = self
            .send_put(Put {
                key: req.key,
                body,
                size,
                content_type: req.content_type,
                content_md5: BASE64.encode(md5),
                metadata: upload_metadata(&req, Some(&hash)),
                if_match: if_match(req.condition),
                if_none_match: if_none_match(req.condition),
            })
            .await?;
        // A streamed body is checked after the fact (a stand-in client does
        // not check Content-MD5): its bytes, then the file itself.
        if chunks.is_some_and(|c| c.sent_hash() != hash) {
            return Err(changed_while_uploaded(req.path));
        }
        check_unchanged(&file, req.path, &req.stat)?;
        // Versions are not asked of a stand-in client: it has no checkpoints.
        Ok(Written {
            etag,
            version: None,
            hash: unhashed.then_some(hash),
        })
    }

    async fn delete(&self, key: &str, etag: Option<&str>) -> Result<()> {
        let if_match = etag.map(super::answers::quote_etag);
        let answer = self.call(Request::Delete { key, if_match }).await;
        match missing_is_conflict(answer, etag.is_some())? {
            Answer::Deleted => Ok(()),
            other => Err(self.unexpected("DeleteObject", key, &other)),
        }
    }
}
