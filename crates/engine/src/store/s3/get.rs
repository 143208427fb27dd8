//! Downloads: one GET, or ranges in parallel for large objects.

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, ChecksumType};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::error::{Error, Result, S3Error, BODY_ERROR};
use crate::hashing::PART_SIZE;
use crate::store::answers::{object_info, quote_etag, unquote_etag};
use crate::store::{Checksum, ObjectBody};
use crc_fast::CrcAlgorithm;

use super::errors::error_chain;
use super::probes::Probe;
use super::{S3Store, MIB};

/// Objects at least this large download as parallel ranged GETs, one
/// range per part of the content hash (so each range hashes on its own).
const RANGED_MIN: u64 = 32 * MIB;
const RANGE_SIZE: u64 = PART_SIZE;
const RANGES_IN_FLIGHT: usize = 6;

impl S3Store {
    /// The object, ranged when large.
    pub(super) async fn get_object(&self, key: &str, size_hint: Option<u64>) -> Result<ObjectBody> {
        match size_hint {
            Some(size) if size >= RANGED_MIN => self.get_ranged(key).await,
            _ => {
                let out = self.get_range(key, None, None).await?;
                let info = info_of!(out);
                Ok(ObjectBody::new(info, self.body_stream(key, out.body)))
            }
        }
    }

    /// A GET of the whole object, or of `bytes=start-end` (inclusive),
    /// optionally only if the object still has ETag `if_match`.
    async fn get_range(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
        if_match: Option<&str>,
    ) -> Result<GetObjectOutput> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(|(s, e)| format!("bytes={s}-{e}")))
            .set_if_match(if_match.map(quote_etag))
            .send()
            .await
            .map_err(|e| self.error("GetObject", key, e))
    }

    /// A body that broke off after the answer began (worth a retry).
    fn body_error(&self, key: &str, err: impl std::error::Error + Send + Sync + 'static) -> Error {
        let message = format!(
            "GetObject s3://{}/{key} at {} failed while reading the body: {}",
            self.bucket,
            self.endpoint,
            error_chain(&err)
        );
        S3Error::new("GetObject", key, BODY_ERROR, message)
            .with_source(err)
            .into()
    }

    fn body_stream(&self, key: &str, body: ByteStream) -> BoxStream<'static, Result<Bytes>> {
        let (this, key) = (self.clone(), key.to_owned());
        futures::stream::unfold(Some(body), move |body| {
            let (this, key) = (this.clone(), key.clone());
            async move {
                let mut body: ByteStream = body?;
                match body.next().await? {
                    Ok(chunk) => Some((Ok(chunk), Some(body))),
                    Err(e) => Some((Err(this.body_error(&key, e)), None)),
                }
            }
        })
        .boxed()
    }

    /// A large object as ranges fetched `RANGES_IN_FLIGHT` at a time and
    /// yielded in order, so the caller still hashes and writes one stream.
    /// Every range after the first must come from the same object version.
    async fn get_ranged(&self, key: &str) -> Result<ObjectBody> {
        // A ranged answer carries no whole-object checksum: asked with a
        // HEAD at the same time, where the server verifies checksums.
        let crc = async {
            match self.honours(Probe::Checksum).await {
                true => self.full_checksum(key).await,
                false => None,
            }
        };
        let (first, crc) = tokio::join!(self.get_range(key, Some((0, RANGE_SIZE - 1)), None), crc);
        let first = first?;
        let info = info_of!(first);
        // Of this very version.
        let crc = crc.filter(|(etag, _)| info.etag.as_ref() == Some(etag));
        let total = first
            .content_range()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, t)| t.parse::<u64>().ok());
        let Some(total) = total else {
            // The server sent the whole object: stream it as it is.
            return Ok(ObjectBody::new(info, self.body_stream(key, first.body)));
        };
        let head = first
            .body
            .collect()
            .await
            .map_err(|e| self.body_error(key, e))?;
        let this = self.clone();
        let (key, version) = (key.to_owned(), info.etag.clone());
        let rest = futures::stream::iter((RANGE_SIZE..total).step_by(RANGE_SIZE as usize))
            .map(move |start| {
                let (this, key, version) = (this.clone(), key.clone(), version.clone());
                async move {
                    let end = (start + RANGE_SIZE).min(total) - 1;
                    let out = this
                        .get_range(&key, Some((start, end)), version.as_deref())
                        .await?;
                    let bytes = out
                        .body
                        .collect()
                        .await
                        .map_err(|e| this.body_error(&key, e))?;
                    Ok(bytes.into_bytes())
                }
            })
            .buffered(RANGES_IN_FLIGHT);
        let stream = futures::stream::once(async move { Ok(head.into_bytes()) })
            .chain(rest)
            .boxed();
        Ok(ObjectBody {
            checksum: crc.map(|(_, crc)| crc),
            ..ObjectBody::new(info, stream)
        })
    }

    /// The object's whole-object CRC (CRC64NVME, CRC32C or CRC32) and the
    /// ETag it is of, when the server keeps one (an upload sent it, or the
    /// server computes it, as AWS does). A composite checksum (of parts:
    /// `…-N`) is none. Not known is `None`: the download is hashed instead.
    async fn full_checksum(&self, key: &str) -> Option<(String, Checksum)> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .ok()?;
        if out
            .checksum_type()
            .is_some_and(|t| *t != ChecksumType::FullObject)
        {
            return None;
        }
        let etag = unquote_etag(out.e_tag()?);
        let found = [
            (CrcAlgorithm::Crc64Nvme, out.checksum_crc64_nvme(), 8),
            (CrcAlgorithm::Crc32Iscsi, out.checksum_crc32_c(), 4),
            (CrcAlgorithm::Crc32IsoHdlc, out.checksum_crc32(), 4),
        ]
        .into_iter()
        .find_map(|(algorithm, header, len)| {
            // A composite value ends in `-N`: not base64 of `len` bytes.
            let bytes = BASE64.decode(header?).ok().filter(|b| b.len() == len)?;
            let value = bytes.iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
            Some(Checksum { algorithm, value })
        });
        found.map(|checksum| (etag, checksum))
    }
}
