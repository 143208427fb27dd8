//! Node.js binding: converts values between JavaScript and the engine and
//! wraps JS callbacks as ThreadsafeFunctions. No sync logic lives here.

#[global_allocator]
static GLOBAL: allocator::SplitAlloc = allocator::SplitAlloc;

mod allocator;
mod checkpoints;
mod env_cleanup;
mod errors;
mod events;
mod ignore_filter;
mod js_callback;
mod js_hooks;
mod js_store;
mod options;
mod outcome;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_credential_types::provider::SharedCredentialsProvider;
use engine::{Config, RemoteCheck, Run, Workspace};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use checkpoints::{NativeCheckpointsOutcome, NativeDiffOutcome, NativeTarget};
use engine::store::transport::TransportStore;
use errors::{engine_error, napi_error};
use events::{JsObserver, NativeEvent};
use js_callback::js_callback;
use js_hooks::{JsContentTypes, JsCredentials, NativeCredentials};
use js_store::{JsTransport, StoreAnswer, StoreRequest};
use options::NativeOptions;
use outcome::{NativeEnsureOutcome, NativeOutcome, NativeRemoteOutcome};

/// The JS functions a workspace may call besides the event callback.
#[napi(object)]
pub struct NativeHooks<'a> {
    /// The `contentTypeResolver` option (already guarded against throws).
    pub content_type: Option<Function<'a, String, String>>,
    /// `send()`-driven store for stand-in, stubbed or customised clients.
    pub store: Option<Function<'a, StoreRequest, Promise<StoreAnswer>>>,
    /// A real S3Client's credential provider.
    pub credentials: Option<Function<'a, (), Promise<NativeCredentials>>>,
}

/// One operation's controls: a dry run, and cancellation (the JS wrapper
/// wires an `AbortSignal` to `cancel()`).
#[napi]
pub struct NativeRun(Run);

#[napi]
impl NativeRun {
    #[napi(constructor)]
    pub fn new(dry_run: bool, restore_deleted: bool) -> Self {
        NativeRun(Run {
            dry_run,
            restore_deleted,
            ..Run::default()
        })
    }

    #[napi]
    pub fn cancel(&self) {
        self.0.cancel.cancel();
    }
}

/// One workspace's sync engine.
#[napi]
pub struct NativeWorkspace {
    /// `None` once closed.
    inner: Mutex<Option<Arc<Workspace>>>,
}

#[napi]
impl NativeWorkspace {
    #[napi(constructor)]
    pub fn new(
        env: Env,
        options: NativeOptions,
        on_event: Function<NativeEvent, ()>,
        hooks: NativeHooks,
    ) -> Result<Self, String> {
        let observer = Arc::new(JsObserver(js_callback(&on_event).map_err(napi_error)?));
        let mut config = Config::try_from(options).map_err(engine_error)?;
        if let Some(f) = &hooks.credentials {
            let provider = JsCredentials(js_callback(f).map_err(napi_error)?);
            config.s3.credentials = Some(SharedCredentialsProvider::new(provider));
        }
        if let Some(f) = &hooks.content_type {
            let resolver = JsContentTypes(js_callback(f).map_err(napi_error)?);
            config.content_types = Some(Arc::new(resolver));
        }
        let inner = match &hooks.store {
            Some(f) => {
                let store = TransportStore(JsTransport {
                    send: js_callback(f).map_err(napi_error)?,
                    bucket: config.bucket.clone(),
                });
                Workspace::with_store(config, Arc::new(store), observer)
            }
            None => Workspace::new(config, observer),
        }
        .map_err(engine_error)?;
        let inner = Arc::new(inner);
        env_cleanup::watch(&env, &inner).map_err(napi_error)?;
        Ok(NativeWorkspace {
            inner: Mutex::new(Some(inner)),
        })
    }

