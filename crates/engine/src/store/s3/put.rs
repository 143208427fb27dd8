//! Uploads: one PUT, or parts in parallel, aborted rather than left behind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::body::SdkBody;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use crc_fast::CrcAlgorithm;
use futures::{StreamExt, TryStreamExt};
use md5::Digest as _;

use crate::error::{Error, Result};
use crate::hashing::{content_hash, plain_md5, PART_SIZE};
use crate::local::{read_part, whole_md5};
use crate::model::Condition;
use crate::store::answers::{
    changed_while_uploaded, check_unchanged, etag_is_md5, if_match, if_none_match,
    missing_is_conflict, unquote_etag, upload_metadata,
};
use crate::store::{Content, PutRequest, Written};

use super::probes::{crc64_header, Probe};
use super::{S3Store, MIB};

/// Largest object one PutObject may carry.
const PUT_MAX: u64 = 5 * 1024 * MIB;

/// Files of `PART_SIZE` and more upload in parts of that size (their ETag
/// is then their content hash), read from disk part by part; smaller ones
/// are read whole (at most this much per upload in memory).
const PARTS_IN_FLIGHT: usize = 6;

/// The MD5 of a part read into memory, off the async threads.
async fn part_md5(bytes: Bytes) -> Result<[u8; 16]> {
    tokio::task::spawn_blocking(move || md5::Md5::digest(&bytes).into())
        .await
        .map_err(|e| Error::task("hashing task", e))
}

impl S3Store {
    /// One PUT, or parts when large.
    pub(super) async fn put_object(&self, req: PutRequest<'_>) -> Result<Written> {
        if req.stat.size >= PART_SIZE {
            return self.put_multipart(req).await;
        }
        // Read from the handle opened beneath the root (a path could be
        // redirected meanwhile), into memory so the SDK can retry the body.
        let file = req
            .file
            .try_clone()
            .map_err(|e| Error::io("read", req.path, e))?;
        let (path, size) = (req.path.to_path_buf(), req.stat.size);
        let bytes = read_part(Arc::new(file), path, 0, size).await?;
        let (hash, _) = req.hash_first().await?;
        let md5 = plain_md5(&hash)
            .ok_or_else(|| Error::Task(format!("{}: bad hash {hash}", req.path.display())))?;
        let written = self
            .send_put(&req, ByteStream::from(bytes), md5, &hash)
            .await?;
        Ok(said(written, &req, hash))
    }

