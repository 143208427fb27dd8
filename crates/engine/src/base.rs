//! The sync base: for every synced path, what S3 held and what the local
//! file was at the last successful transfer of that path. Pull and push
//! compare each side with it (three-way), so "changed here", "changed
//! there" and "changed on both sides" are told apart across processes.
//!
//! Stored per (bucket, prefix) in the state directory as JSON lines: a
//! header, then one line per entry; a later line for a path replaces an
//! earlier one and `{"p":…,"x":true}` removes it. Each completed transfer
//! is appended at once, so a killed process keeps what it finished; the
//! file is rewritten compactly (temp file + rename) when an operation ends.
//! A torn last line is ignored.
//!
//! The base is also the hash cache of synced files: an entry's local stat
//! is trusted to mean "content unchanged" only if the file's mtime was
//! already older than one timestamp granule (`racy_window`) when the entry
//! was recorded. A write in the same tick could otherwise leave the stat
//! unchanged (git's "racy clean" problem); later writes move mtime on.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::local::{create_temp_file, Dir, FileStat, COARSE_WINDOW, FINE_WINDOW};

const VERSION: u32 = 1;

/// One synced path: both sides held the content `md5` when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseEntry {
    /// ETag of the object on S3, when the server gave one.
    pub etag: Option<String>,
    /// Lowercase hex MD5 of the content.
    pub md5: String,
    /// The local file as it was right after the transfer.
    pub stat: FileStat,
    /// When `stat` was taken (ns since the epoch), for the racy check.
    pub recorded_ns: i128,
}

#[derive(Serialize, Deserialize)]
struct Header {
    v: u32,
    bucket: String,
    prefix: String,
}

/// One line of the file; short names keep it compact.
#[derive(Serialize, Deserialize)]
struct Line {
    p: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    x: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(default)]
    m: String,
    #[serde(default)]
    n: u64,
    #[serde(default)]
    mt: i128,
    #[serde(default)]
    ct: i128,
    #[serde(default)]
    i: u64,
    #[serde(default)]
    r: i128,
}

impl Line {
    fn entry(rel: &str, e: &BaseEntry) -> Self {
        Line {
            p: rel.to_owned(),
            x: false,
            e: e.etag.clone(),
            m: e.md5.clone(),
            n: e.stat.size,
            mt: e.stat.mtime_ns,
            ct: e.stat.ctime_ns,
            i: e.stat.ino,
            r: e.recorded_ns,
        }
    }

    fn removal(rel: &str) -> Self {
        Line {
            p: rel.to_owned(),
            x: true,
            e: None,
            m: String::new(),
            n: 0,
            mt: 0,
            ct: 0,
            i: 0,
            r: 0,
        }
    }
}

/// The base of one (bucket, prefix) in one state directory.
#[derive(Debug)]
pub struct SyncBase {
    /// The state directory, and the file's name in it.
    dir: Arc<Dir>,
    name: String,
    header: String,
    /// Whether a base was on disk (or has been started): without one, the
    /// first pull mirrors S3.
    exists: bool,
    entries: HashMap<String, BaseEntry>,
    /// Open for appending while an operation records transfers.
    journal: Option<std::fs::File>,
    /// Appending failed once this operation: only the final save is tried.
    journal_failed: bool,
    /// Entries changed since the file was last written whole.
    changed: bool,
    racy_window_ns: i128,
}

/// The base file's name: one per (bucket, prefix), so several prefixes may
/// share a state directory.
fn file_name(bucket: &str, prefix: &str) -> String {
    let digest = Md5::digest(format!("{bucket}\n{prefix}").as_bytes());
    format!("base-{}.jsonl", &hex::encode(digest)[..16])
}

