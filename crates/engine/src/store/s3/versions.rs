//! Object versions, for checkpoints: whether the bucket keeps them, which
//! version of each object is current, and making an older one current again.

use std::collections::HashMap;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::types::{BucketVersioningStatus, MetadataDirective};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::probes::Probe;
use super::S3Store;
use crate::error::{Error, Result};
use crate::model::{Condition, RemoteObject};
use crate::store::answers::{if_match, if_none_match, missing_is_conflict, unquote_etag, NEW_META};
use crate::store::{CurrentVersion, Versioning, Written};

/// The largest object one CopyObject can copy (S3's limit).
const COPY_MAX: u64 = 5 << 30;

impl S3Store {
    /// GetBucketVersioning.
    pub(super) async fn bucket_versioning(&self) -> Result<Versioning> {
        let out = self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await;
        match out {
            Ok(out) => Ok(match out.status() {
                Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
                Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
                _ => Versioning::Off,
            }),
            // A 200 the SDK could not parse: some servers (moto) name the
            // root element otherwise. The status is all that is needed.
            Err(e) => match e
                .raw_response()
                .filter(|r| r.status().as_u16() == 200)
                .and_then(|r| r.body().bytes())
            {
                Some(body) => Ok(status_in(&String::from_utf8_lossy(body))),
                None => Err(self.error("GetBucketVersioning", "", e)),
            },
        }
    }

    /// ListObjectVersions, all pages, keeping each key's latest version
    /// unless it is a delete marker (those come as their own list).
    pub(super) async fn list_current_versions(&self, prefix: &str) -> Result<Vec<CurrentVersion>> {
        let mut out = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(markers.0.clone())
                .set_version_id_marker(markers.1.clone())
                .send()
                .await
                .map_err(|e| self.error("ListObjectVersions", prefix, e))?;
            out.extend(
                page.versions()
                    .iter()
                    .filter(|v| v.is_latest() == Some(true))
                    .filter_map(|v| {
                        Some(CurrentVersion {
                            object: RemoteObject {
                                key: v.key()?.to_owned(),
                                size: v.size().and_then(|s| u64::try_from(s).ok()),
                                etag: v.e_tag().map(unquote_etag),
                                last_modified: v
                                    .last_modified()
                                    .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                            },
                            version: v.version_id()?.to_owned(),
                        })
                    }),
            );
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            let next = (
                page.next_key_marker().map(str::to_owned),
                page.next_version_id_marker().map(str::to_owned),
            );
            if next.0.is_none() || next == markers {
                return Err(Error::S3(Box::new(crate::error::S3Error::new(
                    "ListObjectVersions",
                    prefix,
                    "InvalidResponse",
                    format!("listing versions of {prefix:?} failed: a truncated page came without a new marker"),
                ))));
            }
            markers = next;
        }
    }

    /// HeadObject of `key` at `version`: whether that version still exists
    /// (a delete marker, or an id the server does not know, is none).
    pub(super) async fn has_version(&self, key: &str, version: &str) -> Result<bool> {
        match self.head_version(key, version).await {
            Ok(out) => Ok(out.delete_marker() != Some(true)),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // 404: gone; 400: not a version id it knows; 405: a delete
                // marker, asked by its id.
                if matches!(status, Some(400 | 404 | 405)) {
                    Ok(false)
                } else {
                    Err(self.error("HeadObject", key, e))
                }
            }
        }
    }

    /// HeadObject of `key` at `version`, as answered.
    async fn head_version(
        &self,
        key: &str,
        version: &str,
    ) -> std::result::Result<HeadObjectOutput, SdkError<HeadObjectError, HttpResponse>> {
        self.client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
    }

    /// CopyObject of `key` at `version` onto `key` (metadata copied with
    /// it), under `condition` on what `key` holds now. A version written as
    /// new loses that mark (`NEW_META`): the restore knows the versions it
    /// goes back over (also one deleted since), and a pull must not take it
    /// for a writer that never saw the version synced there.
    pub(super) async fn copy_from_version(
        &self,
        key: &str,
        version: &str,
        size: u64,
        condition: &Condition,
    ) -> Result<Written> {
        if size > COPY_MAX {
            return Err(Error::Unsupported(format!(
                "s3://{}/{key}: a version larger than 5 GiB cannot be made current by one \
                 server-side copy; not restored",
                self.bucket
            )));
        }
        let unmarked = self.unmarked_metadata(key, version).await?;
        let condition = self.sendable_with(Probe::Copy, key, condition).await?;
        let source = format!(
            "{}/{}?versionId={}",
            self.bucket,
            encode_key(key),
            encode_key(version)
        );
        let answer = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(source)
            .set_metadata_directive(unmarked.as_ref().map(|_| MetadataDirective::Replace))
            .set_content_type(unmarked.as_ref().and_then(|u| u.0.clone()))
            .set_metadata(unmarked.map(|u| u.1))
            .set_if_match(if_match(condition))
            .set_if_none_match(if_none_match(condition))
            .send()
            .await;
        let written = self.written("CopyObject", key, answer, |out| Written {
            etag: out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(unquote_etag),
            version: out.version_id().map(str::to_owned),
            hash: None,
        });
        missing_is_conflict(written, if_match(condition).is_some())
    }

    /// The content type and metadata of `key` at `version` without
    /// `NEW_META`, if it has that mark (`None`: copied as they are).
    async fn unmarked_metadata(
        &self,
        key: &str,
        version: &str,
    ) -> Result<Option<(Option<String>, HashMap<String, String>)>> {
        let out = self
            .head_version(key, version)
            .await
            .map_err(|e| self.error("HeadObject", key, e))?;
        let mut meta = out.metadata().cloned().unwrap_or_default();
        Ok(meta
            .remove(NEW_META)
            .map(|_| (out.content_type().map(str::to_owned), meta)))
    }
}

/// The versioning status a GetBucketVersioning answer's XML states.
fn status_in(xml: &str) -> Versioning {
    if xml.contains("<Status>Enabled</Status>") {
        Versioning::Enabled
    } else if xml.contains("<Status>Suspended</Status>") {
        Versioning::Suspended
    } else {
        Versioning::Off
    }
}

/// A key (or version id) as `x-amz-copy-source` carries it: percent-encoded,
/// `/` kept.
pub(super) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_versioning_status_is_read_whatever_the_root_element() {
        use super::{status_in, Versioning};
        let moto = r#"<GetBucketVersioningResponse xmlns="x"><Status>Enabled</Status></GetBucketVersioningResponse>"#;
        assert_eq!(status_in(moto), Versioning::Enabled);
        assert_eq!(status_in("<GetBucketVersioningResponse/>"), Versioning::Off);
        assert_eq!(
            status_in("<V><Status>Suspended</Status></V>"),
            Versioning::Suspended
        );
    }

    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(super::encode_key("p/a b+ü.txt"), "p/a%20b%2B%C3%BC.txt");
    }
}
