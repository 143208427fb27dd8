//! The S3 ⇄ workspace sync engine: pure Rust, no napi. The Node.js binding
//! lives in the root crate and only converts values.
//!
//! Flow per operation: lock → list and scan → plan three-way against the
//! persisted sync base (pure, in `plan`) → transfer (bounded concurrency,
//! streamed, atomic, conditional) → record each transfer in the base → report.

// Every public item is documented (here rather than in Cargo.toml: the
// crate inherits the workspace's [lints] table, which cannot add one).
#![warn(missing_docs)]

pub mod base;
mod blocking;
mod buffer;
pub mod content_type;
pub mod error;
pub mod hashing;
pub mod ignore_rules;
pub mod keys;
pub mod life;
pub mod local;
pub mod model;
pub mod plan;
pub mod progress;
pub mod store;
pub mod sync;
mod transfer;

pub use error::{Error, FileError, Result, Warning};
pub use plan::{ConflictPolicy, PlanSummary};
pub use progress::{Level, Observer, Phase, Progress};
pub use sync::checkpoint::{CheckpointInfo, Target};
pub use sync::{CancellationToken, Config, Ensured, RemoteCheck, Report, Run, Workspace};
