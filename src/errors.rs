//! Engine errors as JavaScript sees them: thrown errors carry the engine's
//! stable code as their `code`; operation outcomes carry `NativeError`
//! objects with the S3 fields, which the wrapper turns into `SyncError`s.

use napi_derive::napi;

/// A thrown error whose `code` is the engine's (`INVALID_OPTION`, …);
/// `#[napi]` functions return it as `napi::Result<T, String>`.
pub type JsError = napi::Error<String>;

pub fn engine_error(err: engine::Error) -> JsError {
    napi::Error::new(err.code().to_owned(), err.to_string())
}

/// A napi failure (building a callback, converting a value) as a thrown error.
pub fn napi_error(err: napi::Error) -> JsError {
    napi::Error::new(err.status.as_ref().to_owned(), err.reason.clone())
}

/// An error of an operation or of one of its files.
#[napi(object)]
pub struct NativeError {
    /// The engine's stable code (`S3_OPERATION_ERROR`, `CONFLICT`, …).
    pub code: String,
    pub message: String,
    /// The file (workspace-relative path or key); empty for the operation.
    pub path: String,
    /// S3 failures: S3's error code (`NoSuchBucket`) or the kind of failure
    /// (`NetworkError`, `Timeout`, `CredentialsError`, …).
    pub s3_code: Option<String>,
    /// S3 failures: the HTTP status, when an answer came.
    pub status_code: Option<u32>,
    /// S3 failures: whether trying again later may succeed.
    pub retryable: Option<bool>,
    /// S3 failures: the request (`ListObjectsV2`, `PutObject`, …).
    pub operation: Option<String>,
}

impl NativeError {
    fn new(code: &str, message: String, path: String, s3: Option<&engine::error::S3Error>) -> Self {
        NativeError {
            code: code.to_owned(),
            message,
            path,
            s3_code: s3.map(|s| s.code.clone()),
            status_code: s3.and_then(|s| s.status).map(u32::from),
            retryable: s3.map(|s| s.retryable()),
            operation: s3.map(|s| s.operation.clone()),
        }
    }
}

impl From<engine::Error> for NativeError {
    fn from(e: engine::Error) -> Self {
        NativeError::new(e.code(), e.to_string(), String::new(), e.s3())
    }
}

impl From<engine::FileError> for NativeError {
    fn from(e: engine::FileError) -> Self {
        NativeError::new(e.code, e.message, e.path, e.s3.as_ref())
    }
}