    fn workspace(&self) -> Result<Arc<Workspace>, String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                napi::Error::new("CLOSED".to_owned(), "the instance was closed".to_owned())
            })
    }

    /// `called_at_ms`: when the user called `pull()` (ms since the epoch).
    #[napi(ts_return_type = "Promise<NativeOutcome>")]
    pub fn pull<'env>(
        &self,
        env: &'env Env,
        called_at_ms: f64,
        run: &NativeRun,
    ) -> Result<PromiseRaw<'env, NativeOutcome>, String> {
        let (ws, run) = (self.workspace()?, run.0.clone());
        let called = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs_f64(called_at_ms.max(0.0) / 1000.0);
        // Opened now: an `ensure` called right after this is served by it.
        let inbox = ws.open_inbox();
        env.spawn_future(async move {
            Ok(NativeOutcome::from(
                ws.pull_served(called, &run, inbox).await,
            ))
        })
        .map_err(napi_error)
    }

    #[napi(ts_return_type = "Promise<NativeOutcome>")]
    pub fn push<'env>(
        &self,
        env: &'env Env,
        run: &NativeRun,
    ) -> Result<PromiseRaw<'env, NativeOutcome>, String> {
        let (ws, run) = (self.workspace()?, run.0.clone());
        env.spawn_future(async move { Ok(NativeOutcome::from(ws.push_with(&run).await)) })
            .map_err(napi_error)
    }

    /// Resolves when each of `paths` (a file, or `dir/`) is current on
    /// disk: served by the running pull, or a pull of just those paths.
    #[napi(ts_return_type = "Promise<NativeEnsureOutcome>")]
    pub fn ensure<'env>(
        &self,
        env: &'env Env,
        paths: Vec<String>,
        run: &NativeRun,
    ) -> Result<PromiseRaw<'env, NativeEnsureOutcome>, String> {
        let (ws, run) = (self.workspace()?, run.0.clone());
        env.spawn_future(
            async move { Ok(NativeEnsureOutcome::from(ws.ensure(&paths, &run).await)) },
        )
        .map_err(napi_error)
    }

    /// Starts following other instances' pushes (`watch`): reads the
    /// prefix's change journal; makes it when there is none and `make`.
    #[napi(ts_return_type = "Promise<NativeRemoteOutcome>")]
    pub fn follow<'env>(
        &self,
        env: &'env Env,
        make: bool,
    ) -> Result<PromiseRaw<'env, NativeRemoteOutcome>, String> {
        let ws = self.workspace()?;
        env.spawn_future(async move {
            Ok(NativeRemoteOutcome::from(
                ws.follow(make).await.map(|()| None),
            ))
        })
        .map_err(napi_error)
    }

    /// Pulls other writers' changes: what the journal names since the last
    /// check; everything when `whole` (the safety net); or `paths` (a push
    /// found them changed on S3).
    #[napi(ts_return_type = "Promise<NativeRemoteOutcome>")]
    pub fn pull_remote_changes<'env>(
        &self,
        env: &'env Env,
        whole: bool,
        paths: Option<Vec<String>>,
        run: &NativeRun,
    ) -> Result<PromiseRaw<'env, NativeRemoteOutcome>, String> {
        let (ws, run) = (self.workspace()?, run.0.clone());
        let check = match (whole, paths) {
            (true, _) => RemoteCheck::Whole,
            (false, Some(paths)) => RemoteCheck::Paths(paths),
            (false, None) => RemoteCheck::Journal,
        };
        env.spawn_future(async move {
            Ok(NativeRemoteOutcome::from(
                ws.pull_remote_changes(&run, check).await,
            ))
        })
        .map_err(napi_error)
    }

    /// Checkpoints, newest first: at most `limit`, older than `before`.
    #[napi(ts_return_type = "Promise<NativeCheckpointsOutcome>")]
    pub fn list_checkpoints<'env>(
        &self,
        env: &'env Env,
        limit: u32,
        before: Option<NativeTarget>,
    ) -> Result<PromiseRaw<'env, NativeCheckpointsOutcome>, String> {
        let ws = self.workspace()?;
        env.spawn_future(async move {
            let listed = ws.list_checkpoints(limit as usize, before.map(Into::into));
            Ok(NativeCheckpointsOutcome::from(listed.await))
        })
        .map_err(napi_error)
    }

    /// Makes S3 and the workspace hold `target`'s state (under `paths`).
    #[napi(ts_return_type = "Promise<NativeOutcome>")]
    pub fn restore<'env>(
        &self,
        env: &'env Env,
        target: NativeTarget,
        paths: Vec<String>,
        run: &NativeRun,
    ) -> Result<PromiseRaw<'env, NativeOutcome>, String> {
        let (ws, run) = (self.workspace()?, run.0.clone());
        let target = target.into();
        env.spawn_future(
            async move { Ok(NativeOutcome::from(ws.restore(&target, &paths, &run).await)) },
        )
        .map_err(napi_error)
    }

    /// What changed from `from` to `to` (the workspace when absent).
    #[napi(ts_return_type = "Promise<NativeDiffOutcome>")]
    pub fn diff<'env>(
        &self,
        env: &'env Env,
        from: NativeTarget,
        to: Option<NativeTarget>,
    ) -> Result<PromiseRaw<'env, NativeDiffOutcome>, String> {
        let ws = self.workspace()?;
        let (from, to) = (from.into(), to.map(Into::into));
        env.spawn_future(
            async move { Ok(NativeDiffOutcome::from(ws.diff(&from, to.as_ref()).await)) },
        )
        .map_err(napi_error)
    }

    /// Cancels running operations and lets go of the engine (its S3 client,
    /// callbacks and cached base); later calls fail with `CLOSED`.
    #[napi]
    pub fn close(&self) {
        if let Some(ws) = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take() {
            ws.cancel_all();
        }
    }
}

