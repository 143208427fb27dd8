//! The engine's one error type. Every variant has a stable `code` that the
//! binding exposes to JavaScript; tests assert codes, not message text. S3
//! failures carry structured fields (`S3Error`) so callers never parse text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Declares a code enum: each variant's stable text is its name in
/// UPPER_SNAKE case (the binding's string enums derive the same text from
/// the same names; a test below keeps the rule).
macro_rules! codes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every code.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable text JavaScript sees.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

codes!(
    /// The stable code of an `Error`, or of a local entry that cannot sync.
    ErrorCode {
        /// `Error::InvalidOption`.
        InvalidOption = "INVALID_OPTION",
        /// `Error::S3`.
        S3OperationError = "S3_OPERATION_ERROR",
        /// `Error::Workspace`.
        WorkspaceError = "WORKSPACE_ERROR",
        /// `Error::Busy`.
        WorkspaceBusy = "WORKSPACE_BUSY",
        /// `Error::UnsafeKey`.
        UnsafeKey = "UNSAFE_KEY",
        /// `Error::Io` and `Error::Task`.
        IoError = "IO_ERROR",
        /// `Error::Integrity`.
        IntegrityError = "INTEGRITY_ERROR",
        /// `Error::Changed`.
        FileChanged = "FILE_CHANGED",
        /// `Error::InUse`.
        FileInUse = "FILE_IN_USE",
        /// `Error::Conflict`.
        Conflict = "CONFLICT",
        /// `Error::MassDelete`.
        MassDelete = "MASS_DELETE",
        /// `Error::Syncignore`.
        InvalidSyncignore = "INVALID_SYNCIGNORE",
        /// `Error::Cancelled`.
        Cancelled = "CANCELLED",
        /// `Error::Unsupported`.
        UnsupportedStore = "UNSUPPORTED_STORE",
        /// `Error::VersioningRequired`.
        VersioningRequired = "VERSIONING_REQUIRED",
        /// `Error::NoCheckpoint`.
        CheckpointNotFound = "CHECKPOINT_NOT_FOUND",
        /// A link (never followed; not a failure).
        Symlink = "SYMLINK",
        /// A FIFO, socket or device.
        SpecialFile = "SPECIAL_FILE",
        /// A name that cannot be an S3 key.
        UnsafeName = "UNSAFE_NAME",
        /// A file or directory that could not be read.
        Unreadable = "UNREADABLE",
    }
);

codes!(
    /// The code of a `Warning`.
    WarningCode {
        /// The sync base could not be used as it was (see `BaseTrouble`).
        BaseDamaged = "BASE_DAMAGED",
        /// A path the (damaged or unusable) base did not know, decided by
        /// rules that lose nothing.
        UnknownToBase = "UNKNOWN_TO_BASE",
        /// A conflict copy whose name the ignore rules hide: it is not pushed.
        CopyIgnored = "COPY_IGNORED",
        /// Files deleted here as a mass deletion were restored from S3.
        DeletionsRestored = "DELETIONS_RESTORED",
        /// S3 holds a key that is also the directory of other keys: one
        /// shape was synced, the other left on S3.
        ShapeClash = "SHAPE_CLASH",
        /// A file a process holds open for writing was left alone.
        OpenForWriting = "OPEN_FOR_WRITING",
        /// The store ignores a condition this sync relies on: another
        /// request was used in its place.
        StoreConditionIgnored = "STORE_CONDITION_IGNORED",
        /// The store does not implement a request this sync would use
        /// (`DeleteObjects`): another was used in its place.
        StoreCallRefused = "STORE_CALL_REFUSED",
    }
);

