//! `Store` on Amazon S3 (or any S3-compatible server) through aws-sdk-s3.
//! What the server honours is probed in `probes`.

/// What a GET's or HEAD's output says of the object (the two outputs have
/// the same accessors, but no trait in common).
macro_rules! info_of {
    ($out:expr) => {{
        let out = &$out;
        let mut info = object_info(
            out.e_tag(),
            |k: &str| out.metadata().and_then(|m| m.get(k)).map(String::as_str),
            out.server_side_encryption().map(|s| s.as_str()),
            out.sse_customer_algorithm(),
        );
        info.version = out.version_id().map(str::to_owned);
        info
    }};
}

mod confirm;
mod connect;
mod delete;
mod errors;
mod get;
mod http;
mod pacer;
mod probes;
mod put;
mod retry;
mod socket;
mod stall;
mod versions;

pub use connect::{https_client, S3Settings};
pub use probes::ConditionalWrites;
use probes::Honoured;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;

use crate::error::{Result, Warning};
use crate::model::{Condition, RemoteObject};
use crate::store::answers::{object_info, unquote_etag};
use crate::store::{
    CurrentVersion, ListPage, ObjectBody, ObjectInfo, PutRequest, Store, VersionCopy, Versioning,
    Written,
};

/// `Store` on one bucket of S3 or an S3-compatible server (see `connect`).
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Where requests go, and in which region, for error messages.
    endpoint: String,
    region: String,
    /// Aborts of dropped multipart uploads still being sent (see `settle`).
    aborting: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    scratch: Option<String>,
    /// Which conditions the server was found to honour.
    honoured: Arc<Honoured>,
    conditional_writes: ConditionalWrites,
    /// How long a response body may send nothing before it is asked again
    /// from where it stopped (`get`).
    stall: Duration,
}

impl S3Store {
    /// One page of ListObjectsV2 (of at most `max` keys, when given).
    async fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        max: Option<usize>,
    ) -> Result<ListPage> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_continuation_token(token.map(str::to_owned))
            .set_max_keys(max.map(|m| i32::try_from(m).unwrap_or(i32::MAX)))
            .send()
            .await
            .map_err(|e| self.error("ListObjectsV2", prefix, e))?;
        Ok(ListPage {
            objects: page
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(RemoteObject {
                        key: o.key()?.to_owned(),
                        size: o.size().and_then(|s| u64::try_from(s).ok()),
                        etag: o.e_tag().map(unquote_etag),
                        last_modified: o
                            .last_modified()
                            .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                    })
                })
                .collect(),
            truncated: page.is_truncated().unwrap_or(false),
            next_token: page.next_continuation_token().map(str::to_owned),
        })
    }
}

const MIB: u64 = 1024 * 1024;

/// Longest wait for clean-up requests when an operation is cancelled (it
/// must still end within a second).
const SETTLE_MAX: Duration = Duration::from_millis(600);

#[async_trait]
impl Store for S3Store {
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage> {
        self.list(prefix, token, None).await
    }

    async fn get(&self, key: &str, size_hint: Option<u64>) -> Result<ObjectBody> {
        self.get_object(key, size_hint).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().and_then(|n| u64::try_from(n).ok()),
                ..info_of!(out)
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(self.error("HeadObject", key, e)),
        }
    }

    async fn put(&self, req: PutRequest<'_>) -> Result<Written> {
        self.put_object(req).await
    }

    async fn list_first(&self, prefix: &str, max: usize) -> Result<ListPage> {
        self.list(prefix, None, Some(max)).await
    }

    async fn versioning(&self) -> Result<Versioning> {
        self.bucket_versioning().await
    }

    async fn current_versions(&self, prefix: &str) -> Result<Vec<CurrentVersion>> {
        self.list_current_versions(prefix).await
    }

    async fn version_exists(&self, key: &str, version: &str) -> Result<bool> {
        self.has_version(key, version).await
    }

    async fn copy_version(&self, copy: VersionCopy<'_>) -> Result<Written> {
        self.copy_from_version(copy.key, copy.version, copy.size, copy.condition)
            .await
    }

    async fn abort_abandoned_uploads(&self, prefix: &str, age: Duration) -> Result<usize> {
        self.abort_uploads_older(prefix, age).await
    }

    async fn delete_many(&self, objects: &[(String, Option<String>)]) -> Vec<(String, Result<()>)> {
        self.delete_objects(objects).await
    }

    fn take_warnings(&self) -> Vec<Warning> {
        self.take_notes()
    }

    async fn check_conditions(&self) -> Result<()> {
        S3Store::check_conditions(self).await
    }

    async fn conditions_applied(&self) -> bool {
        self.trusted().await
    }

    /// Up to `SETTLE_MAX` for the aborts of dropped multipart uploads and
    /// the deletion of probe objects.
    async fn settle(&self) {
        let pending: Vec<_> =
            std::mem::take(&mut *self.aborting.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::time::timeout(SETTLE_MAX, futures::future::join_all(pending)).await;
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<()> {
        let wanted = if_match.map_or(Condition::None, |e| Condition::IfMatch(e.to_owned()));
        match self.sendable(key, &wanted).await? {
            Condition::IfMatch(etag) => self.delete_raw(key, Some(etag)).await,
            _ => self.delete_raw(key, None).await,
        }
    }
}
