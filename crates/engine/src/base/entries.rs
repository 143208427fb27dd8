//! The base as plain data: what the planner reads. No file, no handle: the
//! file that persists it is `SyncBase` (see the module above), and tests of
//! the planner build one in memory.

use std::collections::HashMap;
use std::time::Duration;

use super::table::{Entry, Table};
use crate::local::{COARSE_WINDOW, FINE_WINDOW};
use crate::model::FileStat;

/// One synced path: both sides held the content `hash` when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseEntry {
    /// ETag of the object on S3, when the server gave one.
    pub etag: Option<String>,
    /// The content hash (see `hashing`: the MD5 below 8 MiB, else the
    /// multipart form), or `UNHASHED`.
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

/// The `hash` of an entry whose bytes were checked on the way in by
/// another sum (a whole-object CRC, or the whole MD5 of an object sent in one
/// PUT) and never hashed into their content hash: a large download is not
/// MD5-hashed twice. It equals no file's hash, so once the file's stat
/// changes it counts as modified (and is hashed as it is pushed). Older
/// versions read it the same way: a hash no file has.
pub const UNHASHED: &str = "";

/// Every synced path's entry, the uploads under way, and the deletion
/// guard's reference.
#[derive(Debug, Clone)]
pub struct BaseEntries {
    entries: Table,
    /// Paths whose upload was sent but not answered (see `intend`), with
    /// the content hash sent.
    intents: HashMap<String, String>,
    /// Entries born before the current epoch.
    established: usize,
    /// Full syncs (pulls) completed since the base was started.
    pub(super) epoch: u64,
    /// Paths synced when the last one completed.
    pub(super) reference: u64,
    /// Some paths may be missing until a full sync re-establishes them.
    pub(super) recovering: bool,
    /// Marks the conflict copies this workspace makes.
    pub(super) copy_tag: u16,
    /// Whether a usable base was on disk (or has been started): without
    /// one, the first pull cannot tell local deletions from new objects.
    pub(super) exists: bool,
    racy_window_ns: i128,
}

impl BaseEntries {
    /// No base yet; its conflict copies will carry `copy_tag`.
    pub fn new(copy_tag: u16) -> Self {
        BaseEntries {
            entries: Table::default(),
            intents: HashMap::new(),
            established: 0,
            epoch: 0,
            reference: 0,
            recovering: false,
            copy_tag,
            exists: false,
            racy_window_ns: COARSE_WINDOW.as_nanos() as i128,
        }
    }

    /// As once written: the base of a workspace that has synced before.
    pub fn mark_existing(&mut self) {
        self.exists = true;
    }

    /// Takes the decoded records of an existing base.
    pub(super) fn restore(&mut self, entries: Table, intents: HashMap<String, String>) {
        self.established = entries.entries().filter(|e| e.born() < self.epoch).count();
        self.entries = entries;
        self.intents = intents;
        self.exists = true;
    }

    /// Whether this (bucket, prefix) has synced with this directory before.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Whether some synced paths may be missing from the base (it was
    /// damaged, or could not be used): paths it does not know are then
    /// decided by rules that lose nothing, and reported.
    pub fn recovering(&self) -> bool {
        self.recovering
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

    /// The entry of `rel`, if it is synced.
    pub fn get(&self, rel: &str) -> Option<Entry<'_>> {
        self.entries.get(rel)
    }

    /// How many paths are synced.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no path is synced.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// Every synced path, in no order.
    pub fn paths(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|(rel, _)| rel)
    }

    /// The synced paths that `keep`, in no order (the others are never
    /// spelled out).
    pub fn paths_where(&self, keep: impl FnMut(&str) -> bool) -> Vec<String> {
        self.entries.paths_where(keep)
    }

    /// Every entry, in no order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (String, Entry<'_>)> + '_ {
        self.entries.iter()
    }

    /// Bytes the entries hold in memory, roughly.
    pub fn heap_bytes(&self) -> usize {
        self.entries.heap_bytes()
    }

    /// Every upload sent and not answered yet (path, intent).
    pub fn intents(&self) -> impl Iterator<Item = (&String, &String)> {
        self.intents.iter()
    }

    /// What this workspace's conflict copies carry in their names (4 hex).
    pub fn copy_tag(&self) -> String {
        format!("{:04x}", self.copy_tag)
    }

    /// Whether `entry` was there at the last full sync.
    pub fn is_established(&self, entry: Entry) -> bool {
        entry.born() < self.epoch
    }

    /// Synced paths at the last full sync, and how many of them have been
    /// deleted since (on either side): what the deletion guard weighs
    /// deletions against. `None` before the first full sync.
    pub fn since_full_sync(&self) -> Option<(usize, usize)> {
        let reference = usize::try_from(self.reference).unwrap_or(usize::MAX);
        (self.epoch > 0).then(|| (reference, reference.saturating_sub(self.established)))
    }

    /// The intent of an upload of `rel` sent but never answered (a process
    /// killed mid-push), if any: its content hash, or the token of an
    /// unhashed upload.
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
    pub fn settled(&self, entry: Entry, stat: &FileStat) -> bool {
        entry.stat() == *stat && stat.mtime_ns < entry.recorded_ns() - self.racy_window_ns
    }

    /// Sets the entry of `rel`; a path already synced keeps the epoch it
    /// was born in. Clears its intent.
    pub fn set(&mut self, rel: String, mut entry: BaseEntry) -> BaseEntry {
        entry.born = self.entries.get(&rel).map_or(self.epoch, |e| e.born());
        self.intents.remove(&rel);
        self.entries.insert(&rel, &entry);
        entry
    }

    /// Forgets `rel` and its intent: whether it had (an entry, an intent).
    pub fn remove(&mut self, rel: &str) -> (bool, bool) {
        let had_intent = self.intents.remove(rel).is_some();
        let Some(born) = self.entries.remove(rel) else {
            return (false, had_intent);
        };
        if born < self.epoch {
            self.established -= 1;
        }
        (true, had_intent)
    }

    /// Notes that an upload of `rel` with content `hash` is under way.
    pub fn intend(&mut self, rel: &str, hash: &str) {
        self.intents.insert(rel.to_owned(), hash.to_owned());
    }

    /// Clears the intent of `rel`: whether it had one.
    pub fn clear_intent(&mut self, rel: &str) -> bool {
        self.intents.remove(rel).is_some()
    }

    /// A full sync completed, or deletions were accepted: the deletion
    /// guard counts from the paths synced now.
    pub fn new_epoch(&mut self) {
        self.epoch += 1;
        self.reference = self.entries.len() as u64;
        self.established = self.entries.len();
    }

    /// Paths are synced again by rules that lose nothing until a full
    /// sync (see `recovering`).
    pub fn set_recovering(&mut self, recovering: bool) {
        self.recovering = recovering;
    }
}