/// Throws (code `INVALID_OPTION`) for a workspace directory that must never
/// be mirrored (a filesystem root, the home directory, a system directory).
#[napi]
pub fn check_workspace_dir(dir: String) -> Result<(), String> {
    engine::local::check_workspace_path(std::path::Path::new(&dir)).map_err(engine_error)
}

/// Runs the engine's store-conformance suite against a `send()` store (for
/// the test suite: the same rules the S3 and in-memory stores are held to).
#[napi]
pub fn store_conformance<'env>(
    env: &'env Env,
    store: Function<StoreRequest, Promise<StoreAnswer>>,
    bucket: String,
) -> Result<PromiseRaw<'env, ()>, String> {
    let store = TransportStore(JsTransport {
        send: js_callback(&store).map_err(napi_error)?,
        bucket,
    });
    env.spawn_future(async move {
        run_conformance(&store)
            .await
            .map_err(napi::Error::from_reason)
    })
    .map_err(napi_error)
}

#[cfg(feature = "conformance")]
async fn run_conformance(store: &TransportStore<JsTransport>) -> std::result::Result<(), String> {
    engine::store::conformance::run(store).await
}

/// Built without the suite: the export stays (`binding.js` is the same for
/// every build), and says why it cannot run.
#[cfg(not(feature = "conformance"))]
async fn run_conformance(_: &TransportStore<JsTransport>) -> std::result::Result<(), String> {
    Err(
        "storeConformance: this binary was built without the `conformance` \
         feature (a release build); `npm test` builds it with the feature"
            .to_owned(),
    )
}

/// The built-in ignore patterns, applied before `ignorePatterns` and
/// `.syncignore` (for the CLI's help).
#[napi]
pub fn default_ignore_patterns() -> Vec<String> {
    engine::ignore_rules::DEFAULT_PATTERNS
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

/// Content-Type for a file name, as uploads use it.
#[napi]
pub fn guess_content_type(filename: String) -> String {
    engine::content_type::guess_content_type(&filename)
}

/// The content hash of a file (see the engine's `hashing`), computed off
/// the JS thread.
#[napi]
pub async fn calculate_content_hash(path: String) -> Result<String> {
    engine::local::content_hash_file(PathBuf::from(path))
        .await
        .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))
}