/// Everything that can make a sync operation (or one file of it) fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a missing or invalid value: `field` is the `Config`
    /// field (the binding names it as its caller knows it).
    #[error("{field} {problem}")]
    InvalidOption {
        /// The `Config` field's name.
        field: &'static str,
        /// What is wrong with it (`is required`, `must be positive`, …).
        problem: String,
    },
    /// An S3 request failed (or its response body broke off).
    #[error("{0}")]
    S3(Box<S3Error>),
    /// The workspace directory is missing, is not a directory, or cannot be
    /// read or written.
    #[error("{0}")]
    Workspace(String),
    /// Another process is syncing the same workspace directory.
    #[error("{0}")]
    Busy(String),
    /// An object key cannot be mapped to a safe path inside the workspace.
    #[error("{0}")]
    UnsafeKey(String),
    /// A local file could not be read, written, renamed or removed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `rename`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Work the operation ran on another thread failed (it panicked, or
    /// stopped early): a bug, reported rather than hidden.
    #[error("{0}")]
    Task(String),
    /// A file changed while it was being read (hashed, uploaded) or was
    /// about to be replaced or deleted: it is left for the next sync.
    #[error("{0}")]
    Changed(String),
    /// A file a process holds open for writing: not replaced or deleted.
    #[error("{0}")]
    InUse(String),
    /// Downloaded bytes do not match what the server said they were.
    #[error("{0}")]
    Integrity(String),
    /// Both sides changed a path since the last sync; nothing was overwritten.
    #[error("{0}")]
    Conflict(String),
    /// A sync would delete most files at once; it deleted none.
    #[error("{0}")]
    MassDelete(String),
    /// The workspace's `.syncignore` is not a regular file, too large, or
    /// holds too many patterns.
    #[error("{0}")]
    Syncignore(String),
    /// The operation was cancelled before it finished.
    #[error("{0}")]
    Cancelled(String),
    /// The store lacks what this request needs to be safe (it ignores a
    /// condition, and no other request can stand in).
    #[error("{0}")]
    Unsupported(String),
    /// Checkpoints need a bucket whose versioning is enabled.
    #[error("{0}")]
    VersioningRequired(String),
    /// No checkpoint has that id, or none is that old.
    #[error("{0}")]
    NoCheckpoint(String),
}

impl Error {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidOption { .. } => ErrorCode::InvalidOption,
            Error::S3(_) => ErrorCode::S3OperationError,
            Error::Workspace(_) => ErrorCode::WorkspaceError,
            Error::Busy(_) => ErrorCode::WorkspaceBusy,
            Error::UnsafeKey(_) => ErrorCode::UnsafeKey,
            Error::Io { .. } | Error::Task(_) => ErrorCode::IoError,
            Error::Integrity(_) => ErrorCode::IntegrityError,
            Error::Changed(_) => ErrorCode::FileChanged,
            Error::InUse(_) => ErrorCode::FileInUse,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::MassDelete(_) => ErrorCode::MassDelete,
            Error::Syncignore(_) => ErrorCode::InvalidSyncignore,
            Error::Cancelled(_) => ErrorCode::Cancelled,
            Error::Unsupported(_) => ErrorCode::UnsupportedStore,
            Error::VersioningRequired(_) => ErrorCode::VersioningRequired,
            Error::NoCheckpoint(_) => ErrorCode::CheckpointNotFound,
        }
    }

    /// The S3 failure's fields, when this is one.
    pub fn s3(&self) -> Option<&S3Error> {
        match self {
            Error::S3(e) => Some(e),
            _ => None,
        }
    }

    /// An I/O error on `path`, with the operation that failed.
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// `field` (a `Config` field) has a missing or invalid value.
    pub fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Error::InvalidOption {
            field,
            problem: problem.into(),
        }
    }

    /// Work on another thread failed: `what` it was, and how.
    pub fn task(what: &str, how: impl std::fmt::Display) -> Self {
        Error::Task(format!("{what} failed: {how}"))
    }
}

impl From<S3Error> for Error {
    fn from(e: S3Error) -> Self {
        Error::S3(Box::new(e))
    }
}

