//! The sync engine for one workspace: configuration, shared state, and the
//! helpers `pull` and `push` have in common.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Mutex, OnceCell};

use crate::content_type::ContentTypeResolver;
use crate::error::{Action, Error, FileError, Result};
use crate::hash_cache::HashCache;
use crate::hashing::md5_file;
use crate::ignore_rules::IgnoreRules;
use crate::keys::normalize_prefix;
use crate::plan::Snapshot;
use crate::progress::{Level, Observer};
use crate::s3::{S3Settings, S3Store};
use crate::store::Store;
use crate::workspace::{nanos, probe_racy_window, FileStat};

pub const DEFAULT_DOWNLOAD_CONCURRENCY: usize = 50;
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 10;
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Files hashed at once: hashing is CPU and disk bound, not network bound.
const HASH_CONCURRENCY: usize = 16;

#[derive(Clone)]
pub struct Config {
    pub bucket: String,
    /// Key prefix; a trailing `/` is added when missing.
    pub prefix: String,
    pub workspace_dir: PathBuf,
    pub s3: S3Settings,
    pub download_concurrency: usize,
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
}

impl Config {
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
        }
    }

    fn validate(mut self) -> Result<Self> {
        for (name, value) in [("bucket", &self.bucket), ("prefix", &self.prefix)] {
            if value.is_empty() {
                return Err(Error::InvalidOption(format!("options.{name} is required")));
            }
        }
        if self.stall_timeout.is_zero() {
            return Err(Error::InvalidOption(
                "options.stallTimeoutMs must be a positive integer".into(),
            ));
        }
        if self.workspace_dir.as_os_str().is_empty() {
            return Err(Error::InvalidOption(
                "options.workspaceDir is required".into(),
            ));
        }
        for (name, value) in [
            ("downloadConcurrency", self.download_concurrency),
            ("uploadConcurrency", self.upload_concurrency),
        ] {
            if value == 0 {
                return Err(Error::InvalidOption(format!(
                    "options.{name} must be a positive integer"
                )));
            }
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

/// The outcome of a pull or push.
#[derive(Debug, Default)]
pub struct Report {
    /// Files downloaded (pull) or uploaded (push).
    pub transferred: usize,
    /// Local files deleted (pull) or objects deleted (push).
    pub deleted: usize,
    /// Files that were already in sync.
    pub unchanged: usize,
    pub errors: Vec<FileError>,
    pub duration: Duration,
}

pub(crate) struct State {
    pub snapshot: Snapshot,
    /// Loaded on first use.
    pub cache: Option<HashCache>,
}

/// Syncs one S3 prefix with one local directory. Operations on one
/// instance run one at a time.
pub struct Workspace {
    pub(crate) config: Config,
    store: OnceCell<Arc<dyn Store>>,
    pub(crate) base_rules: IgnoreRules,
    pub(crate) state: Mutex<State>,
    pub(crate) observer: Arc<dyn Observer>,
}

impl Workspace {
    /// A workspace that talks to S3 as `config.s3` says (connecting lazily).
    pub fn new(config: Config, observer: Arc<dyn Observer>) -> Result<Self> {
        let config = config.validate()?;
        Ok(Workspace {
            base_rules: IgnoreRules::new(&config.ignore_patterns)?,
            config,
            store: OnceCell::new(),
            state: Mutex::new(State {
                snapshot: Snapshot::new(),
                cache: None,
            }),
            observer,
        })
    }

    /// A workspace on another store.
    pub fn with_store(
        config: Config,
        store: Arc<dyn Store>,
        observer: Arc<dyn Observer>,
    ) -> Result<Self> {
        let ws = Self::new(config, observer)?;
        ws.store
            .set(store)
            .unwrap_or_else(|_| unreachable!("fresh cell"));
        Ok(ws)
    }

    pub fn workspace_dir(&self) -> &Path {
        &self.config.workspace_dir
    }

    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    pub(crate) async fn store(&self) -> Result<Arc<dyn Store>> {
        self.store
            .get_or_try_init(|| async {
                let settings = S3Settings {
                    read_timeout: Some(self.config.stall_timeout),
                    ..self.config.s3.clone()
                };
                let store = S3Store::connect(&self.config.bucket, &settings).await?;
                Ok::<_, Error>(Arc::new(store) as Arc<dyn Store>)
            })
            .await
            .cloned()
    }

    pub(crate) fn log(&self, level: Level, message: &str) {
        self.observer.log(level, message);
    }

    /// Logs how an operation ended (upstream's wording) and stamps its duration.
    pub(crate) fn finish(
        &self,
        op: &str,
        transferred: &str,
        started: Instant,
        result: Result<Report>,
    ) -> Result<Report> {
        let elapsed = started.elapsed();
        match &result {
            Ok(r) => {
                self.log(
                    Level::Info,
                    &format!(
                        "{op} complete: {} {transferred}, {} deleted in {}ms ({} unchanged)",
                        r.transferred,
                        r.deleted,
                        elapsed.as_millis(),
                        r.unchanged
                    ),
                );
                if !r.errors.is_empty() {
                    self.log(
                        Level::Warn,
                        &format!("{op} completed with {} errors", r.errors.len()),
                    );
                }
            }
            Err(e) => self.log(Level::Error, &format!("{op} failed: {e}")),
        }
        result.map(|r| Report {
            duration: elapsed,
            ..r
        })
    }

    /// The rules in force: defaults, `ignorePatterns`, then `.syncignore`.
    pub(crate) async fn current_rules(&self) -> Result<IgnoreRules> {
        let base = self.base_rules.clone();
        let dir = self.config.workspace_dir.clone();
        blocking(move || base.with_syncignore(&dir)).await
    }

    /// MD5s of `files` (relative path, scanned stat): from the hash cache
    /// when it knows the exact stat, else hashed in parallel off the async
    /// threads and recorded. Unreadable files are reported and left out.
    pub(crate) async fn hash_files(
        &self,
        files: Vec<(String, FileStat)>,
        cache: &mut HashCache,
    ) -> (HashMap<String, String>, Vec<FileError>) {
        use futures::StreamExt;
        let mut md5s = HashMap::with_capacity(files.len());
        let mut todo = Vec::new();
        for (rel, stat) in files {
            match cache.lookup(&rel, &stat) {
                Some(md5) => {
                    md5s.insert(rel, md5.to_owned());
                }
                None => todo.push((rel, stat)),
            }
        }
        let root = &self.config.workspace_dir;
        let results: Vec<_> = futures::stream::iter(todo)
            .map(|(rel, stat)| {
                let path = root.join(&rel);
                async move {
                    let hashed_at = nanos(SystemTime::now());
                    let result = blocking(move || {
                        let md5 = hex::encode(md5_file(&path)?);
                        let meta = std::fs::symlink_metadata(&path)
                            .map_err(|e| Error::io("inspect", &path, e))?;
                        Ok((md5, FileStat::of(&meta)))
                    })
                    .await;
                    (rel, stat, hashed_at, result)
                }
            })
            .buffer_unordered(HASH_CONCURRENCY)
            .collect()
            .await;
        let mut errors = Vec::new();
        for (rel, stat, hashed_at, result) in results {
            match result {
                Ok((md5, after)) => {
                    // A file that changed while it was read has no known hash.
                    if after == stat {
                        cache.insert(rel.clone(), stat, md5.clone(), hashed_at);
                    }
                    md5s.insert(rel, md5);
                }
                Err(e) => errors.push(FileError::new(Action::Hash, rel, &e)),
            }
        }
        (md5s, errors)
    }

    /// The hash cache, loaded from the workspace on first use.
    pub(crate) async fn cache<'s>(&self, state: &'s mut State) -> &'s mut HashCache {
        if state.cache.is_none() {
            let dir = self.config.workspace_dir.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let mut cache = HashCache::load(&dir);
                cache.set_racy_window(probe_racy_window(&dir));
                cache
            })
            .await
            .unwrap_or_else(|_| HashCache::load(Path::new("")));
            state.cache = Some(loaded);
        }
        state.cache.as_mut().expect("just set")
    }

    /// Persists the hash cache; a failure only costs re-hashing later.
    pub(crate) async fn save_cache(&self, state: &mut State) {
        let Some(mut cache) = state.cache.take() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || {
            let r = cache.save();
            (cache, r)
        })
        .await;
        match result {
            Ok((cache, r)) => {
                if let Err(e) = r {
                    self.log(Level::Warn, &format!("Could not save the hash cache: {e}"));
                }
                state.cache = Some(cache);
            }
            Err(e) => self.log(Level::Warn, &format!("Could not save the hash cache: {e}")),
        }
    }
}

/// Runs blocking file-system work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(format!("file-system task failed: {e}")))?
}
