//! The synced paths' entries in memory, packed: a workspace of ten million
//! files must fit a small container. A path is its directory (interned:
//! a tree has far fewer directories than files) and its name (in one
//! arena); an entry is a fixed row of numbers, its content hash as 16
//! bytes and its ETag a flag where it is that hash (as for every object this
//! package writes). About 100 bytes a path (a 74-byte row, the name, a slot
//! of the index), against some 300 for a map of strings. An entry that does not pack exactly (another tool's ETag, a
//! hash not of the usual form, a time past 2262) is kept whole beside.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

use hashbrown::HashTable;

use super::{BaseEntry, UNHASHED};
use crate::hashing::{pack_hash, unpack_hash};
use crate::model::FileStat;

/// One entry, packed (see `Rows::odd` for those that do not pack).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(2))]
struct Row {
    /// The content hash's MD5 (of the file, or of its parts' MD5s).
    md5: [u8; 16],
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    recorded_ns: i64,
    born: u32,
    /// The content hash's part count (`…-N`; 0 for a plain MD5) in the
    /// low 30 bits, what the row says of the ETag (`Etag`) in the top 2.
    parts_etag: u32,
    /// The path: its directory's id, and its name in `Rows::names`.
    dir: u32,
    name: u32,
    name_len: u16,
}

/// The bits of `Row::parts_etag` that hold the part count.
const PARTS: u32 = (1 << 30) - 1;

impl Row {
    fn parts(&self) -> u32 {
        self.parts_etag & PARTS
    }

    fn etag(&self) -> Etag {
        match self.parts_etag >> 30 {
            0 => Etag::None,
            1 => Etag::IsHash,
            _ => Etag::Odd,
        }
    }

    fn set(&mut self, parts: u32, etag: Etag) {
        self.parts_etag = parts | (etag as u32) << 30;
    }
}

/// What a row says of the entry's ETag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Etag {
    None,
    /// The same text as the content hash.
    IsHash,
    /// Not packed: the entry is in `Table::odd`.
    Odd,
}

/// An entry whose ETag is its content hash, or which has none, and whose
/// hash packs (see `pack_hash`): as the base file keeps most of them, and
/// as a row does once its times fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub md5: [u8; 16],
    pub parts: u32,
    pub etag_is_hash: bool,
    pub stat: FileStat,
    pub recorded_ns: i128,
    pub born: u64,
}

impl Packed {
    /// `entry` packed, when it packs.
    fn of(entry: &BaseEntry) -> Option<Packed> {
        let (md5, parts) = pack_hash(&entry.hash)?;
        let etag_is_hash = match entry.etag.as_deref() {
            None => false,
            Some(e) if e == entry.hash => true,
            Some(_) => return None,
        };
        Some(Packed {
            md5,
            parts,
            etag_is_hash,
            stat: entry.stat,
            recorded_ns: entry.recorded_ns,
            born: entry.born,
        })
    }

    /// The entry, whole.
    pub fn to_entry(self) -> BaseEntry {
        let hash = unpack_hash(self.md5, self.parts);
        BaseEntry {
            etag: self.etag_is_hash.then(|| hash.clone()),
            hash,
            stat: self.stat,
            recorded_ns: self.recorded_ns,
            born: self.born,
        }
    }
}

/// A synced path's entry as `Table::get` finds it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    row: Row,
    odd: Option<&'a BaseEntry>,
}

