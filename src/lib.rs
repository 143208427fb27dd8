//! Node.js binding: converts values between JavaScript and the engine, and
//! forwards the engine's progress and log records to a JS callback. No sync
//! logic lives here.

use std::path::PathBuf;
use std::sync::Arc;

use engine::s3::S3Settings;
use engine::{Config, Level, Observer, Progress, Report, Workspace};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

#[napi(object)]
pub struct NativeOptions {
    pub bucket: String,
    pub prefix: String,
    pub workspace_dir: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub download_concurrency: Option<u32>,
    pub upload_concurrency: Option<u32>,
    pub ignore_patterns: Option<Vec<String>>,
}

/// A progress or log record from the engine.
#[napi(object)]
pub struct NativeEvent {
    /// `progress` or `log`.
    pub kind: String,
    pub phase: Option<String>,
    pub current: Option<u32>,
    pub total: Option<u32>,
    pub percentage: Option<u32>,
    pub current_file: Option<String>,
    /// `debug`, `info`, `warn` or `error`.
    pub level: Option<String>,
    pub message: Option<String>,
}

#[napi(object)]
pub struct NativeFileError {
    pub path: String,
    pub code: String,
    pub message: String,
}

#[napi(object)]
pub struct NativeReport {
    pub transferred: u32,
    pub deleted: u32,
    pub unchanged: u32,
    pub errors: Vec<NativeFileError>,
    pub duration_ms: f64,
}

/// Either a report or the error that stopped the operation, so the JS side
/// gets the engine's stable `code` with it.
#[napi(object)]
pub struct NativeOutcome {
    pub report: Option<NativeReport>,
    pub error: Option<NativeFileError>,
}

type EventFn = ThreadsafeFunction<NativeEvent, (), NativeEvent, Status, false, true>;

/// Queues engine records to JS without ever blocking the engine.
struct JsObserver(EventFn);

impl Observer for JsObserver {
    fn progress(&self, p: Progress) {
        self.0.call(
            NativeEvent {
                kind: "progress".into(),
                phase: Some(p.phase.as_str().into()),
                current: Some(p.current as u32),
                total: Some(p.total as u32),
                percentage: Some(p.percentage),
                current_file: p.current_file,
                level: None,
                message: None,
            },
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.0.call(
            NativeEvent {
                kind: "log".into(),
                phase: None,
                current: None,
                total: None,
                percentage: None,
                current_file: None,
                level: Some(level.into()),
                message: Some(message.into()),
            },
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    }
}

fn invalid_option(err: engine::Error) -> Error {
    Error::new(Status::InvalidArg, format!("[{}] {err}", err.code()))
}

fn outcome(result: engine::Result<Report>) -> NativeOutcome {
    match result {
        Ok(r) => NativeOutcome {
            report: Some(NativeReport {
                transferred: r.transferred as u32,
                deleted: r.deleted as u32,
                unchanged: r.unchanged as u32,
                errors: r.errors.into_iter().map(file_error).collect(),
                duration_ms: r.duration.as_secs_f64() * 1000.0,
            }),
            error: None,
        },
        Err(e) => NativeOutcome {
            report: None,
            error: Some(NativeFileError {
                path: String::new(),
                code: e.code().into(),
                message: e.to_string(),
            }),
        },
    }
}

fn file_error(e: engine::FileError) -> NativeFileError {
    NativeFileError {
        path: e.path,
        code: e.code.into(),
        message: e.message,
    }
}

/// One workspace's sync engine.
#[napi]
pub struct NativeWorkspace {
    inner: Arc<Workspace>,
}

#[napi]
impl NativeWorkspace {
    #[napi(constructor)]
    pub fn new(options: NativeOptions, on_event: Function<NativeEvent, ()>) -> Result<Self> {
        let events: EventFn = on_event
            .build_threadsafe_function()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let mut config = Config::new(
            &options.bucket,
            &options.prefix,
            PathBuf::from(options.workspace_dir),
        );
        config.s3 = S3Settings {
            region: options.region,
            endpoint: options.endpoint,
            force_path_style: options.force_path_style,
        };
        if let Some(n) = options.download_concurrency {
            config.download_concurrency = n as usize;
        }
        if let Some(n) = options.upload_concurrency {
            config.upload_concurrency = n as usize;
        }
        config.ignore_patterns = options.ignore_patterns.unwrap_or_default();
        let inner = Workspace::new(config, Arc::new(JsObserver(events))).map_err(invalid_option)?;
        Ok(NativeWorkspace {
            inner: Arc::new(inner),
        })
    }

    #[napi]
    pub async fn pull(&self) -> Result<NativeOutcome> {
        let ws = self.inner.clone();
        Ok(outcome(ws.pull().await))
    }

    #[napi]
    pub async fn push(&self) -> Result<NativeOutcome> {
        let ws = self.inner.clone();
        Ok(outcome(ws.push().await))
    }
}

/// Content-Type for a file name, as uploads use it.
#[napi]
pub fn guess_content_type(filename: String) -> String {
    engine::content_type::guess_content_type(&filename)
}

/// Lowercase hex MD5 of a file, computed off the JS thread.
#[napi]
pub async fn calculate_file_hash(path: String) -> Result<String> {
    engine::hashing::md5_file_hex(PathBuf::from(path))
        .await
        .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))
}