impl SyncBase {
    /// The base of `bucket`/`prefix` kept in the state directory `dir`;
    /// empty (and not `exists`) when there is none. An unreadable or foreign
    /// file counts as none. Blocking.
    pub fn load(dir: Arc<Dir>, bucket: &str, prefix: &str) -> Self {
        let header = serde_json::to_string(&Header {
            v: VERSION,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
        .expect("a header always serialises");
        let mut base = SyncBase {
            name: file_name(bucket, prefix),
            dir,
            header,
            exists: false,
            entries: HashMap::new(),
            journal: None,
            journal_failed: false,
            changed: false,
            racy_window_ns: COARSE_WINDOW.as_nanos() as i128,
        };
        let mut text = String::new();
        let read = base
            .dir
            .open_regular(&base.name)
            .and_then(|mut f| f.read_to_string(&mut text));
        if read.is_err() {
            return base;
        }
        let mut lines = text.lines();
        let ours = lines
            .next()
            .and_then(|l| serde_json::from_str::<Header>(l).ok())
            .is_some_and(|h| h.v == VERSION && h.bucket == bucket && h.prefix == prefix);
        if !ours {
            return base;
        }
        base.exists = true;
        // A line that does not parse is a torn write of a killed process.
        for line in lines.filter_map(|l| serde_json::from_str::<Line>(l).ok()) {
            if line.x {
                base.entries.remove(&line.p);
            } else {
                let entry = BaseEntry {
                    etag: line.e,
                    md5: line.m,
                    stat: FileStat {
                        size: line.n,
                        mtime_ns: line.mt,
                        ctime_ns: line.ct,
                        ino: line.i,
                    },
                    recorded_ns: line.r,
                };
                base.entries.insert(line.p, entry);
            }
        }
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
        self.entries
            .get(rel)
            .is_some_and(|e| e.stat == *stat && stat.mtime_ns < e.recorded_ns - self.racy_window_ns)
    }

    /// Records `rel` as synced, appending it to the file at once.
    pub fn record(&mut self, rel: String, entry: BaseEntry) -> Result<()> {
        let line = Line::entry(&rel, &entry);
        self.entries.insert(rel, entry);
        self.changed = true;
        self.append(&line)
    }

    /// Forgets `rel` (gone on both sides, or deleted by this sync).
    pub fn forget(&mut self, rel: &str) -> Result<()> {
        if self.entries.remove(rel).is_none() {
            return Ok(());
        }
        self.changed = true;
        self.append(&Line::removal(rel))
    }

    /// Marks the base as started even when nothing was recorded: after a
    /// completed first pull, later pulls compare with it instead of mirroring.
    pub fn start(&mut self) -> Result<()> {
        if !self.exists {
            self.write_whole()?;
        }
        Ok(())
    }

    /// Appends `line`; after a first failure (reported once) appending
    /// stops until the next save, which writes everything anyway.
    fn append(&mut self, line: &Line) -> Result<()> {
        if self.journal_failed {
            return Ok(());
        }
        let result = self.try_append(line);
        self.journal_failed = result.is_err();
        result
    }

    fn try_append(&mut self, line: &Line) -> Result<()> {
        if self.journal.is_none() {
            if !self.exists {
                self.write_whole()?;
            }
            let file = self
                .dir
                .open_append(&self.name)
                .map_err(|e| Error::io("open", &self.path(), e))?;
            self.journal = Some(file);
        }
        let mut bytes = serde_json::to_vec(line).map_err(|e| Error::Io(e.to_string()))?;
        bytes.push(b'\n');
        let journal = self.journal.as_mut().expect("just opened");
        journal
            .write_all(&bytes)
            .map_err(|e| Error::io("append to", &self.dir.path().join(&self.name), e))
    }

    /// Ends an operation's writing: the base is rewritten compactly (temp
    /// file + rename) if anything changed, and the journal closed. Blocking.
    pub fn save(&mut self) -> Result<()> {
        if self.exists && !self.changed {
            self.journal = None;
            self.journal_failed = false;
            return Ok(());
        }
        self.write_whole()
    }

    fn write_whole(&mut self) -> Result<()> {
        self.journal = None;
        self.journal_failed = false;
        let mut out = Vec::with_capacity(64 + self.entries.len() * 160);
        out.extend_from_slice(self.header.as_bytes());
        out.push(b'\n');
        let mut paths: Vec<&String> = self.entries.keys().collect();
        paths.sort();
        for rel in paths {
            serde_json::to_writer(&mut out, &Line::entry(rel, &self.entries[rel]))
                .map_err(|e| Error::Io(e.to_string()))?;
            out.push(b'\n');
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
        self.changed = false;
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

    fn entry(md5: &str, mtime_ns: i128, recorded_ns: i128) -> BaseEntry {
        BaseEntry {
            etag: Some(format!("etag-{md5}")),
            md5: md5.into(),
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
        let path = dir.path().join(file_name("b", "p/"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"p\":\"torn").unwrap();
        let base = SyncBase::load(state(), "b", "p/");
        assert!(base.exists());
        assert_eq!(base.len(), 1);
        assert_eq!(base.get("a").unwrap().md5, "m3");
        // Another prefix has no base here.
        assert!(!SyncBase::load(state(), "b", "q/").exists());
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
    fn start_makes_an_empty_base_exist() {
        let dir = tempfile::tempdir().unwrap();
        let state = || Arc::new(Dir::open_root(dir.path()).unwrap());
        let mut base = SyncBase::load(state(), "b", "p/");
        base.start().unwrap();
        assert!(SyncBase::load(state(), "b", "p/").exists());
        assert!(SyncBase::load(state(), "b", "p/").is_empty());
    }
}
