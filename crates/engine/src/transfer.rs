//! Moving one file: a streamed, verified, atomic download, or an upload.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::task::TaskTracker;

use crate::base::BaseEntry;
use crate::blocking::blocking;
use crate::error::{Error, Result, S3Error, BODY_ERROR};
use crate::hashing::{is_composite, ContentHasher, PART_SIZE};
use crate::ignore_rules::IgnoreRules;
use crate::keys::key_for;
use crate::local::anchor::is_link_error;
use crate::local::open_scanned;
use crate::local::{
    commit_beside, commit_temp_file, conflict_copy_name, create_temp_file, set_aside, split_parent,
    ConflictCopy, Dir,
};
use crate::model::Condition;
use crate::model::{nanos, FileStat};
use crate::plan::{Download, Upload};
use crate::progress::FileProgress;
use crate::store::{PutRequest, Store};

/// A finished download: the new base entry, and the conflict copy it made
/// (workspace-relative): where the local version went when both sides had
/// changed, or where S3's version was saved beside the agent's file.
#[derive(Debug)]
pub struct Downloaded {
    pub entry: BaseEntry,
    pub conflict_copy: Option<(String, ConflictCopy)>,
}

/// How an operation names conflict copies: with this workspace's tag (see
/// `SyncBase::copy_tag`), avoiding names the ignore rules hide.
pub struct CopyNames {
    pub rules: IgnoreRules,
    pub tag: String,
}

impl CopyNames {
    /// Names copies in the directory `parent` (workspace-relative).
    pub fn namer<'a>(&'a self, parent: &'a str) -> impl Fn(&Dir, &str) -> ConflictCopy + 'a {
        move |dir: &Dir, name: &str| {
            conflict_copy_name(dir, name, &self.tag, &|candidate: &str| {
                self.rules.is_ignored(&join_rel(parent, candidate), false)
            })
        }
    }
}

/// `parent/name`, or `name` at the root.
pub fn join_rel(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// The directory a download lands in, opened (made if missing) beneath the
/// root without passing a link. Blocking.
fn parent_dir(root: &Dir, rel: &str) -> Result<Dir> {
    let parent = split_parent(rel).0;
    root.make_sub(parent).map_err(|e| {
        let shown = root.path().join(parent);
        if is_link_error(&e) {
            Error::UnsafeKey(format!(
                "{rel}: {} is or passes through a symbolic link; not followed",
                shown.display()
            ))
        } else {
            Error::io("create directory", &shown, e)
        }
    })
}

/// Stops an operation's remaining transfers after a failure that every
/// other request would repeat (`S3Error::is_global`: a missing bucket,
/// refused credentials, an unreachable endpoint), so the report holds one
/// error rather than one per file. What was not attempted stays pending.
/// And keeps a throttled transfer going while the operation makes progress.
#[derive(Clone)]
pub struct Halt {
    halted: Arc<AtomicBool>,
    reported: Arc<AtomicBool>,
    /// When a transfer of the operation last succeeded (or it began).
    progressed: Arc<std::sync::Mutex<Instant>>,
}

impl Default for Halt {
    fn default() -> Self {
        Halt {
            halted: Arc::default(),
            reported: Arc::default(),
            progressed: Arc::new(std::sync::Mutex::new(Instant::now())),
        }
    }
}

/// How long a throttled transfer is tried again while no transfer of its
/// operation succeeds: a store that throttles everything for this long is
/// not merely busy.
const THROTTLED_PATIENCE: Duration = Duration::from_secs(60);

/// The wait before the `n`th attempt again of a throttled transfer (the
/// SDK's pace already spaces requests): full jitter up to 100 ms × 2ⁿ,
/// capped at 3.2 s.
fn throttled_wait(n: u32) -> Duration {
    let cap = 100u64 << n.min(5);
    Duration::from_millis(crate::local::rand_u64() % cap + 1)
}

impl Halt {
    /// Whether a global failure stopped the operation's transfers.
    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }

    /// Runs one transfer (`transfer()` makes each attempt) unless halted
    /// (`None`); a global failure halts the rest before the transfer lets
    /// go of its concurrency slot. A throttled transfer is tried again as
    /// long as another one succeeded within `THROTTLED_PATIENCE`.
    pub async fn run<T, F: Future<Output = Result<T>>>(
        &self,
        transfer: impl Fn() -> F,
    ) -> Option<Result<T>> {
        let progressed = || *self.progressed.lock().unwrap_or_else(|p| p.into_inner());
        let mut waits = 0;
        loop {
            if self.halted() {
                return None;
            }
            let result = transfer().await;
            match result.as_ref().map_err(|e| e.s3()) {
                Ok(_) => {
                    *self.progressed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now()
                }
                Err(Some(s3)) if s3.is_global() => self.halted.store(true, Ordering::Relaxed),
                Err(Some(s3))
                    if s3.is_throttled() && progressed().elapsed() < THROTTLED_PATIENCE =>
                {
                    tokio::time::sleep(throttled_wait(waits)).await;
                    waits += 1;
                    continue;
                }
                Err(_) => {}
            }
            return Some(result);
        }
    }

    /// Whether `err` should be reported: a global failure once, not its
    /// repeats from the transfers that were already in flight.
    pub fn report(&self, err: &Error) -> bool {
        match err.s3() {
            Some(s3) if s3.is_global() => !self.reported.swap(true, Ordering::Relaxed),
            _ => true,
        }
    }
}

