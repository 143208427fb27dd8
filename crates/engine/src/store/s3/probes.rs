//! What the server honours, found out before it is relied on. AWS documents
//! the conditions the sync depends on; other servers are probed, once per
//! store, with objects of the engine's own under `<prefix>.s3ws/`:
//!
//! | probe | requests | where the server ignores or refuses it |
//! |---|---|---|
//! | conditional PUT and DELETE | PUT, PUT `If-None-Match: *`, PUT `If-Match`, DELETE `If-Match` (the last three with a condition that cannot hold), DELETE | writes are checked with a HEAD just before they are sent (a best effort: another writer can still slip in between), said once; `conditionalWrites: 'required'` refuses to push |
//! | per-key `ETag` of `DeleteObjects` | PUT, DeleteObjects, DELETE | one `DeleteObject` with `If-Match` per key |
//! | `If-Match` on `CompleteMultipartUpload` | PUT, a multipart upload of one part, DELETE | one conditional `PutObject` (up to 5 GiB) |
//! | `If-Match` on `CopyObject` (a restore's copies) | PUT, a `CopyObject` onto it, DELETE | checked with a HEAD just before, as above |
//! | `x-amz-checksum-crc64nvme` on `PutObject` verified | PUT with the right checksum, PUT with a wrong one, DELETE | parts of unhashed uploads carry `Content-MD5` (hashed here) instead |
//!
//! Each probe runs in a task of its own (so an operation cancelled meanwhile
//! leaves no probe object behind) on an object of its own. Requests that do
//! not depend on each other's answers go out together, and the object is
//! deleted after the answer is known: on a server 20 ms away each round
//! trip is 40 ms of the operation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::S3Store;
use crate::error::{Error, Result, Warning, WarningCode};
use crate::model::Condition;
use crate::store::answers::{if_match, if_none_match, missing_is_conflict, quote_etag};
use crate::store::ObjectInfo;

/// How conditional writes are used (the `conditionalWrites` option).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConditionalWrites {
    /// Sent; on a server other than AWS, probed first: where they are
    /// ignored or refused, writes are checked with a HEAD instead, and a
    /// warning says once that concurrent writers can overwrite each other.
    #[default]
    Auto,
    /// As `Auto`, but a push to a server without them is refused
    /// (`UNSUPPORTED_STORE`).
    Required,
    /// Never sent (a server that refuses them): writes are checked with a
    /// HEAD instead.
    Off,
}

/// An ETag no object has: a condition on it must fail.
const WRONG_ETAG: &str = "00000000000000000000000000000000";

/// How a server treats a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Support {
    Honoured,
    /// Accepted and not applied: the write happened anyway.
    Ignored,
    /// Answered with an error that is not a failed condition (400, 501…).
    Refused(String),
    /// The probe failed as any request may (a 5xx, the network): nothing
    /// learnt, and not kept; asked again next time.
    Unavailable(String),
}

impl Support {
    /// Why conditions are not applied, as a message goes on: " (they were
    /// refused: …)", or nothing.
    fn why(&self) -> String {
        match self {
            Support::Refused(e) => format!(" (they were refused: {e})"),
            _ => String::new(),
        }
    }
}

/// What probing found, once per store; and the warnings to pass on.
pub(super) struct Honoured {
    put: tokio::sync::OnceCell<Support>,
    batch_delete: tokio::sync::OnceCell<Support>,
    complete: tokio::sync::OnceCell<Support>,
    copy: tokio::sync::OnceCell<Support>,
    checksum: tokio::sync::OnceCell<Support>,
    warnings: Mutex<Vec<Warning>>,
    /// The server answered `DeleteObjects` as a request it does not implement.
    batch_refused: AtomicBool,
    /// Names this store's probe objects.
    tag: u64,
}

impl Default for Honoured {
    fn default() -> Self {
        Honoured {
            put: Default::default(),
            batch_delete: Default::default(),
            complete: Default::default(),
            copy: Default::default(),
            checksum: Default::default(),
            warnings: Default::default(),
            batch_refused: Default::default(),
            tag: crate::local::rand_u64(),
        }
    }
}

