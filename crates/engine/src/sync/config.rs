//! What one workspace syncs, and how: the engine's settings, checked once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::content_type::ContentTypeResolver;
use crate::error::{Error, Result};
use crate::keys::normalize_prefix;
use crate::local::{check_workspace_path, STATE_DIR};
use crate::plan::{ConflictPolicy, DEFAULT_MAX_DELETE_PERCENT};
use crate::store::s3::S3Settings;

/// Files a pull downloads at once unless told otherwise.
pub const DEFAULT_DOWNLOAD_CONCURRENCY: usize = 50;
/// Files a push uploads at once unless told otherwise.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 10;
/// `Config::stall_timeout` unless told otherwise.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// `Config::lock_timeout` unless told otherwise (5 minutes).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// Longer than any upload of the largest object this engine sends (10,000
/// parts of 8 MiB) takes on a slow link.
pub const DEFAULT_ABANDONED_UPLOAD_AGE: Duration = Duration::from_secs(24 * 3600);

/// The settings of one workspace: where it syncs to, and how.
#[derive(Clone)]
pub struct Config {
    /// The S3 bucket's name.
    pub bucket: String,
    /// Key prefix; a trailing `/` is added when missing.
    pub prefix: String,
    /// The local directory synced with the prefix.
    pub workspace_dir: PathBuf,
    /// How the native S3 store reaches S3 (unused when
    /// `Workspace::with_store` gives another store).
    pub s3: S3Settings,
    /// Files a pull downloads at once; at least 1.
    pub download_concurrency: usize,
    /// Files a push uploads at once; at least 1.
    pub upload_concurrency: usize,
    /// Ignore rules applied after the built-in defaults.
    pub ignore_patterns: Vec<String>,
    /// Workspace-relative directory whose files a pull downloads first.
    pub priority_prefix: Option<String>,
    /// Content-Type of uploads; `guess_content_type` when `None`.
    pub content_types: Option<Arc<dyn ContentTypeResolver>>,
    /// A download whose body sends nothing for this long is cut and retried;
    /// also the longest wait for a response to start.
    pub stall_timeout: Duration,
    /// What to do when both sides changed a path.
    pub conflict_policy: ConflictPolicy,
    /// A sync deletes nothing when it would delete more than this share of
    /// the files (see `plan::mass_delete`); 100 turns the guard off.
    pub max_delete_percent: u8,
    /// Longest wait for another instance's operation on the same workspace.
    pub lock_timeout: Duration,
    /// Where the sync base and the lock live; `<workspace>/.s3ws` if `None`.
    pub state_dir: Option<PathBuf>,
    /// Multipart uploads under the prefix started longer ago than this (left
    /// by a killed process) are aborted by the instance's first push;
    /// `None` leaves them to a bucket lifecycle rule.
    pub abandoned_upload_age: Option<Duration>,
}

impl Config {
    /// The settings for syncing `workspace_dir` with `prefix` in `bucket`,
    /// every other field at its default.
    pub fn new(bucket: &str, prefix: &str, workspace_dir: impl Into<PathBuf>) -> Self {
        Config {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            workspace_dir: workspace_dir.into(),
            s3: S3Settings::default(),
            download_concurrency: DEFAULT_DOWNLOAD_CONCURRENCY,
            upload_concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            ignore_patterns: Vec::new(),
            priority_prefix: None,
            content_types: None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            conflict_policy: ConflictPolicy::default(),
            max_delete_percent: DEFAULT_MAX_DELETE_PERCENT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            state_dir: None,
            abandoned_upload_age: Some(DEFAULT_ABANDONED_UPLOAD_AGE),
        }
    }

    /// The directory of the sync base and the lock.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.workspace_dir.join(STATE_DIR))
    }

    pub(super) fn validate(mut self) -> Result<Self> {
        for (name, value) in [("bucket", &self.bucket), ("prefix", &self.prefix)] {
            if value.is_empty() {
                return Err(Error::invalid(name, "is required"));
            }
        }
        if self.stall_timeout.is_zero() {
            return Err(Error::invalid("stall_timeout", "must be positive"));
        }
        check_workspace_path(&self.workspace_dir)?;
        for (name, value) in [
            ("download_concurrency", self.download_concurrency),
            ("upload_concurrency", self.upload_concurrency),
        ] {
            if value == 0 {
                return Err(Error::invalid(name, "must be a positive integer"));
            }
        }
        if self.max_delete_percent > 100 {
            return Err(Error::invalid(
                "max_delete_percent",
                "must be a percentage (0 to 100)",
            ));
        }
        self.prefix = normalize_prefix(&self.prefix);
        self.priority_prefix = self
            .priority_prefix
            .as_deref()
            .and_then(normalize_priority_prefix);
        Ok(self)
    }
}

/// `./src` → `src/`; an empty or root-only prefix means no priority.
fn normalize_priority_prefix(p: &str) -> Option<String> {
    let p = p.trim_start_matches("./").trim_start_matches('/');
    (!p.is_empty()).then(|| normalize_prefix(p))
}