/// Runs `start(item)` for every item, at most `limit` at a time, handing
/// each result to `finished` as it comes. A task is spawned only when a
/// slot is free: 50,000 queued transfers hold no task state (a spawned
/// download is several KB before it even starts). Dropping the future
/// aborts the running tasks; `tracker` lets a cancelled operation wait for
/// them to be dropped.
pub async fn run_bounded<I, T, Fut>(
    tracker: &TaskTracker,
    items: Vec<I>,
    limit: usize,
    mut start: impl FnMut(I) -> Fut,
    mut finished: impl FnMut(std::result::Result<T, tokio::task::JoinError>),
) where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut items = items.into_iter();
    let mut tasks = JoinSet::new();
    loop {
        while tasks.len() < limit.max(1) {
            let Some(item) = items.next() else { break };
            tasks.spawn(tracker.track_future(start(item)));
        }
        match tasks.join_next().await {
            Some(joined) => finished(joined),
            None => return,
        }
    }
}

/// Attempts per download when the body breaks off or fails verification
/// (request-level failures are retried by the S3 client itself).
const DOWNLOAD_ATTEMPTS: usize = 3;

/// Downloads `d` to `root/d.rel`: streamed into a temp file beside it,
/// checked against the ETag, then renamed into place.
pub async fn download(
    store: &dyn Store,
    root: &Arc<Dir>,
    d: &Download,
    names: &Arc<CopyNames>,
    stall: Duration,
    progress: &FileProgress,
) -> Result<Downloaded> {
    let mut attempt = 1;
    loop {
        let result = download_once(store, root, d, names, stall, progress).await;
        match &result {
            Err(e) if attempt < DOWNLOAD_ATTEMPTS && is_body_error(e) => attempt += 1,
            _ => return result,
        }
    }
}

/// Errors worth another attempt: a broken or corrupt body. A failed request
/// was already retried by the client.
fn is_body_error(e: &Error) -> bool {
    match e {
        Error::Integrity(_) => true,
        Error::S3(s3) => s3.is_body_error(),
        _ => false,
    }
}

/// Hashes a download as it arrives, off the async threads: whole parts (the
/// ranges of a large object) on blocking threads in parallel, at most
/// `PARTS_AT_ONCE` at a time, other chunks in place; and, for an object
/// known only by the MD5 of its whole body, that MD5 in order on a thread of
/// its own.
struct BodyHasher {
    hasher: ContentHasher,
    parts: VecDeque<(u64, JoinHandle<[u8; 16]>)>,
    whole: Option<(tokio::sync::mpsc::Sender<Bytes>, JoinHandle<String>)>,
}

