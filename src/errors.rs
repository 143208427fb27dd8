//! Engine errors as JavaScript sees them: thrown errors carry the engine's
//! stable code as their `code`; operation outcomes carry `NativeError`
//! objects with the S3 fields, which the wrapper turns into `SyncError`s.

use napi_derive::napi;

/// A thrown error whose `code` is the engine's (`INVALID_OPTION`, …);
/// `#[napi]` functions return it as `napi::Result<T, String>`.
pub type JsError = napi::Error<String>;

pub fn engine_error(err: engine::Error) -> JsError {
    napi::Error::new(err.code().as_str().to_owned(), message_of(&err))
}

/// An engine error's message, an invalid setting named as the option the
/// caller passed (`options.workspaceDir …`).
fn message_of(err: &engine::Error) -> String {
    match err {
        engine::Error::InvalidOption { field, problem } => {
            format!("options.{} {problem}", crate::options::option_name(field))
        }
        other => other.to_string(),
    }
}

/// Declares a string enum for JavaScript with the variants of an engine
/// code enum: napi derives each value from the variant's name, as the
/// engine does (`UPPER_SNAKE`), and the conversion names every variant, so
/// a code added to the engine does not build until it is here too.
macro_rules! js_codes {
    ($(#[$meta:meta])* $name:ident from $engine:path { $($(#[$vmeta:meta])* $variant:ident,)* }) => {
        $(#[$meta])*
        #[napi(string_enum = "UPPER_SNAKE")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl From<$engine> for $name {
            fn from(code: $engine) -> Self {
                use $engine as E;
                match code {
                    $(E::$variant => $name::$variant,)*
                }
            }
        }
    };
}

js_codes!(
    /// The stable code of an error (see the engine's `ErrorCode`).
    ErrorCode from engine::error::ErrorCode {
        InvalidOption,
        // napi would write `S_3_…`.
        #[napi(value = "S3_OPERATION_ERROR")]
        S3OperationError,
        WorkspaceError,
        WorkspaceBusy,
        UnsafeKey,
        IoError,
        IntegrityError,
        FileChanged,
        FileInUse,
        Conflict,
        MassDelete,
        InvalidSyncignore,
        Cancelled,
        UnsupportedStore,
        VersioningRequired,
        CheckpointNotFound,
        Symlink,
        SpecialFile,
        UnsafeName,
        Unreadable,
    }
);

js_codes!(
    /// The code of a warning (see the engine's `WarningCode`).
    WarningCode from engine::error::WarningCode {
        BaseDamaged,
        UnknownToBase,
        CopyIgnored,
        DeletionsRestored,
        ShapeClash,
        OpenForWriting,
        StoreConditionIgnored,
        StoreCallRefused,
    }
);

/// A napi failure (building a callback, converting a value) as a thrown error.
pub fn napi_error(err: napi::Error) -> JsError {
    napi::Error::new(err.status.as_ref().to_owned(), err.reason.clone())
}

/// An error of an operation or of one of its files.
#[napi(object)]
pub struct NativeError {
    pub code: ErrorCode,
    pub message: String,
    /// The file, workspace-relative; empty for the operation (or for an
    /// object key that cannot be a path).
    pub path: String,
    /// The object key, for a failure about an object.
    pub key: Option<String>,
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
    fn new(
        code: engine::error::ErrorCode,
        message: String,
        path: String,
        key: Option<String>,
        s3: Option<&engine::error::S3Error>,
    ) -> Self {
        NativeError {
            code: code.into(),
            message,
            path,
            key,
            s3_code: s3.map(|s| s.code.clone()),
            status_code: s3.and_then(|s| s.status).map(u32::from),
            retryable: s3.map(|s| s.retryable()),
            operation: s3.map(|s| s.operation.clone()),
        }
    }
}

impl From<engine::Error> for NativeError {
    fn from(e: engine::Error) -> Self {
        NativeError::new(e.code(), message_of(&e), String::new(), None, e.s3())
    }
}

impl From<engine::FileError> for NativeError {
    fn from(e: engine::FileError) -> Self {
        NativeError::new(e.code, e.message, e.path, e.key, e.s3.as_ref())
    }
}