    /// Aborts the multipart uploads under `prefix` older than `age`.
    pub(super) async fn abort_uploads_older(&self, prefix: &str, age: Duration) -> Result<usize> {
        let cutoff = std::time::SystemTime::now() - age;
        let mut aborted = 0;
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .map_err(|e| self.error("ListMultipartUploads", prefix, e))?;
            for upload in page.uploads() {
                let started = upload
                    .initiated()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok());
                if let (Some(key), Some(id), Some(started)) =
                    (upload.key(), upload.upload_id(), started)
                {
                    if started < cutoff {
                        self.abort_multipart(key, id).await;
                        aborted += 1;
                    }
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(aborted);
            }
        }
    }

    /// Uploads in `PART_SIZE` parts, `PARTS_IN_FLIGHT` at a time, each read
    /// from disk and sent with its own `Content-MD5`, or (unhashed, where
    /// the server verifies them) its CRC64NVME checksum. Aborted (never left
    /// half-done) on any failure, or if the file changed meanwhile.
    async fn put_multipart(&self, req: PutRequest<'_>) -> Result<Written> {
        // Whether the server honours If-Match on completion is probed (once
        // per store) while the parts go up; where it applies no conditions
        // at all, the condition is checked with a HEAD before completing.
        let honoured = async {
            match req.condition {
                Condition::IfMatch(_) if self.trusted().await => {
                    self.honours(Probe::Complete).await
                }
                _ => true,
            }
        };
        // Dropped from here on (the operation was aborted), the upload is
        // aborted rather than left to linger, billed, on S3: also when the
        // drop comes while its creation is still in flight.
        let slot = Arc::new(Mutex::new(UploadSlot::default()));
        let mut guard = AbortOnDrop(Some((self.clone(), req.key.to_owned(), slot.clone())));
        let unhashed = matches!(req.content, Content::Unhashed { .. });
        let sent = async {
            // An unhashed file's parts carry CRC64NVME checksums where the
            // server verifies them (hashed at memory speed): their MD5s are
            // then the server's part ETags, and not computed here at all.
            let checksums = unhashed && self.honours(Probe::Checksum).await;
            let (upload_id, etag_md5) = self.create_upload(&req, slot, checksums).await?;
            if !etag_md5 && unhashed {
                // Encrypted with a KMS key (the bucket's default): the
                // ETag will not be the content hash, so the metadata must
                // say it, and it must be known first.
                return Ok(None);
            }
            let sent = self.upload_parts(&req, &upload_id, checksums).await?;
            Ok::<_, Error>(sent.map(|sent| (upload_id, sent)))
        };
        let (honoured, sent) = tokio::join!(honoured, sent);
        if !honoured {
            // Completing would overwrite whatever is there now: the parts
            // are dropped (the guard aborts the upload) and the file goes in
            // one conditional PutObject, which the server does honour.
            drop(guard);
            return self.put_whole(&req).await;
        }
        let Some((upload_id, sent)) = sent? else {
            drop(guard);
            let (hash, parts) = req.hash_first().await?;
            let hashed = PutRequest {
                content: Content::Hashed(&hash),
                parts: &parts,
                ..req.clone()
            };
            let written = Box::pin(self.put_multipart(hashed)).await?;
            return Ok(said(written, &req, hash));
        };
        let condition = self.sendable(req.key, req.condition).await?;
        let answer = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(req.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(sent.parts))
                    .build(),
            )
            .set_checksum_crc64_nvme(sent.crc.map(crc64_header))
            .set_checksum_type(sent.crc.map(|_| ChecksumType::FullObject))
            .set_if_match(if_match(condition))
            .set_if_none_match(if_none_match(condition))
            .send()
            .await;
        let done = self.written("CompleteMultipartUpload", req.key, answer, |out| Written {
            etag: out.e_tag().map(unquote_etag),
            version: out.version_id().map(str::to_owned),
            hash: None,
        });
        let done = missing_is_conflict(done, if_match(condition).is_some());
        if done.is_ok() {
            guard.0 = None;
        }
        let written = self.confirm(&req, done?, &sent.hash).await?;
        Ok(said(written, &req, sent.hash))
    }

    /// A large file in one conditional PutObject, streamed from the checked
    /// handle with the MD5 of the whole body (one more pass over the file):
    /// for servers that ignore conditions on `CompleteMultipartUpload`.
    async fn put_whole(&self, req: &PutRequest<'_>) -> Result<Written> {
        let size = req.stat.size;
        if size > PUT_MAX {
            return Err(Error::Unsupported(format!(
                "{}: the server ignores If-Match on CompleteMultipartUpload, so a file of \
                 more than 5 GiB cannot be uploaded without risking another agent's newer \
                 version; not uploaded (conflictPolicy 'overwrite' uploads it anyway)",
                req.path.display()
            )));
        }
        let file = Arc::new(
            req.file
                .try_clone()
                .map_err(|e| Error::io("read", req.path, e))?,
        );
        let (hash, _) = req.hash_first().await?;
        let md5 = whole_md5(file.clone(), req.path.to_path_buf()).await?;
        let body = file_body(file, req.path.to_path_buf(), size);
        let written = self.send_put(req, body, md5, &hash).await?;
        req.progress.moved(size);
        check_unchanged(req.file, req.path, &req.stat)?;
        let written = self.confirm(req, written, &hash).await?;
        Ok(said(written, req, hash))
    }

    /// One PutObject of the file's bytes `body` (whose MD5 is `md5`), with
    /// its content type, content hash `hash` and condition; returns the new
    /// ETag. Bytes that do not match `md5` (the file changed since it was
    /// hashed) are refused by the server: `FILE_CHANGED`.
    async fn send_put(
        &self,
        req: &PutRequest<'_>,
        body: ByteStream,
        md5: [u8; 16],
        hash: &str,
    ) -> Result<Written> {
        let condition = self.sendable(req.key, req.condition).await?;
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(req.key)
            .body(body)
            .content_length(req.stat.size as i64)
            .content_type(req.content_type)
            .content_md5(BASE64.encode(md5))
            .set_metadata(Some(upload_metadata(req, Some(hash))))
            .set_if_match(if_match(condition))
            .set_if_none_match(if_none_match(condition))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| match self.error("PutObject", req.key, e) {
                Error::S3(e) if e.code == "BadDigest" => changed_while_uploaded(req.path),
                e => e,
            });
        let out = missing_is_conflict(out, if_match(condition).is_some())?;
        Ok(Written {
            etag: out.e_tag().map(unquote_etag),
            version: out.version_id().map(str::to_owned),
            hash: None,
        })
    }

    /// Creates the multipart upload in a task of its own that puts the id in
    /// `slot`, or aborts the upload itself if the slot was abandoned
    /// meanwhile; `settle` waits for that task too. Returns the id, and
    /// whether the object's ETag will be the MD5 form (not encrypted with
    /// a KMS key).
    async fn create_upload(
        &self,
        req: &PutRequest<'_>,
        slot: Arc<Mutex<UploadSlot>>,
        checksums: bool,
    ) -> Result<(String, bool)> {
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(req.key)
            .content_type(req.content_type)
            .set_metadata(Some(upload_metadata(
                req,
                match req.content {
                    Content::Hashed(hash) => Some(hash),
                    Content::Unhashed { .. } => None,
                },
            )))
            .set_checksum_algorithm(checksums.then_some(ChecksumAlgorithm::Crc64Nvme))
            .set_checksum_type(checksums.then_some(ChecksumType::FullObject));
        let (this, key) = (self.clone(), req.key.to_owned());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let created = match request.send().await {
                Ok(out) => Ok((
                    out.upload_id().unwrap_or_default().to_owned(),
                    etag_is_md5(
                        out.server_side_encryption().map(|s| s.as_str()),
                        out.sse_customer_algorithm(),
                    ),
                )),
                Err(e) => Err(this.error("CreateMultipartUpload", &key, e)),
            };
            if let Ok((id, _)) = &created {
                let abandoned = {
                    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                    slot.id = Some(id.clone());
                    slot.abandoned
                };
                if abandoned {
                    this.abort_multipart(&key, id).await;
                }
            }
            let _ = tx.send(created);
        });
        self.track(task);
        rx.await
            .unwrap_or_else(|_| Err(Error::Task("the upload task ended early".into())))
    }

    /// Keeps `task` (clean-up that must not be cut off) for `settle`.
    pub(super) fn track(&self, task: tokio::task::JoinHandle<()>) {
        let mut pending = self.aborting.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|t| !t.is_finished());
        pending.push(task);
    }

    pub(super) async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
    }

    /// Sends the parts (each with its CRC64NVME checksum when `checksums`,
    /// else its `Content-MD5`); returns them, the content hash they make up
    /// and the whole object's CRC64NVME. `None`: a part's ETag, which stands
    /// for its MD5 under checksums, was not an MD5 (the upload is dropped,
    /// and the file hashed first).
    async fn upload_parts(
        &self,
        req: &PutRequest<'_>,
        upload_id: &str,
        checksums: bool,
    ) -> Result<Option<SentParts>> {
        let size = req.stat.size;
        let count = size.div_ceil(PART_SIZE);
        // The parts' MD5s from when the file was hashed, if they make up its
        // hash: the server then refuses any part whose bytes changed since.
        let known = match req.content {
            Content::Hashed(hash) => (req.parts.len() as u64 == count
                && content_hash(size, req.parts) == hash)
                .then_some(req.parts),
            Content::Unhashed { .. } => None,
        };
        let parts = (0..count).map(|i| (i as i32 + 1, i * PART_SIZE));
        // Each slot takes the next part as soon as its last one is in, not
        // when every part before it is: with a round trip between parts,
        // waiting for the slowest of six idles the other five.
        let mut sent: Vec<SentPart> = futures::stream::iter(parts)
            .map(|(number, offset)| async move {
                let len = PART_SIZE.min(size - offset);
                let file = req
                    .file
                    .try_clone()
                    .map_err(|e| Error::io("read", req.path, e))?;
                let hashed = known.map(|k| k[number as usize - 1]);
                let bytes = read_part(Arc::new(file), req.path.to_path_buf(), offset, len).await?;
                let crc = checksums.then(|| crc_fast::checksum(CrcAlgorithm::Crc64Nvme, &bytes));
                let md5 = match (hashed, crc) {
                    (Some(md5), _) => Some(md5),
                    (None, Some(_)) => None,
                    (None, None) => Some(part_md5(bytes.clone()).await?),
                };
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(req.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(len as i64)
                    .set_content_md5(md5.map(|m| BASE64.encode(m)))
                    .set_checksum_crc64_nvme(crc.map(crc64_header))
                    .body(ByteStream::from(bytes))
                    // Content-MD5 or the checksum already guards the bytes:
                    // no SHA-256 pass.
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await
                    .map_err(|e| match self.error("UploadPart", req.key, e) {
                        Error::S3(e) if e.code == "BadDigest" && hashed.is_some() => {
                            changed_while_uploaded(req.path)
                        }
                        e => e,
                    })?;
                req.progress.moved(len);
                let part = CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .set_checksum_crc64_nvme(crc.map(crc64_header))
                    .build();
                let md5 = md5.or_else(|| out.e_tag().and_then(|e| plain_md5(e.trim_matches('"'))));
                Ok::<_, Error>(SentPart {
                    part,
                    md5,
                    crc,
                    len,
                })
            })
            .buffer_unordered(PARTS_IN_FLIGHT)
            .try_collect()
            .await?;
        sent.sort_by_key(|p| p.part.part_number());
        // The parts are the bytes read just now; they match the hash recorded
        // in the metadata only if the file is still the one that was hashed
        // (an unhashed file: the one scanned).
        check_unchanged(req.file, req.path, &req.stat)?;
        let Some(digests) = sent.iter().map(|p| p.md5).collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let hash = content_hash(size, &digests);
        if matches!(req.content, Content::Hashed(h) if h != hash) {
            return Err(changed_while_uploaded(req.path));
        }
        Ok(Some(SentParts {
            crc: whole_crc(sent.iter().map(|p| (p.crc, p.len))),
            parts: sent.into_iter().map(|p| p.part).collect(),
            hash,
        }))
    }
}

