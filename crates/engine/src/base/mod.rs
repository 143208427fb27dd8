//! The sync base: for every synced path, what S3 held and what the local
//! file was at the last successful transfer of that path. Pull and push
//! compare each side with it (three-way), so "changed here", "changed
//! there" and "changed on both sides" are told apart across processes.
//!
//! Stored per (bucket, prefix) in the state directory as checked binary
//! records (see `codec`): a header, then one record per entry; a later
//! record for a path replaces an earlier one, or removes it. Each completed
//! transfer is appended at once, so a killed process keeps what it
//! finished. The file is rewritten compactly (temp file + rename) when an
//! operation ends only once superseded records outnumber live ones: an
//! operation that changed a few paths of a million writes a few records,
//! not the whole base. A torn last record is ignored.
//!
//! The file names the workspace it describes (its root's path, device and
//! inode): a base of another directory is reported and not used, as a base
//! that cannot be read is. A damaged one keeps every record that still
//! checks. Either way the base is *recovering* until the next pull: paths
//! it does not know are then decided by rules that lose nothing, and
//! reported. It also notes uploads sent but not yet answered (`intend`), so
//! a push killed mid-way is told apart from other agents' changes, and the
//! number of paths at the last full sync, for the deletion guard.
//!
//! The base is also the hash cache of synced files: an entry's local stat
//! is trusted to mean "content unchanged" only if the file's mtime was
//! already older than one timestamp granule (`racy_window`) when the entry
//! was recorded. A write in the same tick could otherwise leave the stat
//! unchanged (git's "racy clean" problem); later writes move mtime on.

mod codec;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::{Error, Result};
use crate::local::{create_temp_file, Dir, FileStat, COARSE_WINDOW, FINE_WINDOW};
pub use codec::Identity;
use codec::{Decoded, Encoder, Header, Record, Unusable};

/// One synced path: both sides held the content `hash` when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseEntry {
    /// ETag of the object on S3, when the server gave one.
    pub etag: Option<String>,
    /// The content hash (see `hashing`: the MD5 below 8 MiB, else the
    /// multipart form).
    pub hash: String,
    /// The local file as it was right after the transfer.
    pub stat: FileStat,
    /// When `stat` was taken (ns since the epoch), for the racy check.
    pub recorded_ns: i128,
    /// The sync epoch in which the path was first recorded (set by
    /// `SyncBase::record`): a path born before the current epoch was there
    /// at the last full sync, and the deletion guard counts it.
    pub born: u64,
}

/// Superseded records a small base may carry before it is compacted.
const COMPACT_SLACK: usize = 1_000;

/// Keyed by paths that come from S3 keys: a hasher with a random seed.
type Entries = foldhash::HashMap<String, BaseEntry>;

/// Why the base on disk was not used as it was, for the operation that
/// loaded it to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseTrouble {
    /// Bytes in the middle of the file could not be read: the records that
    /// still check are used; the paths of the others are unknown.
    Damaged { damaged_bytes: usize, kept: usize },
    /// The file is not a readable base (emptied, overwritten, its header
    /// damaged): not used at all.
    Unreadable,
    /// The base describes another directory (a `stateDir` shared between
    /// workspaces, or one that outlived its workspace): not used at all.
    OtherWorkspace { described: String },
}

impl BaseTrouble {
    /// What happened and what happens next, for the log and the result.
    pub fn describe(&self, file: &std::path::Path) -> String {
        let next = "paths it does not know are synced by rules that lose nothing: no \
                    deletion on either side, both versions kept wherever they differ, \
                    each such path reported, until a pull re-establishes them";
        match self {
            BaseTrouble::Damaged {
                damaged_bytes,
                kept,
            } => format!(
                "The sync base {} is damaged ({damaged_bytes} bytes unreadable); the {kept} \
                 records that still check are used, and {next}",
                file.display()
            ),
            BaseTrouble::Unreadable => format!(
                "The sync base {} cannot be read (emptied or overwritten?) and is not used; \
                 {next}",
                file.display()
            ),
            BaseTrouble::OtherWorkspace { described } => format!(
                "The sync base {} describes another directory ({described}): is stateDir \
                 shared between workspaces, or did it outlive its workspace? It is not \
                 used (a base of another directory would make a pull skip files and a \
                 push delete objects); {next}",
                file.display()
            ),
        }
    }
}

