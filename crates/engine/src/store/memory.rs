//! A `Store` in memory, with S3's semantics where the engine relies on
//! them: ordered, paginated listings; ETags that are the MD5 of the body;
//! conditional puts and deletes. For tests of the engine without a server
//! (it shares the store-conformance suite with the real stores).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use md5::{Digest, Md5};

use super::{Content, ListPage, ObjectBody, ObjectInfo, PutRequest, Store, Written};

use crate::error::{Error, Result, S3Error};
use crate::hashing::hash_bytes;
use crate::model::{Condition, RemoteObject};

/// Bodies are streamed in chunks of this size, yielding between them, so
/// concurrent tests can interleave with a download.
const CHUNK: usize = 4096;

/// A `Store` that keeps its objects in memory, for tests (see the module
/// docs).
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Bytes, String)>>,
    page_size: usize,
}

impl MemoryStore {
    /// An empty store whose listings return `page_size` keys a page.
    pub fn new(page_size: usize) -> Self {
        MemoryStore {
            objects: Mutex::default(),
            page_size: page_size.max(1),
        }
    }

    /// Stores `body` at `key` unconditionally (as another client would).
    pub fn insert(&self, key: &str, body: impl Into<Bytes>) -> String {
        let body = body.into();
        let etag = hex::encode(Md5::digest(&body));
        self.lock().insert(key.to_owned(), (body, etag.clone()));
        etag
    }

    /// The body at `key`, if any.
    pub fn body(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key).map(|(b, _)| b.clone())
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, String)>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conflict(key: &str) -> Error {
        Error::Conflict(format!("{key}: PreconditionFailed"))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage> {
        let objects = self.lock();
        let after = token.unwrap_or("");
        let mut page: Vec<RemoteObject> = objects
            .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .filter(|(k, _)| k.starts_with(prefix))
            .take(self.page_size + 1)
            .map(|(k, (body, etag))| RemoteObject {
                key: k.clone(),
                size: Some(body.len() as u64),
                etag: Some(etag.clone()),
                last_modified: None,
            })
            .collect();
        let truncated = page.len() > self.page_size;
        page.truncate(self.page_size);
        let next_token = truncated
            .then(|| page.last().map(|o| o.key.clone()))
            .flatten();
        Ok(ListPage {
            objects: page,
            truncated,
            next_token,
        })
    }

    async fn get(&self, key: &str, _size_hint: Option<u64>) -> Result<ObjectBody> {
        let (body, etag) = self.lock().get(key).cloned().ok_or_else(|| {
            S3Error::new(
                "GetObject",
                key,
                "NoSuchKey",
                format!("GetObject {key} failed: NoSuchKey"),
            )
            .with_status(Some(404))
        })?;
        let chunks: Vec<Bytes> = (0..body.len().div_ceil(CHUNK).max(1))
            .map(|i| body.slice(i * CHUNK..((i + 1) * CHUNK).min(body.len())))
            .collect();
        let stream = futures::stream::iter(chunks).then(|chunk| async move {
            tokio::task::yield_now().await;
            Ok(chunk)
        });
        let info = ObjectInfo {
            etag: Some(etag),
            hash: None,
            etag_is_md5: true,
            version: None,
            size: None,
            token: None,
            written_new: false,
        };
        Ok(ObjectBody::new(info, Box::pin(stream)))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        Ok(self.lock().get(key).map(|(body, etag)| ObjectInfo {
            etag: Some(etag.clone()),
            hash: None,
            etag_is_md5: true,
            version: None,
            size: Some(body.len() as u64),
            token: None,
            written_new: false,
        }))
    }

    async fn put(&self, req: PutRequest<'_>) -> Result<Written> {
        let mut body = vec![0u8; req.stat.size as usize];
        #[cfg(unix)]
        std::os::unix::fs::FileExt::read_exact_at(req.file, &mut body, 0)
            .map_err(|e| Error::io("read", req.path, e))?;
        #[cfg(not(unix))]
        std::io::Read::read_exact(&mut &*req.file, &mut body)
            .map_err(|e| Error::io("read", req.path, e))?;
        // The ETag S3 gives an upload of this engine: its content hash.
        let etag = hash_bytes(&body);
        let unhashed = matches!(req.content, Content::Unhashed { .. });
        if !unhashed && req.content != Content::Hashed(&etag) {
            return Err(S3Error::new(
                "PutObject",
                req.key,
                "BadDigest",
                format!("PutObject {}: BadDigest", req.key),
            )
            .with_status(Some(400))
            .into());
        }
        let mut objects = self.lock();
        let current = objects.get(req.key).map(|(_, etag)| etag.as_str());
        match (req.condition, current) {
            (Condition::IfNoneMatch, Some(_)) => return Err(Self::conflict(req.key)),
            (Condition::IfMatch(want), have) if have != Some(want.as_str()) => {
                return Err(Self::conflict(req.key))
            }
            _ => {}
        }
        objects.insert(req.key.to_owned(), (Bytes::from(body), etag.clone()));
        Ok(Written {
            hash: unhashed.then(|| etag.clone()),
            etag: Some(etag),
            version: None,
        })
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<()> {
        let mut objects = self.lock();
        if let Some(want) = if_match {
            if objects.get(key).map(|(_, e)| e.as_str()) != Some(want) {
                return Err(Self::conflict(key));
            }
        }
        objects.remove(key);
        Ok(())
    }
}
