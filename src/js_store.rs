//! A `Store` that drives a JS object with a `send()` method (a stand-in
//! S3 client in a user's tests, a client whose `send` is stubbed, or a real
//! S3Client with customisations the native client would bypass). The JS
//! side turns each request into the SDK command the client expects.
//!
//! Bodies stream both ways: a download is pushed chunk by chunk into a
//! `BodySink` (with backpressure), a large upload is pulled chunk by chunk
//! from a `FileSource` reading the checked file handle.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use engine::error::{S3Error, BODY_ERROR};
use engine::hashing::{parse_hash, plain_md5, ContentHasher, PART_SIZE};
use engine::local::md5_reader;
use engine::local::{read_at, Dir};
use engine::model::{Condition, RemoteObject};
use engine::store::{
    missing_is_conflict, unquote_etag, ListPage, ObjectBody, ObjectInfo, PutRequest, Store,
};
use engine::{Error, Result};
use md5::{Digest, Md5};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::mpsc;

use crate::js_callback::{call_and_await, JsCallback};

#[napi(string_enum = "lowercase")]
pub enum StoreOp {
    List,
    Get,
    Head,
    Put,
    Delete,
}

impl StoreOp {
    /// The S3 operation it stands for, for errors.
    fn operation(&self) -> &'static str {
        match self {
            StoreOp::List => "ListObjectsV2",
            StoreOp::Get => "GetObject",
            StoreOp::Head => "HeadObject",
            StoreOp::Put => "PutObject",
            StoreOp::Delete => "DeleteObject",
        }
    }
}

#[napi(object, object_from_js = false)]
pub struct StoreRequest {
    pub op: StoreOp,
    /// The key, or the prefix of a listing.
    pub key: String,
    /// `list`: the continuation token.
    pub token: Option<String>,
    /// `put`: the whole body, for files under `STREAM_MIN` (a Buffer, as
    /// upstream sent); larger ones come through `source`.
    pub body: Option<Buffer>,
    /// `put`: the body of a large file, read chunk by chunk.
    pub source: Option<FileSource>,
    /// `put`: the body's length in bytes.
    pub size: Option<f64>,
    pub content_type: Option<String>,
    /// `put`: base64 MD5 of the body, for `Content-MD5`.
    pub content_md5: Option<String>,
    /// `put`: the content hash of the body (see the engine's `hashing`),
    /// kept as `s3ws-md5` metadata.
    pub md5: Option<String>,
    /// `put`/`delete`: only if the object still has this ETag.
    pub if_match: Option<String>,
    /// `put`: only if there is no object.
    pub if_none_match: Option<bool>,
    /// `get`: where the body goes.
    pub sink: Option<BodySink>,
}

impl StoreRequest {
    fn new(op: StoreOp, key: &str) -> Self {
        StoreRequest {
            op,
            key: key.to_owned(),
            token: None,
            body: None,
            source: None,
            size: None,
            content_type: None,
            content_md5: None,
            md5: None,
            if_match: None,
            if_none_match: None,
            sink: None,
        }
    }
}

#[napi(object)]
pub struct StoreObject {
    pub key: String,
    pub size: Option<f64>,
    pub etag: Option<String>,
    /// Milliseconds since the epoch.
    pub last_modified: Option<f64>,
}

/// What `send()` threw: the SDK exception's name, status and message.
#[napi(object)]
pub struct StoreError {
    pub code: String,
    pub status: Option<u32>,
    pub message: String,
}

#[napi(object, object_to_js = false)]
pub struct StoreReply {
    pub objects: Option<Vec<StoreObject>>,
    pub truncated: Option<bool>,
    pub next_token: Option<String>,
    pub etag: Option<String>,
    /// `get`/`head`: the content hash kept in the object's metadata.
    pub md5: Option<String>,
    /// `head`: there is no such object.
    pub missing: Option<bool>,
    /// `put`/`delete`: a condition did not hold (HTTP 412); nothing changed.
    pub precondition_failed: Option<bool>,
    /// `get`/`head`: the object is encrypted with a KMS or customer key, so
    /// its ETag is not the MD5 of its bytes.
    pub encrypted_etag: Option<bool>,
    /// The request failed.
    pub error: Option<StoreError>,
}

/// Receives a download's body from JS, one chunk at a time.
#[napi]
pub struct BodySink {
    tx: Mutex<Option<mpsc::Sender<Result<Bytes>>>>,
    key: String,
}

