//! The engine's `Transport` over a JS function (`lib/send-store.js`, which
//! sends each request as the SDK command a client's `send()` expects). Only
//! values are converted here: what an answer means is the engine's
//! (`engine::store::transport`).
//!
//! Bodies stream both ways: a download is pushed chunk by chunk into a
//! `BodySink` (with backpressure), a large upload is pulled chunk by chunk
//! from a `FileSource` reading the checked file handle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use engine::model::RemoteObject;
use engine::store::transport::{Answer, FileChunks, PutBody, Request, Transport};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::mpsc;

use crate::js_callback::{call_and_await, JsCallback};

/// One S3 request for a `send()` client; `op` says which.
#[napi(
    discriminant = "op",
    discriminant_case = "lowercase",
    object_from_js = false
)]
pub enum StoreRequest {
    /// `ListObjectsV2` of `prefix`, from `token` on.
    List {
        prefix: String,
        token: Option<String>,
    },
    /// `GetObject`: the body goes to `sink`.
    Get { key: String, sink: BodySink },
    /// `HeadObject`.
    Head { key: String },
    /// `PutObject` of `size` bytes: `body` holds a small file whole,
    /// `source` streams a large one; `contentMd5` is base64.
    Put {
        key: String,
        body: Option<Buffer>,
        source: Option<FileSource>,
        size: f64,
        content_type: String,
        content_md5: String,
        metadata: HashMap<String, String>,
        if_match: Option<String>,
        if_none_match: Option<String>,
    },
    /// `DeleteObject`.
    Delete {
        key: String,
        if_match: Option<String>,
    },
}

/// One object of a listing page, as the client gave it.
#[napi(object)]
pub struct StoreObject {
    pub key: String,
    pub size: Option<f64>,
    pub etag: Option<String>,
    /// Milliseconds since the epoch.
    pub last_modified: Option<f64>,
}

/// What the client answered, as it came; `kind` says what.
#[napi(
    discriminant = "kind",
    discriminant_case = "lowercase",
    object_to_js = false
)]
pub enum StoreAnswer {
    /// A listing page.
    Listed {
        objects: Vec<StoreObject>,
        truncated: bool,
        next_token: Option<String>,
    },
    /// A GET's (its body streams into the sink) or HEAD's answer, with its
    /// `ServerSideEncryption` and `SSECustomerAlgorithm`.
    Object {
        etag: Option<String>,
        metadata: Option<HashMap<String, String>>,
        sse: Option<String>,
        sse_customer_algorithm: Option<String>,
    },
    /// A PUT's answer.
    Stored { etag: Option<String> },
    /// A DELETE's answer.
    Deleted,
    /// What `send()` threw: the exception's name (or S3 code), the HTTP
    /// status and the message.
    Failed {
        code: String,
        status: Option<u32>,
        message: String,
    },
}

/// Receives a download's body from JS, one chunk at a time.
#[napi]
pub struct BodySink {
    tx: Mutex<Option<mpsc::Sender<std::result::Result<Bytes, String>>>>,
}

#[napi]
impl BodySink {
    fn take(&self) -> Option<mpsc::Sender<std::result::Result<Bytes, String>>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take()
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
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
        self.take();
    }

    /// The body broke off (`reason`): the download fails (and is tried again).
    #[napi]
    pub fn fail<'env>(&self, env: &'env Env, reason: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let tx = self.take();
        env.spawn_future(async move {
            if let Some(tx) = tx {
                let _ = tx.send(Err(reason)).await;
            }
            Ok(())
        })
    }
}

/// A large upload's body, read from the checked file handle (see the
/// engine's `FileChunks`).
#[napi]
pub struct FileSource(Arc<FileChunks>);

#[napi]
impl FileSource {
    /// The next chunk, or `null` at the end.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn read<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<Buffer>>> {
        let chunks = self.0.clone();
        env.spawn_future(async move {
            let chunk = chunks
                .next()
                .await
                .map_err(|e| napi::Error::from_reason(e.to_string()))?;
            Ok(chunk.map(|b| Buffer::from(b.to_vec())))
        })
    }
}

/// The JS function that sends requests, and the bucket (for messages).
pub struct JsTransport {
    pub send: JsCallback<StoreRequest, Promise<StoreAnswer>>,
    pub bucket: String,
}

fn js_request(request: Request<'_>, sink: Option<BodySink>) -> StoreRequest {
    match request {
        Request::List { prefix, token } => StoreRequest::List {
            prefix: prefix.to_owned(),
            token: token.map(str::to_owned),
        },
        Request::Get { key } => StoreRequest::Get {
            key: key.to_owned(),
            sink: sink.expect("a GET has a sink"),
        },
        Request::Head { key } => StoreRequest::Head {
            key: key.to_owned(),
        },
        Request::Put(put) => {
            let (body, source) = match put.body {
                PutBody::Bytes(bytes) => (Some(Buffer::from(bytes.to_vec())), None),
                PutBody::Chunks(chunks) => (None, Some(FileSource(chunks))),
            };
            StoreRequest::Put {
                key: put.key.to_owned(),
                body,
                source,
                size: put.size as f64,
                content_type: put.content_type.to_owned(),
                content_md5: put.content_md5,
                metadata: put.metadata,
                if_match: put.if_match,
                if_none_match: put.if_none_match,
            }
        }
        Request::Delete { key, if_match } => StoreRequest::Delete {
            key: key.to_owned(),
            if_match,
        },
    }
}

/// A listing's number as a size or a time, when it is one.
fn non_negative(n: Option<f64>) -> Option<u64> {
    n.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64)
}

#[async_trait]
impl Transport for JsTransport {
    async fn send(&self, request: Request<'_>) -> Answer {
        let (sink, body) = match request {
            Request::Get { .. } => {
                let (tx, rx) = mpsc::channel(4);
                let body = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|chunk| (chunk, rx))
                });
                let sink = BodySink {
                    tx: Mutex::new(Some(tx)),
                };
                (Some(sink), Some(Box::pin(body) as _))
            }
            _ => (None, None),
        };
        let answer = match call_and_await(&self.send, js_request(request, sink)).await {
            Ok(answer) => answer,
            Err(e) => StoreAnswer::Failed {
                code: "Unknown".into(),
                status: None,
                message: e.reason.clone(),
            },
        };
        match answer {
            StoreAnswer::Listed {
                objects,
                truncated,
                next_token,
            } => Answer::Listed {
                objects: objects
                    .into_iter()
                    .map(|o| RemoteObject {
                        key: o.key,
                        size: non_negative(o.size),
                        etag: o.etag,
                        last_modified: non_negative(o.last_modified)
                            .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)),
                    })
                    .collect(),
                truncated,
                next_token,
            },
            StoreAnswer::Object {
                etag,
                metadata,
                sse,
                sse_customer_algorithm,
            } => Answer::Object {
                etag,
                metadata: metadata.unwrap_or_default(),
                sse,
                sse_customer_algorithm,
                body,
            },
            StoreAnswer::Stored { etag } => Answer::Stored { etag },
            StoreAnswer::Deleted => Answer::Deleted,
            StoreAnswer::Failed {
                code,
                status,
                message,
            } => Answer::Failed {
                code,
                status: status.and_then(|s| u16::try_from(s).ok()),
                message,
            },
        }
    }

    fn describe(&self, operation: &str, key: &str) -> String {
        format!("s3Client.send ({operation} s3://{}/{key})", self.bucket)
    }
}
