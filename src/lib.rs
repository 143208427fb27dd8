//! Node.js binding: converts values between JavaScript and the engine and
//! wraps JS callbacks as ThreadsafeFunctions. No sync logic lives here.

mod env_cleanup;
mod events;
mod ignore_filter;
mod js_hooks;
mod js_store;
mod options;

use std::path::PathBuf;
use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
use engine::{Config, Report, Workspace};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use events::{JsObserver, NativeEvent};
use js_hooks::{JsContentTypes, JsCredentials, NativeCredentials};
use js_store::{JsStore, StoreReply, StoreRequest};
use options::NativeOptions;

#[napi(object)]
pub struct NativeFileError {
    pub path: String,
    pub code: String,
    pub message: String,
}

#[napi(object)]
pub struct NativeReport {
    pub transferred: u32,
    pub bytes: f64,
    pub deleted: u32,
    pub unchanged: u32,
    /// Paths both sides changed (see `engine::Report::conflicts`).
    pub conflicts: Vec<String>,
    /// Local entries push could not sync (see `engine::Report::skipped`).
    pub skipped: Vec<NativeFileError>,
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

/// An engine error thrown synchronously; the JS wrapper turns the
/// `[CODE] message` form into a `SyncError` with that code.
pub(crate) fn to_js_error(err: engine::Error) -> Error {
    Error::new(Status::InvalidArg, format!("[{}] {err}", err.code()))
}

fn outcome(result: engine::Result<Report>) -> NativeOutcome {
    let file_error = |e: engine::FileError| NativeFileError {
        path: e.path,
        code: e.code.into(),
        message: e.message,
    };
    match result {
        Ok(r) => NativeOutcome {
            report: Some(NativeReport {
                transferred: r.transferred as u32,
                bytes: r.bytes as f64,
                deleted: r.deleted as u32,
                unchanged: r.unchanged as u32,
                conflicts: r.conflicts,
                skipped: r
                    .skipped
                    .into_iter()
                    .map(|s| NativeFileError {
                        code: s.reason.code().into(),
                        path: s.path,
                        message: s.message,
                    })
                    .collect(),
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

/// The JS functions a workspace may call besides the event callback.
#[napi(object)]
pub struct NativeHooks<'a> {
    /// The `contentTypeResolver` option (already guarded against throws).
    pub content_type: Option<Function<'a, String, String>>,
    /// `send()`-driven store for stand-in or stubbed S3 clients.
    pub store: Option<Function<'a, StoreRequest, Promise<StoreReply>>>,
    /// A real S3Client's credential provider.
    pub credentials: Option<Function<'a, (), Promise<NativeCredentials>>>,
}

/// One workspace's sync engine.
#[napi]
pub struct NativeWorkspace {
    inner: Arc<Workspace>,
}

#[napi]
impl NativeWorkspace {
    #[napi(constructor)]
    pub fn new(
        env: Env,
        options: NativeOptions,
        on_event: Function<NativeEvent, ()>,
        hooks: NativeHooks,
    ) -> Result<Self> {
        let observer = JsObserver(
            on_event
                .build_threadsafe_function()
                .callee_handled::<false>()
                .weak::<true>()
                .build()?,
        );
        let mut config = Config::try_from(options).map_err(to_js_error)?;
        let credentials = match hooks.credentials {
            Some(f) => Some(SharedCredentialsProvider::new(JsCredentials(
                f.build_threadsafe_function()
                    .callee_handled::<false>()
                    .weak::<true>()
                    .build()?,
            ))),
            None => None,
        };
        config.s3.credentials = credentials;
        if let Some(f) = hooks.content_type {
            config.content_types = Some(Arc::new(JsContentTypes(
                f.build_threadsafe_function()
                    .callee_handled::<false>()
                    .weak::<true>()
                    .build()?,
            )));
        }
        let observer = Arc::new(observer);
        let inner = match hooks.store {
            Some(f) => {
                let store = JsStore(
                    f.build_threadsafe_function()
                        .callee_handled::<false>()
                        .weak::<true>()
                        .build()?,
                );
                Workspace::with_store(config, Arc::new(store), observer)
            }
            None => Workspace::new(config, observer),
        }
        .map_err(to_js_error)?;
        let inner = Arc::new(inner);
        env_cleanup::watch(&env, &inner)?;
        Ok(NativeWorkspace { inner })
    }

    /// `called_at_ms`: when the user called `pull()` (ms since the epoch).
    #[napi]
    pub async fn pull(&self, called_at_ms: f64) -> Result<NativeOutcome> {
        let ws = self.inner.clone();
        let called = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs_f64(called_at_ms.max(0.0) / 1000.0);
        Ok(outcome(ws.pull_called_at(called).await))
    }

    #[napi]
    pub async fn push(&self) -> Result<NativeOutcome> {
        let ws = self.inner.clone();
        Ok(outcome(ws.push().await))
    }
}

/// Throws `[INVALID_OPTION]` for a workspace directory that must never be
/// mirrored (a filesystem root, the home directory, a system directory).
#[napi]
pub fn check_workspace_dir(dir: String) -> Result<()> {
    engine::local::check_workspace_path(std::path::Path::new(&dir)).map_err(to_js_error)
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
