//! `Store` on Amazon S3 (or any S3-compatible server) through aws-sdk-s3.
//! What the server honours is probed in `probes`.

mod pacer;
mod probes;
mod retry;

pub use probes::ConditionalWrites;
use probes::{Honoured, Probe};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::timeout::TimeoutConfig;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use md5::Digest as _;

use crate::error::{Error, Result, S3Error, Warning, BODY_ERROR};
use crate::hashing::{content_hash, plain_md5, PART_SIZE};
use crate::local::{read_at, read_part, whole_md5};
use crate::model::{Condition, RemoteObject};
use crate::store::answers::{
    answer_error, changed_while_uploaded, check_unchanged, if_match, if_none_match,
    missing_is_conflict, object_info, quote_etag, stored_hash, unquote_etag, HASH_META,
};
use crate::store::{ListPage, ObjectBody, ObjectInfo, PutRequest, Store};

/// How to reach S3. Unset fields follow the SDK's environment and defaults.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Region; else `AWS_REGION`, else `us-east-1` (as upstream).
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible server; else `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// Path-style addressing; defaults to on when a custom endpoint is used.
    pub force_path_style: Option<bool>,
    /// Where credentials come from; the default AWS chain when `None`. The
    /// SDK caches them and asks again before they expire.
    pub credentials: Option<SharedCredentialsProvider>,
    /// Longest wait for a response to start (the SDK then retries).
    pub read_timeout: Option<Duration>,
    /// Where the store may write probe objects of its own (under the
    /// prefix: the only place a scoped policy lets it write) to find out
    /// which conditions the server honours. Without it, every condition is
    /// trusted as sent.
    pub scratch_prefix: Option<String>,
    /// How conditional writes are used.
    pub conditional_writes: ConditionalWrites,
}

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
}

/// Whether `e` says the server does not implement the request at all (as
/// opposed to failing it).
fn not_implemented(e: &Error) -> bool {
    matches!(e, Error::S3(s) if matches!(s.status, Some(501 | 405))
        || s.code == "NotImplemented" || s.code == "MethodNotAllowed")
}

/// Largest object one PutObject may carry.
const PUT_MAX: u64 = 5 * 1024 * MIB;

impl S3Store {
    pub async fn connect(bucket: &str, settings: &S3Settings) -> Result<Self> {
        let region = settings
            .region
            .clone()
            .or_else(|| env_nonempty("AWS_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let custom_endpoint = settings
            .endpoint
            .clone()
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL"));
        let plain = custom_endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let http = match (plain, has_ca_roots()) {
            (_, true) => https_client(),
            // No TLS needed for an http:// endpoint (a local server).
            (true, false) => aws_smithy_http_client::Builder::new().build_http(),
            (false, false) => {
                let endpoint = custom_endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
                let message = format!(
                    "no trusted CA certificates were found, so HTTPS to {endpoint} cannot be \
                     verified: install the system CA bundle (ca-certificates) or point \
                     SSL_CERT_FILE at one"
                );
                return Err(S3Error::new("Connect", "", "NetworkError", message).into());
            }
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(pacer::paced(http))
            .region(Region::new(region.clone()))
            .retry_config(retry::retry_config())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(settings.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT))
                    .build(),
            );
        if let Some(ep) = &settings.endpoint {
            loader = loader.endpoint_url(ep);
        }
        if let Some(credentials) = &settings.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let sdk = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            // Integrity is ours (Content-MD5, MD5 vs ETag); the SDK's newer
            // checksums are not understood by every S3-compatible server.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_classifier(retry::server_errors())
            .retry_classifier(retry::TooManyRequests)
            .retry_partition(retry::partition(
                custom_endpoint.as_deref().unwrap_or(&region),
                bucket,
            ))
            .force_path_style(
                settings
                    .force_path_style
                    .unwrap_or(custom_endpoint.is_some()),
            )
            .build();
        // AWS documents the conditions the sync relies on; other servers
        // are probed before they are trusted with them.
        let scratch = settings
            .scratch_prefix
            .clone()
            .filter(|_| custom_endpoint.is_some());
        Ok(S3Store {
            client: Client::from_conf(config),
            bucket: bucket.to_owned(),
            endpoint: custom_endpoint
                .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
            region,
            aborting: Arc::default(),
            scratch,
            honoured: Arc::default(),
            conditional_writes: settings.conditional_writes,
        })
    }

    /// An error naming the operation, bucket, key, endpoint and S3's error
    /// code, with a hint for the usual mistakes. The SDK's error text never
    /// holds credentials or signatures; its `Debug` form is never shown.
    fn error<E>(&self, op: &str, key: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let chain = error_chain(&err);
        let (code, detail) = match &err {
            SdkError::ServiceError(e) => (
                e.err()
                    .code()
                    .map(str::to_owned)
                    .unwrap_or_else(|| status_code_name(status)),
                e.err().message().unwrap_or("").to_owned(),
            ),
            SdkError::DispatchFailure(e) if e.is_timeout() => ("Timeout".to_owned(), chain),
            SdkError::DispatchFailure(e) if e.is_other() && chain.contains("credential") => {
                ("CredentialsError".to_owned(), chain)
            }
            SdkError::DispatchFailure(_) => ("NetworkError".to_owned(), chain),
            SdkError::TimeoutError(_) => ("Timeout".to_owned(), chain),
            SdkError::ResponseError(_) => ("InvalidResponse".to_owned(), chain),
            SdkError::ConstructionFailure(_) => ("RequestNotSent".to_owned(), chain),
            _ => ("Unknown".to_owned(), chain),
        };
        let what = format!("{op} s3://{}/{key} at {}", self.bucket, self.endpoint);
        let mut failure = answer_error(op, key, &what, code, status, &detail, Some(&self.region));
        failure.error = failure.error.with_source(err);
        failure.into()
    }
}

/// An error and its sources as one line of their `Display` forms (a
/// source that repeats its parent's text is left out).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    // One line: a credential chain lists its attempts on lines of their own.
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// S3's code for an answer with no error body (HEAD requests).
fn status_code_name(status: Option<u16>) -> String {
    match status {
        Some(301) => "PermanentRedirect".into(),
        Some(403) => "AccessDenied".into(),
        Some(404) => "NotFound".into(),
        Some(s) => format!("Http{s}"),
        None => "Unknown".into(),
    }
}

/// Whether the system has CA certificates to verify HTTPS with (looked up
/// once per process; the HTTP client would otherwise fail obscurely, or
/// panic in debug builds).
fn has_ca_roots() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty())
}

/// The HTTP(S) client for the SDK: rustls on ring rather than aws-lc, since
/// ring cross-compiles to every target the package ships.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;
/// Objects at least this large download as parallel ranged GETs, one
/// range per part of the content hash (so each range hashes on its own).
const RANGED_MIN: u64 = 32 * MIB;
const RANGE_SIZE: u64 = PART_SIZE;
const RANGES_IN_FLIGHT: usize = 6;
/// Files of `PART_SIZE` and more upload in parts of that size (their ETag
/// is then their content hash), read from disk part by part; smaller ones
/// are read whole (at most this much per upload in memory).
const PARTS_IN_FLIGHT: usize = 6;
/// Keys per `DeleteObjects` request (S3's limit), and requests at once.
const DELETE_BATCH: usize = 1000;
const DELETE_BATCHES_IN_FLIGHT: usize = 4;
/// Single deletes at once, where batches cannot be trusted.
const DELETES_IN_FLIGHT: usize = 16;
/// Longest wait for clean-up requests when an operation is cancelled (it
/// must still end within a second).
const SETTLE_MAX: Duration = Duration::from_millis(600);

/// What a GET's or HEAD's output says of the object (the two outputs have
/// the same accessors, but no trait in common).
macro_rules! info_of {
    ($out:expr) => {{
        let out = &$out;
        object_info(
            out.e_tag(),
            stored_hash(|k| out.metadata().and_then(|m| m.get(k)).map(String::as_str)),
            out.server_side_encryption().map(|s| s.as_str()),
            out.sse_customer_algorithm(),
        )
    }};
}

/// The MD5 of a part read into memory, off the async threads.
async fn part_md5(bytes: Bytes) -> Result<[u8; 16]> {
    tokio::task::spawn_blocking(move || md5::Md5::digest(&bytes).into())
        .await
        .map_err(|e| Error::Io(format!("hashing task failed: {e}")))
}

impl S3Store {
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
        let first = self.get_range(key, Some((0, RANGE_SIZE - 1)), None).await?;
        let ObjectInfo {
            etag,
            hash,
            etag_is_md5,
        } = info_of!(first);
        let total = first
            .content_range()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, t)| t.parse::<u64>().ok());
        let Some(total) = total else {
            // The server sent the whole object: stream it as it is.
            let stream = self.body_stream(key, first.body);
            return Ok(ObjectBody {
                stream,
                etag,
                hash,
                etag_is_md5,
            });
        };
        let head = first
            .body
            .collect()
            .await
            .map_err(|e| self.body_error(key, e))?;
        let this = self.clone();
        let (key, version) = (key.to_owned(), etag.clone());
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
            stream,
            etag,
            hash,
            etag_is_md5,
        })
    }

    /// Uploads in `PART_SIZE` parts, `PARTS_IN_FLIGHT` at a time, each read
    /// from disk and sent with its own `Content-MD5`. Aborted (never left
    /// half-done) on any failure, or if the file changed meanwhile.
    async fn put_multipart(&self, req: PutRequest<'_>) -> Result<Option<String>> {
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
        let sent = async {
            let upload_id = self.create_upload(&req, slot).await?;
            let parts = self.upload_parts(&req, &upload_id).await?;
            Ok::<_, Error>((upload_id, parts))
        };
        let (honoured, sent) = tokio::join!(honoured, sent);
        if !honoured {
            // Completing would overwrite whatever is there now: the parts
            // are dropped (the guard aborts the upload) and the file goes in
            // one conditional PutObject, which the server does honour.
            drop(guard);
            return self.put_whole(&req).await;
        }
        let (upload_id, parts) = sent?;
        let condition = self.sendable(req.key, req.condition).await?;
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(req.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_if_match(if_match(condition))
            .set_if_none_match(if_none_match(condition))
            .send()
            .await
            .map(|out| out.e_tag().map(unquote_etag))
            .map_err(|e| self.error("CompleteMultipartUpload", req.key, e));
        let done = missing_is_conflict(done, if_match(condition).is_some());
        if done.is_ok() {
            guard.0 = None;
        }
        done
    }

    /// A large file in one conditional PutObject, streamed from the checked
    /// handle with the MD5 of the whole body (one more pass over the file):
    /// for servers that ignore conditions on `CompleteMultipartUpload`.
    async fn put_whole(&self, req: &PutRequest<'_>) -> Result<Option<String>> {
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
        let md5 = whole_md5(file.clone(), req.path.to_path_buf()).await?;
        let body = file_body(file, req.path.to_path_buf(), size);
        let etag = self.send_put(req, body, md5).await?;
        req.progress.moved(size);
        check_unchanged(req.file, req.path, &req.stat)?;
        Ok(etag)
    }

    /// One PutObject of the file's bytes `body` (whose MD5 is `md5`), with
    /// its content type, content hash and condition; returns the new ETag.
    /// Bytes that do not match `md5` (the file changed since it was hashed)
    /// are refused by the server: `FILE_CHANGED`.
    async fn send_put(
        &self,
        req: &PutRequest<'_>,
        body: ByteStream,
        md5: [u8; 16],
    ) -> Result<Option<String>> {
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
            .metadata(HASH_META, req.hash)
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
        Ok(out.e_tag().map(unquote_etag))
    }

    /// Creates the multipart upload in a task of its own that puts the id in
    /// `slot`, or aborts the upload itself if the slot was abandoned
    /// meanwhile; `settle` waits for that task too.
    async fn create_upload(
        &self,
        req: &PutRequest<'_>,
        slot: Arc<Mutex<UploadSlot>>,
    ) -> Result<String> {
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(req.key)
            .content_type(req.content_type)
            .metadata(HASH_META, req.hash);
        let (this, key) = (self.clone(), req.key.to_owned());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let created = match request.send().await {
                Ok(out) => Ok(out.upload_id().unwrap_or_default().to_owned()),
                Err(e) => Err(this.error("CreateMultipartUpload", &key, e)),
            };
            if let Ok(id) = &created {
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
            .unwrap_or_else(|_| Err(Error::Io("the upload task ended early".into())))
    }

    /// Keeps `task` (clean-up that must not be cut off) for `settle`.
    fn track(&self, task: tokio::task::JoinHandle<()>) {
        let mut pending = self.aborting.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|t| !t.is_finished());
        pending.push(task);
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
    }

    async fn upload_parts(
        &self,
        req: &PutRequest<'_>,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>> {
        let size = req.stat.size;
        let count = size.div_ceil(PART_SIZE);
        // The parts' MD5s from when the file was hashed, if they make up its
        // hash: the server then refuses any part whose bytes changed since.
        let known = (req.parts.len() as u64 == count && content_hash(size, req.parts) == req.hash)
            .then_some(req.parts);
        let parts = (0..count).map(|i| (i as i32 + 1, i * PART_SIZE));
        let sent: Vec<(CompletedPart, [u8; 16])> = futures::stream::iter(parts)
            .map(|(number, offset)| async move {
                let len = PART_SIZE.min(size - offset);
                let file = req
                    .file
                    .try_clone()
                    .map_err(|e| Error::io("read", req.path, e))?;
                let hashed = known.map(|k| k[number as usize - 1]);
                let bytes = read_part(Arc::new(file), req.path.to_path_buf(), offset, len).await?;
                let md5 = match hashed {
                    Some(md5) => md5,
                    None => part_md5(bytes.clone()).await?,
                };
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(req.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(len as i64)
                    .content_md5(BASE64.encode(md5))
                    .body(ByteStream::from(bytes))
                    // Content-MD5 already guards the bytes: no SHA-256 pass.
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
                    .build();
                Ok::<_, Error>((part, md5))
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await?;
        let (uploaded, digests): (Vec<CompletedPart>, Vec<[u8; 16]>) = sent.into_iter().unzip();
        // The parts are the bytes read just now; they match the hash recorded
        // in the metadata only if the file is still the one that was hashed.
        check_unchanged(req.file, req.path, &req.stat)?;
        if content_hash(req.stat.size, &digests) != req.hash {
            return Err(changed_while_uploaded(req.path));
        }
        Ok(uploaded)
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
    reading: Option<tokio::task::JoinHandle<Result<Bytes>>>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>>>> {
        const CHUNK: u64 = MIB;
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        if this.reading.is_none() {
            if this.offset >= this.size {
                return Poll::Ready(None);
            }
            let len = CHUNK.min(this.size - this.offset);
            let (file, path, offset) = (this.file.clone(), this.path.clone(), this.offset);
            this.offset += len;
            this.reading = Some(tokio::task::spawn_blocking(move || {
                read_at(&file, &path, offset, len)
            }));
        }
        let reading = this.reading.as_mut().expect("started above");
        match std::pin::Pin::new(reading).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(joined) => {
                this.reading = None;
                let bytes = joined
                    .map_err(|e| Error::Io(format!("read task failed: {e}")))
                    .and_then(|r| r);
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
struct UploadSlot {
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

impl S3Store {
    /// One `DeleteObjects` request; a failure of the whole request fails
    /// its first key and leaves the others not attempted.
    async fn delete_batch(
        &self,
        batch: Vec<(String, Option<String>)>,
    ) -> Vec<(String, Result<()>)> {
        let identifiers: Vec<ObjectIdentifier> = batch
            .iter()
            .filter_map(|(key, if_match)| {
                ObjectIdentifier::builder()
                    .key(key)
                    .set_e_tag(if_match.as_deref().map(quote_etag))
                    .build()
                    .ok()
            })
            .collect();
        let answer = match Delete::builder()
            .set_objects(Some(identifiers))
            .quiet(true)
            .build()
        {
            Ok(delete) => self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.error("DeleteObjects", &batch[0].0, e)),
            Err(e) => Err(Error::Io(format!("DeleteObjects request: {e}"))),
        };
        match answer {
            // Quiet: only the keys that failed are named.
            Ok(out) => {
                let failed: std::collections::HashMap<&str, &aws_sdk_s3::types::Error> = out
                    .errors()
                    .iter()
                    .filter_map(|e| Some((e.key()?, e)))
                    .collect();
                batch
                    .iter()
                    .map(|(key, if_match)| {
                        let result = match failed.get(key.as_str()) {
                            None => Ok(()),
                            Some(e) => missing_is_conflict(
                                Err(self.delete_error(key, e)),
                                if_match.is_some(),
                            ),
                        };
                        (key.clone(), result)
                    })
                    .collect()
            }
            // A server without DeleteObjects (GCS's XML API, some
            // gateways): one DeleteObject per key, from now on.
            Err(e) if not_implemented(&e) => {
                self.refuse_batches(&e);
                self.delete_singles(&batch).await
            }
            Err(e) => vec![(batch[0].0.clone(), Err(e))],
        }
    }

    /// One `DeleteObject` per key (conditional on its ETag), a few at once.
    async fn delete_singles(
        &self,
        objects: &[(String, Option<String>)],
    ) -> Vec<(String, Result<()>)> {
        let singles = objects.iter().cloned().map(|(key, etag)| async move {
            let result = crate::store::Store::delete(self, &key, etag.as_deref()).await;
            (key, result)
        });
        futures::stream::iter(singles)
            .buffered(DELETES_IN_FLIGHT)
            .collect()
            .await
    }

    /// One key's failure in a `DeleteObjects` answer.
    fn delete_error(&self, key: &str, e: &aws_sdk_s3::types::Error) -> Error {
        let code = e.code().unwrap_or("Unknown");
        let message = format!(
            "DeleteObjects s3://{}/{key} at {} failed: {code}: {}",
            self.bucket,
            self.endpoint,
            e.message().unwrap_or("")
        );
        match code {
            "PreconditionFailed" => Error::Conflict(message),
            _ => S3Error::new("DeleteObjects", key, code, message).into(),
        }
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[async_trait]
impl Store for S3Store {
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_continuation_token(token.map(str::to_owned))
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

    async fn get(&self, key: &str, size_hint: Option<u64>) -> Result<ObjectBody> {
        match size_hint {
            Some(size) if size >= RANGED_MIN => self.get_ranged(key).await,
            _ => {
                let out = self.get_range(key, None, None).await?;
                let info = info_of!(out);
                Ok(ObjectBody {
                    etag: info.etag,
                    hash: info.hash,
                    etag_is_md5: info.etag_is_md5,
                    stream: self.body_stream(key, out.body),
                })
            }
        }
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
            Ok(out) => Ok(Some(info_of!(out))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(self.error("HeadObject", key, e)),
        }
    }

    async fn put(&self, req: PutRequest<'_>) -> Result<Option<String>> {
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
        let md5 = plain_md5(req.hash)
            .ok_or_else(|| Error::Io(format!("{}: bad hash {}", req.path.display(), req.hash)))?;
        self.send_put(&req, ByteStream::from(bytes), md5).await
    }

    async fn abort_abandoned_uploads(&self, prefix: &str, age: Duration) -> Result<usize> {
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

    /// `DeleteObjects` of up to 1,000 keys per request, a few requests at
    /// once, each key conditional on its ETag (`ObjectIdentifier.ETag`);
    /// where the server ignores that condition (probed once, when it
    /// matters), one `DeleteObject` with `If-Match` per key, a few at once.
    async fn delete_many(&self, objects: &[(String, Option<String>)]) -> Vec<(String, Result<()>)> {
        let conditional = objects.iter().any(|(_, etag)| etag.is_some());
        let batched = objects.len() > 1
            && !self.batch_refused()
            && (!conditional || (self.trusted().await && self.honours(Probe::BatchDelete).await));
        if !batched {
            return self.delete_singles(objects).await;
        }
        let batches: Vec<Vec<(String, Option<String>)>> =
            objects.chunks(DELETE_BATCH).map(<[_]>::to_vec).collect();
        futures::stream::iter(batches)
            .map(|batch| self.delete_batch(batch))
            .buffered(DELETE_BATCHES_IN_FLIGHT)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    fn take_warnings(&self) -> Vec<Warning> {
        self.take_notes()
    }

    async fn check_conditions(&self) -> Result<()> {
        S3Store::check_conditions(self).await
    }

    /// Up to `SETTLE_MAX` for the aborts of dropped multipart uploads.
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
