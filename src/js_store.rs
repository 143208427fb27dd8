//! A `Store` that drives a JS object with a `send()` method (a stand-in
//! S3 client in a user's tests, or a client whose `send` is stubbed). The JS
//! side turns each request into the SDK command the user's mock expects.

use async_trait::async_trait;
use bytes::Bytes;
use engine::store::{Condition, ListPage, ObjectBody, ObjectInfo, PutRequest, RemoteObject, Store};
use engine::{Error, Result};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;

#[napi(object)]
#[derive(Default)]
pub struct StoreRequest {
    /// `list`, `get`, `head`, `put` or `delete`.
    pub op: String,
    pub key: Option<String>,
    pub token: Option<String>,
    /// Local file to upload (`put`).
    pub path: Option<String>,
    pub content_type: Option<String>,
    /// `put`/`delete`: only if the object still has this ETag.
    pub if_match: Option<String>,
    /// `put`: only if there is no object.
    pub if_none_match: Option<bool>,
}

#[napi(object)]
pub struct StoreObject {
    pub key: String,
    pub size: Option<f64>,
    pub etag: Option<String>,
    /// Milliseconds since the epoch.
    pub last_modified: Option<f64>,
}

#[napi(object)]
pub struct StoreReply {
    pub objects: Option<Vec<StoreObject>>,
    pub truncated: Option<bool>,
    pub next_token: Option<String>,
    pub body: Option<Buffer>,
    pub etag: Option<String>,
    /// `head`: the MD5 kept in the object's metadata.
    pub md5: Option<String>,
    /// `head`: there is no such object.
    pub missing: Option<bool>,
    /// `put`/`delete`: a condition did not hold (HTTP 412); nothing changed.
    pub precondition_failed: Option<bool>,
    /// `get`/`head`: the object is encrypted with a KMS or customer key, so
    /// its ETag is not the MD5 of its bytes.
    pub encrypted_etag: Option<bool>,
}

pub type StoreFn =
    ThreadsafeFunction<StoreRequest, Promise<StoreReply>, StoreRequest, Status, false, true>;

pub struct JsStore(pub StoreFn);

impl JsStore {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply> {
        let what = format!("{} {}", req.op, req.key.as_deref().unwrap_or(""));
        let failed =
            |e: napi::Error| Error::S3(format!("s3Client.send ({what}) failed: {}", e.reason));
        self.0
            .call_async_catch(req)
            .await
            .map_err(failed)?
            .await
            .map_err(failed)
    }
}

/// A failed condition, as the engine's conflict error.
fn precondition(reply: &StoreReply, op: &str, key: &str) -> Result<()> {
    if reply.precondition_failed == Some(true) {
        return Err(Error::Conflict(format!(
            "s3Client.send ({op} {key}): PreconditionFailed"
        )));
    }
    Ok(())
}

#[async_trait]
impl Store for JsStore {
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage> {
        let reply = self
            .call(StoreRequest {
                op: "list".into(),
                key: Some(prefix.into()),
                token: token.map(str::to_owned),
                ..StoreRequest::default()
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
                    etag: o.etag.map(|e| engine::store::unquote_etag(&e)),
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
        let reply = self
            .call(StoreRequest {
                op: "get".into(),
                key: Some(key.into()),
                ..StoreRequest::default()
            })
            .await?;
        let body = Bytes::copy_from_slice(reply.body.as_deref().unwrap_or_default());
        Ok(ObjectBody {
            stream: Box::pin(futures::stream::once(async move { Ok(body) })),
            etag: reply.etag.map(|e| engine::store::unquote_etag(&e)),
            md5: None,
            etag_is_md5: reply.encrypted_etag != Some(true),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let reply = self
            .call(StoreRequest {
                op: "head".into(),
                key: Some(key.into()),
                ..StoreRequest::default()
            })
            .await?;
        if reply.missing == Some(true) {
            return Ok(None);
        }
        Ok(Some(ObjectInfo {
            etag: reply.etag.map(|e| engine::store::unquote_etag(&e)),
            md5: reply.md5,
            etag_is_md5: reply.encrypted_etag != Some(true),
        }))
    }

    async fn put(&self, req: PutRequest<'_>) -> Result<Option<String>> {
        let (if_match, if_none_match) = match req.condition {
            Condition::None => (None, None),
            Condition::IfMatch(etag) => (Some(format!("\"{etag}\"")), None),
            Condition::IfNoneMatch => (None, Some(true)),
        };
        let reply = self
            .call(StoreRequest {
                op: "put".into(),
                key: Some(req.key.into()),
                path: Some(req.path.to_string_lossy().into_owned()),
                content_type: Some(req.content_type.into()),
                if_match,
                if_none_match,
                ..StoreRequest::default()
            })
            .await?;
        precondition(&reply, "put", req.key)?;
        Ok(reply.etag.map(|e| engine::store::unquote_etag(&e)))
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<()> {
        let reply = self
            .call(StoreRequest {
                op: "delete".into(),
                key: Some(key.into()),
                if_match: if_match.map(|e| format!("\"{e}\"")),
                ..StoreRequest::default()
            })
            .await?;
        precondition(&reply, "delete", key)
    }
}
