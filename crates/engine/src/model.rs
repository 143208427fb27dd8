//! The engine's value types: what the planner, the base, the stores and
//! the local side exchange. Plain data with no I/O, so each layer can name
//! them without depending on the layer that produces them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::error::{ErrorCode, FileError};

/// How the workspace's filesystem compares names (see `probe_folding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folding {
    /// `A` and `a` are the same file (macOS, Windows by default).
    pub case: bool,
    /// Unicode NFC and NFD spellings are the same file (macOS).
    pub unicode: bool,
}

impl Folding {
    /// The name under which the filesystem stores `rel`.
    pub fn fold(&self, rel: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let s: String = if self.unicode {
            rel.nfc().collect()
        } else {
            rel.to_owned()
        };
        if self.case {
            s.to_lowercase()
        } else {
            s
        }
    }
}

/// What identifies a version of a regular file without reading it: size,
/// modification and change times, and inode. A rewrite changes mtime or
/// ctime (ctime even when a tool restores mtime); a replace changes the inode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStat {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, in nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Change time (creation time where there is none, as on Windows), in
    /// nanoseconds since the Unix epoch.
    pub ctime_ns: i128,
    /// Inode number; 0 where there is none (Windows).
    pub ino: u64,
}

impl FileStat {
    /// The stat of the file `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let mtime_ns = meta.modified().map(nanos).unwrap_or(0);
        #[cfg(unix)]
        let (ctime_ns, ino) = {
            use std::os::unix::fs::MetadataExt;
            (
                meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
                meta.ino(),
            )
        };
        #[cfg(not(unix))]
        let (ctime_ns, ino) = (meta.created().map(nanos).unwrap_or(0), 0);
        FileStat {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            ino,
        }
    }
}

/// Nanoseconds since the Unix epoch (negative before it).
pub fn nanos(t: std::time::SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// What a scan of the workspace found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Regular, non-ignored files by relative path.
    pub files: BTreeMap<String, FileStat>,
    /// Leftover temp files of interrupted downloads (relative paths).
    pub temp_files: Vec<String>,
    /// Directories that could not be read (relative paths): nothing below
    /// them may be treated as deleted.
    pub unreadable_dirs: Vec<String>,
    /// Entries that cannot sync, with the reason: links, FIFOs, sockets and
    /// devices, names that cannot be keys, unreadable directories.
    pub skipped: Vec<Skipped>,
}

/// Why a local entry does not sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Links are never followed (by design: not a failure).
    Symlink,
    /// A FIFO, socket or device.
    SpecialFile,
    /// A name that cannot be an S3 key (not UTF-8, control characters…).
    UnsafeName,
    /// A directory or file that could not be read.
    Unreadable,
}

impl SkipReason {
    /// The stable code reported for it.
    pub fn code(self) -> ErrorCode {
        match self {
            SkipReason::Symlink => ErrorCode::Symlink,
            SkipReason::SpecialFile => ErrorCode::SpecialFile,
            SkipReason::UnsafeName => ErrorCode::UnsafeName,
            SkipReason::Unreadable => ErrorCode::Unreadable,
        }
    }
}

/// A local entry that does not sync, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its workspace-relative path (a name that is not UTF-8 shown with
    /// escapes).
    pub path: String,
    /// Why it does not sync.
    pub reason: SkipReason,
    /// The reason in words, for the report.
    pub message: String,
}

impl Skipped {
    /// As a per-file error (every reason but a link is one for push).
    pub fn to_error(&self) -> FileError {
        FileError {
            path: self.path.clone(),
            code: self.reason.code(),
            message: format!("Not uploaded {}: {}", self.path, self.message),
            s3: None,
            key: None,
        }
    }
}

impl Scan {
    /// Whether `rel` could not be read, or lies under a directory that
    /// could not: its state is unknown, so it is never taken as deleted.
    pub fn is_under_unreadable(&self, rel: &str) -> bool {
        self.unreadable_dirs.iter().any(|d| {
            rel == d
                || (rel.len() > d.len()
                    && rel.starts_with(d.as_str())
                    && rel.as_bytes()[d.len()] == b'/')
        })
    }

    pub(crate) fn skip(&mut self, path: String, reason: SkipReason, message: impl Into<String>) {
        let message = message.into();
        self.skipped.push(Skipped {
            path,
            reason,
            message,
        });
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// The whole object key (prefix included).
    pub key: String,
    /// Size in bytes; stand-in clients may not say.
    pub size: Option<u64>,
    /// The ETag without quotes, when the server gave one.
    pub etag: Option<String>,
    /// Downloads get this as their mtime.
    pub last_modified: Option<std::time::SystemTime>,
}

/// What a HEAD of an object told beyond its listing: what the planner
/// weighs where the ETag settles nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredMeta {
    /// The content hash its metadata vouches for.
    pub hash: Option<String>,
    /// The token of the unhashed upload that wrote it.
    pub token: Option<String>,
}

impl StoredMeta {
    /// Whether the object is the write a base intent names (a content hash
    /// or an upload token; see `SyncBase::intend`).
    pub fn holds(&self, intent: &str) -> bool {
        [&self.hash, &self.token]
            .into_iter()
            .any(|v| v.as_deref() == Some(intent))
    }
}

/// What a write requires of the object it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Unconditional (last writer wins).
    None,
    /// The object still has this ETag.
    IfMatch(String),
    /// There is no object.
    IfNoneMatch,
}

/// A local file's content hash and when its hashing began (for the base's
/// racy check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// The content hash (see `hashing`).
    pub hash: String,
    /// When hashing began, in nanoseconds since the Unix epoch (the epoch
    /// itself for a file open for writing, so its stat is never trusted).
    pub at_ns: i128,
    /// The MD5s of its parts, for a file of several (see `hashing`).
    pub parts: Arc<[[u8; 16]]>,
}