/// A condition some servers ignore.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// `If-None-Match`/`If-Match` on PutObject, `If-Match` on DeleteObject.
    Put,
    /// The per-key `ETag` of `DeleteObjects`.
    BatchDelete,
    /// `If-Match` on `CompleteMultipartUpload`.
    Complete,
    /// `If-Match` on `CopyObject`.
    Copy,
    /// A CRC64NVME checksum sent with the bytes (`x-amz-checksum-crc64nvme`)
    /// is verified: a wrong one refused.
    Checksum,
}

impl Probe {
    fn name(self) -> &'static str {
        match self {
            Probe::Put => "put",
            Probe::BatchDelete => "batch",
            Probe::Complete => "complete",
            Probe::Copy => "copy",
            Probe::Checksum => "checksum",
        }
    }

    /// What is done instead when the server ignores it (or refuses it:
    /// `found`), when that is worth a warning.
    fn fallback(self, endpoint: &str, found: &Support) -> Option<String> {
        let why = found.why();
        Some(match self {
            // Content-MD5 guards the bytes instead, as everywhere else.
            Probe::Checksum => return None,
            Probe::Put => format!(
                "The S3 server at {endpoint} does not apply conditional writes (If-Match, \
                 If-None-Match){why}: concurrent writers can overwrite each other. Each write \
                 is checked with a HEAD just before it is sent, which narrows that window but \
                 cannot close it; conditionalWrites: 'required' refuses to push instead"
            ),
            Probe::BatchDelete => format!(
                "The S3 server at {endpoint} ignores the ETag condition of DeleteObjects (a \
                 stale delete would remove another agent's newer version): deletions are sent \
                 one by one as DeleteObject with If-Match instead"
            ),
            Probe::Complete => format!(
                "The S3 server at {endpoint} ignores If-Match on CompleteMultipartUpload (a \
                 stale upload would overwrite another agent's newer version): files of 8 MiB \
                 and more are sent in one conditional PutObject instead (up to 5 GiB)"
            ),
            Probe::Copy => format!(
                "The S3 server at {endpoint} ignores If-Match on CopyObject: a restore checks \
                 each copy with a HEAD just before it is sent instead (another writer can \
                 still slip in between)"
            ),
        })
    }
}

impl S3Store {
    /// The probe object of `probe`: one per store (an instance) and probe,
    /// so probes never meet each other's objects, not even those of other
    /// instances probing the same prefix at the same moment (one deleting
    /// the object another's `If-None-Match` expects would read as a server
    /// that ignores it). A probe cut off by a killed process leaves its
    /// object under `.s3ws/`, never synced.
    fn probe_key(&self, probe: Probe) -> Option<String> {
        Some(format!(
            "{}probe-{}-{:016x}",
            self.scratch.as_deref()?,
            probe.name(),
            self.honoured.tag
        ))
    }