/// The CRC64NVME of the whole object from its parts' (CRC, length), in
/// order; `None` when a part has none.
fn whole_crc(parts: impl IntoIterator<Item = (Option<u64>, u64)>) -> Option<u64> {
    parts
        .into_iter()
        .try_fold(None, |whole, (crc, len)| {
            let part = crc?;
            Some(Some(match whole {
                None => part,
                Some(w) => crc_fast::checksum_combine(CrcAlgorithm::Crc64Nvme, w, part, len),
            }))
        })
        .flatten()
}

/// A part as sent.
struct SentPart {
    part: CompletedPart,
    /// Its MD5: computed, or the server's ETag for it under checksums.
    md5: Option<[u8; 16]>,
    crc: Option<u64>,
    len: u64,
}

/// The parts of an upload as sent.
struct SentParts {
    parts: Vec<CompletedPart>,
    /// The content hash they make up.
    hash: String,
    /// The whole object's CRC64NVME, when the parts carried theirs.
    crc: Option<u64>,
}

/// `written`, saying the content hash `hash` when `req` did not.
fn said(written: Written, req: &PutRequest<'_>, hash: String) -> Written {
    Written {
        hash: matches!(req.content, Content::Unhashed { .. }).then_some(hash),
        ..written
    }
}

/// A request body read from `file` (the checked handle) chunk by chunk,
/// off the async threads; the SDK may send it again (a retry reads the file
/// again from the start).
fn file_body(file: Arc<std::fs::File>, path: std::path::PathBuf, size: u64) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(FileBody {
            file: file.clone(),
            path: path.clone(),
            size,
            offset: 0,
            reading: None,
        })
    }))
}