/// The base of one (bucket, prefix) in one state directory.
#[derive(Debug)]
pub struct SyncBase {
    /// The state directory, and the file's name in it.
    dir: Arc<Dir>,
    name: String,
    header: Header,
    /// A base of the first version's file, removed once this one is written.
    legacy: Option<String>,
    /// Whether the file ends with a whole record and says what this base
    /// says in its header (else it is rewritten whole before anything is
    /// appended).
    clean: bool,
    /// Front-codes appended records.
    encoder: Encoder,
    /// Whether a usable base was on disk (or has been started): without
    /// one, the first pull cannot tell local deletions from new objects.
    exists: bool,
    entries: Entries,
    /// Paths whose upload was sent but not answered (see `intend`), with
    /// the content hash sent.
    intents: HashMap<String, String>,
    /// Entries born before the current epoch.
    established: usize,
    /// Why the file was not used as it was; taken by the first operation.
    trouble: Option<BaseTrouble>,
    /// Open for appending while an operation records transfers.
    journal: Option<std::fs::File>,
    /// Appending failed once this operation: only the final save is tried.
    journal_failed: bool,
    /// Entries changed since the file was last written whole.
    changed: bool,
    /// Records in the file, live or superseded.
    records: usize,
    racy_window_ns: i128,
}

/// The base file's name: one per (bucket, prefix), so several prefixes may
/// share a state directory.
fn file_name(bucket: &str, prefix: &str, extension: &str) -> String {
    let digest = Md5::digest(format!("{bucket}\n{prefix}").as_bytes());
    format!("base-{}.{extension}", &hex::encode(digest)[..16])
}

impl SyncBase {
    /// The base of `bucket`/`prefix` for the workspace `identity`, kept in
    /// the state directory `dir`; empty (and not `exists`) when there is
    /// none, or when the file cannot be used (see `trouble`). Blocking.
    pub fn load(dir: Arc<Dir>, bucket: &str, prefix: &str, identity: &Identity) -> Self {
        let mut base = SyncBase {
            name: file_name(bucket, prefix, "base"),
            dir,
            header: Header {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                identity: Some(identity.clone()),
                copy_tag: crate::local::rand_u64() as u16,
                ..Header::default()
            },
            legacy: None,
            clean: false,
            encoder: Encoder::default(),
            exists: false,
            entries: Entries::default(),
            intents: HashMap::new(),
            established: 0,
            trouble: None,
            journal: None,
            journal_failed: false,
            changed: false,
            records: 0,
            racy_window_ns: COARSE_WINDOW.as_nanos() as i128,
        };
        let legacy = file_name(bucket, prefix, "jsonl");
        let read = |name: &str| {
            let mut data = Vec::new();
            base.dir
                .open_regular(name)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map(|_| data)
        };
        let data = match read(&base.name) {
            Ok(data) => data,
            Err(_) => match read(&legacy) {
                Ok(data) => {
                    base.legacy = Some(legacy);
                    data
                }
                Err(_) => return base,
            },
        };
        // About 56 bytes a record: room for them all at once.
        let mut entries = Entries::default();
        entries.reserve(data.len() / 48);
        let mut intents = HashMap::new();
        let mut records = 0;
        let mut epoch_seen = None;
        let decoded = codec::decode(&data, bucket, prefix, |record| {
            records += 1;
            match record {
                Record::Set(rel, entry) => {
                    intents.remove(&rel);
                    entries.insert(rel, entry);
                }
                Record::Remove(rel) => {
                    intents.remove(&rel);
                    entries.remove(&rel);
                }
                Record::Intent(rel, hash) => {
                    intents.insert(rel, hash);
                }
                Record::ClearIntent(rel) => {
                    intents.remove(&rel);
                }
                Record::Epoch(epoch, reference) => epoch_seen = Some((epoch, reference)),
            }
        });
        let decoded: Decoded = match decoded {
            Ok(d) => d,
            Err(Unusable::Foreign) => return base,
            Err(Unusable::Unreadable) => {
                base.trouble = Some(BaseTrouble::Unreadable);
                base.header.recovering = true;
                return base;
            }
        };
        if let Some(described) = &decoded.header.identity {
            if !described.describes(identity) {
                base.trouble = Some(BaseTrouble::OtherWorkspace {
                    described: described.path.clone(),
                });
                base.header.recovering = true;
                return base;
            }
        }
        let (epoch, reference) =
            epoch_seen.unwrap_or((decoded.header.epoch, decoded.header.reference));
        if decoded.damaged() {
            base.trouble = Some(BaseTrouble::Damaged {
                damaged_bytes: decoded.damaged_bytes,
                kept: entries.len(),
            });
        }
        base.header.recovering = decoded.header.recovering || decoded.damaged();
        if decoded.header.identity.is_some() {
            base.header.copy_tag = decoded.header.copy_tag;
        }
        base.header.epoch = epoch;
        base.header.reference = reference;
        base.exists = true;
        // A base written for this directory as it is now (same path and
        // device too) is appended to; else its header is brought up to date
        // by rewriting it first.
        base.clean = decoded.clean
            && decoded.header.identity.as_ref() == Some(identity)
            && decoded.header.recovering == base.header.recovering;
        base.records = records;
        base.established = entries.values().filter(|e| e.born < epoch).count();
        base.entries = entries;
        base.intents = intents;
        base
    }