    pub(super) fn note(&self, code: WarningCode, message: String) {
        self.honoured
            .warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Warning::new("", code, message));
    }

    /// Whether `DeleteObjects` was found not implemented.
    pub(super) fn batch_refused(&self) -> bool {
        self.honoured.batch_refused.load(Ordering::Relaxed)
    }

    /// Records that `DeleteObjects` is not implemented (said once).
    pub(super) fn refuse_batches(&self, e: &Error) {
        if !self.honoured.batch_refused.swap(true, Ordering::Relaxed) {
            self.note(
                WarningCode::StoreCallRefused,
                format!(
                    "The S3 server at {} does not implement DeleteObjects ({e}): deletions \
                     are sent one by one as DeleteObject instead",
                    self.endpoint
                ),
            );
        }
    }

    pub(super) fn take_notes(&self) -> Vec<Warning> {
        std::mem::take(
            &mut *self
                .honoured
                .warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Whether conditions sent are applied by the server (else writes are
    /// checked with a HEAD: see `sendable`).
    pub(super) async fn trusted(&self) -> bool {
        self.conditional_writes != ConditionalWrites::Off && self.honours(Probe::Put).await
    }

    /// Whether conditions are applied as the object is stored, so two
    /// writers never both pass one: AWS documents it; no other server is
    /// taken to (moto and SeaweedFS check first, then store).
    pub(super) fn applies_atomically(&self) -> bool {
        self.scratch.is_none()
    }

    /// Whether the server honours what `probe` tests.
    pub(super) async fn honours(&self, probe: Probe) -> bool {
        self.support(probe).await == Support::Honoured
    }

    /// Whether the server honours what `probe` tests, if that is known
    /// already (no request).
    pub(super) fn known(&self, probe: Probe) -> Option<bool> {
        if self.probe_key(probe).is_none() {
            return Some(true);
        }
        self.cell(probe).get().map(|s| *s == Support::Honoured)
    }

    fn cell(&self, probe: Probe) -> &tokio::sync::OnceCell<Support> {
        match probe {
            Probe::Put => &self.honoured.put,
            Probe::BatchDelete => &self.honoured.batch_delete,
            Probe::Complete => &self.honoured.complete,
            Probe::Copy => &self.honoured.copy,
            Probe::Checksum => &self.honoured.checksum,
        }
    }

    /// How the server treats what `probe` tests: found out once per store,
    /// in a task of its own (tracked for `settle`). Without a scratch prefix
    /// (AWS, which documents the conditions), honoured.
    async fn support(&self, probe: Probe) -> Support {
        let Some(key) = self.probe_key(probe) else {
            return Support::Honoured;
        };
        let found = self.cell(probe).get_or_try_init(|| async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let this = self.clone();
            self.track(tokio::spawn(async move {
                let found = match probe {
                    // Its first PUT makes the object.
                    Probe::Checksum => this.probe_checksum(&key).await,
                    _ => match this.put_raw(&key, &Condition::None).await {
                        Ok(()) => match probe {
                            Probe::Put => this.probe_put(&key).await,
                            Probe::BatchDelete => this.probe_batch_delete(&key).await,
                            Probe::Complete => this.probe_complete(&key).await,
                            _ => this.probe_copy(&key).await,
                        },
                        // A probe that cannot run trusts nothing.
                        Err(e) => failed(e),
                    },
                };
                // Said once (the probe runs once), before anyone waiting
                // for the answer can take the warnings. Where conditions
                // are required, the push is refused instead.
                let learnt = !matches!(found, Support::Honoured | Support::Unavailable(_));
                let refused =
                    probe == Probe::Put && this.conditional_writes == ConditionalWrites::Required;
                if let Some(fallback) = probe.fallback(&this.endpoint, &found) {
                    if learnt && !refused {
                        this.note(WarningCode::StoreConditionIgnored, fallback);
                    }
                }
                let _ = tx.send(found);
                // Removed after the answer (a round trip off the operation's
                // path); the task is tracked, and every operation settles
                // before it ends, so none outlives its probe object.
                let _ = this.delete_raw(&key, None).await;
            }));
            match rx.await {
                Ok(Support::Unavailable(e)) => Err(Support::Unavailable(e)),
                Ok(found) => Ok(found),
                Err(_) => Ok(Support::Refused("the probe ended early".into())),
            }
        });
        match found.await {
            Ok(kept) => kept.clone(),
            Err(now) => now,
        }
    }

    /// Before a push that relies on conditional writes: whether the server
    /// applies them. `Required`: found out now, and the push refused when
    /// not. `Auto`: found out side by side with the push (its conditional
    /// writes wait for the answer in `sendable`; what is done instead is
    /// said once, by the probe), so the bytes of a large file are under way
    /// meanwhile.
    pub(super) async fn check_conditions(&self) -> Result<()> {
        match self.conditional_writes {
            ConditionalWrites::Off => return Ok(()),
            ConditionalWrites::Auto => {
                let this = self.clone();
                self.track(tokio::spawn(async move {
                    this.support(Probe::Put).await;
                }));
                return Ok(());
            }
            ConditionalWrites::Required => {}
        }
        let why = match self.support(Probe::Put).await {
            Support::Honoured => return Ok(()),
            // Not known this time: the push does not run.
            Support::Unavailable(e) => {
                return Err(Error::Unsupported(format!(
                    "Could not check that the S3 server at {} applies conditional writes \
                     ({e}), and conditionalWrites is 'required': nothing was pushed; try again",
                    self.endpoint
                )))
            }
            found => found.why(),
        };
        Err(Error::Unsupported(format!(
            "The S3 server at {} does not apply conditional writes (If-Match, \
             If-None-Match){why}, and conditionalWrites is 'required': nothing was \
             pushed. Use a server that applies them, or conditionalWrites: 'auto'",
            self.endpoint
        )))
    }

    /// The condition to send with a write to `key`: as given where the
    /// server applies conditions; elsewhere checked now with a HEAD (a
    /// failed one is `Error::Conflict`, as the server would have answered)
    /// and not sent.
    pub(super) async fn sendable<'c>(&self, key: &str, c: &'c Condition) -> Result<&'c Condition> {
        self.sendable_with(Probe::Put, key, c).await
    }

    /// `sendable`, for the request `probe` tests.
    pub(super) async fn sendable_with<'c>(
        &self,
        probe: Probe,
        key: &str,
        c: &'c Condition,
    ) -> Result<&'c Condition> {
        const NONE: &Condition = &Condition::None;
        if *c == Condition::None {
            return Ok(c);
        }
        if self.trusted().await && (probe == Probe::Put || self.honours(probe).await) {
            return Ok(c);
        }
        let now: Option<ObjectInfo> = crate::store::Store::head(self, key).await?;
        let holds = match c {
            Condition::IfMatch(etag) => now.and_then(|i| i.etag).as_deref() == Some(etag.as_str()),
            Condition::IfNoneMatch => now.is_none(),
            Condition::None => true,
        };
        if holds {
            Ok(NONE)
        } else {
            Err(Error::Conflict(format!(
                "s3://{}/{key}: the object is not the one this write is conditional on \
                 (checked with a HEAD: the server does not apply conditions)",
                self.bucket
            )))
        }
    }

    /// A small PutObject of probe bytes, with `c` as sent.
    async fn put_raw(&self, key: &str, c: &Condition) -> Result<()> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from_static(
                b"s3-workspace-sync capability probe",
            ))
            .set_if_match(if_match(c))
            .set_if_none_match(if_none_match(c))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("PutObject", key, e));
        missing_is_conflict(sent, if_match(c).is_some())
    }

    /// A DeleteObject, with `if_match` as sent.
    pub(super) async fn delete_raw(&self, key: &str, if_match: Option<&str>) -> Result<()> {
        let result = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(if_match.map(quote_etag))
            .send()
            .await
            .map_err(|e| self.error("DeleteObject", key, e));
        missing_is_conflict(result.map(drop), if_match.is_some())
    }

    /// Conditional PUT and DELETE on the probe object `key`, each with a
    /// condition that cannot hold, one after the other: a DELETE whose
    /// condition is ignored would remove the object under the PUTs (s3rver
    /// then fails on its own files), and with the two PUTs sent at once a
    /// SeaweedFS 4.48 stopped answering writes once, in a benchmark (not
    /// seen again in 300 tries on a fresh one). Under
    /// `conditionalWrites: 'auto'` the probe runs beside the push anyway.
    async fn probe_put(&self, key: &str) -> Support {
        let answers = [
            self.put_raw(key, &Condition::IfNoneMatch).await,
            self.put_raw(key, &Condition::IfMatch(WRONG_ETAG.into()))
                .await,
            self.delete_raw(key, Some(WRONG_ETAG)).await,
        ];
        let mut found = Support::Honoured;
        for answer in answers {
            match answer {
                Err(Error::Conflict(_)) => {}
                Ok(()) => found = Support::Ignored,
                Err(e) if found == Support::Honoured => found = failed(e),
                Err(_) => {}
            }
        }
        found
    }

    /// Whether `DeleteObjects` refuses the probe object `key` under an ETag
    /// it does not have (some servers ignore the per-key ETag and delete).
    async fn probe_batch_delete(&self, key: &str) -> Support {
        let answer = self
            .delete_batch(vec![(key.to_owned(), Some(WRONG_ETAG.to_owned()))])
            .await;
        match answer.into_iter().next() {
            Some((_, Err(Error::Conflict(_)))) => Support::Honoured,
            Some((_, Ok(()))) => Support::Ignored,
            Some((_, Err(e))) => Support::Refused(e.to_string()),
            None => Support::Refused("no answer".into()),
        }
    }

    /// Whether the server refuses to complete a multipart upload over the
    /// probe object `key` whose `If-Match` does not hold (some ignore it).
    async fn probe_complete(&self, key: &str) -> Support {
        let attempt = async {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| self.error("CreateMultipartUpload", key, e))?;
            let id = created.upload_id().unwrap_or_default().to_owned();
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from_static(b"probe"))
                .send()
                .await
                .map_err(|e| self.error("UploadPart", key, e));
            let completed = match part {
                Ok(part) => self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .parts(
                                CompletedPart::builder()
                                    .part_number(1)
                                    .set_e_tag(part.e_tag().map(str::to_owned))
                                    .build(),
                            )
                            .build(),
                    )
                    .if_match(quote_etag(WRONG_ETAG))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| self.error("CompleteMultipartUpload", key, e)),
                Err(e) => Err(e),
            };
            if completed.is_err() {
                self.abort_multipart(key, &id).await;
            }
            Ok::<_, Error>(match completed {
                Err(Error::Conflict(_)) => Support::Honoured,
                Ok(()) => Support::Ignored,
                Err(e) => Support::Refused(e.to_string()),
            })
        };
        attempt
            .await
            .unwrap_or_else(|e| Support::Refused(e.to_string()))
    }
}