impl Entry<'_> {
    /// The local file as it was right after the transfer.
    pub fn stat(&self) -> FileStat {
        match self.odd {
            Some(e) => e.stat,
            None => FileStat {
                size: self.row.size,
                mtime_ns: self.row.mtime_ns.into(),
                ctime_ns: self.row.ctime_ns.into(),
                ino: self.row.ino,
            },
        }
    }

    /// When `stat` was taken (see `BaseEntry::recorded_ns`).
    pub fn recorded_ns(&self) -> i128 {
        self.odd
            .map_or(self.row.recorded_ns.into(), |e| e.recorded_ns)
    }

    /// The sync epoch the path was first recorded in.
    pub fn born(&self) -> u64 {
        self.odd.map_or(self.row.born.into(), |e| e.born)
    }

    /// The content hash (see `BaseEntry::hash`).
    pub fn hash(&self) -> String {
        match self.odd {
            Some(e) => e.hash.clone(),
            None => unpack_hash(self.row.md5, self.row.parts()),
        }
    }

    /// Whether the bytes were hashed (not `UNHASHED`): a packed row always
    /// holds a hash.
    pub fn is_hashed(&self) -> bool {
        self.odd.is_none_or(|e| e.hash != UNHASHED)
    }

    /// Whether the content hash is `hash`, without spelling it out (never
    /// when the entry is `UNHASHED`).
    pub fn hash_is(&self, hash: &str) -> bool {
        match self.odd {
            Some(e) => e.hash == hash && self.is_hashed(),
            None => pack_hash(hash) == Some((self.row.md5, self.row.parts())),
        }
    }

    /// The object's ETag, when the server gave one.
    pub fn etag(&self) -> Option<String> {
        match (self.odd, self.row.etag()) {
            (Some(e), _) => e.etag.clone(),
            (None, Etag::IsHash) => Some(self.hash()),
            (None, _) => None,
        }
    }

    /// Whether the object's ETag is `etag` (`false` when it has none).
    pub fn etag_is(&self, etag: Option<&str>) -> bool {
        match (self.odd, self.row.etag(), etag) {
            (Some(e), _, _) => e.etag.is_some() && e.etag.as_deref() == etag,
            (None, Etag::IsHash, Some(etag)) => self.hash_is(etag),
            _ => false,
        }
    }

    /// The entry, whole.
    pub fn to_entry(self) -> BaseEntry {
        match self.odd {
            Some(e) => e.clone(),
            None => BaseEntry {
                etag: self.etag(),
                hash: self.hash(),
                stat: self.stat(),
                recorded_ns: self.recorded_ns(),
                born: self.born(),
            },
        }
    }
}

