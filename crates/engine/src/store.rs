//! The object store the engine syncs with. The S3 implementation is in
//! `s3.rs`; the binding may add others (a JavaScript `send()` client).

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::Result;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub key: String,
    pub size: u64,
    /// The ETag without quotes, when the server gave one.
    pub etag: Option<String>,
}

/// The body of a GET, streamed.
pub struct ObjectBody {
    pub stream: BoxStream<'static, Result<Bytes>>,
    pub etag: Option<String>,
}

/// What an upload carries besides its bytes.
#[derive(Debug, Clone)]
pub struct PutRequest<'a> {
    pub key: &'a str,
    pub file: &'a Path,
    pub size: u64,
    pub content_type: &'a str,
    /// MD5 of the file as hashed before the upload; sent as `Content-MD5` so
    /// the server refuses bytes that changed since.
    pub md5: [u8; 16],
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Every object under `prefix`, all pages. Fails rather than return a
    /// partial listing.
    async fn list(&self, prefix: &str) -> Result<Vec<RemoteObject>>;
    async fn get(&self, key: &str) -> Result<ObjectBody>;
    /// Uploads the file; returns the new ETag when the server gave one.
    async fn put(&self, req: PutRequest<'_>) -> Result<Option<String>>;
    async fn delete(&self, key: &str) -> Result<()>;
}

/// Strips the quotes S3 puts around ETags.
pub fn unquote_etag(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// The MD5 an ETag stands for, when it is a single-part ETag (32 hex digits).
/// Multipart (`…-N`) and encrypted-object ETags give `None`.
pub fn etag_md5(etag: &str) -> Option<String> {
    let e = etag.trim_matches('"');
    (e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit())).then(|| e.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert_eq!(
            etag_md5("\"D41D8CD98F00B204E9800998ECF8427E\"").as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(etag_md5("d41d8cd98f00b204e9800998ecf8427e-2"), None);
        assert_eq!(etag_md5("xyz"), None);
        assert_eq!(unquote_etag("\"abc\""), "abc");
    }
}
