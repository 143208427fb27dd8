//! Checkpoints, on a bucket that keeps object versions: every push (and
//! restore) names the state of the whole prefix right after it, as the
//! exact object version of every path, so it can be diffed and restored.
//!
//! The chain lives under the prefix's reserved `.s3ws/checkpoints/`: one
//! small manifest per push, numbered, created with `If-None-Match: *` so two
//! pushes can never take one number (the loser takes the next). A manifest
//! holds only what its push changed (the versions its own writes made, the
//! paths it deleted); checkpoint N is the fold of manifests 1..=N. Pushes
//! are thus linearised in the order they committed, and a checkpoint never
//! holds half of another agent's push: that push's writes enter the chain
//! together, in its own manifest. Every `SNAPSHOT_EVERY`th state is also
//! written whole (`.s3ws/snapshots/`), so a fold reads at most that many
//! manifests. Keys count down (`u64::MAX - n`), so a listing's first key is
//! the newest checkpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Report, Workspace};
use crate::error::{Error, Result, Warning, WarningCode};
use crate::ignore_rules::IgnoreRules;
use crate::keys::validate_relative_path;
use crate::model::{Condition, Folding, RemoteObject};
use crate::plan::{remote_files, REMOTE_STATE};
use crate::progress::Level;
use crate::store::small::{get_bytes, put_bytes};
use crate::store::{Store, Versioning};

/// A whole state is stored every this many checkpoints.
const SNAPSHOT_EVERY: u64 = 50;
/// Pushes racing for a number: tries (with a growing, jittered wait)
/// before giving up; what this push changed is then carried into this
/// instance's next checkpoint.
const WRITE_TRIES: u32 = 24;
/// The most manifests a fold reads: more means snapshots are missing and
/// the chain is not read (a key of someone else's can look like a huge
/// number; it must not become a flood of requests).
const MAX_FOLD: u64 = 5_000;
/// Snapshots looked for below a checkpoint before folding from the start.
const SNAPSHOT_TRIES: u64 = 20;
/// Keys a look for the newest checkpoint reads: keys that are not
/// manifests (a folder marker, a stray file) may sort first.
const NEWEST_PAGE: usize = 16;
/// Manifests read at once while folding.
const READS_IN_FLIGHT: usize = 16;
/// A manifest or snapshot larger than this is not read.
const READ_LIMIT: usize = 512 << 20;

/// One object version, as a checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The version id.
    #[serde(rename = "v")]
    pub id: String,
    /// Its ETag, unquoted.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Its size in bytes.
    #[serde(rename = "s")]
    pub size: u64,
    /// Its content hash (see `hashing`), when the writer knew it.
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl Version {
    /// Whether `other` holds the same bytes (same version, or same ETag).
    pub fn same_content(&self, other: &Version) -> bool {
        self.id == other.id || (self.etag.is_some() && self.etag == other.etag)
    }
}

/// A state of the prefix: each workspace path's version.
pub type Files = BTreeMap<String, Version>;

/// What a checkpoint's manifest holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    seq: u64,
    /// Milliseconds since the epoch.
    time: u64,
    by: String,
    /// `set` is the whole state (the first checkpoint of a prefix).
    #[serde(default)]
    full: bool,
    #[serde(default)]
    set: Files,
    #[serde(default)]
    del: Vec<String>,
    /// The state after it, counted.
    files: u64,
    bytes: u64,
    /// Against the checkpoint before it.
    changed: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    seq: u64,
    files: Files,
}

/// A checkpoint, as `list_checkpoints` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its id (opaque to callers).
    pub id: String,
    /// When it was made.
    pub time: SystemTime,
    /// Files in that state.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Paths added, modified and deleted against the checkpoint before.
    pub changed: u64,
}

/// Which state a restore or diff means.
#[derive(Debug, Clone)]
pub enum Target {
    /// A checkpoint, by id.
    Checkpoint(String),
    /// The newest checkpoint made at or before this time.
    At(SystemTime),
}

/// What this instance knows of the chain (kept between operations).
#[derive(Default)]
pub(crate) struct Chain {
    /// Whether the bucket keeps versions, once asked.
    versioning: Option<Versioning>,
    /// The last state folded: its number and files.
    folded: Option<(u64, Arc<Files>)>,
    /// Said once: the store does not apply `If-None-Match`.
    said_unsupported: bool,
}