#[napi]
impl BodySink {
    fn sender(&self) -> Option<mpsc::Sender<Result<Bytes>>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Hands a chunk over; resolves once the engine took it (backpressure).
    /// `false`: the engine stopped reading; the body should be destroyed.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn write<'env>(
        &self,
        env: &'env Env,
        chunk: Buffer,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let bytes = Bytes::copy_from_slice(&chunk);
        let tx = self.sender();
        env.spawn_future(async move {
            Ok(match tx {
                Some(tx) => tx.send(Ok(bytes)).await.is_ok(),
                None => false,
            })
        })
    }

    /// The body is complete.
    #[napi]
    pub fn end(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The body broke off: the download fails (and is tried again).
    #[napi]
    pub fn fail<'env>(
        &self,
        env: &'env Env,
        message: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let error = S3Error::new(
            "GetObject",
            &self.key,
            BODY_ERROR,
            format!(
                "s3Client.send (GetObject {}) failed while reading the body: {message}",
                self.key
            ),
        );
        env.spawn_future(async move {
            if let Some(tx) = tx {
                let _ = tx.send(Err(error.into())).await;
            }
            Ok(())
        })
    }
}

/// Chunk size of streamed uploads.
const CHUNK: u64 = 1024 * 1024;
/// Files at least this large upload as a stream; smaller ones as a Buffer,
/// checked against their content hash, which below this size is their MD5.
const STREAM_MIN: u64 = PART_SIZE;

/// A large upload's body, read from the checked file handle in order and
/// hashed on the way (JS reads one chunk at a time) to be checked against
/// the content hash afterwards.
#[napi]
pub struct FileSource {
    file: Arc<File>,
    path: PathBuf,
    size: u64,
    offset: Mutex<u64>,
    hasher: Arc<Mutex<ContentHasher>>,
}

#[napi]
impl FileSource {
    /// The next chunk, or `null` at the end.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn read<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<Buffer>>> {
        let (offset, len) = {
            let mut at = self.offset.lock().unwrap_or_else(|p| p.into_inner());
            let len = CHUNK.min(self.size - *at);
            let offset = *at;
            *at += len;
            (offset, len)
        };
        let (file, path, hasher) = (self.file.clone(), self.path.clone(), self.hasher.clone());
        env.spawn_future(async move {
            if len == 0 {
                return Ok(None);
            }
            let bytes = tokio::task::spawn_blocking(move || {
                let bytes = read_at(&file, &path, offset, len)?;
                hasher
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .update(&bytes);
                Ok::<_, Error>(bytes)
            })
            .await
            .map_err(|e| napi::Error::from_reason(e.to_string()))?
            .map_err(|e| napi::Error::from_reason(e.to_string()))?;
            Ok(Some(Buffer::from(bytes.to_vec())))
        })
    }
}

pub struct JsStore {
    pub send: JsCallback<StoreRequest, Promise<StoreReply>>,
    /// For messages.
    pub bucket: String,
}

