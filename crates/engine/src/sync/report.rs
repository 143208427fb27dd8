//! What an operation did, for the binding to report.

use std::time::Duration;

use crate::error::{FileError, Warning};
use crate::model::Skipped;
use crate::plan::PlanSummary;

/// The outcome of a pull or push.
#[derive(Debug, Default)]
pub struct Report {
    /// Files downloaded (pull) or uploaded (push).
    pub transferred: usize,
    /// Bytes of those files.
    pub bytes: u64,
    /// Local files deleted (pull) or objects deleted (push).
    pub deleted: usize,
    /// Files that were already in sync.
    pub unchanged: usize,
    /// The paths written on the other side: downloaded (pull) or uploaded
    /// (push), conflict copies included.
    pub written: Vec<String>,
    /// The paths deleted on the other side: here (pull) or on S3 (push).
    pub removed: Vec<String>,
    /// The ETag each of those writes and deletions was conditional on (the
    /// object it replaced), by path.
    pub replaced: std::collections::HashMap<String, String>,
    /// The checkpoint naming the prefix's state after this push or restore
    /// (on a bucket that keeps versions).
    pub checkpoint: Option<String>,
    /// Paths both sides changed: a pull kept both versions (the local one
    /// under a conflict name), a push left the newer object alone.
    pub conflicts: Vec<String>,
    /// The conflict copies this operation made: (path, the copy's path).
    pub conflict_copies: Vec<(String, String)>,
    /// What the caller should know though nothing failed (see `Warning`).
    pub warnings: Vec<Warning>,
    /// Local entries a push could not sync, and why (those that are
    /// failures, all but links, are in `errors` too).
    pub skipped: Vec<Skipped>,
    /// Failures confined to one file (or not stopping the operation): the
    /// rest went on.
    pub errors: Vec<FileError>,
    /// How long the operation took.
    pub duration: Duration,
    /// A dry run's decisions (nothing was done); `None` for a real run.
    pub plan: Option<PlanSummary>,
}
