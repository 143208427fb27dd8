//! The engine's one error type. Every variant has a stable `code` that the
//! binding exposes to JavaScript; tests assert codes, not message text.

use std::path::Path;

/// Everything that can make a sync operation (or one file of it) fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a missing or invalid value.
    #[error("{0}")]
    InvalidOption(String),
    /// An S3 request failed for a reason that stops the whole operation
    /// (listing, missing bucket, credentials, unreachable endpoint).
    #[error("{0}")]
    S3(String),
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
    #[error("{0}")]
    Io(String),
    /// A file changed while it was being uploaded.
    #[error("{0}")]
    Changed(String),
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
}

impl Error {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidOption(_) => "INVALID_OPTION",
            Error::S3(_) => "S3_OPERATION_ERROR",
            Error::Workspace(_) => "WORKSPACE_ERROR",
            Error::Busy(_) => "WORKSPACE_BUSY",
            Error::UnsafeKey(_) => "UNSAFE_KEY",
            Error::Io(_) => "IO_ERROR",
            Error::Integrity(_) => "INTEGRITY_ERROR",
            Error::Changed(_) => "FILE_CHANGED",
            Error::Conflict(_) => "CONFLICT",
            Error::MassDelete(_) => "MASS_DELETE",
            Error::Syncignore(_) => "INVALID_SYNCIGNORE",
            Error::Cancelled(_) => "CANCELLED",
        }
    }

    /// An I/O error on `path`, with the operation that failed.
    pub fn io(op: &str, path: &Path, err: std::io::Error) -> Self {
        Error::Io(format!("{op} {}: {err}", path.display()))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What was being done to a file when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Download,
    Upload,
    Delete,
    Hash,
    Read,
}

/// A failure confined to one file: the operation goes on with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The object key (downloads) or workspace-relative path (the rest).
    pub path: String,
    pub code: &'static str,
    /// Upstream's form: `Failed to <action> <path>: <error>`.
    pub message: String,
}

impl FileError {
    pub fn new(action: Action, path: impl Into<String>, err: &Error) -> Self {
        let path = path.into();
        let verb = match action {
            Action::Download => "download",
            Action::Upload => "upload",
            Action::Delete => "delete",
            Action::Hash => "hash",
            Action::Read => "read",
        };
        FileError {
            message: format!("Failed to {verb} {path}: {err}"),
            code: err.code(),
            path,
        }
    }
}

impl FileError {
    /// A failure of the operation as a whole that did not stop it (the
    /// mass-deletion guard): no path, the error's own message.
    pub fn whole(err: &Error) -> Self {
        FileError {
            path: String::new(),
            code: err.code(),
            message: err.to_string(),
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
