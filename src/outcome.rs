//! An operation's outcome as JavaScript receives it.

use engine::Report;
use napi_derive::napi;

use crate::errors::{ErrorCode, NativeError, WarningCode};

#[napi(object)]
pub struct NativeReport {
    pub transferred: u32,
    pub bytes: f64,
    pub deleted: u32,
    pub unchanged: u32,
    /// Paths both sides changed (see `engine::Report::conflicts`).
    pub conflicts: Vec<String>,
    /// The conflict copies made (see `engine::Report::conflict_copies`).
    pub conflict_copies: Vec<NativeCopy>,
    /// What the caller should know though nothing failed.
    pub warnings: Vec<NativeWarning>,
    /// Local entries push could not sync (see `engine::Report::skipped`).
    pub skipped: Vec<NativeSkipped>,
    pub errors: Vec<NativeError>,
    pub duration_ms: f64,
    /// A dry run's decisions.
    pub plan: Option<NativePlan>,
    /// The checkpoint after a push or restore (versioned buckets).
    pub checkpoint: Option<String>,
}

/// A conflict copy: the path it is a version of, and where it is.
#[napi(object)]
pub struct NativeCopy {
    pub path: String,
    pub copy: String,
}

/// See `engine::Warning`.
#[napi(object)]
pub struct NativeWarning {
    pub path: String,
    pub code: WarningCode,
    pub message: String,
}

/// See `engine::model::Skipped`.
#[napi(object)]
pub struct NativeSkipped {
    /// Workspace-relative.
    pub path: String,
    pub code: ErrorCode,
    /// Why it does not sync (`symbolic link not followed`, …).
    pub reason: String,
}

/// What a dry run would do (workspace-relative paths, sorted).
#[napi(object)]
pub struct NativePlan {
    pub download: Vec<String>,
    pub delete_local: Vec<String>,
    pub upload: Vec<String>,
    pub delete_remote: Vec<String>,
    pub conflicts: Vec<String>,
}

/// What an operation came to: its report, or the error that stopped it.
#[napi(
    discriminant = "kind",
    discriminant_case = "lowercase",
    object_from_js = false
)]
pub enum NativeOutcome {
    Done { report: NativeReport },
    Failed { error: NativeError },
}

impl From<engine::Result<Report>> for NativeOutcome {
    fn from(result: engine::Result<Report>) -> Self {
        match result {
            Ok(r) => NativeOutcome::Done { report: r.into() },
            Err(e) => NativeOutcome::Failed { error: e.into() },
        }
    }
}

impl From<Report> for NativeReport {
    fn from(r: Report) -> Self {
        NativeReport {
            transferred: r.transferred as u32,
            bytes: r.bytes as f64,
            deleted: r.deleted as u32,
            unchanged: r.unchanged as u32,
            conflicts: r.conflicts,
            conflict_copies: r
                .conflict_copies
                .into_iter()
                .map(|(path, copy)| NativeCopy { path, copy })
                .collect(),
            warnings: r
                .warnings
                .into_iter()
                .map(|w| NativeWarning {
                    path: w.path,
                    code: w.code.into(),
                    message: w.message,
                })
                .collect(),
            skipped: r
                .skipped
                .into_iter()
                .map(|s| NativeSkipped {
                    path: s.path,
                    code: s.reason.code().into(),
                    reason: s.message,
                })
                .collect(),
            errors: r.errors.into_iter().map(NativeError::from).collect(),
            duration_ms: r.duration.as_secs_f64() * 1000.0,
            plan: r.plan.map(|p| NativePlan {
                download: p.download,
                delete_local: p.delete_local,
                upload: p.upload,
                delete_remote: p.delete_remote,
                conflicts: p.conflicts,
            }),
            checkpoint: r.checkpoint,
        }
    }
}

/// A pull of what other instances pushed: its report, and the paths it
/// wrote and deleted here.
#[napi(object)]
pub struct NativeRemotePull {
    pub report: NativeReport,
    pub written: Vec<String>,
    pub removed: Vec<String>,
}

/// What following other instances' pushes came to: `pulled` is absent
/// when there was nothing to pull. (One value, converted to JS at once:
/// boxing the larger variant would save nothing.)
#[allow(clippy::large_enum_variant)]
#[napi(
    discriminant = "kind",
    discriminant_case = "lowercase",
    object_from_js = false
)]
pub enum NativeRemoteOutcome {
    Done { pulled: Option<NativeRemotePull> },
    Failed { error: NativeError },
}

impl From<engine::Result<Option<Report>>> for NativeRemoteOutcome {
    fn from(result: engine::Result<Option<Report>>) -> Self {
        match result {
            Ok(pulled) => NativeRemoteOutcome::Done {
                pulled: pulled.map(|mut r| NativeRemotePull {
                    written: std::mem::take(&mut r.written),
                    removed: std::mem::take(&mut r.removed),
                    report: r.into(),
                }),
            },
            Err(e) => NativeRemoteOutcome::Failed { error: e.into() },
        }
    }
}

/// What `ensure` found (see `engine::Ensured`).
#[napi(object)]
pub struct NativeEnsured {
    pub paths: Vec<String>,
    pub downloaded: u32,
    pub missing: Vec<String>,
    /// Files under the paths that failed to download.
    pub errors: Vec<NativeError>,
}

/// What an `ensure` came to.
#[napi(
    discriminant = "kind",
    discriminant_case = "lowercase",
    object_from_js = false
)]
pub enum NativeEnsureOutcome {
    Done { ensured: NativeEnsured },
    Failed { error: NativeError },
}

impl From<engine::Result<engine::Ensured>> for NativeEnsureOutcome {
    fn from(result: engine::Result<engine::Ensured>) -> Self {
        match result {
            Ok(e) => NativeEnsureOutcome::Done {
                ensured: NativeEnsured {
                    paths: e.paths,
                    downloaded: e.downloaded as u32,
                    missing: e.missing,
                    errors: e.errors.into_iter().map(NativeError::from).collect(),
                },
            },
            Err(e) => NativeEnsureOutcome::Failed { error: e.into() },
        }
    }
}
