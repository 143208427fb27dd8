//! `Store` on Amazon S3 (or any S3-compatible server) through aws-sdk-s3.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use base64::Engine as _;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::store::{unquote_etag, ListPage, ObjectBody, PutRequest, RemoteObject, Store};

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
}

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Where requests go, for error messages.
    endpoint: String,
}

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
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .region(Region::new(region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(4))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
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
            .force_path_style(
                settings
                    .force_path_style
                    .unwrap_or(custom_endpoint.is_some()),
            )
            .build();
        Ok(S3Store {
            client: Client::from_conf(config),
            bucket: bucket.to_owned(),
            endpoint: custom_endpoint
                .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
        })
    }

    /// An error naming the operation, bucket, key, endpoint and S3's error
    /// code. The SDK's error text never holds credentials or signatures.
    fn error<E, R>(&self, op: &str, key: &str, err: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = match &err {
            SdkError::ServiceError(e) => e.err().code().unwrap_or("Unknown").to_owned(),
            SdkError::DispatchFailure(_) => "NetworkError".to_owned(),
            SdkError::TimeoutError(_) => "Timeout".to_owned(),
            SdkError::ResponseError(_) => "InvalidResponse".to_owned(),
            SdkError::ConstructionFailure(_) => "RequestNotSent".to_owned(),
            _ => "Unknown".to_owned(),
        };
        let detail = match &err {
            SdkError::ServiceError(e) => e.err().message().unwrap_or("").to_owned(),
            _ => DisplayErrorContext(&err).to_string(),
        };
        Error::S3(format!(
            "{op} s3://{}/{key} at {} failed: {code}: {detail}",
            self.bucket, self.endpoint
        ))
    }
}

/// The HTTP(S) client for the SDK: rustls on ring rather than aws-lc, since
/// ring cross-compiles to every target the package ships.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
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

    async fn get(&self, key: &str) -> Result<ObjectBody> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("GetObject", key, e))?;
        let etag = out.e_tag().map(unquote_etag);
        let what = format!("GetObject s3://{}/{key} at {}", self.bucket, self.endpoint);
        let stream = futures::stream::unfold(Some(out.body), move |body| {
            let what = what.clone();
            async move {
                let mut body: ByteStream = body?;
                match body.next().await? {
                    Ok(chunk) => Some((Ok(chunk), Some(body))),
                    Err(e) => Some((
                        Err(Error::S3(format!(
                            "{what} failed while reading the body: {e}"
                        ))),
                        None,
                    )),
                }
            }
        })
        .boxed();
        Ok(ObjectBody { stream, etag })
    }

    async fn put(&self, req: PutRequest<'_>) -> Result<Option<String>> {
        let body = ByteStream::read_from()
            .path(req.file)
            .length(aws_smithy_types::byte_stream::Length::Exact(req.size))
            .build()
            .await
            .map_err(|e| Error::Io(format!("read {}: {e}", req.file.display())))?;
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(req.key)
            .body(body)
            .content_length(req.size as i64)
            .content_type(req.content_type)
            .content_md5(base64::engine::general_purpose::STANDARD.encode(req.md5))
            .send()
            .await
            .map_err(|e| self.error("PutObject", req.key, e))?;
        Ok(out.e_tag().map(unquote_etag))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("DeleteObject", key, e))?;
        Ok(())
    }
}