/// An entry to store, as it came.
#[derive(Clone, Copy)]
enum Incoming<'a> {
    Packed(&'a Packed),
    Whole(&'a BaseEntry),
}

/// A path as (directory, name).
fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

/// Every synced path's entry.
#[derive(Debug, Default)]
pub struct Table {
    /// Row positions, by the hash of their path.
    index: HashTable<u32>,
    rows: Rows,
    /// The row after the last one looked up: paths are mostly looked up in
    /// order (a scan, a listing) and kept in order (a base file), so it is
    /// mostly the next one, found without hashing.
    next: AtomicU32,
}

impl Clone for Table {
    fn clone(&self) -> Self {
        Table {
            index: self.index.clone(),
            rows: self.rows.clone(),
            next: AtomicU32::new(0),
        }
    }
}

/// The rows and the strings they point into.
#[derive(Debug, Clone, Default)]
struct Rows {
    /// Keys come from S3: a hasher with a random seed.
    state: foldhash::fast::RandomState,
    rows: Vec<Row>,
    /// The rows' names, one after the other.
    names: String,
    /// Bytes of `names` no row points to any more.
    garbage: usize,
    /// Directory paths by id, and their ids by the hash of the path.
    dirs: Vec<Box<str>>,
    dir_index: HashTable<u32>,
    /// Entries that do not pack, by row position.
    odd: HashMap<u32, BaseEntry>,
}

impl Rows {
    fn path_hash(&self, dir: &str, name: &str) -> u64 {
        let mut h = self.state.build_hasher();
        h.write(dir.as_bytes());
        h.write_u8(0xff);
        h.write(name.as_bytes());
        h.finish()
    }

    fn name(&self, row: &Row) -> &str {
        let start = row.name as usize;
        &self.names[start..start + usize::from(row.name_len)]
    }

    fn dir(&self, row: &Row) -> &str {
        &self.dirs[row.dir as usize]
    }

    fn hash_at(&self, at: u32) -> u64 {
        let row = &self.rows[at as usize];
        self.path_hash(self.dir(row), self.name(row))
    }

    fn is_at(&self, at: u32, dir: &str, name: &str) -> bool {
        let row = &self.rows[at as usize];
        self.name(row) == name && self.dir(row) == dir
    }

    fn path_at(&self, at: u32) -> String {
        let row = &self.rows[at as usize];
        match self.dir(row) {
            "" => self.name(row).to_owned(),
            dir => format!("{dir}/{}", self.name(row)),
        }
    }

    fn entry_at(&self, at: u32) -> Entry<'_> {
        let row = self.rows[at as usize];
        let odd = (row.etag() == Etag::Odd).then(|| &self.odd[&at]);
        Entry { row, odd }
    }

    fn intern_dir(&mut self, dir: &str) -> u32 {
        // Paths come in order (a base file, a scan): mostly the last one's.
        if let Some(last) = self.rows.last().map(|r| r.dir) {
            if &*self.dirs[last as usize] == dir {
                return last;
            }
        }
        let hash = self.state.hash_one(dir);
        let dirs = &self.dirs;
        if let Some(&id) = self.dir_index.find(hash, |&id| &*dirs[id as usize] == dir) {
            return id;
        }
        let id = u32::try_from(self.dirs.len()).expect("fewer than 2^32 directories");
        self.dirs.push(dir.into());
        let (state, dirs) = (&self.state, &self.dirs);
        self.dir_index
            .insert_unique(hash, id, |&id| state.hash_one(&*dirs[id as usize]));
        id
    }

    /// Sets the row at `at` (its path fields kept) to `entry`.
    fn fill(&mut self, row: &mut Row, at: u32, entry: Incoming) {
        let packed = match entry {
            Incoming::Packed(p) => Some(*p),
            Incoming::Whole(e) => Packed::of(e),
        };
        let times = packed.filter(|p| p.parts <= PARTS).and_then(|p| {
            Some((
                i64::try_from(p.stat.mtime_ns).ok()?,
                i64::try_from(p.stat.ctime_ns).ok()?,
                i64::try_from(p.recorded_ns).ok()?,
                u32::try_from(p.born).ok()?,
            ))
        });
        match (packed, times) {
            (Some(p), Some((mtime_ns, ctime_ns, recorded_ns, born))) => {
                if row.etag() == Etag::Odd {
                    self.odd.remove(&at);
                }
                *row = Row {
                    md5: p.md5,
                    size: p.stat.size,
                    mtime_ns,
                    ctime_ns,
                    ino: p.stat.ino,
                    recorded_ns,
                    born,
                    ..*row
                };
                let etag = if p.etag_is_hash {
                    Etag::IsHash
                } else {
                    Etag::None
                };
                row.set(p.parts, etag);
            }
            _ => {
                let whole = match entry {
                    Incoming::Packed(p) => p.to_entry(),
                    Incoming::Whole(e) => e.clone(),
                };
                self.odd.insert(at, whole);
                row.set(0, Etag::Odd);
            }
        }
    }

    /// Rewrites `names` with only the names rows point to.
    fn compact_names(&mut self) {
        let mut names = String::with_capacity(self.names.len() - self.garbage);
        for row in &mut self.rows {
            let start = row.name as usize;
            let name = &self.names[start..start + usize::from(row.name_len)];
            row.name = names.len() as u32;
            names.push_str(name);
        }
        self.names = names;
        self.garbage = 0;
    }
}

impl Table {
    /// Room for `n` more entries.
    pub fn reserve(&mut self, n: usize) {
        self.rows.rows.reserve(n);
        let rows = &self.rows;
        self.index.reserve(n, |&at| rows.hash_at(at));
    }

    /// Gives back the room reserved and not used.
    pub fn shrink_to_fit(&mut self) {
        self.rows.rows.shrink_to_fit();
        self.rows.names.shrink_to_fit();
        let rows = &self.rows;
        self.index.shrink_to(0, |&at| rows.hash_at(at));
    }

    pub fn len(&self) -> usize {
        self.rows.rows.len()
    }

    fn find(&self, rel: &str) -> Option<u32> {
        let (dir, name) = split(rel);
        let guess = self.next.load(Ordering::Relaxed);
        let found = if guess < self.len() as u32 && self.rows.is_at(guess, dir, name) {
            Some(guess)
        } else {
            let hash = self.rows.path_hash(dir, name);
            let rows = &self.rows;
            self.index
                .find(hash, |&at| rows.is_at(at, dir, name))
                .copied()
        };
        if let Some(at) = found {
            self.next.store(at + 1, Ordering::Relaxed);
        }
        found
    }

