//! JS functions the engine calls: the `contentTypeResolver` option and the
//! credential provider of a user's AWS SDK `S3Client`.

use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use engine::content_type::{guess_content_type, ContentTypeResolver};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::js_callback::{call_and_await, JsCallback};

/// Calls the user's `contentTypeResolver` with the workspace-relative path.
pub struct JsContentTypes(pub JsCallback<String, String>);

#[async_trait::async_trait]
impl ContentTypeResolver for JsContentTypes {
    async fn content_type(&self, rel: &str) -> String {
        // The JS wrapper already falls back to the built-in guess when the
        // resolver throws; this covers a closing environment.
        match self.0.call_async_catch(rel.to_owned()).await {
            Ok(ct) if !ct.is_empty() => ct,
            _ => guess_content_type(rel),
        }
    }
}

/// Credentials as `S3Client.config.credentials()` resolves them.
#[napi(object)]
pub struct NativeCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Milliseconds since the epoch.
    pub expiration: Option<f64>,
}

/// Asks the JS client's provider each time the SDK's cache needs fresh
/// credentials (first use, and before they expire).
pub struct JsCredentials(pub JsCallback<(), Promise<NativeCredentials>>);

impl std::fmt::Debug for JsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsCredentials")
    }
}

impl JsCredentials {
    async fn load(&self) -> std::result::Result<Credentials, CredentialsError> {
        // Only the error's text crosses over: a provider's message, never the
        // credentials themselves.
        let failed = |e: napi::Error| {
            CredentialsError::provider_error(format!("s3Client credentials: {}", e.reason))
        };
        let c = call_and_await(&self.0, ()).await.map_err(failed)?;
        let expiry = c
            .expiration
            .filter(|ms| ms.is_finite() && *ms > 0.0)
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms as u64));
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            c.session_token,
            expiry,
            "s3Client",
        ))
    }
}

impl ProvideCredentials for JsCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}
