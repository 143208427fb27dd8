//! The SDK's errors as the engine's: operation, bucket, key, endpoint,
//! S3's code and a hint (see `store::answers`).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::{Error, Result};
use crate::store::answers::{answer_error, etag_in_answer};
use crate::store::Written;

use super::S3Store;

impl S3Store {
    /// An error naming the operation, bucket, key, endpoint and S3's error
    /// code, with a hint for the usual mistakes. The SDK's error text never
    /// holds credentials or signatures; its `Debug` form is never shown.
    pub(super) fn error<E>(&self, op: &str, key: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let chain = error_chain(&err);
        let (code, detail) = match &err {
            // A success the SDK could not read (see `written`).
            SdkError::ServiceError(e) if e.raw().status().is_success() => {
                ("InvalidResponse".to_owned(), chain)
            }
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

    /// What a write's answer says was written: `read` from the SDK's
    /// output, or, for a success answer the SDK could not read, the ETag its
    /// body names and its version header. S3 fails such a request only with
    /// an `<Error>` body, which the SDK reads (it has a code); anything else
    /// is done, and reporting it failed would make callers retry a write
    /// that is already there.
    pub(super) fn written<O, E>(
        &self,
        op: &str,
        key: &str,
        answer: std::result::Result<O, SdkError<E, HttpResponse>>,
        read: impl FnOnce(O) -> Written,
    ) -> Result<Written>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match answer {
            Ok(out) => Ok(read(out)),
            Err(err) => unread_success(&err).ok_or_else(|| self.error(op, key, err)),
        }
    }
}

/// See `S3Store::written`: `None` unless the answer is a 2xx with no error
/// code whose body names an ETag.
fn unread_success<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<Written> {
    let SdkError::ServiceError(e) = err else {
        return None;
    };
    let raw = e.raw();
    if !raw.status().is_success() || e.err().code().is_some() {
        return None;
    }
    let body = std::str::from_utf8(raw.body().bytes()?).ok()?;
    Some(Written {
        etag: Some(etag_in_answer(body)?),
        version: raw.headers().get("x-amz-version-id").map(str::to_owned),
        hash: None,
    })
}

/// The SDK's words for its own wrappers of a failed request ("dispatch
/// failure: timeout: …"): the error's code says as much.
const SDK_WRAPPERS: [&str; 5] = [
    "dispatch failure",
    "timeout",
    "io error",
    "user error",
    "other",
];

/// An error and its sources as one line of their `Display` forms (a
/// source that repeats its parent's text, and the SDK's wrappers, are left
/// out).
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.len() > 1 {
        let last = parts.pop();
        parts.retain(|p| !SDK_WRAPPERS.contains(&p.as_str()));
        parts.extend(last);
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

/// Whether `e` says the server does not implement the request at all (as
/// opposed to failing it).
pub(super) fn not_implemented(e: &Error) -> bool {
    matches!(e, Error::S3(s) if matches!(s.status, Some(501 | 405))
        || s.code == "NotImplemented" || s.code == "MethodNotAllowed")
}