/// A result whose error is, by default, the engine's `Error`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed S3 request: what was asked, what came back, whether to retry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct S3Error {
    /// The S3 operation (`ListObjectsV2`, `GetObject`, `PutObject`, …).
    pub operation: String,
    /// The object key, or the prefix for a listing.
    pub key: String,
    /// S3's error code (`NoSuchBucket`, `AccessDenied`, …), else one of
    /// `NetworkError`, `Timeout`, `CredentialsError`, `InvalidResponse`,
    /// `RequestNotSent`, `BodyError`, `Unknown`.
    pub code: String,
    /// The HTTP status of the answer, when one came.
    pub status: Option<u16>,
    /// The whole message: operation, bucket, key, endpoint, cause, hint.
    pub message: String,
    /// The client's own error, for `std::error::Error::source`.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl S3Error {
    /// A failure of `operation` on `key`, without a status or source.
    pub fn new(
        operation: impl Into<String>,
        key: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        S3Error {
            operation: operation.into(),
            key: key.into(),
            code: code.into(),
            status: None,
            message: message.into(),
            source: None,
        }
    }

    /// The same, with the answer's HTTP status.
    pub fn with_status(mut self, status: Option<u16>) -> Self {
        self.status = status;
        self
    }

    /// A GET body of `key` that broke off, stalled or was not the one
    /// asked for: `why`, after the operation and key.
    pub fn body_failed(key: &str, why: impl std::fmt::Display) -> Self {
        S3Error::new(
            "GetObject",
            key,
            BODY_ERROR,
            format!("GetObject {key}: {why}"),
        )
    }

    /// The same, with the client's own error as its source.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// A response body that broke off (or stalled) after the answer began:
    /// worth another download attempt.
    pub fn is_body_error(&self) -> bool {
        self.code == BODY_ERROR
    }

    /// Whether the same request may succeed later: throttling, server
    /// errors, network trouble, a broken body. (Clients already retried.)
    pub fn retryable(&self) -> bool {
        matches!(self.status, Some(408 | 429 | 500..=599))
            || matches!(
                self.code.as_str(),
                BODY_ERROR | "NetworkError" | "Timeout" | "SlowDown" | "RequestTimeout"
            )
    }

    /// Whether the store refused the request for its rate (S3's 503
    /// `SlowDown`, 429 elsewhere): worth another attempt once it slows down.
    pub fn is_throttled(&self) -> bool {
        self.status == Some(429)
            || matches!(
                self.code.as_str(),
                "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "TooManyRequests"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "RequestThrottled"
            )
    }

    /// Whether the request got no answer within the stall timeout.
    pub fn is_timeout(&self) -> bool {
        self.code == "Timeout"
    }

    /// Whether every other request of the operation would fail the same
    /// way (bucket missing, credentials refused, endpoint unreachable): the
    /// operation stops at the first such failure instead of repeating it.
    pub fn is_global(&self) -> bool {
        matches!(
            self.code.as_str(),
            "NoSuchBucket"
                | "AccessDenied"
                | "AllAccessDisabled"
                | "AccountProblem"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"
                | "TokenRefreshRequired"
                | "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "CredentialsError"
                | "NetworkError"
        )
    }
}

impl S3Error {
    /// What to check, for the failures people meet while setting up
    /// (`detail`: the failure's text; `region`: where requests went).
    pub fn hint(code: &str, detail: &str, region: Option<&str>) -> Option<String> {
        let region = region.map(|r| format!(" ({r})")).unwrap_or_default();
        Some(match code {
            "CredentialsError" => "No usable AWS credentials: set AWS_ACCESS_KEY_ID and \
                AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass an s3Client"
                .to_owned(),
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                "The credentials were refused: check the access key and secret key".to_owned()
            }
            "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => {
                "The session token expired or is invalid: refresh the credentials".to_owned()
            }
            "NoSuchBucket" => format!("Check the bucket name, the region{region} and the endpoint"),
            "AccessDenied" | "Forbidden" => {
                "The credentials lack permission for this request on this bucket and prefix \
                 (see the IAM policy in the README)"
                    .to_owned()
            }
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException" => {
                format!("The bucket is in another region than the one used{region}: set the region option")
            }
            "NetworkError" if detail.contains("certificate") || detail.contains("tls") => {
                "The TLS handshake failed: check the endpoint's certificate, or point \
                 SSL_CERT_FILE at the CA bundle that signed it"
                    .to_owned()
            }
            "NetworkError" => "The endpoint could not be reached: check the endpoint option \
                (scheme, host and port), the network and any proxy"
                .to_owned(),
            _ => return None,
        })
    }
}