    /// The entry of `rel`, if it is synced.
    pub fn get(&self, rel: &str) -> Option<Entry<'_>> {
        self.find(rel).map(|at| self.rows.entry_at(at))
    }

    /// Sets the entry of `rel`.
    pub fn insert(&mut self, rel: &str, entry: &BaseEntry) {
        self.put(rel, Incoming::Whole(entry));
    }

    /// `insert` of a packed entry (as decoded).
    pub fn insert_packed(&mut self, rel: &str, entry: &Packed) {
        self.put(rel, Incoming::Packed(entry));
    }

    fn put(&mut self, rel: &str, entry: Incoming) {
        let (dir, name) = split(rel);
        let hash = self.rows.path_hash(dir, name);
        let rows = &self.rows;
        if let Some(&at) = self.index.find(hash, |&at| rows.is_at(at, dir, name)) {
            let mut row = self.rows.rows[at as usize];
            self.rows.fill(&mut row, at, entry);
            self.rows.rows[at as usize] = row;
            return;
        }
        let at = u32::try_from(self.len()).expect("fewer than 2^32 paths");
        let mut row = Row {
            md5: [0; 16],
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 0,
            recorded_ns: 0,
            born: 0,
            parts_etag: 0,
            dir: self.rows.intern_dir(dir),
            name: u32::try_from(self.rows.names.len()).expect("names within 4 GiB"),
            name_len: u16::try_from(name.len()).expect("a name of at most 64 KiB"),
        };
        self.rows.names.push_str(name);
        self.rows.fill(&mut row, at, entry);
        self.rows.rows.push(row);
        let rows = &self.rows;
        self.index.insert_unique(hash, at, |&at| rows.hash_at(at));
    }

    /// Removes the entry of `rel`: the sync epoch it was born in, if it was
    /// there. The last row takes its place.
    pub fn remove(&mut self, rel: &str) -> Option<u64> {
        let (dir, name) = split(rel);
        let hash = self.rows.path_hash(dir, name);
        let rows = &self.rows;
        let (at, _) = self
            .index
            .find_entry(hash, |&at| rows.is_at(at, dir, name))
            .ok()?
            .remove();
        let born = self.rows.entry_at(at).born();
        let name_len = usize::from(self.rows.rows[at as usize].name_len);
        self.rows.garbage += name_len;
        self.rows.odd.remove(&at);
        let last = u32::try_from(self.len() - 1).expect("rows fit u32");
        if at != last {
            let moved = self.rows.hash_at(last);
            let slot = self
                .index
                .find_mut(moved, |&i| i == last)
                .expect("every row is indexed");
            *slot = at;
            if let Some(odd) = self.rows.odd.remove(&last) {
                self.rows.odd.insert(at, odd);
            }
        }
        self.rows.rows.swap_remove(at as usize);
        if self.rows.garbage > 4096 && self.rows.garbage > self.rows.names.len() / 2 {
            self.rows.compact_names();
        }
        Some(born)
    }

    /// Every synced path with its entry, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (String, Entry<'_>)> + '_ {
        (0..self.len() as u32).map(|at| (self.rows.path_at(at), self.rows.entry_at(at)))
    }

    /// The paths that `keep`, in no order.
    pub fn paths_where(&self, mut keep: impl FnMut(&str) -> bool) -> Vec<String> {
        let mut kept = Vec::new();
        let mut rel = String::new();
        for row in &self.rows.rows {
            rel.clear();
            let dir = self.rows.dir(row);
            if !dir.is_empty() {
                rel.push_str(dir);
                rel.push('/');
            }
            rel.push_str(self.rows.name(row));
            if keep(&rel) {
                kept.push(rel.clone());
            }
        }
        kept
    }

    /// Every entry, in no order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        (0..self.len() as u32).map(|at| self.rows.entry_at(at))
    }

    /// Bytes held, roughly: what a path costs in memory.
    pub fn heap_bytes(&self) -> usize {
        let r = &self.rows;
        r.rows.capacity() * size_of::<Row>()
            + r.names.capacity()
            + buckets(self.index.capacity()) * (size_of::<u32>() + 1)
            + r.dirs.iter().map(|d| d.len() + 16).sum::<usize>()
            + buckets(r.dir_index.capacity()) * (size_of::<u32>() + 1)
            + r.odd.capacity() * (size_of::<(u32, BaseEntry)>() + 1)
    }
}