impl S3Store {
    /// Whether the server refuses to copy the probe object `key` onto
    /// itself under an `If-Match` that does not hold (some ignore it).
    async fn probe_copy(&self, key: &str) -> Support {
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(format!(
                "{}/{}",
                self.bucket,
                super::versions::encode_key(key)
            ))
            // A copy onto itself must change something to be valid.
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type("application/octet-stream")
            .if_match(quote_etag(WRONG_ETAG))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("CopyObject", key, e));
        match copied {
            Err(Error::Conflict(_)) => Support::Honoured,
            Ok(()) => Support::Ignored,
            Err(e) => failed(e),
        }
    }
}

impl S3Store {
    /// Whether the server verifies a CRC64NVME checksum sent with a PUT
    /// of the probe object `key`: the right one taken, a wrong one refused
    /// (the two sent at once).
    async fn probe_checksum(&self, key: &str) -> Support {
        const BODY: &[u8] = b"s3-workspace-sync checksum probe";
        let put = |crc: u64| async move {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from_static(BODY))
                .checksum_crc64_nvme(crc64_header(crc))
                .send()
                .await
                .map(drop)
                .map_err(|e| self.error("PutObject", key, e))
        };
        let right = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, BODY);
        let (taken, wrong) = tokio::join!(put(right), put(!right));
        if let Err(e) = taken {
            return failed(e);
        }
        match wrong {
            Ok(()) => Support::Ignored,
            Err(e) if e.s3().is_some_and(|s| s.status == Some(400)) => Support::Honoured,
            Err(e) => failed(e),
        }
    }
}

/// A CRC64NVME as its header carries it: the 8 bytes, big-endian, base64.
pub(super) fn crc64_header(crc: u64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// A probe request's failure: one any request may meet (`Unavailable`,
/// asked again later) or an answer about the server (`Refused`).
fn failed(e: Error) -> Support {
    match e.s3() {
        // 501 Not Implemented is the server's answer about the feature.
        Some(s3) if s3.retryable() && s3.status != Some(501) => Support::Unavailable(e.to_string()),
        _ => Support::Refused(e.to_string()),
    }
}
