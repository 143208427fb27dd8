//! Connecting: the SDK client, its TLS roots, timeouts and retries.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::{
    Region, RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::error::{Result, S3Error};

use super::probes::ConditionalWrites;
use super::S3Store;

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
    /// Longest a request may go with no piece of its body taken and no
    /// answer (the SDK then retries).
    pub read_timeout: Option<Duration>,
    /// Where the store may write probe objects of its own (under the
    /// prefix: the only place a scoped policy lets it write) to find out
    /// which conditions the server honours. Without it, every condition is
    /// trusted as sent.
    pub scratch_prefix: Option<String>,
    /// How conditional writes are used.
    pub conditional_writes: ConditionalWrites,
}

impl S3Store {
    /// A store on `bucket`, reached as `settings` say. Fails only when HTTPS
    /// cannot be verified (no CA certificates on the system).
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
        if !plain && !super::http::has_ca_roots() {
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
        let stall = settings.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT);
        let http = https_client();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(super::pacer::paced(super::stall::watched(http)))
            .region(Region::new(region.clone()))
            .retry_config(super::retry::retry_config())
            // Stalls are `stallTimeoutMs`'s alone (`stall`, and each body's
            // `Life`): the SDK's own guard cut a body that paused for 5 s,
            // with its own wording, whatever that option said.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(stall)
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
            .retry_classifier(super::retry::server_errors())
            .retry_classifier(super::retry::TooManyRequests)
            .retry_partition(super::retry::partition(
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
            stall,
        })
    }
}

/// The HTTP(S) client for the SDK (see `http`).
pub fn https_client() -> SharedHttpClient {
    super::http::client()
}

const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