impl BodyHasher {
    const PARTS_AT_ONCE: usize = 2;

    fn new(whole: bool) -> Self {
        let whole = whole.then(|| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(Self::PARTS_AT_ONCE);
            let task = tokio::task::spawn_blocking(move || {
                let mut md5 = Md5::new();
                while let Some(chunk) = rx.blocking_recv() {
                    md5.update(&chunk);
                }
                hex::encode(md5.finalize())
            });
            (tx, task)
        });
        BodyHasher {
            hasher: ContentHasher::default(),
            parts: VecDeque::new(),
            whole,
        }
    }

    async fn add(&mut self, chunk: &Bytes, last: bool) -> Result<()> {
        if let Some((tx, _)) = &self.whole {
            // The receiver only stops with a panic, reported by `finish`.
            let _ = tx.send(chunk.clone()).await;
        }
        let len = chunk.len() as u64;
        if self.hasher.at_part_boundary() && (len == PART_SIZE || (last && len < PART_SIZE)) {
            if self.parts.len() >= Self::PARTS_AT_ONCE {
                self.settle_one().await?;
            }
            let chunk = chunk.clone();
            let task = tokio::task::spawn_blocking(move || Md5::digest(&chunk).into());
            self.parts.push_back((len, task));
            return Ok(());
        }
        while !self.parts.is_empty() {
            self.settle_one().await?;
        }
        self.hasher.update(chunk);
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<()> {
        if let Some((len, task)) = self.parts.pop_front() {
            self.hasher.push_part(len, joined(task.await)?);
        }
        Ok(())
    }

    /// The content hash, and the whole-body MD5 if one was kept.
    async fn finish(mut self) -> Result<(String, Option<String>)> {
        while !self.parts.is_empty() {
            self.settle_one().await?;
        }
        let whole = match self.whole {
            Some((tx, task)) => {
                drop(tx);
                Some(joined(task.await)?)
            }
            None => None,
        };
        Ok((self.hasher.finish(), whole))
    }
}

fn joined<T>(result: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    result.map_err(|e| Error::Io(format!("hashing task failed: {e}")))
}

/// Writes a large download to its temp file, in order, on a thread of its
/// own while the next ranges arrive and hash.
struct SpillWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    task: JoinHandle<Result<std::fs::File>>,
}

impl SpillWriter {
    fn start(mut file: std::fs::File, shown: PathBuf) -> Self {
        // Two chunks queued at most: a range is a whole 8 MiB part.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                std::io::Write::write_all(&mut file, &chunk)
                    .map_err(|e| Error::io("write", &shown, e))?;
            }
            Ok(file)
        });
        SpillWriter { tx, task }
    }

    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if self.tx.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The writer stopped, which it does only on an error: that error.
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Err(Error::Io("the download's writer stopped early".into())),
            Err(e) => Err(Error::Io(format!("the download's writer failed: {e}"))),
        }
    }

    /// The written file, once every chunk is in it.
    async fn finish(self) -> Result<std::fs::File> {
        drop(self.tx);
        joined(self.task.await)?
    }
}

/// Bodies up to this size are gathered in memory and written with a single
/// blocking call (most workspace files); larger ones stream to the temp file.
const IN_MEMORY_MAX: usize = 1024 * 1024;

/// A download's temp file in its directory, removed unless the download
/// succeeded: on failure, and when the download is dropped mid-way (its
/// operation was cancelled), so no `.partial` file outlives it.
#[derive(Default)]
struct Spilled(Option<(Arc<Dir>, String)>);

impl Drop for Spilled {
    fn drop(&mut self) {
        if let Some((dir, temp)) = self.0.take() {
            let _ = dir.remove_file(&temp);
        }
    }
}

async fn download_once(
    store: &dyn Store,
    root: &Arc<Dir>,
    d: &Download,
    names: &Arc<CopyNames>,
    stall: Duration,
    progress: &FileProgress,
) -> Result<Downloaded> {
    let mut spilled = Spilled::default();
    let result = receive(store, root, d, names, stall, progress, &mut spilled).await;
    if result.is_ok() {
        // Committed: the temp name is the file's now.
        spilled.0 = None;
    }
    result
}

