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
//! The base is also the hash cache of synced files: an entry's local stat
//! is trusted to mean "content unchanged" only if the file's mtime was
//! already older than one timestamp granule (`racy_window`) when the entry
//! was recorded. A write in the same tick could otherwise leave the stat
//! unchanged (git's "racy clean" problem); later writes move mtime on.

mod codec;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::{Error, Result};
use crate::local::{create_temp_file, Dir, FileStat, COARSE_WINDOW, FINE_WINDOW};
use codec::{Encoder, Record};

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
}

/// Superseded records a small base may carry before it is compacted.
const COMPACT_SLACK: usize = 1_000;

/// Keyed by paths that come from S3 keys: a hasher with a random seed.
type Entries = foldhash::HashMap<String, BaseEntry>;

/// The base of one (bucket, prefix) in one state directory.
#[derive(Debug)]
pub struct SyncBase {
    /// The state directory, and the file's name in it.
    dir: Arc<Dir>,
    name: String,
    bucket: String,
    prefix: String,
    /// A base of the first version's file, removed once this one is written.
    legacy: Option<String>,
    /// Whether the file ends with a whole record (else, as after a killed
    /// write, it is rewritten whole before anything is appended).
    clean: bool,
    /// Front-codes appended records against the file's last path.
    encoder: Encoder,
    /// Whether a base was on disk (or has been started): without one, the
    /// first pull mirrors S3.
    exists: bool,
    entries: Entries,
    /// Open for appending while an operation records transfers.
    journal: Option<std::fs::File>,
    /// Appending failed once this operation: only the final save is tried.
    journal_failed: bool,
    /// Entries changed since the file was last written whole.
    changed: bool,
    /// Path records in the file, live or superseded.
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
    /// The base of `bucket`/`prefix` kept in the state directory `dir`;
    /// empty (and not `exists`) when there is none. An unreadable or foreign
    /// file counts as none. Blocking.
    pub fn load(dir: Arc<Dir>, bucket: &str, prefix: &str) -> Self {
        let mut base = SyncBase {
            name: file_name(bucket, prefix, "base"),
            dir,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            legacy: None,
            clean: false,
            encoder: Encoder::default(),
            exists: false,
            entries: Entries::default(),
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
        let mut records = 0;
        let clean = codec::decode(&data, bucket, prefix, |record| {
            records += 1;
            match record {
                Record::Set(rel, entry) => {
                    entries.insert(rel, entry);
                }
                Record::Remove(rel) => {
                    entries.remove(&rel);
                }
            }
        });
        let Some(clean) = clean else {
            return base;
        };
        base.exists = true;
        base.clean = clean;
        base.records = records;
        base.entries = entries;
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

    /// Records `rel` as synced, appending it to the file at once.
    pub fn record(&mut self, rel: String, entry: BaseEntry) -> Result<()> {
        let mut record = Vec::with_capacity(128);
        self.encoder.set(&mut record, &rel, &entry);
        self.entries.insert(rel, entry);
        self.changed = true;
        self.append(&record)
    }

    /// Forgets `rel` (gone on both sides, or deleted by this sync).
    pub fn forget(&mut self, rel: &str) -> Result<()> {
        if self.entries.remove(rel).is_none() {
            return Ok(());
        }
        self.changed = true;
        let mut record = Vec::new();
        self.encoder.remove(&mut record, rel);
        self.append(&record)
    }

    /// Marks the base as started even when nothing was recorded: after a
    /// completed first pull, later pulls compare with it instead of mirroring.
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
        // A first-version (`.jsonl`) base loads as not clean, so it is
        // rewritten before anything is appended.
        let journaled = self.clean && !self.journal_failed;
        let bloated = self.records > 2 * self.entries.len() + COMPACT_SLACK;
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
        encoder.start(&mut out, &self.bucket, &self.prefix);
        let mut paths: Vec<&String> = self.entries.keys().collect();
        paths.sort_unstable();
        for rel in paths {
            encoder.set(&mut out, rel, &self.entries[rel]);
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
        self.records = self.entries.len();
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
        }
    }

    #[test]
    fn missing_then_recorded_entries_survive_a_reload_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let mut base = SyncBase::load(state(), "b", "p/");
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
        let mut base = SyncBase::load(state(), "b", "p/");
        assert!(base.exists());
        assert_eq!(base.len(), 1);
        assert_eq!(base.get("a").unwrap().hash, "m3");
        // What is recorded after a torn tail is not lost behind it.
        base.record("c".into(), entry("m4", 1, now)).unwrap();
        base.record("d".into(), entry("m5", 1, now)).unwrap();
        drop(base);
        let base = SyncBase::load(state(), "b", "p/");
        assert_eq!(base.len(), 3);
        assert_eq!(base.get("d").unwrap().hash, "m5");
        // Another prefix has no base here.
        assert!(!SyncBase::load(state(), "b", "q/").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_save_appends_until_superseded_records_outnumber_live_ones() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let path = dir.path().join(file_name("b", "p/", "base"));
        let now = 100 * COARSE_WINDOW.as_nanos() as i128;
        let mut base = SyncBase::load(state(), "b", "p/");
        for i in 0..10 {
            base.record(format!("f{i}"), entry("m", 1, now)).unwrap();
        }
        base.save().unwrap();
        let written = std::fs::metadata(&path).unwrap();
        // A later operation changing one path: one record appended, the
        // file not rewritten.
        let mut base = SyncBase::load(state(), "b", "p/");
        base.record("f1".into(), entry("m2", 1, now)).unwrap();
        base.save().unwrap();
        let appended = std::fs::metadata(&path).unwrap();
        assert_eq!(appended.ino(), written.ino());
        assert!(appended.len() > written.len());
        assert_eq!(
            SyncBase::load(state(), "b", "p/").get("f1").unwrap().hash,
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
        let base = SyncBase::load(state(), "b", "p/");
        assert_eq!((base.len(), base.records), (10, 10));
        assert_eq!(base.get("f1").unwrap().hash, "m2");
    }

    #[test]
    fn stat_is_trusted_only_when_settled() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let mut base = SyncBase::load(state(), "b", "p/");
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
        let reloaded = SyncBase::load(state(), "b", "p/");
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
        let mut base = SyncBase::load(state(), "b", "p/");
        assert!(base.exists());
        assert_eq!(base.len(), 1);
        let a = base.get("a").unwrap();
        assert_eq!(
            (a.etag.as_deref(), a.hash.as_str(), a.recorded_ns),
            (Some("e1"), "m1", 9)
        );
        base.record("c".into(), entry("m3", 1, 9)).unwrap();
        assert!(!legacy.exists());
        let base = SyncBase::load(state(), "b", "p/");
        assert_eq!(base.len(), 2);
    }

    #[test]
    fn start_makes_an_empty_base_exist() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let mut base = SyncBase::load(state(), "b", "p/");
        base.start().unwrap();
        assert!(SyncBase::load(state(), "b", "p/").exists());
        assert!(SyncBase::load(state(), "b", "p/").is_empty());
    }
}