    /// The state directory the base is kept in (this operation's handle).
    pub fn dir(&self) -> &Arc<Dir> {
        &self.dir
    }

    /// Uses `dir` (this operation's handle of the same state directory).
    pub fn set_dir(&mut self, dir: Arc<Dir>) {
        self.journal = None;
        self.dir = dir;
    }

    /// The file's name in the state directory.
    pub fn file_name(&self) -> &str {
        &self.name
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    /// Whether this (bucket, prefix) has synced with this directory before.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Whether some synced paths may be missing from the base (it was
    /// damaged, or could not be used): paths it does not know are then
    /// decided by rules that lose nothing, and reported.
    pub fn recovering(&self) -> bool {
        self.header.recovering
    }

    /// Why the base on disk was not used as it was, once: for the
    /// operation that loaded it to report.
    pub fn take_trouble(&mut self) -> Option<(BaseTrouble, PathBuf)> {
        self.trouble.take().map(|t| (t, self.path()))
    }

    /// The filesystem's timestamp granularity, or more (see `probe_racy_window`).
    pub fn set_racy_window(&mut self, window: Duration) {
        self.racy_window_ns = window.as_nanos() as i128;
    }

    /// How far a file's timestamp may lag the clock that timed a call: the
    /// kernel stamps files from a coarse clock (≤ one tick, 10 ms at
    /// HZ=100), or in whole granules on coarse filesystems.
    pub fn clock_lag_ns(&self) -> i128 {
        const TICK_MARGIN_NS: i128 = 20_000_000;
        if self.racy_window_ns > FINE_WINDOW.as_nanos() as i128 {
            self.racy_window_ns
        } else {
            TICK_MARGIN_NS
        }
    }

    pub fn get(&self, rel: &str) -> Option<&BaseEntry> {
        self.entries.get(rel)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// What this workspace's conflict copies carry in their names (4 hex).
    pub fn copy_tag(&self) -> String {
        format!("{:04x}", self.header.copy_tag)
    }

    /// Whether `entry` was there at the last full sync.
    pub fn is_established(&self, entry: &BaseEntry) -> bool {
        entry.born < self.header.epoch
    }

    /// Synced paths at the last full sync, and how many of them have been
    /// deleted since (on either side): what the deletion guard weighs
    /// deletions against. `None` before the first full sync.
    pub fn since_full_sync(&self) -> Option<(usize, usize)> {
        let reference = usize::try_from(self.header.reference).unwrap_or(usize::MAX);
        (self.header.epoch > 0).then(|| (reference, reference.saturating_sub(self.established)))
    }

    /// The content hash of an upload of `rel` sent but never answered (a
    /// process killed mid-push), if any.
    pub fn intent(&self, rel: &str) -> Option<&str> {
        self.intents.get(rel).map(String::as_str)
    }

    /// Whether a file with `stat` still holds the entry's content without
    /// reading it: same stat, and the entry was recorded after the file's
    /// mtime had settled.
    pub fn unchanged_by_stat(&self, rel: &str, stat: &FileStat) -> bool {
        self.entries.get(rel).is_some_and(|e| self.settled(e, stat))
    }

    /// `unchanged_by_stat` for an entry already looked up.
    pub fn settled(&self, entry: &BaseEntry, stat: &FileStat) -> bool {
        entry.stat == *stat && stat.mtime_ns < entry.recorded_ns - self.racy_window_ns
    }

    /// Records `rel` as synced, appending it to the file at once. A path
    /// already synced keeps the epoch it was born in.
    pub fn record(&mut self, rel: String, mut entry: BaseEntry) -> Result<()> {
        let epoch = self.header.epoch;
        entry.born = self.entries.get(&rel).map_or(epoch, |e| e.born);
        let mut record = Vec::with_capacity(128);
        self.encoder.set(&mut record, &rel, &entry);
        self.intents.remove(&rel);
        self.entries.insert(rel, entry);
        self.changed = true;
        self.append(&record)
    }

    /// Forgets `rel` (gone on both sides, or deleted by this sync).
    pub fn forget(&mut self, rel: &str) -> Result<()> {
        let had_intent = self.intents.remove(rel).is_some();
        let Some(old) = self.entries.remove(rel) else {
            if !had_intent {
                return Ok(());
            }
            return self.append_record(&Record::ClearIntent(rel.to_owned()));
        };
        if old.born < self.header.epoch {
            self.established -= 1;
        }
        self.changed = true;
        let mut record = Vec::new();
        self.encoder.remove(&mut record, rel);
        self.append(&record)
    }

    /// Notes, before it is sent, that an upload of `rel` with content
    /// `hash` is under way: if the process dies before the answer, the
    /// next push knows these bytes may have reached S3 (see `intent`).
    pub fn intend(&mut self, rel: &str, hash: &str) -> Result<()> {
        self.intents.insert(rel.to_owned(), hash.to_owned());
        self.append_record(&Record::Intent(rel.to_owned(), hash.to_owned()))
    }

    /// The upload of `rel` was answered without storing it: no intent.
    pub fn clear_intent(&mut self, rel: &str) -> Result<()> {
        if self.intents.remove(rel).is_none() {
            return Ok(());
        }
        self.append_record(&Record::ClearIntent(rel.to_owned()))
    }

    /// A full sync (a pull that compared every path) completed: the paths
    /// synced now are the reference of the deletion guard, and a
    /// recovering base has re-established every path.
    pub fn full_sync_done(&mut self) -> Result<()> {
        if self.header.recovering || !self.exists {
            self.new_epoch();
            self.header.recovering = false;
            return self.write_whole();
        }
        self.accept_deletions()
    }

    /// The deletions so far were allowed past the default share: the
    /// deletion guard counts from the paths synced now.
    pub fn accept_deletions(&mut self) -> Result<()> {
        self.new_epoch();
        let epoch = Record::Epoch(self.header.epoch, self.header.reference);
        self.append_record(&epoch)
    }

    fn new_epoch(&mut self) {
        self.header.epoch += 1;
        self.header.reference = self.entries.len() as u64;
        self.established = self.entries.len();
    }

    fn append_record(&mut self, r: &Record) -> Result<()> {
        let mut record = Vec::with_capacity(64);
        self.encoder.record(&mut record, r);
        self.append(&record)
    }

    /// Marks the base as started even when nothing was recorded: after a
    /// completed first sync, later ones compare with it.
    pub fn start(&mut self) -> Result<()> {
        if !self.exists {
            self.write_whole()?;
        }
        Ok(())
    }

    /// Appends an encoded record; after a first failure (reported once)
    /// appending stops until the next save, which writes everything anyway
    /// (and starts a new encoder).
    fn append(&mut self, record: &[u8]) -> Result<()> {
        if self.journal_failed {
            return Ok(());
        }
        let result = self.try_append(record);
        self.journal_failed = result.is_err();
        result
    }

    fn try_append(&mut self, record: &[u8]) -> Result<()> {
        if self.journal.is_none() {
            if !self.exists || !self.clean {
                // The whole file, this record included.
                return self.write_whole();
            }
            let file = self
                .dir
                .open_append(&self.name)
                .map_err(|e| Error::io("open", &self.path(), e))?;
            self.journal = Some(file);
        }
        let journal = self.journal.as_mut().expect("just opened");
        journal
            .write_all(record)
            .map_err(|e| Error::io("append to", &self.dir.path().join(&self.name), e))?;
        self.records += 1;
        Ok(())
    }

    /// Ends an operation's writing and closes the journal. The base is
    /// rewritten compactly (temp file + rename) when the journal missed a
    /// record, or when superseded records outnumber live ones (so the file
    /// stays within twice its compact size). Blocking.
    pub fn save(&mut self) -> Result<()> {
        let journaled = self.clean && !self.journal_failed;
        let live = self.entries.len() + self.intents.len();
        let bloated = self.records > 2 * live + COMPACT_SLACK;
        if self.exists && (journaled || !self.changed) && !bloated {
            self.journal = None;
            self.journal_failed = false;
            return Ok(());
        }
        self.write_whole()
    }

    /// Rewrites the file with only the live entries (temp file + rename),
    /// as `save` does once superseded records outnumber them. Blocking.
    pub fn compact(&mut self) -> Result<()> {
        self.write_whole()
    }

    fn write_whole(&mut self) -> Result<()> {
        self.journal = None;
        self.journal_failed = false;
        let mut out = Vec::with_capacity(64 + self.entries.len() * 80);
        let mut encoder = Encoder::default();
        encoder.start(&mut out, &self.header);
        let mut paths: Vec<&String> = self.entries.keys().collect();
        paths.sort_unstable();
        for rel in paths {
            encoder.set(&mut out, rel, &self.entries[rel]);
        }
        for (rel, hash) in &self.intents {
            encoder.record(&mut out, &Record::Intent(rel.clone(), hash.clone()));
        }
        let (mut file, temp) = create_temp_file(&self.dir)?;
        let written = file
            .write_all(&out)
            .and_then(|()| self.dir.rename(&temp, &self.name));
        if let Err(e) = written {
            let _ = self.dir.remove_file(&temp);
            return Err(Error::io("write", &self.path(), e));
        }
        self.exists = true;
        self.clean = true;
        self.changed = false;
        self.records = self.entries.len() + self.intents.len();
        self.encoder = encoder;
        if let Some(legacy) = self.legacy.take() {
            let _ = self.dir.remove_file(&legacy);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime_ns: i128) -> FileStat {
        FileStat {
            size: 3,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 7,
        }
    }

    fn entry(hash: &str, mtime_ns: i128, recorded_ns: i128) -> BaseEntry {
        BaseEntry {
            etag: Some(format!("etag-{hash}")),
            hash: hash.into(),
            stat: stat(mtime_ns),
            recorded_ns,
            born: 0,
        }
    }

    fn id() -> Identity {
        Identity {
            path: "/w/ws".into(),
            dev: 1,
            ino: 10,
        }
    }

    #[test]
    fn missing_then_recorded_entries_survive_a_reload_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        assert!(!base.exists());
        let now = 100 * COARSE_WINDOW.as_nanos() as i128;
        base.record("a".into(), entry("m1", 1, now)).unwrap();
        base.record("b".into(), entry("m2", 1, now)).unwrap();
        base.record("a".into(), entry("m3", 1, now)).unwrap();
        base.forget("b").unwrap();
        // Killed here: no save, only the journal.
        drop(base);
        let path = dir.path().join(file_name("b", "p/", "base"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap();
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        assert!(base.exists());
        assert_eq!(base.len(), 1);
        assert_eq!(base.get("a").unwrap().hash, "m3");
        // What is recorded after a torn tail is not lost behind it.
        base.record("c".into(), entry("m4", 1, now)).unwrap();
        base.record("d".into(), entry("m5", 1, now)).unwrap();
        drop(base);
        let base = SyncBase::load(state(), "b", "p/", &id());
        assert_eq!(base.len(), 3);
        assert_eq!(base.get("d").unwrap().hash, "m5");
        // Another prefix has no base here.
        assert!(!SyncBase::load(state(), "b", "q/", &id()).exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_save_appends_until_superseded_records_outnumber_live_ones() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let path = dir.path().join(file_name("b", "p/", "base"));
        let now = 100 * COARSE_WINDOW.as_nanos() as i128;
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        for i in 0..10 {
            base.record(format!("f{i}"), entry("m", 1, now)).unwrap();
        }
        base.save().unwrap();
        let written = std::fs::metadata(&path).unwrap();
        // A later operation changing one path: one record appended, the
        // file not rewritten.
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        base.record("f1".into(), entry("m2", 1, now)).unwrap();
        base.save().unwrap();
        let appended = std::fs::metadata(&path).unwrap();
        assert_eq!(appended.ino(), written.ino());
        assert!(appended.len() > written.len());
        assert_eq!(
            SyncBase::load(state(), "b", "p/", &id())
                .get("f1")
                .unwrap()
                .hash,
            "m2"
        );
        // Rewritten over and over: compacted once the superseded records
        // outnumber the live ones.
        for k in 0..2 * 10 + COMPACT_SLACK {
            base.record("f2".into(), entry(&format!("{k:x}"), 1, now))
                .unwrap();
        }
        let churned = std::fs::metadata(&path).unwrap().len();
        base.save().unwrap();
        let compacted = std::fs::metadata(&path).unwrap();
        assert_ne!(compacted.ino(), written.ino());
        assert!(compacted.len() < churned / 10);
        let base = SyncBase::load(state(), "b", "p/", &id());
        assert_eq!((base.len(), base.records), (10, 10));
        assert_eq!(base.get("f1").unwrap().hash, "m2");
    }

    #[test]
    fn stat_is_trusted_only_when_settled() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        let now = 100 * COARSE_WINDOW.as_nanos() as i128;
        base.record("old".into(), entry("m", 1, now)).unwrap();
        base.record("racy".into(), entry("m", now - 1, now))
            .unwrap();
        assert!(base.unchanged_by_stat("old", &stat(1)));
        assert!(!base.unchanged_by_stat("old", &stat(2)));
        assert!(!base.unchanged_by_stat("racy", &stat(now - 1)));
        base.set_racy_window(FINE_WINDOW);
        let fine = FINE_WINDOW.as_nanos() as i128;
        base.record("b".into(), entry("m", now - 2 * fine, now))
            .unwrap();
        assert!(base.unchanged_by_stat("b", &stat(now - 2 * fine)));
        base.save().unwrap();
        let reloaded = SyncBase::load(state(), "b", "p/", &id());
        assert_eq!(reloaded.len(), 3);
    }

    #[test]
    fn a_first_version_base_is_read_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let legacy = dir.path().join(file_name("b", "p/", "jsonl"));
        std::fs::write(
            &legacy,
            concat!(
                "{\"v\":1,\"bucket\":\"b\",\"prefix\":\"p/\"}\n",
                "{\"p\":\"a\",\"e\":\"e1\",\"m\":\"m1\",\"n\":3,\"mt\":1,\"ct\":1,\"i\":7,\"r\":9}\n",
                "{\"p\":\"b\",\"m\":\"m2\"}\n{\"p\":\"b\",\"x\":true}\n",
            ),
        )
        .unwrap();
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        assert!(base.exists());
        assert_eq!(base.len(), 1);
        let a = base.get("a").unwrap();
        assert_eq!(
            (a.etag.as_deref(), a.hash.as_str(), a.recorded_ns),
            (Some("e1"), "m1", 9)
        );
        base.record("c".into(), entry("m3", 1, 9)).unwrap();
        assert!(!legacy.exists());
        let base = SyncBase::load(state(), "b", "p/", &id());
        assert_eq!(base.len(), 2);
    }

    #[test]
    fn start_makes_an_empty_base_exist() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        base.start().unwrap();
        assert!(SyncBase::load(state(), "b", "p/", &id()).exists());
        assert!(SyncBase::load(state(), "b", "p/", &id()).is_empty());
    }

    #[test]
    fn a_base_of_another_directory_is_reported_and_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let now = 100 * COARSE_WINDOW.as_nanos() as i128;
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        base.record("a".into(), entry("m1", 1, now)).unwrap();
        base.save().unwrap();
        let other = Identity {
            path: "/w/other".into(),
            dev: 1,
            ino: 11,
        };
        let mut base = SyncBase::load(state(), "b", "p/", &other);
        assert!(!base.exists() && base.is_empty() && base.recovering());
        let (trouble, _) = base.take_trouble().unwrap();
        assert_eq!(
            trouble,
            BaseTrouble::OtherWorkspace {
                described: "/w/ws".into()
            }
        );
        // Its first write makes it this directory's, still recovering until
        // a full sync.
        base.record("b".into(), entry("m2", 1, now)).unwrap();
        let base = SyncBase::load(state(), "b", "p/", &other);
        assert!(base.recovering() && base.get("b").is_some() && base.get("a").is_none());
        // An emptied file: unreadable, reported.
        std::fs::write(dir.path().join(file_name("b", "p/", "base")), b"").unwrap();
        let mut base = SyncBase::load(state(), "b", "p/", &other);
        assert_eq!(base.take_trouble().unwrap().0, BaseTrouble::Unreadable);
    }

    #[test]
    fn a_damaged_base_keeps_what_checks_and_recovers_at_a_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let now = 100 * COARSE_WINDOW.as_nanos() as i128;
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        for i in 0..100 {
            base.record(format!("dir/f{i:03}"), entry("m", 1, now))
                .unwrap();
        }
        base.compact().unwrap();
        let path = dir.path().join(file_name("b", "p/", "base"));
        let mut data = std::fs::read(&path).unwrap();
        let at = data.len() * 3 / 10;
        data[at] ^= 0x10;
        std::fs::write(&path, &data).unwrap();
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        assert!(base.exists() && base.recovering());
        assert!(base.len() >= 99 - 15, "{}", base.len());
        assert!(matches!(
            base.take_trouble(),
            Some((BaseTrouble::Damaged { .. }, _))
        ));
        base.full_sync_done().unwrap();
        let base = SyncBase::load(state(), "b", "p/", &id());
        assert!(!base.recovering());
        assert_eq!(base.since_full_sync(), Some((base.len(), 0)));
    }

    #[test]
    fn intents_and_the_guard_reference_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let now = 100 * COARSE_WINDOW.as_nanos() as i128;
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        assert_eq!(base.since_full_sync(), None);
        for i in 0..4 {
            base.record(format!("f{i}"), entry("m", 1, now)).unwrap();
        }
        base.full_sync_done().unwrap();
        base.intend("f0", "h1").unwrap();
        base.intend("new", "h2").unwrap();
        base.record("new".into(), entry("h2", 1, now)).unwrap();
        base.forget("f1").unwrap();
        // Killed here: the journal alone.
        drop(base);
        let mut base = SyncBase::load(state(), "b", "p/", &id());
        assert_eq!(base.intent("f0"), Some("h1"));
        assert_eq!(base.intent("new"), None);
        // 4 at the last full sync, one deleted since; `new` is not counted.
        assert_eq!(base.since_full_sync(), Some((4, 1)));
        assert!(!base.is_established(base.get("new").unwrap()));
        base.clear_intent("f0").unwrap();
        base.compact().unwrap();
        let base = SyncBase::load(state(), "b", "p/", &id());
        assert_eq!(base.intent("f0"), None);
        assert_eq!(base.since_full_sync(), Some((4, 1)));
    }
}