impl JsStore {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply> {
        let (operation, key) = (req.op.operation(), req.key.clone());
        let failed = |code: String, status: Option<u32>, message: String| -> Error {
            let mut text = format!(
                "s3Client.send ({operation} s3://{}/{key}) failed: {code}: {}",
                self.bucket,
                message.trim_end_matches('.')
            );
            if let Some(hint) = S3Error::hint(&code, &message, None) {
                text = format!("{text}. {hint}");
            }
            S3Error::new(operation, &key, code, text)
                .with_status(status.and_then(|s| u16::try_from(s).ok()))
                .into()
        };
        let reply = call_and_await(&self.send, req)
            .await
            .map_err(|e| failed("Unknown".into(), None, e.reason.clone()))?;
        match reply.error {
            Some(e) if e.status == Some(412) || e.code == "PreconditionFailed" => {
                Err(Error::Conflict(format!(
                    "s3Client.send ({operation} {key}): PreconditionFailed"
                )))
            }
            Some(e) => Err(failed(e.code, e.status, e.message)),
            None => Ok(reply),
        }
    }
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

#[async_trait]
impl Store for JsStore {
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage> {
        let reply = self
            .call(StoreRequest {
                token: token.map(str::to_owned),
                ..StoreRequest::new(StoreOp::List, prefix)
            })
            .await?;
        Ok(ListPage {
            objects: reply
                .objects
                .unwrap_or_default()
                .into_iter()
                .map(|o| RemoteObject {
                    key: o.key,
                    size: o
                        .size
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| s as u64),
                    etag: o.etag.map(|e| unquote_etag(&e)),
                    last_modified: o
                        .last_modified
                        .filter(|ms| ms.is_finite() && *ms >= 0.0)
                        .map(|ms| {
                            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)
                        }),
                })
                .collect(),
            truncated: reply.truncated.unwrap_or(false),
            next_token: reply.next_token,
        })
    }

    async fn get(&self, key: &str, _size_hint: Option<u64>) -> Result<ObjectBody> {
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(4);
        let sink = BodySink {
            tx: Mutex::new(Some(tx)),
            key: key.to_owned(),
        };
        let reply = self
            .call(StoreRequest {
                sink: Some(sink),
                ..StoreRequest::new(StoreOp::Get, key)
            })
            .await?;
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        Ok(ObjectBody {
            stream: Box::pin(stream),
            etag: reply.etag.map(|e| unquote_etag(&e)),
            hash: reply.md5.as_deref().and_then(parse_hash),
            etag_is_md5: reply.encrypted_etag != Some(true),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let reply = self.call(StoreRequest::new(StoreOp::Head, key)).await?;
        if reply.missing == Some(true) {
            return Ok(None);
        }
        Ok(Some(ObjectInfo {
            etag: reply.etag.map(|e| unquote_etag(&e)),
            hash: reply.md5.as_deref().and_then(parse_hash),
            etag_is_md5: reply.encrypted_etag != Some(true),
        }))
    }

    /// Sends the file with `Content-MD5` and the `s3ws-md5` metadata, as the
    /// native client does; a file that is not the one hashed (changed since
    /// the scan, or while it streamed) fails with `FILE_CHANGED`.
    async fn put(&self, req: PutRequest<'_>) -> Result<Option<String>> {
        let changed = || {
            Error::Changed(format!(
                "{} changed while it was uploaded",
                req.path.display()
            ))
        };
        let file = Arc::new(
            req.file
                .try_clone()
                .map_err(|e| Error::io("read", req.path, e))?,
        );
        let (path, size) = (req.path.to_path_buf(), req.stat.size);
        let hasher = Arc::new(Mutex::new(ContentHasher::default()));
        // Content-MD5 is the MD5 of the whole body, sent in one PUT: for a
        // large file, one more pass over it (this is not the native path).
        let (body, source, md5) = if size < STREAM_MIN {
            let (file, path) = (file.clone(), path.clone());
            let bytes = tokio::task::spawn_blocking(move || read_at(&file, &path, 0, size))
                .await
                .map_err(|e| Error::Io(format!("read task failed: {e}")))??;
            // Under `PART_SIZE`, the content hash is the MD5.
            let md5: [u8; 16] = Md5::digest(&bytes).into();
            if plain_md5(req.hash) != Some(md5) {
                return Err(changed());
            }
            (Some(Buffer::from(bytes.to_vec())), None, md5)
        } else {
            let (whole, shown) = (file.clone(), path.clone());
            let md5 = tokio::task::spawn_blocking(move || {
                (&*whole)
                    .seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io("read", &shown, e))?;
                md5_reader(&whole, &shown)
            })
            .await
            .map_err(|e| Error::Io(format!("read task failed: {e}")))??;
            let source = FileSource {
                file: file.clone(),
                path,
                size,
                offset: Mutex::new(0),
                hasher: hasher.clone(),
            };
            (None, Some(source), md5)
        };
        let streamed = source.is_some();
        let (if_match, if_none_match) = match req.condition {
            Condition::None => (None, None),
            Condition::IfMatch(etag) => (Some(quoted(etag)), None),
            Condition::IfNoneMatch => (None, Some(true)),
        };
        let conditional = if_match.clone();
        let reply = self
            .call(StoreRequest {
                body,
                source,
                size: Some(size as f64),
                content_type: Some(req.content_type.into()),
                content_md5: Some(BASE64.encode(md5)),
                md5: Some(req.hash.to_owned()),
                if_match,
                if_none_match,
                ..StoreRequest::new(StoreOp::Put, req.key)
            })
            .await;
        let reply = missing_is_conflict(reply, conditional.as_deref())?;
        // A streamed body is checked after the fact (a stand-in client does
        // not check Content-MD5): its bytes, then the file itself.
        let sent = std::mem::take(&mut *hasher.lock().unwrap_or_else(|p| p.into_inner())).finish();
        if streamed && sent != req.hash {
            return Err(changed());
        }
        if Dir::file_stat(&file).ok() != Some(req.stat) {
            return Err(changed());
        }
        Ok(reply.etag.map(|e| unquote_etag(&e)))
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<()> {
        let result = self
            .call(StoreRequest {
                if_match: if_match.map(quoted),
                ..StoreRequest::new(StoreOp::Delete, key)
            })
            .await;
        missing_is_conflict(result.map(drop), if_match)
    }
}