/// `S3Error::code` of a body that broke off after the answer began.
pub const BODY_ERROR: &str = "BodyError";

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for S3Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What was being done to a file when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Downloading its object.
    Download,
    /// Uploading it.
    Upload,
    /// Deleting it, or its object.
    Delete,
    /// Hashing it before a push, to tell whether it changed.
    Hash,
    /// Making an old version of it current again (a restore).
    Restore,
}

/// A failure confined to one file: the operation goes on with the others.
#[derive(Debug, Clone)]
pub struct FileError {
    /// The workspace-relative path ("" when there is none: an object key
    /// that cannot be a path, or the operation as a whole).
    pub path: String,
    /// The object key, for a failure about an object (downloads).
    pub key: Option<String>,
    /// The code of the error behind it.
    pub code: ErrorCode,
    /// Upstream's form: `Failed to <action> <path>: <error>`.
    pub message: String,
    /// The S3 failure behind it, when there was one.
    pub s3: Option<S3Error>,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Download => "download",
            Action::Upload => "upload",
            Action::Delete => "delete",
            Action::Hash => "hash",
            Action::Restore => "restore",
        }
    }
}

impl FileError {
    /// `err` doing `action` to the file at `path` (workspace-relative).
    pub fn new(action: Action, path: impl Into<String>, err: &Error) -> Self {
        let path = path.into();
        FileError {
            message: format!("Failed to {} {path}: {err}", action.verb()),
            code: err.code(),
            s3: err.s3().cloned(),
            key: None,
            path,
        }
    }

    /// `err` downloading the object `key`, which stands for the file `rel`
    /// when it can be one (upstream's message names the key).
    pub fn download(key: impl Into<String>, rel: Option<String>, err: &Error) -> Self {
        let key = key.into();
        FileError {
            message: format!("Failed to {} {key}: {err}", Action::Download.verb()),
            code: err.code(),
            s3: err.s3().cloned(),
            path: rel.unwrap_or_default(),
            key: Some(key),
        }
    }
}

impl FileError {
    /// A failure of the operation as a whole that did not stop it (the
    /// mass-deletion guard): no path, the error's own message.
    pub fn whole(err: &Error) -> Self {
        FileError {
            path: String::new(),
            key: None,
            code: err.code(),
            message: err.to_string(),
            s3: err.s3().cloned(),
        }
    }
}

/// Something a completed operation did that the caller should know of,
/// though nothing failed: a damaged sync base recovered from, a path
/// decided without it, a conflict copy the ignore rules hide, deletions
/// restored. `path` is workspace-relative ("" for the operation as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The workspace-relative path; "" for the operation as a whole.
    pub path: String,
    /// What kind of warning.
    pub code: WarningCode,
    /// The text, as logged.
    pub message: String,
}

impl Warning {
    /// A warning about `path` (workspace-relative; "" for the operation).
    pub fn new(path: impl Into<String>, code: WarningCode, message: impl Into<String>) -> Self {
        Warning {
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SomeName` → `SOME_NAME` (a digit stays with the letters before it).
    fn upper_snake(name: &str) -> String {
        let mut out = String::new();
        let mut prev: Option<char> = None;
        for c in name.chars() {
            if c.is_uppercase() && prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit()) {
                out.push('_');
            }
            out.extend(c.to_uppercase());
            prev = Some(c);
        }
        out
    }

    #[test]
    fn every_code_is_its_name_in_upper_snake_case() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str(), upper_snake(&format!("{code:?}")));
        }
        for code in WarningCode::ALL {
            assert_eq!(code.as_str(), upper_snake(&format!("{code:?}")));
        }
    }
}
