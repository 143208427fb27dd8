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
mod entries;
mod table;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::{Error, Result};
use crate::local::{create_temp_file, Dir};
pub use codec::Identity;
use codec::{Decoded, Encoder, Header, Record, Unusable};
pub use entries::{BaseEntries, BaseEntry, UNHASHED};
pub use table::Entry;
use table::Table;

/// Superseded records a small base may carry before it is compacted.
const COMPACT_SLACK: usize = 1_000;

/// Why the base on disk was not used as it was, for the operation that
/// loaded it to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseTrouble {
    /// Bytes in the middle of the file could not be read: the records that
    /// still check are used; the paths of the others are unknown.
    Damaged {
        /// Bytes that could not be read.
        damaged_bytes: usize,
        /// Paths known from the records that still check.
        kept: usize,
    },
    /// The file is not a readable base (emptied, overwritten, its header
    /// damaged): not used at all.
    Unreadable,
    /// The base describes another directory (a `stateDir` shared between
    /// workspaces, or one that outlived its workspace): not used at all.
    OtherWorkspace {
        /// The absolute path of the directory it describes.
        described: String,
    },
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
    /// The header's fields the entries do not carry.
    bucket: String,
    prefix: String,
    identity: Identity,
    /// A base of the first version's file, removed once this one is written.
    legacy: Option<String>,
    /// Whether the file ends with a whole record and says what this base
    /// says in its header (else it is rewritten whole before anything is
    /// appended).
    clean: bool,
    /// Front-codes appended records.
    encoder: Encoder,
    /// What the file says (the planner's view of the base).
    entries: BaseEntries,
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
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            identity: identity.clone(),
            legacy: None,
            clean: false,
            encoder: Encoder::default(),
            entries: BaseEntries::new(crate::local::rand_u64() as u16),
            trouble: None,
            journal: None,
            journal_failed: false,
            changed: false,
            records: 0,
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
        // About 60 bytes a record: room for about them all at once.
        let mut entries = Table::default();
        entries.reserve(data.len() / 60);
        let mut intents = HashMap::new();
        let mut records = 0;
        let mut epoch_seen = None;
        let decoded = codec::decode(&data, bucket, prefix, |record| {
            records += 1;
            match record {
                Record::Set(rel, entry) => {
                    if !intents.is_empty() {
                        intents.remove(&rel);
                    }
                    entries.insert(&rel, &entry);
                }
                Record::SetPacked(rel, entry) => {
                    if !intents.is_empty() {
                        intents.remove(&rel);
                    }
                    entries.insert_packed(&rel, &entry);
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
                base.entries.recovering = true;
                return base;
            }
        };
        if let Some(described) = &decoded.header.identity {
            if !described.describes(identity) {
                base.trouble = Some(BaseTrouble::OtherWorkspace {
                    described: described.path.clone(),
                });
                base.entries.recovering = true;
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
        let recovering = decoded.header.recovering || decoded.damaged();
        base.entries.recovering = recovering;
        if decoded.header.identity.is_some() {
            base.entries.copy_tag = decoded.header.copy_tag;
        }
        base.entries.epoch = epoch;
        base.entries.reference = reference;
        // A base written for this directory as it is now (same path and
        // device too) is appended to; else its header is brought up to date
        // by rewriting it first.
        base.clean = decoded.clean
            && decoded.header.identity.as_ref() == Some(identity)
            && decoded.header.recovering == recovering;
        base.records = records;
        entries.shrink_to_fit();
        base.entries.restore(entries, intents);
        base
    }

    /// What the base says: the planner's view of it.
    pub fn entries(&self) -> &BaseEntries {
        &self.entries
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

    /// Why the base on disk was not used as it was, once: for the
    /// operation that loaded it to report.
    pub fn take_trouble(&mut self) -> Option<(BaseTrouble, PathBuf)> {
        self.trouble.take().map(|t| (t, self.path()))
    }

    /// The filesystem's timestamp granularity, or more (see `probe_racy_window`).
    pub fn set_racy_window(&mut self, window: Duration) {
        self.entries.set_racy_window(window);
    }

    /// Records `rel` as synced, appending it to the file at once. A path
    /// already synced keeps the epoch it was born in.
    pub fn record(&mut self, rel: String, entry: BaseEntry) -> Result<()> {
        let mut record = Vec::with_capacity(128);
        let entry = self.entries.set(rel.clone(), entry);
        self.encoder.set(&mut record, &rel, &entry);
        self.changed = true;
        self.append(&record)
    }

    /// Forgets `rel` (gone on both sides, or deleted by this sync).
    pub fn forget(&mut self, rel: &str) -> Result<()> {
        match self.entries.remove(rel) {
            (false, false) => Ok(()),
            (false, true) => self.append_record(&Record::ClearIntent(rel.to_owned())),
            (true, _) => {
                self.changed = true;
                let mut record = Vec::new();
                self.encoder.remove(&mut record, rel);
                self.append(&record)
            }
        }
    }

    /// Notes, before it is sent, that an upload of `rel` with content
    /// `hash` is under way: if the process dies before the answer, the
    /// next push knows these bytes may have reached S3 (see `intent`).
    pub fn intend(&mut self, rel: &str, hash: &str) -> Result<()> {
        self.entries.intend(rel, hash);
        self.append_record(&Record::Intent(rel.to_owned(), hash.to_owned()))
    }

    /// The upload of `rel` was answered without storing it: no intent.
    pub fn clear_intent(&mut self, rel: &str) -> Result<()> {
        if !self.entries.clear_intent(rel) {
            return Ok(());
        }
        self.append_record(&Record::ClearIntent(rel.to_owned()))
    }

    /// A full sync (a pull that compared every path) completed: the paths
    /// synced now are the reference of the deletion guard, and a
    /// recovering base has re-established every path.
    pub fn full_sync_done(&mut self) -> Result<()> {
        if self.entries.recovering || !self.entries.exists {
            self.entries.new_epoch();
            self.entries.recovering = false;
            return self.write_whole();
        }
        self.accept_deletions()
    }

    /// The deletions so far were allowed past the default share: the
    /// deletion guard counts from the paths synced now.
    pub fn accept_deletions(&mut self) -> Result<()> {
        self.entries.new_epoch();
        let epoch = Record::Epoch(self.entries.epoch, self.entries.reference);
        self.append_record(&epoch)
    }

    fn append_record(&mut self, r: &Record) -> Result<()> {
        let mut record = Vec::with_capacity(64);
        self.encoder.record(&mut record, r);
        self.append(&record)
    }

    /// Writes the base once even when nothing was recorded, so a completed
    /// first sync leaves one for later ones to compare with.
    pub fn ensure_written(&mut self) -> Result<()> {
        if !self.entries.exists {
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
            if !self.entries.exists || !self.clean {
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
        let live = self.entries.len() + self.entries.intents().count();
        let bloated = self.records > 2 * live + COMPACT_SLACK;
        if self.entries.exists && (journaled || !self.changed) && !bloated {
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

    fn header(&self) -> Header {
        Header {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            identity: Some(self.identity.clone()),
            epoch: self.entries.epoch,
            reference: self.entries.reference,
            recovering: self.entries.recovering,
            copy_tag: self.entries.copy_tag,
        }
    }

    fn write_whole(&mut self) -> Result<()> {
        self.journal = None;
        self.journal_failed = false;
        let mut out = Vec::with_capacity(64 + self.entries.len() * 80);
        let mut encoder = Encoder::default();
        encoder.start(&mut out, &self.header());
        let mut sorted: Vec<(String, Entry)> = self.entries.iter().collect();
        sorted.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        for (rel, entry) in sorted {
            encoder.set(&mut out, &rel, &entry.to_entry());
        }
        let mut intents = 0;
        for (rel, hash) in self.entries.intents() {
            encoder.record(&mut out, &Record::Intent(rel.clone(), hash.clone()));
            intents += 1;
        }
        let (mut file, temp) = create_temp_file(&self.dir)?;
        let written = file
            .write_all(&out)
            .and_then(|()| self.dir.rename(&temp, &self.name));
        if let Err(e) = written {
            let _ = self.dir.remove_file(&temp);
            return Err(Error::io("write", &self.path(), e));
        }
        self.entries.exists = true;
        self.clean = true;
        self.changed = false;
        self.records = self.entries.len() + intents;
        self.encoder = encoder;
        if let Some(legacy) = self.legacy.take() {
            let _ = self.dir.remove_file(&legacy);
        }
        Ok(())
    }
}

/// Reads go to the entries; every change goes through the file's methods,
/// so nothing is recorded without being journaled.
impl std::ops::Deref for SyncBase {
    type Target = BaseEntries;

    fn deref(&self) -> &BaseEntries {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{COARSE_WINDOW, FINE_WINDOW};
    use crate::model::FileStat;

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
        assert_eq!(base.get("a").unwrap().hash(), "m3");
        // What is recorded after a torn tail is not lost behind it.
        base.record("c".into(), entry("m4", 1, now)).unwrap();
        base.record("d".into(), entry("m5", 1, now)).unwrap();
        base.record("e".into(), entry(UNHASHED, 1, now)).unwrap();
        drop(base);
        let base = SyncBase::load(state(), "b", "p/", &id());
        assert_eq!(base.len(), 4);
        assert_eq!(base.get("d").unwrap().hash(), "m5");
        assert!(!base.get("e").unwrap().is_hashed());
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
                .hash(),
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
        assert_eq!(base.get("f1").unwrap().hash(), "m2");
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
        let a = base.get("a").unwrap().to_entry();
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
        base.ensure_written().unwrap();
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
