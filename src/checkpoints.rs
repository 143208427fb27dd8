//! Checkpoints across the boundary: targets in, checkpoint lists and diffs
//! out (see the engine's `sync::checkpoint`).

use std::time::{Duration, UNIX_EPOCH};

use engine::sync::restore::Diff;
use engine::{CheckpointInfo, Target};
use napi_derive::napi;

use crate::errors::NativeError;

/// A checkpoint by id, or the newest at or before a time (ms since the
/// epoch). Exactly one is given (the JS wrapper checks).
#[napi(object)]
pub struct NativeTarget {
    pub checkpoint: Option<String>,
    pub at_ms: Option<f64>,
}

impl From<NativeTarget> for Target {
    fn from(t: NativeTarget) -> Self {
        match (t.checkpoint, t.at_ms) {
            (Some(id), _) => Target::Checkpoint(id),
            (None, at) => {
                Target::At(UNIX_EPOCH + Duration::from_millis(at.unwrap_or(0.0).max(0.0) as u64))
            }
        }
    }
}

/// See `engine::CheckpointInfo`.
#[napi(object)]
pub struct NativeCheckpoint {
    pub id: String,
    pub time_ms: f64,
    pub files: f64,
    pub bytes: f64,
    pub changed: f64,
}

impl From<CheckpointInfo> for NativeCheckpoint {
    fn from(c: CheckpointInfo) -> Self {
        NativeCheckpoint {
            id: c.id,
            time_ms: c
                .time
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_millis() as f64),
            files: c.files as f64,
            bytes: c.bytes as f64,
            changed: c.changed as f64,
        }
    }
}

#[napi(
    discriminant = "kind",
    discriminant_case = "lowercase",
    object_from_js = false
)]
pub enum NativeCheckpointsOutcome {
    Done { checkpoints: Vec<NativeCheckpoint> },
    Failed { error: NativeError },
}

impl From<engine::Result<Vec<CheckpointInfo>>> for NativeCheckpointsOutcome {
    fn from(result: engine::Result<Vec<CheckpointInfo>>) -> Self {
        match result {
            Ok(list) => NativeCheckpointsOutcome::Done {
                checkpoints: list.into_iter().map(NativeCheckpoint::from).collect(),
            },
            Err(e) => NativeCheckpointsOutcome::Failed { error: e.into() },
        }
    }
}

/// See `engine::sync::restore::Diff`.
#[napi(object)]
pub struct NativeDiff {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub deleted: Vec<String>,
}

#[napi(
    discriminant = "kind",
    discriminant_case = "lowercase",
    object_from_js = false
)]
pub enum NativeDiffOutcome {
    Done { diff: NativeDiff },
    Failed { error: NativeError },
}

impl From<engine::Result<Diff>> for NativeDiffOutcome {
    fn from(result: engine::Result<Diff>) -> Self {
        match result {
            Ok(d) => NativeDiffOutcome::Done {
                diff: NativeDiff {
                    added: d.added,
                    modified: d.modified,
                    deleted: d.deleted,
                },
            },
            Err(e) => NativeDiffOutcome::Failed { error: e.into() },
        }
    }
}