/// Streams the body, hashing it, into memory or (past `IN_MEMORY_MAX`) a
/// temp file whose path is put in `spilled`; verifies it; commits it.
async fn receive(
    store: &dyn Store,
    root: &Arc<Dir>,
    d: &Download,
    names: &Arc<CopyNames>,
    stall: Duration,
    progress: &FileProgress,
    spilled: &mut Spilled,
) -> Result<Downloaded> {
    let mut body = store.get(&d.key, d.size).await?;
    let expected = body.expected_hash();
    // An object known only by a whole-body MD5 (one uploaded elsewhere in a
    // single PUT, or by an older version) is also hashed whole, in order.
    let whole = expected
        .as_deref()
        .is_some_and(|e| !is_composite(e) && d.size.is_none_or(|s| s >= PART_SIZE));
    let mut hasher = BodyHasher::new(whole);
    let mut received: u64 = 0;
    let mut memory: Vec<u8> = Vec::new();
    let mut file: Option<SpillWriter> = None;
    loop {
        // A body that stops sending is cut here and the download retried.
        let next = tokio::time::timeout(stall, body.stream.next())
            .await
            .map_err(|_| {
                S3Error::new(
                    "GetObject",
                    &d.key,
                    BODY_ERROR,
                    format!("GetObject {}: the body stalled for {stall:?}", d.key),
                )
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk?;
        let last = d.size == Some(received + chunk.len() as u64);
        received += chunk.len() as u64;
        progress.moved(chunk.len() as u64);
        hasher.add(&chunk, last).await?;
        if file.is_none() && memory.len() + chunk.len() <= IN_MEMORY_MAX {
            memory.extend_from_slice(&chunk);
            continue;
        }
        let out = match &mut file {
            Some(out) => out,
            None => {
                let (root, rel) = (root.clone(), d.rel.clone());
                let (std_file, dir, temp) = blocking(move || {
                    let dir = parent_dir(&root, &rel)?;
                    let (file, temp) = create_temp_file(&dir)?;
                    Ok((file, Arc::new(dir), temp))
                })
                .await?;
                let shown = dir.path().join(&temp);
                spilled.0 = Some((dir, temp));
                let out = file.insert(SpillWriter::start(std_file, shown));
                out.write(std::mem::take(&mut memory).into()).await?;
                out
            }
        };
        out.write(chunk).await?;
    }
    // Verified before a byte reaches the final name (or, when gathered in
    // memory, the disk at all): the length always, the MD5 when known.
    if d.size.is_some_and(|size| size != received) {
        return Err(Error::Integrity(format!(
            "{}: downloaded {received} bytes, the listing says {}",
            d.rel,
            d.size.unwrap_or_default()
        )));
    }
    let (hash, whole_md5) = hasher.finish().await?;
    if let Some(expected) = expected {
        let got = whole_md5.as_ref().unwrap_or(&hash);
        if *got != expected {
            return Err(Error::Integrity(format!(
                "{}: integrity check failed: the downloaded bytes hash to {got}, the object's hash is {expected}",
                d.rel
            )));
        }
    }
    let etag = body.etag.or_else(|| d.etag.clone());
    let (parent, dest) = split_parent(&d.rel);
    let target = Target {
        dest: dest.to_owned(),
        parent: parent.to_owned(),
        mtime: d.last_modified,
        replaces: d.replaces,
        keep_local: d.keep_local,
        beside: d.beside,
        names: names.clone(),
    };
    let (stat, conflict_copy) = match (file, spilled.0.clone()) {
        (Some(out), Some((dir, temp))) => {
            let out = out.finish().await?;
            blocking(move || target.commit(&dir, out, &temp)).await?
        }
        _ => {
            let (root, rel) = (root.clone(), d.rel.clone());
            blocking(move || {
                let dir = parent_dir(&root, &rel)?;
                let (mut out, temp) = create_temp_file(&dir)?;
                let written = std::io::Write::write_all(&mut out, &memory)
                    .map_err(|e| Error::io("write", &root.path().join(&rel), e))
                    .and_then(|()| target.commit(&dir, out, &temp));
                if written.is_err() {
                    let _ = dir.remove_file(&temp);
                }
                written
            })
            .await?
        }
    };
    let entry = BaseEntry {
        etag,
        hash,
        // Saved beside the agent's file: the base holds S3's version as the
        // one that file changed from, and no stat of it (it is not there).
        stat: stat.unwrap_or_default(),
        recorded_ns: if d.beside {
            0
        } else {
            nanos(std::time::SystemTime::now())
        },
        born: 0,
    };
    Ok(Downloaded {
        entry,
        conflict_copy: conflict_copy.map(|c| (join_rel(parent, &c.name), c)),
    })
}

/// Where a verified download goes (a name in its directory), and what may
/// be there.
struct Target {
    dest: String,
    /// The directory's workspace-relative path, for the ignore rules.
    parent: String,
    mtime: Option<std::time::SystemTime>,
    replaces: Option<FileStat>,
    keep_local: bool,
    beside: bool,
    names: Arc<CopyNames>,
}

impl Target {
    /// Gives the finished temp file the object's time as mtime (so the base
    /// trusts its stat at once, and any later local write shows), moves it
    /// into place (see `commit_temp_file`), or beside the name, and returns
    /// its stat at the name (`None` beside it) and the conflict copy made,
    /// if any. Blocking.
    fn commit(
        self,
        dir: &Dir,
        file: std::fs::File,
        temp: &str,
    ) -> Result<(Option<FileStat>, Option<ConflictCopy>)> {
        let shown = dir.path().join(&self.dest);
        if let Some(t) = self.mtime {
            file.set_modified(t)
                .map_err(|e| Error::io("set mtime of", &shown, e))?;
        }
        drop(file);
        let namer = self.names.namer(&self.parent);
        if self.beside {
            return Ok((None, Some(commit_beside(dir, temp, &self.dest, &namer)?)));
        }
        let copy = commit_temp_file(
            dir,
            temp,
            &self.dest,
            self.replaces,
            self.keep_local,
            &namer,
        )?;
        // The stat after the rename (which changes ctime) is the one recorded.
        let stat = match dir.stat(&self.dest) {
            Ok(Some((_, stat))) => stat,
            Ok(None) => return Err(Error::Changed(format!("{} vanished", shown.display()))),
            Err(e) => return Err(Error::io("inspect", &shown, e)),
        };
        Ok((Some(stat), copy))
    }
}

/// How an upload ended.
#[derive(Debug)]
pub enum Uploaded {
    /// S3 holds the file's bytes under its key: its new base entry.
    Synced(BaseEntry),
    /// The object was deleted on S3 by another agent, after an earlier
    /// push of these very bytes that never learned its outcome (or before
    /// it: that cannot be told). The deletion stands: the local file was
    /// moved to `copy` (workspace-relative), which was then uploaded as a
    /// new file (`copy_entry`, or the error that upload met).
    DeletionStands {
        copy: String,
        copy_ignored: bool,
        copy_entry: Result<BaseEntry>,
    },
}

/// Attempts of a conditional write that S3 answers 409
/// `ConditionalRequestConflict` (a concurrent write to the key), as AWS
/// documents: fetch the state again and retry.
const CONFLICT_ATTEMPTS: usize = 3;

/// What an upload needs besides the file.
pub struct UploadTo<'a> {
    pub store: &'a dyn Store,
    pub root: &'a Arc<Dir>,
    pub prefix: &'a str,
    pub names: &'a Arc<CopyNames>,
    pub content_type: &'a str,
    pub progress: &'a FileProgress,
}

/// `upload`, then what a failed condition means: our own earlier upload
/// (a push killed before it recorded it: the object holds these bytes) is
/// success; an object deleted on S3 since the base is created again (the
/// local change wins over nothing), unless these bytes were sent before
/// by a push that never learned its outcome (see `Uploaded`); anything else
/// is a conflict.
pub async fn upload_checked(to: &UploadTo<'_>, u: &Upload) -> Result<Uploaded> {
    let key = key_for(to.prefix, &u.rel);
    let conflict = match upload_retrying(to, u, &key).await {
        Err(Error::Conflict(m)) => m,
        other => return other.map(Uploaded::Synced),
    };
    match to.store.head(&key).await {
        Ok(Some(info)) if info.content_hash().as_ref() == Some(&u.hash) => {
            Ok(Uploaded::Synced(u.synced(info.etag)))
        }
        Ok(None) if u.interrupted => deletion_stands(to, u).await,
        Ok(None) if matches!(u.condition, Condition::IfMatch(_)) => {
            let again = Upload {
                condition: Condition::IfNoneMatch,
                ..u.clone()
            };
            upload_retrying(to, &again, &key)
                .await
                .map(Uploaded::Synced)
        }
        _ => Err(Error::Conflict(conflict)),
    }
}

/// `upload`, tried again while S3 answers 409 `ConditionalRequestConflict`.
async fn upload_retrying(to: &UploadTo<'_>, u: &Upload, key: &str) -> Result<BaseEntry> {
    let mut attempt = 1;
    loop {
        match upload(to, u, key).await {
            Err(Error::S3(e))
                if attempt < CONFLICT_ATTEMPTS
                    && (e.code == "ConditionalRequestConflict" || e.status == Some(409)) =>
            {
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Moves the local file aside under a conflict name and uploads it there:
/// another agent's deletion of the path stands, these bytes survive.
async fn deletion_stands(to: &UploadTo<'_>, u: &Upload) -> Result<Uploaded> {
    let (parent, name) = split_parent(&u.rel);
    let (root, names) = (to.root.clone(), to.names.clone());
    let (parent_owned, name_owned, stat) = (parent.to_owned(), name.to_owned(), u.stat);
    let (copy, copy_stat) = blocking(move || {
        let dir = root
            .open_sub(&parent_owned)
            .map_err(|e| Error::io("open", &root.path().join(&parent_owned), e))?;
        let namer = names.namer(&parent_owned);
        let copy = set_aside(&dir, &name_owned, stat, &namer)?;
        let copy_stat = match dir.stat(&copy.name) {
            Ok(Some((_, s))) => s,
            _ => return Err(Error::Changed(format!("{} vanished", copy.name))),
        };
        Ok((copy, copy_stat))
    })
    .await?;
    let copy_rel = join_rel(parent, &copy.name);
    let moved = Upload {
        rel: copy_rel.clone(),
        stat: copy_stat,
        condition: Condition::IfNoneMatch,
        interrupted: false,
        ..u.clone()
    };
    let copy_entry = upload_retrying(to, &moved, &key_for(to.prefix, &copy_rel)).await;
    Ok(Uploaded::DeletionStands {
        copy: copy_rel,
        copy_ignored: copy.ignored,
        copy_entry,
    })
}

/// Uploads `root/u.rel` as `key`, with the content hash the push computed
/// (its MD5s sent as `Content-MD5`, so the server refuses bytes that
/// changed since) and the plan's condition. The file is opened beneath the
/// root, not through a link, and must still be the scanned one. Returns the
/// new base entry.
async fn upload(to: &UploadTo<'_>, u: &Upload, key: &str) -> Result<BaseEntry> {
    let (dir, rel, stat) = (to.root.clone(), u.rel.clone(), u.stat);
    let file = blocking(move || open_scanned(&dir, &rel, stat)).await?;
    let path = to.root.path().join(&u.rel);
    let etag = to
        .store
        .put(PutRequest {
            key,
            file: &file,
            path: &path,
            stat: u.stat,
            content_type: to.content_type,
            hash: &u.hash,
            parts: &u.parts,
            condition: &u.condition,
            progress: to.progress,
        })
        .await?;
    Ok(u.synced(etag))
}