/// What a checkpoint records: versions made, paths deleted, and the ETag
/// each of those writes replaced (for `keep_in_order`).
#[derive(Default, Clone)]
pub(crate) struct Changes {
    set: Files,
    del: Vec<String>,
    replaced: HashMap<String, String>,
}

impl Changes {
    /// `later`'s changes made after these.
    fn then(mut self, later: Changes) -> Changes {
        self.del.retain(|r| !later.set.contains_key(r));
        for rel in &later.del {
            self.set.remove(rel);
        }
        self.del.extend(later.del);
        self.del.sort();
        self.del.dedup();
        self.set.extend(later.set);
        for (rel, etag) in later.replaced {
            self.replaced.entry(rel).or_insert(etag);
        }
        self
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checkpoint `seq`'s id, and back.
fn id_of(seq: u64) -> String {
    seq.to_string()
}

fn seq_of(id: &str) -> Result<u64> {
    let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0');
    digits
        .then(|| id.parse::<u64>().ok())
        .flatten()
        .filter(|s| *s <= MAX_SEQ)
        .ok_or_else(|| Error::NoCheckpoint(format!("{id:?} is not a checkpoint id")))
}

/// Larger numbers are not checkpoints of this engine (a key someone else
/// wrote); a prefix would need a push a microsecond for 30 years.
const MAX_SEQ: u64 = 1 << 50;

impl Workspace {
    fn chain_dir(&self, kind: &str) -> String {
        format!("{}{REMOTE_STATE}{kind}/", self.config.prefix)
    }

    fn chain_key(&self, kind: &str, seq: u64) -> String {
        format!("{}{:020}.json", self.chain_dir(kind), u64::MAX - seq)
    }

    /// The number of the manifest at `key`; `None` for any other key.
    fn seq_of_key(&self, key: &str) -> Option<u64> {
        let name = key
            .strip_prefix(&self.chain_dir("checkpoints"))?
            .strip_suffix(".json")?;
        if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = u64::MAX - name.parse::<u64>().ok()?;
        (1..=MAX_SEQ).contains(&seq).then_some(seq)
    }

    /// Notes a version this instance's write of `rel` made (replacing the
    /// object with ETag `replaced`): it goes into the next checkpoint, also
    /// when the operation that wrote it is stopped before its own.
    pub(crate) fn note_version(&self, rel: &str, version: Version, replaced: Option<&String>) {
        let mut c = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
        c.del.retain(|r| r != rel);
        c.set.insert(rel.to_owned(), version);
        if let Some(etag) = replaced {
            c.replaced
                .entry(rel.to_owned())
                .or_insert_with(|| etag.clone());
        }
    }

    /// Notes this instance's deletion of `rel` (of the object with ETag
    /// `replaced`), as `note_version`.
    pub(crate) fn note_removed(&self, rel: &str, replaced: Option<&String>) {
        let mut c = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
        c.set.remove(rel);
        c.del.push(rel.to_owned());
        if let Some(etag) = replaced {
            c.replaced
                .entry(rel.to_owned())
                .or_insert_with(|| etag.clone());
        }
    }

    /// What was noted and no checkpoint records yet. Copied, not taken: an
    /// operation stopped while it records its checkpoint leaves them noted.
    fn unrecorded(&self) -> Changes {
        self.unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets what was noted: recorded, or never to be (no versions).
    fn clear_unrecorded(&self) {
        *self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()) = Changes::default();
    }

    /// Whether the bucket keeps versions (asked once per instance). A store
    /// that may not be asked (no `s3:GetBucketVersioning`) counts as not.
    pub(crate) async fn versioned(&self, store: &dyn Store) -> bool {
        let mut chain = self.chain.lock().await;
        if chain.versioning.is_none() {
            chain.versioning = Some(store.versioning().await.unwrap_or_else(|e| {
                self.log(
                    Level::Debug,
                    &format!("Bucket versioning unknown ({e}): no checkpoints"),
                );
                Versioning::Off
            }));
        }
        chain.versioning == Some(Versioning::Enabled)
    }

    /// Fails with `VERSIONING_REQUIRED` unless the bucket keeps versions
    /// (asked again: the caller wants checkpoints now).
    pub(crate) async fn require_versioning(&self, store: &dyn Store) -> Result<()> {
        let status = store.versioning().await?;
        self.chain.lock().await.versioning = Some(status);
        let how = "enable it (aws s3api put-bucket-versioning --bucket BUCKET \
                   --versioning-configuration Status=Enabled) and push once";
        match status {
            Versioning::Enabled => Ok(()),
            Versioning::Suspended => Err(Error::VersioningRequired(format!(
                "checkpoints need S3 versioning, which is suspended on bucket {}: {how}",
                self.config.bucket
            ))),
            Versioning::Off => Err(Error::VersioningRequired(format!(
                "checkpoints need S3 versioning, which is not enabled on bucket {}: {how}",
                self.config.bucket
            ))),
        }
    }

    /// The newest checkpoint's number (0: none yet).
    pub(crate) async fn newest(&self, store: &dyn Store) -> Result<u64> {
        let dir = self.chain_dir("checkpoints");
        let page = store.list_first(&dir, NEWEST_PAGE).await?;
        Ok(page
            .objects
            .iter()
            .find_map(|o| self.seq_of_key(&o.key))
            .unwrap_or(0))
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<T>> {
        let Some(fetched) = get_bytes(store, key, READ_LIMIT).await? else {
            return Ok(None);
        };
        let body = fetched.body.unwrap_or_default();
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Error::NoCheckpoint(format!("{key} is damaged: {e}")))
    }

    /// Manifest `seq`, checked: its number, and paths that are workspace
    /// paths (a manifest someone else wrote must not name `../x`).
    async fn manifest(&self, store: &dyn Store, seq: u64) -> Result<Manifest> {
        let key = self.chain_key("checkpoints", seq);
        let m: Manifest = self.read_json(store, &key).await?.ok_or_else(|| {
            Error::NoCheckpoint(format!(
                "checkpoint {seq} of s3://{}/{} does not exist (or has expired)",
                self.config.bucket, self.config.prefix
            ))
        })?;
        let bad_path = m.set.keys().chain(&m.del).find(|r| !is_file_path(r));
        if m.seq != seq || bad_path.is_some() {
            return Err(Error::NoCheckpoint(format!(
                "{key} is damaged (not a manifest of this engine{})",
                bad_path.map_or(String::new(), |p| format!(": it names {p:?}"))
            )));
        }
        Ok(m)
    }

    /// The files of checkpoint `seq` (see `fold`).
    pub(crate) async fn state_at(&self, store: &dyn Store, seq: u64) -> Result<Arc<Files>> {
        Ok(self.fold(store, seq, true).await?.0)
    }

    /// `state_at`, outside an operation (a diff, which may run while a push
    /// does): this instance's last fold is left as it is, for that push's
    /// order check (`keep_in_order`).
    pub(crate) async fn state_aside(&self, store: &dyn Store, seq: u64) -> Result<Arc<Files>> {
        Ok(self.fold(store, seq, false).await?.0)
    }

    /// The files of checkpoint `seq`: folded from the nearest snapshot, or
    /// from this instance's last fold when that is nearer (kept as the
    /// last fold when `remember`). With it, the paths the manifests after
    /// this instance's last fold touched; `None` when it did not start
    /// from there (every path may have been).
    async fn fold(
        &self,
        store: &dyn Store,
        seq: u64,
        remember: bool,
    ) -> Result<(Arc<Files>, Option<BTreeSet<String>>)> {
        let cached = self.chain.lock().await.folded.clone();
        let mut from: (u64, Arc<Files>) = (0, Arc::new(Files::new()));
        let mut touched = None;
        match cached {
            Some((n, files)) if n == seq => return Ok((files, Some(BTreeSet::new()))),
            Some((n, files)) if n < seq && seq - n <= SNAPSHOT_EVERY => {
                from = (n, files);
                touched = Some(BTreeSet::new());
            }
            _ => {
                let mut snap = seq - seq % SNAPSHOT_EVERY;
                for _ in 0..SNAPSHOT_TRIES {
                    if snap == 0 {
                        break;
                    }
                    let key = self.chain_key("snapshots", snap);
                    if let Ok(Some(s)) = self.read_json::<Snapshot>(store, &key).await {
                        if s.seq == snap && s.files.keys().all(|r| is_file_path(r)) {
                            from = (snap, Arc::new(s.files));
                            break;
                        }
                    }
                    snap -= SNAPSHOT_EVERY;
                }
            }
        }
        let (start, mut files) = from;
        if seq - start > MAX_FOLD {
            return Err(Error::NoCheckpoint(format!(
                "checkpoint {seq} of s3://{}/{} cannot be read: it is {} manifests past the \
                 nearest snapshot",
                self.config.bucket,
                self.config.prefix,
                seq - start
            )));
        }
        let read: Vec<Result<Manifest>> = futures::stream::iter(start + 1..=seq)
            .map(|n| self.manifest(store, n))
            .buffered(READS_IN_FLIGHT)
            .collect()
            .await;
        // A whole state (the chain started again) makes what came before
        // it, damaged or not, irrelevant.
        let restart = read
            .iter()
            .rposition(|m| m.as_ref().is_ok_and(|m| m.full))
            .unwrap_or(0);
        if restart > 0 {
            touched = None;
        }
        let files_mut = Arc::make_mut(&mut files);
        for m in read.into_iter().skip(restart) {
            let m = m?;
            if let Some(t) = touched.as_mut() {
                t.extend(m.set.keys().chain(&m.del).cloned());
            }
            apply(files_mut, m);
        }
        if remember {
            self.chain.lock().await.folded = Some((seq, files.clone()));
        }
        Ok((files, touched))
    }

    /// Records the push (or restore) `report` describes as the next
    /// checkpoint, and says its id in the report; a push that changed
    /// nothing names the newest. Does nothing where the bucket keeps no
    /// versions; a failure only logs (the push itself is done).
    pub(crate) async fn record_checkpoint(&self, store: &dyn Store, report: &mut Report) {
        // What this operation (and any stopped before it) changed.
        let noted = self.unrecorded();
        if !self.versioned(store).await {
            return self.clear_unrecorded();
        }
        // Numbers are taken with If-None-Match: where it is not applied, two
        // pushes could take one, and a checkpoint could name a state that
        // never was. None rather than a wrong one.
        if !store.conditions_applied().await {
            let mut chain = self.chain.lock().await;
            if !std::mem::replace(&mut chain.said_unsupported, true) {
                let message = "No checkpoints: the store does not apply If-None-Match on \
                               PutObject, which checkpoints rely on to stay exact";
                self.log(Level::Warn, message);
                report.warnings.push(Warning::new(
                    "",
                    WarningCode::StoreConditionIgnored,
                    message,
                ));
            }
            drop(chain);
            return self.clear_unrecorded();
        }
        // Left noted on any failure (and when this future is dropped).
        let changes = match self.versions_unsaid(store, report, noted).await {
            Ok(c) => c,
            Err(e) => return self.log(Level::Warn, &format!("No checkpoint recorded: {e}")),
        };
        match self.commit(store, changes.clone()).await {
            Ok(seq) => {
                self.clear_unrecorded();
                report.checkpoint = Some(id_of(seq));
            }
            Err(e) => {
                self.log(
                    Level::Warn,
                    &format!("No checkpoint recorded (kept for the next one): {e}"),
                );
                self.keep_unrecorded(changes);
            }
        }
    }

    /// Keeps changes a checkpoint could not record (what was noted, and
    /// what was asked since), before any noted later.
    fn keep_unrecorded(&self, earlier: Changes) {
        let mut c = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
        *c = earlier.then(std::mem::take(&mut *c));
    }

    /// `noted`, with the paths `report` wrote whose version the store did
    /// not say (a store that gives none on PUT), asked with a HEAD.
    async fn versions_unsaid(
        &self,
        store: &dyn Store,
        report: &Report,
        mut noted: Changes,
    ) -> Result<Changes> {
        let unsaid: Vec<&String> = report
            .written
            .iter()
            .filter(|r| !noted.set.contains_key(*r))
            .collect();
        for rel in unsaid {
            let key = format!("{}{rel}", self.config.prefix);
            if let Some(info) = store.head(&key).await? {
                if let Some(id) = info.version.clone() {
                    let hash = info.content_hash();
                    noted.set.insert(
                        rel.clone(),
                        Version {
                            id,
                            etag: info.etag,
                            size: info.size.unwrap_or(0),
                            hash,
                        },
                    );
                }
            }
        }
        Ok(noted)
    }

    /// Writes `changes` as the next checkpoint: its number.
    async fn commit(&self, store: &dyn Store, changes: Changes) -> Result<u64> {
        let Changes {
            mut set,
            mut del,
            replaced,
        } = changes;
        for attempt in 0..WRITE_TRIES {
            if attempt > 0 {
                // Others are committing: wait a little, more each time.
                let cap = 10u64 << attempt.min(6);
                let wait = crate::local::rand_u64() % cap + cap / 2;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            let newest = self.newest(store).await?;
            if newest > 0 && set.is_empty() && del.is_empty() {
                return Ok(newest);
            }
            // The state before: folded; or, for the first checkpoint of a
            // prefix (or when the chain cannot be read: a damaged or
            // missing manifest), every path's current version, written
            // whole.
            let folded = match newest {
                0 => None,
                n => match self.fold(store, n, true).await {
                    Ok(folded) => Some(folded),
                    Err(Error::NoCheckpoint(why)) => {
                        self.log(
                            Level::Warn,
                            &format!("The checkpoint chain starts again from S3's state: {why}"),
                        );
                        None
                    }
                    Err(e) => return Err(e),
                },
            };
            let (before, full, touched) = match folded {
                Some((files, touched)) => ((*files).clone(), None, touched),
                None => (
                    Files::new(),
                    Some(self.current_state(store, &set).await?),
                    None,
                ),
            };
            if full.is_none() {
                let order = Order {
                    before: &before,
                    replaced: &replaced,
                    touched: touched.as_ref(),
                };
                self.keep_in_order(store, order, &mut set, &mut del).await?;
            }
            let seq = newest + 1;
            let manifest = if let Some(full) = full {
                Manifest {
                    seq,
                    time: ms(SystemTime::now()),
                    by: self.id.clone(),
                    full: true,
                    files: full.len() as u64,
                    bytes: full.values().fold(0, |n, v| n.saturating_add(v.size)),
                    changed: full.len() as u64,
                    set: full,
                    del: Vec::new(),
                }
            } else {
                delta(seq, &self.id, &before, set.clone(), del.clone())
            };
            let body = serde_json::to_vec(&manifest).map_err(|e| Error::Task(e.to_string()))?;
            let key = self.chain_key("checkpoints", seq);
            match put_bytes(
                store,
                &key,
                &body,
                "application/json",
                &Condition::IfNoneMatch,
            )
            .await
            {
                Ok(_) => {}
                // Taken by another push (S3 answers 409 to one racing it).
                Err(Error::Conflict(_)) => continue,
                Err(Error::S3(e)) if e.status == Some(409) => continue,
                Err(e) => return Err(e),
            }
            let mut after = before;
            apply(&mut after, manifest);
            let after = Arc::new(after);
            if seq % SNAPSHOT_EVERY == 0 {
                self.write_snapshot(store, seq, &after).await;
            }
            self.chain.lock().await.folded = Some((seq, after));
            return Ok(seq);
        }
        Err(Error::Conflict(
            "other pushes kept taking the next checkpoint number".into(),
        ))
    }

    /// Leaves out of this push's manifest the writes another agent's
    /// later write replaced, when that agent's checkpoint came first (it
    /// read ours and wrote over it, then committed while we were still
    /// pushing): the chain must end with what S3 holds. Such a path is one
    /// whose version in `before` is neither ours nor the one we replaced;
    /// a HEAD says whose write is current.
    async fn keep_in_order(
        &self,
        store: &dyn Store,
        order: Order<'_>,
        set: &mut Files,
        del: &mut Vec<String>,
    ) -> Result<()> {
        let out_of_order = |rel: &String, ours: Option<&Version>| {
            let now = order.before.get(rel);
            if now.map(|v| &v.id) == ours.map(|v| &v.id) {
                return false;
            }
            // Not what this write replaced; or it may look so (the same
            // bytes written back by another agent, a path created and
            // deleted by others) when manifests since this instance last
            // looked touched the path, or when that is not known.
            now.and_then(|v| v.etag.as_ref()) != order.replaced.get(rel)
                || order.touched.is_none_or(|t| t.contains(rel))
        };
        let suspects: Vec<String> = set
            .iter()
            .filter(|(rel, v)| out_of_order(rel, Some(v)))
            .map(|(rel, _)| rel.clone())
            .chain(del.iter().filter(|rel| out_of_order(rel, None)).cloned())
            .collect();
        // Asked again on each attempt: another agent may have written since.
        for rel in suspects {
            let key = format!("{}{rel}", self.config.prefix);
            let current = store
                .head(&key)
                .await?
                .map(|i| i.version.unwrap_or_default());
            match set.get(&rel) {
                Some(ours) if current.as_deref() != Some(ours.id.as_str()) => {
                    set.remove(&rel);
                }
                None if current.is_some() => del.retain(|r| *r != rel),
                _ => {}
            }
        }
        Ok(())
    }

    async fn write_snapshot(&self, store: &dyn Store, seq: u64, files: &Files) {
        let snap = Snapshot {
            seq,
            files: files.clone(),
        };
        let written = match serde_json::to_vec(&snap) {
            Ok(body) => put_bytes(
                store,
                &self.chain_key("snapshots", seq),
                &body,
                "application/json",
                &Condition::None,
            )
            .await
            .map(|_| ()),
            Err(e) => Err(Error::Task(e.to_string())),
        };
        if let Err(e) = written {
            // Folds then start from the snapshot before.
            self.log(
                Level::Warn,
                &format!("Checkpoint snapshot not written: {e}"),
            );
        }
    }

    /// Every workspace path's current version (the first checkpoint of a
    /// prefix), with what this push knows of its own writes (`own`).
    async fn current_state(&self, store: &dyn Store, own: &Files) -> Result<Files> {
        let prefix = &self.config.prefix;
        let current = store.current_versions(prefix).await?;
        let ids: HashMap<&str, &str> = current
            .iter()
            .map(|cv| (cv.object.key.as_str(), cv.version.as_str()))
            .collect();
        let objects: Vec<RemoteObject> = current.iter().map(|cv| cv.object.clone()).collect();
        let on_s3 =
            remote_files(prefix, &objects, &IgnoreRules::none()?, Folding::default()).on_s3();
        let mut files = Files::new();
        for (rel, object) in on_s3 {
            let Some(id) = ids.get(object.key.as_str()) else {
                continue;
            };
            let version = Version {
                id: (*id).to_owned(),
                etag: object.etag,
                size: object.size.unwrap_or(0),
                hash: None,
            };
            let known = own.get(&rel).filter(|o| o.id == version.id).cloned();
            files.insert(rel, known.unwrap_or(version));
        }
        Ok(files)
    }

    /// Checkpoints, newest first: at most `limit`, older than `before`.
    pub async fn list_checkpoints(
        &self,
        limit: usize,
        before: Option<Target>,
    ) -> Result<Vec<CheckpointInfo>> {
        let store = self.store().await?;
        self.require_versioning(&*store).await?;
        let below = match &before {
            None => u64::MAX,
            Some(Target::Checkpoint(id)) => seq_of(id)?,
            Some(Target::At(t)) => match self.seq_at(&*store, *t).await {
                Ok(seq) => seq + 1,
                Err(Error::NoCheckpoint(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            },
        };
        let newest = self.newest(&*store).await?;
        let top = newest.min(below.saturating_sub(1));
        let seqs: Vec<u64> = (1..=top).rev().take(limit).collect();
        let read: Vec<Result<Manifest>> = futures::stream::iter(seqs)
            .map(|n| self.manifest(&*store, n))
            .buffered(READS_IN_FLIGHT)
            .collect()
            .await;
        let mut out = Vec::with_capacity(read.len());
        for manifest in read {
            match manifest {
                Ok(m) => out.push(info_of(&m)),
                // Damaged or expired: left out of the list, said.
                Err(Error::NoCheckpoint(why)) => self.log(Level::Warn, &why),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The newest checkpoint made at or before `at`: a binary search over
    /// the numbers (their times grow with them, as pushes commit in order;
    /// clocks of different machines may disagree by a little, as the time
    /// of any write on S3 may).
    async fn seq_at(&self, store: &dyn Store, at: SystemTime) -> Result<u64> {
        let want = ms(at);
        let (mut lo, mut hi) = (0, self.newest(store).await?);
        // The answer is in lo..=hi, 0 meaning none.
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.manifest(store, mid).await?.time <= want {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo == 0 {
            return Err(Error::NoCheckpoint(format!(
                "no checkpoint of s3://{}/{} is as old as {} ms after the epoch",
                self.config.bucket, self.config.prefix, want
            )));
        }
        Ok(lo)
    }

    /// The checkpoint `target` names: its number.
    pub(crate) async fn resolve(&self, store: &dyn Store, target: &Target) -> Result<u64> {
        match target {
            Target::Checkpoint(id) => {
                let seq = seq_of(id)?;
                if seq > self.newest(store).await? {
                    return Err(Error::NoCheckpoint(format!(
                        "no checkpoint {id} in s3://{}/{}",
                        self.config.bucket, self.config.prefix
                    )));
                }
                Ok(seq)
            }
            Target::At(t) => self.seq_at(store, *t).await,
        }
    }
}

/// What `keep_in_order` weighs a push's changes against.
struct Order<'a> {
    /// The chain's newest state.
    before: &'a Files,
    /// The ETag each write of the push replaced.
    replaced: &'a HashMap<String, String>,
    /// The paths manifests touched since this instance last folded the
    /// chain (`None`: not known).
    touched: Option<&'a BTreeSet<String>>,
}

/// Whether `rel` can be a file of the workspace (not the engine's own).
fn is_file_path(rel: &str) -> bool {
    validate_relative_path(rel).is_ok() && !rel.starts_with(REMOTE_STATE)
}

/// `m` applied to `files`.
fn apply(files: &mut Files, m: Manifest) {
    if m.full {
        *files = m.set;
        return;
    }
    for rel in m.del {
        files.remove(&rel);
    }
    files.extend(m.set);
}

/// The manifest of checkpoint `seq`: `set` and `del` made on `before`.
fn delta(seq: u64, by: &str, before: &Files, set: Files, del: Vec<String>) -> Manifest {
    // Saturating: sizes come from manifests others may have written.
    let mut files = before.len() as u64;
    let mut bytes: u64 = before.values().fold(0, |n, v| n.saturating_add(v.size));
    let mut changed = 0;
    let del: Vec<String> = del.into_iter().filter(|r| !set.contains_key(r)).collect();
    for rel in &del {
        if let Some(old) = before.get(rel) {
            files -= 1;
            bytes = bytes.saturating_sub(old.size);
            changed += 1;
        }
    }
    for (rel, v) in &set {
        match before.get(rel) {
            Some(old) => {
                bytes = bytes.saturating_sub(old.size).saturating_add(v.size);
                changed += u64::from(!old.same_content(v));
            }
            None => {
                files += 1;
                bytes = bytes.saturating_add(v.size);
                changed += 1;
            }
        }
    }
    Manifest {
        seq,
        time: ms(SystemTime::now()),
        by: by.to_owned(),
        full: false,
        set,
        del,
        files,
        bytes,
        changed,
    }
}

fn info_of(m: &Manifest) -> CheckpointInfo {
    CheckpointInfo {
        id: id_of(m.seq),
        time: UNIX_EPOCH + Duration::from_millis(m.time),
        files: m.files,
        bytes: m.bytes,
        changed: m.changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, size: u64) -> Version {
        Version {
            id: id.into(),
            etag: Some(format!("e-{id}")),
            size,
            hash: None,
        }
    }

    #[test]
    fn a_delta_counts_what_it_changed_and_folds_onto_the_state_before() {
        let before: Files = [("a".into(), v("1", 10)), ("b".into(), v("2", 5))].into();
        let set: Files = [("a".into(), v("3", 4)), ("c".into(), v("4", 1))].into();
        let m = delta(2, "me", &before, set, vec!["b".into(), "gone".into()]);
        assert_eq!((m.files, m.bytes, m.changed), (2, 5, 3));
        let mut after = before.clone();
        apply(&mut after, m);
        assert_eq!(after.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(after["a"].id, "3");
        // The same bytes written again are not a change.
        let again: Files = [(
            "a".into(),
            Version {
                id: "9".into(),
                ..v("3", 4)
            },
        )]
        .into();
        assert_eq!(delta(3, "me", &after, again, vec![]).changed, 0);
    }

    #[test]
    fn ids_are_checkpoint_numbers() {
        assert_eq!(seq_of(&id_of(42)).unwrap(), 42);
        for bad in ["0", "-1", "x", ""] {
            assert!(matches!(seq_of(bad), Err(Error::NoCheckpoint(_))));
        }
    }
}