/// See `file_body`.
struct FileBody {
    file: Arc<std::fs::File>,
    path: std::path::PathBuf,
    size: u64,
    /// Where the next read starts.
    offset: u64,
    reading:
        Option<std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes>> + Send + Sync>>>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>>>> {
        const CHUNK: u64 = MIB;
        use std::task::Poll;
        let this = &mut *self;
        if this.reading.is_none() {
            if this.offset >= this.size {
                return Poll::Ready(None);
            }
            let len = CHUNK.min(this.size - this.offset);
            let (file, path, offset) = (this.file.clone(), this.path.clone(), this.offset);
            this.offset += len;
            this.reading = Some(Box::pin(read_part(file, path, offset, len)));
        }
        let reading = this.reading.as_mut().expect("started above");
        match reading.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(bytes) => {
                this.reading = None;
                Poll::Ready(Some(bytes.map(http_body::Frame::data)))
            }
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.size)
    }
}

/// A multipart upload's id once its creation answers, and whether the
/// upload was abandoned before that: whichever comes second aborts it.
#[derive(Default)]
pub(super) struct UploadSlot {
    id: Option<String>,
    abandoned: bool,
}

/// Aborts a multipart upload when dropped armed (on failure, or when the
/// upload's future is dropped because its operation was cancelled).
struct AbortOnDrop(Option<(S3Store, String, Arc<Mutex<UploadSlot>>)>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some((store, key, slot)) = self.0.take() else {
            return;
        };
        let id = {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            slot.abandoned = true;
            slot.id.take()
        };
        if let (Some(upload_id), Ok(rt)) = (id, tokio::runtime::Handle::try_current()) {
            let this = store.clone();
            store.track(rt.spawn(async move { this.abort_multipart(&key, &upload_id).await }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_crc_is_the_parts_combined_in_order() {
        let crc = |b: &[u8]| crc_fast::checksum(CrcAlgorithm::Crc64Nvme, b);
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (a, b, c) = (&body[..40_000], &body[40_000..90_000], &body[90_000..]);
        let parts = [a, b, c].map(|p| (Some(crc(p)), p.len() as u64));
        assert_eq!(whole_crc(parts), Some(crc(&body)));
        assert_eq!(crc(b"123456789"), 0xae8b_1486_0a79_9888);
        assert_eq!(whole_crc([(Some(1), 1), (None, 1)]), None);
        assert_eq!(crc64_header(0xae8b_1486_0a79_9888), "rosUhgp5mIg=");
    }
}
