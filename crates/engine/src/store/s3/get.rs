//! Downloads: one GET, or ranges in parallel for large objects.

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, ChecksumType};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::BytesMut;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use std::sync::Arc;

use tokio_util::task::AbortOnDropHandle;

use crate::error::{Error, Result, S3Error, BODY_ERROR};
use crate::hashing::{is_composite, PART_SIZE};
use crate::store::answers::{object_info, quote_etag, unquote_etag};
use crate::store::life::Life;
use crate::store::{Checksum, ObjectBody, Piece};
use crc_fast::CrcAlgorithm;

use super::errors::error_chain;
use super::probes::Probe;
use super::{S3Store, MIB};

/// Objects at least this large download as parallel ranged GETs: a first
/// range (whose answer gives the size and the version the others must be
/// of), then the rest in up to `RANGES_IN_FLIGHT` streams at once.
const RANGED_MIN: u64 = 32 * MIB;
const FIRST_RANGE: u64 = PART_SIZE;
const MAX_RANGE: u64 = 64 * MIB;
/// The ranges of a body hashed in order (see `get_ranged`).
const IN_ORDER_RANGE: u64 = 8 * MIB;
/// Ranges streamed side by side (each holds a piece in memory, not the
/// range).
const RANGES_IN_FLIGHT: usize = 8;
/// The size of the pieces a body is handed over in.
const PIECE: usize = MIB as usize;

impl S3Store {
    /// The object, ranged when large.
    pub(super) async fn get_object(&self, key: &str, size_hint: Option<u64>) -> Result<ObjectBody> {
        match size_hint {
            Some(size) if size >= RANGED_MIN => self.get_ranged(key).await,
            _ => {
                let out = self.get_range(key, None, None).await?;
                let info = info_of!(out);
                let life = Arc::<Life>::default();
                let pieces = self.pieces(key, 0, out.body, &life);
                Ok(ObjectBody {
                    life,
                    ..ObjectBody::pieces(info, pieces)
                })
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

    /// `body`, the object's bytes from `offset` on, as pieces of about
    /// `PIECE` bytes: written where they go as they come (a large object's
    /// ranges arrive side by side), in few writes. Each arrival is noted in
    /// `life`: a slow body takes long to fill a piece, and is not stalled.
    fn pieces(
        &self,
        key: &str,
        offset: u64,
        body: ByteStream,
        life: &Arc<Life>,
    ) -> BoxStream<'static, Result<Piece>> {
        let (this, key, life) = (self.clone(), key.to_owned(), life.clone());
        futures::stream::unfold(Some((body, offset)), move |state| {
            let (this, key, life) = (this.clone(), key.clone(), life.clone());
            async move {
                let (mut body, offset) = state?;
                let mut piece = BytesMut::with_capacity(PIECE);
                let whole = loop {
                    let next = body.next().await;
                    life.now();
                    match next {
                        Some(Ok(chunk)) if piece.is_empty() && chunk.len() >= PIECE => {
                            break Some(chunk);
                        }
                        Some(Ok(chunk)) => {
                            piece.extend_from_slice(&chunk);
                            if piece.len() >= PIECE {
                                break None;
                            }
                        }
                        Some(Err(e)) => return Some((Err(this.body_error(&key, e)), None)),
                        None if piece.is_empty() => return None,
                        None => {
                            let bytes = piece.freeze();
                            return Some((Ok(Piece { offset, bytes }), None));
                        }
                    }
                };
                let bytes = whole.unwrap_or_else(|| piece.freeze());
                let next = offset + bytes.len() as u64;
                Some((Ok(Piece { offset, bytes }), Some((body, next))))
            }
        })
        .boxed()
    }

    /// A large object as ranges streamed `RANGES_IN_FLIGHT` at a time, their
    /// pieces yielded as they arrive: the caller writes each at its offset
    /// and checks the bytes in order from the file. Every range after the
    /// first must come from the same object version.
    async fn get_ranged(&self, key: &str) -> Result<ObjectBody> {
        // A ranged answer carries no whole-object checksum: asked with a
        // HEAD at the same time, and trusted where the server verifies
        // checksums (probed side by side with the HEAD, the first time).
        // Neither holds the ranges back.
        let crc = {
            let (this, key) = (self.clone(), key.to_owned());
            AbortOnDropHandle::new(tokio::spawn(async move {
                match this.known(Probe::Checksum) {
                    Some(false) => None,
                    Some(true) => this.full_checksum(&key).await,
                    None => {
                        let (verified, crc) =
                            tokio::join!(this.honours(Probe::Checksum), this.full_checksum(&key));
                        crc.filter(|_| verified)
                    }
                }
            }))
        };
        let first = self
            .get_range(key, Some((0, FIRST_RANGE - 1)), None)
            .await?;
        let info = info_of!(first);
        // Of this very version.
        let crc = {
            let etag = info.etag.clone();
            async move {
                let (of, crc) = crc.await.ok().flatten()?;
                (etag.as_ref() == Some(&of)).then_some(crc)
            }
        };
        let total = first
            .content_range()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, t)| t.parse::<u64>().ok());
        let life = Arc::<Life>::default();
        let Some(total) = total else {
            // The server sent the whole object: stream it as it is.
            let pieces = self.pieces(key, 0, first.body, &life);
            return Ok(ObjectBody {
                checksum: crc.await,
                life,
                ..ObjectBody::pieces(info, pieces)
            });
        };
        // The rest in as few ranges as fill the slots: each costs a round
        // trip before its first byte, and holds no more memory than a small
        // one. But a body checked by its whole MD5 (a hash that is no hash
        // of parts, and no checksum kept: see `download`) is hashed in order
        // as the file fills from its start, which long ranges side by side
        // leave to the end: its ranges are short, so what is written without
        // a gap keeps up with the bytes in. The checksum decides, and is
        // then awaited first.
        let spread = (total.saturating_sub(FIRST_RANGE))
            .div_ceil(RANGES_IN_FLIGHT as u64)
            .div_ceil(MIB)
            * MIB;
        let spread = spread.clamp(FIRST_RANGE, MAX_RANGE);
        let whole_md5 = info.content_hash().is_some_and(|h| !is_composite(&h));
        let (crc, size) = match whole_md5 {
            true => {
                let crc = crc.await;
                let size = if crc.is_some() {
                    spread
                } else {
                    IN_ORDER_RANGE
                };
                (futures::future::ready(crc).left_future(), size)
            }
            false => (crc.right_future(), spread),
        };
        let this = self.clone();
        let (key, version) = (key.to_owned(), info.etag.clone());
        let head = self.pieces(&key, 0, first.body, &life);
        let ranges_life = life.clone();
        let mut rest = futures::stream::iter((FIRST_RANGE..total).step_by(size as usize))
            .map(move |start| {
                let (this, key, version) = (this.clone(), key.clone(), version.clone());
                let life = ranges_life.clone();
                let end = (start + size).min(total) - 1;
                futures::stream::once(async move {
                    let out = this
                        .get_range(&key, Some((start, end)), version.as_deref())
                        .await?;
                    Ok::<_, Error>(this.pieces(&key, start, out.body, &life))
                })
                .try_flatten()
                .boxed()
            })
            .flatten_unordered(RANGES_IN_FLIGHT)
            .boxed()
            .peekable();
        // Their requests go out (polled until a first piece is in) while the
        // checksum may still be being asked.
        let (checksum, _) = tokio::join!(crc, std::pin::Pin::new(&mut rest).peek());
        Ok(ObjectBody {
            checksum,
            life,
            ..ObjectBody::pieces(info, futures::stream::select(head, rest).boxed())
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
