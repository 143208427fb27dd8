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
use crate::life::Life;
use crate::store::answers::{object_info, quote_etag, unquote_etag};
use crate::store::{Checksum, ObjectBody, ObjectInfo, Piece};
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
                let info = ObjectInfo {
                    size: length(out.content_length()),
                    ..info_of!(out)
                };
                let life = Arc::<Life>::default();
                let span = (0, last_byte(out.content_length()));
                let pieces = self.pieces(key, span, out.body, &Version::of(&info), &life);
                Ok(ObjectBody::watched(info, pieces, life))
            }
        }
    }

    /// A GET of the whole object, or of `bytes=start-end` (inclusive; no
    /// end: to the object's end), optionally only if the object still has
    /// ETag `if_match`.
    async fn get_range(
        &self,
        key: &str,
        range: Option<(u64, Option<u64>)>,
        if_match: Option<&str>,
    ) -> Result<GetObjectOutput> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(|(s, e)| {
                format!("bytes={s}-{}", e.map(|e| e.to_string()).unwrap_or_default())
            }))
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

    /// `body`, the answer to a GET of the object's bytes `start..=end`
    /// (`end` unknown: to its end), as pieces of about `PIECE` bytes:
    /// written where they go as they come (a large object's ranges arrive
    /// side by side), in few writes. Each arrival is noted in `life`: a
    /// slow body takes long to fill a piece, and is not stalled. A body
    /// that breaks off, ends short or has nothing arrive for the stall
    /// timeout is asked again from where it stopped, of the same version
    /// (`If-Match`), up to `RESUMES` times in a row with nothing gained:
    /// one stalled range costs the bytes it still owed, not the object.
    fn pieces(
        &self,
        key: &str,
        (start, end): (u64, Option<u64>),
        body: ByteStream,
        version: &Version,
        life: &Arc<Life>,
    ) -> BoxStream<'static, Result<Piece>> {
        let reading = Reading {
            store: self.clone(),
            key: key.to_owned(),
            body,
            at: start,
            end,
            version: version.clone(),
            life: life.clone(),
            resumes: 0,
            done: false,
        };
        futures::stream::unfold(Some(reading), |reading| async move {
            let mut reading = reading.filter(|r| !r.done)?;
            match reading.next_piece().await {
                Ok(Some(piece)) => Some((Ok(piece), Some(reading))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
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
            .get_range(key, Some((0, Some(FIRST_RANGE - 1))), None)
            .await?;
        let range = first.content_range().and_then(content_range);
        let info = ObjectInfo {
            size: range.map_or(length(first.content_length()), |r| Some(r.2)),
            ..info_of!(first)
        };
        // Of this very version.
        let crc = {
            let etag = info.etag.clone();
            async move {
                let (of, crc) = crc.await.ok().flatten()?;
                (etag.as_ref() == Some(&of)).then_some(crc)
            }
        };
        let life = Arc::<Life>::default();
        let Some((_, first_end, total)) = range else {
            // The server sent the whole object: stream it as it is.
            let span = (0, last_byte(first.content_length()));
            let pieces = self.pieces(key, span, first.body, &Version::of(&info), &life);
            return Ok(ObjectBody {
                checksum: crc.await,
                ..ObjectBody::watched(info, pieces, life)
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
        let (key, version) = (key.to_owned(), Version::of(&info));
        let head = self.pieces(&key, (0, Some(first_end)), first.body, &version, &life);
        let ranges_life = life.clone();
        let mut rest = futures::stream::iter((FIRST_RANGE..total).step_by(size as usize))
            .map(move |start| {
                let (this, key, version) = (this.clone(), key.clone(), version.clone());
                let life = ranges_life.clone();
                let span = (start, Some((start + size).min(total) - 1));
                futures::stream::once(async move {
                    let out = this.get_rest(&key, span, &version).await?;
                    Ok::<_, Error>(this.pieces(&key, span, out.body, &version, &life))
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
        let pieces = futures::stream::select(head, rest).boxed();
        Ok(ObjectBody {
            checksum,
            ..ObjectBody::watched(info, pieces, life)
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

/// Times in a row a body is asked again from where it stopped with no byte
/// gained before its failure is given up (the download may then try the
/// whole object again).
const RESUMES: usize = 2;

/// One GET's body being read, and how to ask for the rest of it.
struct Reading {
    store: S3Store,
    key: String,
    body: ByteStream,
    /// The offset of the next byte to come.
    at: u64,
    /// The last byte asked for, when known.
    end: Option<u64>,
    /// The object the rest must be of; without its ETag, nothing is asked
    /// again.
    version: Version,
    life: Arc<Life>,
    /// Times asked again since a byte last came.
    resumes: usize,
    /// The body is whole.
    done: bool,
}

impl Reading {
    /// The next piece; `None` once the body is whole.
    async fn next_piece(&mut self) -> Result<Option<Piece>> {
        let offset = self.at;
        let mut piece = BytesMut::new();
        loop {
            let failure = match tokio::time::timeout(self.store.stall, self.body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.life.now();
                    self.resumes = 0;
                    self.at += chunk.len() as u64;
                    if piece.is_empty() && chunk.len() >= PIECE {
                        return Ok(Some(Piece {
                            offset,
                            bytes: chunk,
                        }));
                    }
                    if piece.is_empty() {
                        piece.reserve(PIECE);
                    }
                    piece.extend_from_slice(&chunk);
                    if piece.len() >= PIECE {
                        break;
                    }
                    continue;
                }
                Ok(Some(Err(e))) => self.store.body_error(&self.key, e),
                Ok(None) => match self.end.filter(|end| self.at <= *end) {
                    Some(end) => self.failure(format!(
                        "the body ended at byte {} of the {} asked for",
                        self.at,
                        end + 1
                    )),
                    None => {
                        self.done = true;
                        break;
                    }
                },
                Err(_) => self.failure(format!("nothing arrived for {:?}", self.store.stall)),
            };
            self.resume(failure).await?;
        }
        Ok((!piece.is_empty()).then(|| Piece {
            offset,
            bytes: piece.freeze(),
        }))
    }

    fn failure(&self, why: String) -> Error {
        S3Error::body_failed(&self.key, why).into()
    }

    /// Asks again for the bytes from `at` on, or gives up with `failure`.
    async fn resume(&mut self, failure: Error) -> Result<()> {
        if self.version.etag.is_none() || self.resumes >= RESUMES {
            return Err(failure);
        }
        self.resumes += 1;
        let span = (self.at, self.end);
        self.body = self
            .store
            .get_rest(&self.key, span, &self.version)
            .await?
            .body;
        Ok(())
    }
}

/// Which object a body is of, as its first answer gave it: the rest of it
/// (other ranges, a body asked again) must be of the same.
#[derive(Debug, Clone)]
struct Version {
    etag: Option<String>,
    total: Option<u64>,
}

impl Version {
    fn of(info: &ObjectInfo) -> Self {
        Version {
            etag: info.etag.clone(),
            total: info.size,
        }
    }
}

impl S3Store {
    /// Bytes `start..=end` of the object `version` (conditional on its
    /// ETag). An object rewritten since (the condition failed, the range
    /// no longer fits, or, from a server that ignores the condition or the
    /// range, an answer of another object or from another byte) is a body
    /// error: the download is tried again, whole, as the newer object.
    async fn get_rest(
        &self,
        key: &str,
        (start, end): (u64, Option<u64>),
        version: &Version,
    ) -> Result<GetObjectOutput> {
        let etag = version.etag.as_deref();
        let rewritten = || {
            let why = "the object changed while it downloaded (or the server answered with \
                       other bytes than those asked for)";
            Error::from(S3Error::body_failed(key, why))
        };
        let out = match self.get_range(key, Some((start, end)), etag).await {
            Ok(out) => out,
            Err(Error::Conflict(_)) => return Err(rewritten()),
            Err(e) if e.s3().is_some_and(|s| s.status == Some(416)) => return Err(rewritten()),
            Err(e) => return Err(e),
        };
        let range = out.content_range().and_then(content_range);
        let same = range.is_some_and(|(from, _, total)| {
            from == start && version.total.is_none_or(|t| t == total)
        }) && (etag.is_none() || out.e_tag().map(unquote_etag).as_deref() == etag);
        if !same {
            return Err(rewritten());
        }
        Ok(out)
    }
}

/// A `Content-Range` (`bytes 100-199/200`): its first and last byte, and
/// the object's length.
fn content_range(header: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = header.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?, total.parse().ok()?))
}

/// A `Content-Length`, when given.
fn length(header: Option<i64>) -> Option<u64> {
    header.and_then(|n| u64::try_from(n).ok())
}

/// The last byte of a body of `length` bytes (none when empty or unknown).
fn last_byte(header: Option<i64>) -> Option<u64> {
    length(header)?.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::{content_range, last_byte};

    #[test]
    fn a_content_range_gives_its_bytes_and_the_length() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, 199, 200)));
        assert_eq!(content_range("bytes */200"), None);
        assert_eq!(content_range("100-199/200"), None);
        assert_eq!(last_byte(Some(10)), Some(9));
        assert_eq!(last_byte(Some(0)), None);
        assert_eq!(last_byte(None), None);
    }
}