/// The buckets behind a hash table of `capacity` (it keeps them at most
/// 7/8 full, in a power of two).
fn buckets(capacity: usize) -> usize {
    (capacity * 8).div_ceil(7).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hash: &str, etag: Option<&str>, mtime_ns: i128) -> BaseEntry {
        BaseEntry {
            etag: etag.map(str::to_owned),
            hash: hash.into(),
            stat: FileStat {
                size: 7,
                mtime_ns,
                ctime_ns: mtime_ns + 1,
                ino: 42,
            },
            recorded_ns: mtime_ns + 5,
            born: 3,
        }
    }

    #[test]
    fn every_entry_comes_back_exactly_packed_or_not() {
        let md5 = "0cc175b9c0f1b6a831c399e269772661";
        let multi = "0cc175b9c0f1b6a831c399e269772661-12";
        let cases = [
            ("a.txt", entry(md5, Some(md5), 1_764_000_000_000_000_000)),
            ("d/e/b.txt", entry(multi, Some(multi), -5)),
            ("d/c.txt", entry(md5, None, 0)),
            // Another tool's ETag, a hash in capitals, a stand-in hash, a
            // time past i64: kept whole.
            (
                "d/e/odd1",
                entry(md5, Some("92eb5ffee6ae2fec3ad71c777531578f-3"), 9),
            ),
            ("odd2", entry(&md5.to_uppercase(), Some(md5), 9)),
            ("odd3", entry("m0", Some("etag-odd3"), 9)),
            ("odd4", entry(md5, Some(md5), i128::from(i64::MAX) + 1)),
            (
                "odd5",
                entry("0cc175b9c0f1b6a831c399e269772661-012", None, 9),
            ),
            (
                "odd6",
                entry("0cc175b9c0f1b6a831c399e269772661-1073741824", None, 9),
            ),
            // Checked by a CRC, never hashed: no hash, not even "", is its.
            ("odd7", entry(UNHASHED, Some(md5), 9)),
        ];
        let mut table = Table::default();
        for (rel, e) in &cases {
            table.insert(rel, e);
        }
        assert_eq!(table.rows.odd.len(), 7);
        for (rel, e) in &cases {
            let got = table.get(rel).expect(rel);
            assert_eq!(got.to_entry(), *e, "{rel}");
            assert_eq!(got.is_hashed(), *rel != "odd7");
            assert_eq!(got.hash_is(&e.hash), got.is_hashed(), "{rel}");
            // No ETag matches none.
            assert_eq!(got.etag_is(e.etag.as_deref()), e.etag.is_some(), "{rel}");
            assert!(!got.etag_is(Some("x")) && !got.hash_is("x"));
        }
        assert!(table.get("d").is_none() && table.get("b.txt").is_none());
        assert!(table.get("d/e").is_none() && table.get("e/b.txt").is_none());
        let mut paths: Vec<String> = table.iter().map(|(rel, _)| rel).collect();
        paths.sort();
        let mut want: Vec<&str> = cases.iter().map(|(rel, _)| *rel).collect();
        want.sort();
        assert_eq!(paths, want);
    }

    #[test]
    fn removals_and_replacements_keep_every_other_entry() {
        let md5 = |i: usize| format!("{i:032x}");
        let mut table = Table::default();
        let mut want: HashMap<String, BaseEntry> = HashMap::new();
        for i in 0..5_000usize {
            let rel = format!("dir-{}/file-{i}.txt", i % 7);
            let hash = md5(i);
            // Every third is kept whole.
            let etag = if i % 3 == 0 {
                "other".to_owned()
            } else {
                hash.clone()
            };
            let e = entry(&hash, Some(&etag), i as i128);
            table.insert(&rel, &e);
            want.insert(rel, e);
        }
        for i in (0..5_000usize).step_by(2) {
            let rel = format!("dir-{}/file-{i}.txt", i % 7);
            assert_eq!(table.remove(&rel), Some(3));
            want.remove(&rel);
            assert_eq!(table.remove(&rel), None);
        }
        for i in (1..5_000usize).step_by(4) {
            let rel = format!("dir-{}/file-{i}.txt", i % 7);
            let e = entry(&md5(i + 1), None, 1);
            assert!(table.get(&rel).is_some());
            table.insert(&rel, &e);
            want.insert(rel, e);
        }
        assert!(table.rows.garbage < table.rows.names.len());
        assert_eq!(table.len(), want.len());
        for (rel, e) in &want {
            assert_eq!(table.get(rel).map(|g| g.to_entry()).as_ref(), Some(e));
        }
        table.shrink_to_fit();
        assert_eq!(table.iter().count(), want.len());
        for (rel, got) in table.iter() {
            assert_eq!(got.to_entry(), want[&rel]);
        }
    }
}
