//! The base file's bytes: compact, checked records that can be appended,
//! and read back past damage.
//!
//! `MAGIC`, then frames: a two-byte mark, the `u32` payload length, the
//! `u32` CRC-32 of the payload, the payload. The first frame is the header:
//! the (bucket, prefix), the workspace the base describes (its root's path,
//! device and inode), the sync epoch and whether the base is recovering
//! from damage. Each later frame sets, removes or marks one path, or starts
//! a new epoch.
//!
//! Paths are front-coded against the last *restart* record's path (every
//! `RESTART_EVERY`-th path record is written whole; the others carry a tag
//! of the path they are coded against), hashes kept as 16
//! bytes (plus the part count), times as differences from the mtime,
//! integers as LEB128: about 60 bytes a file. A frame that fails its CRC
//! costs that record alone: the reader looks for the next mark and goes on
//! (only a damaged restart record also costs the records coded against it,
//! at most `RESTART_EVERY - 1`). A frame cut short at the end is a killed
//! writer's torn tail, not damage.
//!
//! Files of the second version (front-coded against the previous record,
//! no mark) and the first (JSON lines) are still read.

use serde::Deserialize;

use super::table::Packed;
use super::BaseEntry;
use crate::hashing::{pack_hash, unpack_hash};
use crate::model::FileStat;

pub const MAGIC: &[u8] = b"s3ws-base 3\n";
const MAGIC_V2: &[u8] = b"s3ws-base 2\n";
/// Starts every frame: where to look again after a damaged one.
const MARK: [u8; 2] = [0xA7, 0x5B];
/// Mark, length and CRC.
const FRAME_HEAD: usize = 10;
/// No record is longer (a path is at most 1,024 bytes): a longer length
/// is damage, not a record to wait for.
const MAX_PAYLOAD: usize = 16 * 1024;
/// Path records between two written whole.
const RESTART_EVERY: usize = 16;

const SET: u8 = 0;
const REMOVE: u8 = 1;
const HEADER: u8 = 2;
const INTENT: u8 = 3;
const EPOCH: u8 = 4;
const CLEAR_INTENT: u8 = 5;
/// On a path record's kind: the path is written whole (a restart point).
const RESTART: u8 = 0x80;

/// The workspace a base describes: its root directory as it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The root's absolute path.
    pub path: String,
    /// Device of the root (0 where the platform has none).
    pub dev: u64,
    /// Inode of the root (0 where the platform has none).
    pub ino: u64,
}

impl Identity {
    /// The identity of the workspace whose root is open as `root`. Blocking.
    pub fn of(root: &crate::local::Dir) -> Self {
        let path = std::fs::canonicalize(root.path()).unwrap_or_else(|_| root.path().to_owned());
        let (dev, ino) = root.dev_ino().unwrap_or((0, 0));
        Identity {
            path: path.to_string_lossy().into_owned(),
            dev,
            ino,
        }
    }

    /// Whether a base written for `self` describes the directory `now`:
    /// the same directory (inode), on the same device or at the same path
    /// (a network volume mounted again gets a new device number). Without
    /// inodes (Windows), the path alone.
    pub fn describes(&self, now: &Identity) -> bool {
        if self.ino == 0 || now.ino == 0 {
            return self.path == now.path;
        }
        self.ino == now.ino && (self.dev == now.dev || self.path == now.path)
    }
}

/// The header's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub bucket: String,
    pub prefix: String,
    /// `None` in a second-version file (which predates it).
    pub identity: Option<Identity>,
    /// Full syncs (pulls) completed since the base was started.
    pub epoch: u64,
    /// Paths synced when the last one completed.
    pub reference: u64,
    /// Some paths may be missing (the base was damaged or unusable) until
    /// a full sync re-establishes them.
    pub recovering: bool,
    /// Marks the conflict copies this workspace makes (random, made with
    /// the base), so they are told from other agents' copies.
    pub copy_tag: u16,
}

/// What one record says.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    Set(String, BaseEntry),
    /// A `Set` as decoded when its entry packs (see `Packed`): read without
    /// spelling its hashes out.
    SetPacked(String, Packed),
    Remove(String),
    /// An upload of these bytes (content hash) was sent; its outcome is not
    /// known until a `Set`, `Remove` or `ClearIntent` of the path.
    Intent(String, String),
    ClearIntent(String),
    /// A full sync completed: (epoch, paths synced then).
    Epoch(u64, u64),
}

/// Encodes records, front-coding each path against the last restart.
#[derive(Debug, Default)]
pub struct Encoder {
    anchor: String,
    tag: u16,
    since_restart: usize,
}

impl Encoder {
    /// The file's start: `MAGIC` and the header.
    pub fn start(&mut self, out: &mut Vec<u8>, h: &Header) {
        out.extend_from_slice(MAGIC);
        let id = h.identity.clone().unwrap_or_default();
        frame(out, |p| {
            p.push(HEADER);
            put_bytes(p, h.bucket.as_bytes());
            put_bytes(p, h.prefix.as_bytes());
            put_bytes(p, id.path.as_bytes());
            put_u128(p, id.dev.into());
            put_u128(p, id.ino.into());
            put_u128(p, h.epoch.into());
            put_u128(p, h.reference.into());
            p.push(u8::from(h.recovering));
            p.extend_from_slice(&h.copy_tag.to_le_bytes());
        });
        self.since_restart = 0;
    }

    pub fn record(&mut self, out: &mut Vec<u8>, r: &Record) {
        match r {
            Record::Set(rel, e) => self.set(out, rel, e),
            Record::SetPacked(rel, e) => self.set(out, rel, &e.to_entry()),
            Record::Remove(rel) => frame(out, |p| self.path(p, REMOVE, rel)),
            Record::Intent(rel, hash) => frame(out, |p| {
                self.path(p, INTENT, rel);
                put_bytes(p, hash.as_bytes());
            }),
            Record::ClearIntent(rel) => frame(out, |p| self.path(p, CLEAR_INTENT, rel)),
            Record::Epoch(epoch, reference) => frame(out, |p| {
                p.push(EPOCH);
                put_u128(p, (*epoch).into());
                put_u128(p, (*reference).into());
            }),
        }
    }

    pub fn set(&mut self, out: &mut Vec<u8>, rel: &str, e: &BaseEntry) {
        frame(out, |p| {
            self.path(p, SET, rel);
            let etag_hash = e.etag.as_deref().and_then(pack_hash);
            let hash_is_etag = e.etag.as_deref() == Some(e.hash.as_str());
            let content_hash = pack_hash(&e.hash);
            let flags = u8::from(e.etag.is_some())
                | u8::from(etag_hash.is_some()) << 1
                | u8::from(hash_is_etag) << 2
                | u8::from(content_hash.is_some()) << 3;
            p.push(flags);
            match (&e.etag, etag_hash) {
                (_, Some((digest, parts))) => put_hash(p, &digest, parts),
                (Some(etag), None) => put_bytes(p, etag.as_bytes()),
                (None, None) => {}
            }
            if !hash_is_etag {
                match content_hash {
                    Some((digest, parts)) => put_hash(p, &digest, parts),
                    None => put_bytes(p, e.hash.as_bytes()),
                }
            }
            let s = &e.stat;
            put_u128(p, s.size.into());
            put_u128(p, zigzag(s.mtime_ns));
            put_u128(p, zigzag(s.ctime_ns - s.mtime_ns));
            put_u128(p, s.ino.into());
            put_u128(p, zigzag(e.recorded_ns - s.mtime_ns));
            put_u128(p, e.born.into());
        });
    }

    pub fn remove(&mut self, out: &mut Vec<u8>, rel: &str) {
        self.record(out, &Record::Remove(rel.to_owned()));
    }

    fn path(&mut self, p: &mut Vec<u8>, kind: u8, rel: &str) {
        if self.since_restart == 0 {
            p.push(kind | RESTART);
            put_bytes(p, rel.as_bytes());
            self.anchor.clear();
            self.anchor.push_str(rel);
            self.tag = anchor_tag(rel);
        } else {
            let shared = common_prefix(&self.anchor, rel);
            p.push(kind);
            p.extend_from_slice(&self.tag.to_le_bytes());
            put_u128(p, shared as u128);
            put_bytes(p, &rel.as_bytes()[shared..]);
        }
        self.since_restart = (self.since_restart + 1) % RESTART_EVERY;
    }
}

/// Which restart record a front-coded path is coded against: after a
/// damaged frame, a record whose restart was lost is told from one whose
/// restart is still the last one read.
fn anchor_tag(anchor: &str) -> u16 {
    crc32fast::hash(anchor.as_bytes()) as u16
}

/// The length of the longest common prefix of `a` and `b` that ends on a
/// character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (0..=n).rev().find(|&i| b.is_char_boundary(i)).unwrap_or(0)
}

fn frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&MARK);
    out.extend_from_slice(&[0; 8]);
    fill(out);
    let payload = &out[at + FRAME_HEAD..];
    let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
    out[at + 2..at + 6].copy_from_slice(&len.to_le_bytes());
    out[at + 6..at + 10].copy_from_slice(&crc.to_le_bytes());
}

fn put_u128(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u128(out, b.len() as u128);
    out.extend_from_slice(b);
}

fn put_hash(out: &mut Vec<u8>, digest: &[u8; 16], parts: u32) {
    out.extend_from_slice(digest);
    put_u128(out, parts.into());
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

struct Payload<'a>(&'a [u8]);

impl<'a> Payload<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn uint(&mut self) -> Option<u128> {
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn u64(&mut self) -> Option<u64> {
        u64::try_from(self.uint()?).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.uint()?).ok()?;
        let b = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(b)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn hash(&mut self) -> Option<String> {
        let digest: [u8; 16] = self.0.get(..16)?.try_into().ok()?;
        self.0 = &self.0[16..];
        let parts = u32::try_from(self.uint()?).ok()?;
        Some(unpack_hash(digest, parts))
    }

    /// The rest of a `Set` record after its path, when it packs: its
    /// ETag is its content hash, or it has none and the hash packs
    /// (`Some(None)`, and nothing is read, when it does not).
    fn packed(&mut self) -> Option<Option<Packed>> {
        let flags = *self.0.first()?;
        let etag_is_hash = match (
            flags & 1 != 0,
            flags & 2 != 0,
            flags & 4 != 0,
            flags & 8 != 0,
        ) {
            (true, true, true, _) => true,
            (false, _, false, true) => false,
            _ => return Some(None),
        };
        self.byte()?;
        let md5: [u8; 16] = self.0.get(..16)?.try_into().ok()?;
        self.0 = &self.0[16..];
        let parts = u32::try_from(self.uint()?).ok()?;
        let (stat, recorded_ns) = self.stat()?;
        let born = self.u64()?;
        Some(Some(Packed {
            md5,
            parts,
            etag_is_hash,
            stat,
            recorded_ns,
            born,
        }))
    }

    /// A stat and the time it was recorded, as `Encoder::set` writes them.
    fn stat(&mut self) -> Option<(FileStat, i128)> {
        let size = self.u64()?;
        let mtime_ns = unzigzag(self.uint()?);
        let ctime_ns = mtime_ns + unzigzag(self.uint()?);
        let ino = self.u64()?;
        let recorded_ns = mtime_ns + unzigzag(self.uint()?);
        let stat = FileStat {
            size,
            mtime_ns,
            ctime_ns,
            ino,
        };
        Some((stat, recorded_ns))
    }

    /// The rest of a path record after its path: the entry of a `Set`.
    fn entry(&mut self, born_field: bool) -> Option<BaseEntry> {
        let flags = self.byte()?;
        let etag = match (flags & 1 != 0, flags & 2 != 0) {
            (true, true) => Some(self.hash()?),
            (true, false) => Some(self.text()?),
            _ => None,
        };
        let hash = match (flags & 4 != 0, flags & 8 != 0) {
            (true, _) => etag.clone()?,
            (false, true) => self.hash()?,
            (false, false) => self.text()?,
        };
        let (stat, recorded_ns) = self.stat()?;
        let born = if born_field { self.u64()? } else { 0 };
        Some(BaseEntry {
            etag,
            hash,
            stat,
            recorded_ns,
            born,
        })
    }
}

/// What reading a base file found, besides its records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub header: Header,
    /// The file ends with a whole record (else, as after a killed write, it
    /// is rewritten whole before anything is appended).
    pub clean: bool,
    /// Damage in the middle of the file (not a torn tail): how many bytes
    /// could not be read, and how many records that were found could not
    /// be decoded (their restart record was lost).
    pub damaged_bytes: usize,
    pub lost_records: usize,
}

impl Decoded {
    pub fn damaged(&self) -> bool {
        self.damaged_bytes > 0 || self.lost_records > 0
    }
}

/// Why a base file cannot be used at all.
#[derive(Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Not a base file of any version, or its header is damaged.
    Unreadable,
    /// A base of another (bucket, prefix): not this one's to read.
    Foreign,
}

/// Decodes a base file (any version), handing each record to `apply`.
/// `bucket` and `prefix` must match the header's.
pub fn decode(
    data: &[u8],
    bucket: &str,
    prefix: &str,
    apply: impl FnMut(Record),
) -> Result<Decoded, Unusable> {
    let decoded = if let Some(rest) = data.strip_prefix(MAGIC) {
        decode_v3(rest, apply)?
    } else if let Some(rest) = data.strip_prefix(MAGIC_V2) {
        decode_v2(rest, apply)?
    } else {
        decode_json_lines(data, apply)?
    };
    if decoded.header.bucket != bucket || decoded.header.prefix != prefix {
        return Err(Unusable::Foreign);
    }
    Ok(decoded)
}

/// One frame at the start of `data`: its payload and total length, or
/// why not.
fn read_frame(data: &[u8]) -> Result<(&[u8], usize), FrameError> {
    if data.len() < FRAME_HEAD {
        return Err(FrameError::Short);
    }
    if data[..2] != MARK {
        return Err(FrameError::Bad);
    }
    let len = u32::from_le_bytes(data[2..6].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(data[6..10].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD {
        return Err(FrameError::Bad);
    }
    let Some(payload) = data.get(FRAME_HEAD..FRAME_HEAD + len) else {
        return Err(FrameError::Short);
    };
    if crc32fast::hash(payload) != crc {
        return Err(FrameError::Bad);
    }
    Ok((payload, FRAME_HEAD + len))
}

enum FrameError {
    /// Cut short by the end of the data.
    Short,
    /// Not a frame, or one whose bytes changed.
    Bad,
}

fn decode_v3(data: &[u8], mut apply: impl FnMut(Record)) -> Result<Decoded, Unusable> {
    let (header, mut at) = match read_frame(data) {
        Ok((payload, len)) => (parse_header(payload).ok_or(Unusable::Unreadable)?, len),
        Err(_) => return Err(Unusable::Unreadable),
    };
    let mut out = Decoded {
        header,
        ..Decoded::default()
    };
    // The restart path the next records are coded against, with its tag.
    let mut anchor = (String::new(), anchor_tag(""));
    while at < data.len() {
        match read_frame(&data[at..]) {
            Ok((payload, len)) => {
                at += len;
                match parse_record(payload, &mut anchor) {
                    Some(r) => apply(r),
                    None => out.lost_records += 1,
                }
            }
            // The last frame, cut short: a torn tail.
            Err(FrameError::Short) if next_frame(data, at + 1).is_none() => break,
            Err(_) => {
                let next = next_frame(data, at + 1);
                let Some(next) = next else {
                    // Nothing readable after: damage to the end, but what
                    // came before stands.
                    out.damaged_bytes += data.len() - at;
                    at = data.len();
                    break;
                };
                out.damaged_bytes += next - at;
                at = next;
            }
        }
    }
    out.clean = at == data.len() && !out.damaged();
    Ok(out)
}

/// The offset of the next readable frame at or after `from`.
fn next_frame(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + FRAME_HEAD <= data.len() {
        let found = data[at..].windows(2).position(|w| w == MARK)?;
        at += found;
        if read_frame(&data[at..]).is_ok() {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn parse_header(payload: &[u8]) -> Option<Header> {
    let mut p = Payload(payload);
    if p.byte()? != HEADER {
        return None;
    }
    let bucket = p.text()?;
    let prefix = p.text()?;
    let path = p.text()?;
    let dev = p.u64()?;
    let ino = p.u64()?;
    let epoch = p.u64()?;
    let reference = p.u64()?;
    let recovering = p.byte()? != 0;
    let copy_tag = u16::from_le_bytes([p.byte()?, p.byte()?]);
    Some(Header {
        bucket,
        prefix,
        identity: Some(Identity { path, dev, ino }),
        epoch,
        reference,
        recovering,
        copy_tag,
    })
}

/// One record; `None` when it cannot be decoded (its restart was lost, or
/// it is of an unknown kind).
fn parse_record(payload: &[u8], anchor: &mut (String, u16)) -> Option<Record> {
    let mut p = Payload(payload);
    let kind = p.byte()?;
    if kind == EPOCH {
        return Some(Record::Epoch(p.u64()?, p.u64()?));
    }
    let rel = if kind & RESTART != 0 {
        let rel = std::str::from_utf8(p.bytes()?).ok()?.to_owned();
        *anchor = (rel.clone(), anchor_tag(&rel));
        rel
    } else {
        let tag = u16::from_le_bytes([p.byte()?, p.byte()?]);
        if tag != anchor.1 {
            return None;
        }
        let shared = usize::try_from(p.uint()?).ok()?;
        let rest = std::str::from_utf8(p.bytes()?).ok()?;
        let mut rel = anchor.0.get(..shared)?.to_owned();
        rel.push_str(rest);
        rel
    };
    Some(match kind & !RESTART {
        SET => match p.packed()? {
            Some(packed) => Record::SetPacked(rel, packed),
            None => Record::Set(rel, p.entry(true)?),
        },
        REMOVE => Record::Remove(rel),
        INTENT => Record::Intent(rel, p.text()?),
        CLEAR_INTENT => Record::ClearIntent(rel),
        _ => return None,
    })
}

/// The second version: frames without a mark, paths front-coded against
/// the previous record; the first bad frame ends the file.
fn decode_v2(data: &[u8], mut apply: impl FnMut(Record)) -> Result<Decoded, Unusable> {
    fn frame<'a>(data: &mut &'a [u8]) -> Option<Payload<'a>> {
        let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
        let payload = data.get(8..8 + len)?;
        if crc32fast::hash(payload) != crc {
            return None;
        }
        *data = &data[8 + len..];
        Some(Payload(payload))
    }
    let mut rest = data;
    let mut header = frame(&mut rest).ok_or(Unusable::Unreadable)?;
    let bucket = std::str::from_utf8(header.bytes().ok_or(Unusable::Unreadable)?)
        .map_err(|_| Unusable::Unreadable)?
        .to_owned();
    let prefix = std::str::from_utf8(header.bytes().ok_or(Unusable::Unreadable)?)
        .map_err(|_| Unusable::Unreadable)?
        .to_owned();
    let mut last = String::new();
    let mut record = |data: &mut &[u8]| -> Option<Record> {
        let mut p = frame(data)?;
        let kind = p.byte()?;
        let shared = usize::try_from(p.uint()?).ok()?;
        let tail = std::str::from_utf8(p.bytes()?).ok()?;
        let mut rel = last.get(..shared)?.to_owned();
        rel.push_str(tail);
        last.clone_from(&rel);
        Some(match kind {
            1 => Record::Remove(rel),
            _ => Record::Set(rel, p.entry(false)?),
        })
    };
    while let Some(r) = record(&mut rest) {
        apply(r);
    }
    // A bad frame that is whole (not a torn tail) is damage; this version
    // cannot be read past it.
    let damaged = rest.len() >= 8 && {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        rest.len() >= 8 + len
    };
    Ok(Decoded {
        header: Header {
            bucket,
            prefix,
            ..Header::default()
        },
        // Always rewritten in the current version before appending.
        clean: false,
        damaged_bytes: if damaged { rest.len() } else { 0 },
        lost_records: 0,
    })
}

/// The first version: a JSON header line, then one JSON line per record.
fn decode_json_lines(data: &[u8], apply: impl FnMut(Record)) -> Result<Decoded, Unusable> {
    #[derive(Deserialize)]
    struct JsonHeader {
        v: u32,
        bucket: String,
        prefix: String,
    }
    #[derive(Deserialize)]
    struct Line {
        p: String,
        #[serde(default)]
        x: bool,
        #[serde(default)]
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
    let text = std::str::from_utf8(data).map_err(|_| Unusable::Unreadable)?;
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|l| serde_json::from_str::<JsonHeader>(l).ok())
        .filter(|h| h.v == 1)
        .ok_or(Unusable::Unreadable)?;
    // A line that does not parse is a torn write of a killed process.
    lines
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .map(|l| match l.x {
            true => Record::Remove(l.p),
            false => Record::Set(
                l.p,
                BaseEntry {
                    etag: l.e,
                    hash: l.m,
                    stat: FileStat {
                        size: l.n,
                        mtime_ns: l.mt,
                        ctime_ns: l.ct,
                        ino: l.i,
                    },
                    recorded_ns: l.r,
                    born: 0,
                },
            ),
        })
        .for_each(apply);
    Ok(Decoded {
        header: Header {
            bucket: header.bucket,
            prefix: header.prefix,
            ..Header::default()
        },
        clean: false,
        ..Decoded::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(etag: Option<&str>, hash: &str) -> BaseEntry {
        let mtime_ns = 1_764_000_000_123_456_789;
        BaseEntry {
            etag: etag.map(str::to_owned),
            hash: hash.to_owned(),
            stat: FileStat {
                size: 12_345,
                mtime_ns,
                ctime_ns: mtime_ns + 3_000,
                ino: 1_234_567,
            },
            recorded_ns: mtime_ns + 2_500_000_000,
            born: 3,
        }
    }

    fn header() -> Header {
        Header {
            bucket: "bucket".into(),
            prefix: "p/".into(),
            identity: Some(Identity {
                path: "/w/ws".into(),
                dev: 2049,
                ino: 77,
            }),
            epoch: 4,
            reference: 9,
            recovering: false,
            copy_tag: 0xbeef,
        }
    }

    fn encode(records: &[Record]) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut enc = Encoder::default();
        enc.start(&mut out, &header());
        let mut starts = Vec::new();
        for r in records {
            starts.push(out.len());
            enc.record(&mut out, r);
        }
        (out, starts)
    }

    fn all(data: &[u8]) -> (Vec<Record>, Decoded) {
        let mut got = Vec::new();
        let decoded = decode(data, "bucket", "p/", |r| {
            got.push(match r {
                Record::SetPacked(rel, e) => Record::Set(rel, e.to_entry()),
                r => r,
            })
        })
        .unwrap();
        (got, decoded)
    }

    #[test]
    fn records_round_trip_in_about_sixty_bytes() {
        let hash = "0123456789abcdef0123456789abcdef";
        let composite = "fedcba9876543210fedcba9876543210-64";
        let records = vec![
            Record::Set("src/app/main.rs".into(), entry(Some(hash), hash)),
            Record::Set("src/app/mod.rs".into(), entry(Some(composite), composite)),
            // ETags that are no hash (encrypted objects), none at all, odd
            // forms that must come back as they were.
            Record::Set("src/lib.rs".into(), entry(Some("kms-etag"), hash)),
            Record::Set("src/lib2.rs".into(), entry(None, "m0")),
            Record::Set("src/x.rs".into(), entry(Some(&hash.to_uppercase()), hash)),
            Record::Set("src/y.rs".into(), entry(Some(&format!("{hash}-007")), hash)),
            Record::Set("src/z.rs".into(), entry(Some(&format!("{hash}-+7")), hash)),
            Record::Remove("src/lib.rs".into()),
            Record::Intent("src/new.rs".into(), composite.into()),
            Record::ClearIntent("src/new.rs".into()),
            Record::Epoch(5, 6),
            // Front coding stops at a character boundary.
            Record::Set("docs/é".into(), entry(Some(hash), hash)),
            Record::Set("docs/ê".into(), entry(Some(hash), hash)),
        ];
        let (out, _) = encode(&records);
        assert_eq!(
            decode(&out, "bucket", "q/", |_| {}).unwrap_err(),
            Unusable::Foreign
        );
        let (got, decoded) = all(&out);
        assert_eq!(got, records);
        assert_eq!(decoded.header, header());
        assert!(decoded.clean && !decoded.damaged());
        // The common case (an MD5 ETag that is the hash) in a directory
        // shared with the restart record: well under 100 bytes a file.
        let mut enc = Encoder::default();
        let mut one = Vec::new();
        enc.set(&mut one, "docs/guide/intro.md", &entry(Some(hash), hash));
        let mut next = Vec::new();
        enc.set(&mut next, "docs/guide/setup.md", &entry(Some(hash), hash));
        assert!(next.len() <= 64, "{} bytes", next.len());
    }

    #[test]
    fn a_torn_tail_is_not_damage() {
        let records: Vec<Record> = (0..5)
            .map(|i| Record::Remove(format!("dir/file{i}")))
            .collect();
        let (out, _) = encode(&records);
        for cut in [out.len() - 1, out.len() - 5] {
            let (got, decoded) = all(&out[..cut]);
            assert_eq!(got.len(), 4);
            assert!(!decoded.clean && !decoded.damaged());
        }
    }

    #[test]
    fn a_flipped_byte_costs_one_record_or_one_run() {
        let records: Vec<Record> = (0..40)
            .map(|i| Record::Set(format!("dir/file{i:02}"), entry(Some("e"), "h")))
            .collect();
        let (out, starts) = encode(&records);
        // A record inside a run: that record alone.
        let mut flipped = out.clone();
        flipped[starts[5] + 14] ^= 1;
        let (got, decoded) = all(&flipped);
        assert_eq!(got.len(), 39);
        assert!(!got.contains(&records[5]));
        assert!(decoded.damaged() && !decoded.clean);
        // Its mark or its length: found again at the next mark.
        for at in [starts[7], starts[7] + 3] {
            let mut flipped = out.clone();
            flipped[at] ^= 0x40;
            assert_eq!(all(&flipped).0.len(), 39, "byte {at}");
        }
        // A restart record: the records coded against it are lost too, the
        // next run is read again.
        let mut flipped = out.clone();
        flipped[starts[16] + 14] ^= 1;
        let (got, decoded) = all(&flipped);
        assert_eq!(got.len(), 40 - 16);
        assert_eq!(decoded.lost_records, 15);
        assert!(got.contains(&records[32]));
        // The header: nothing can be trusted.
        let mut flipped = out.clone();
        flipped[MAGIC.len() + 12] ^= 1;
        assert_eq!(
            decode(&flipped, "bucket", "p/", |_| {}).unwrap_err(),
            Unusable::Unreadable
        );
        // Garbage appended in the middle, then records again.
        let mut spliced = out[..starts[20]].to_vec();
        spliced.extend_from_slice(&[0xA7; 300]);
        spliced.extend_from_slice(&out[starts[20]..]);
        let (got, decoded) = all(&spliced);
        assert!(got.len() >= 39, "{}", got.len());
        assert!(decoded.damaged_bytes >= 300);
    }

    #[test]
    fn identities_describe_the_same_directory() {
        let at = |path: &str, dev, ino| Identity {
            path: path.into(),
            dev,
            ino,
        };
        let id = at("/w/ws", 1, 10);
        assert!(id.describes(&at("/w/ws", 1, 10)));
        // Renamed on the same device; mounted again at the same path.
        assert!(id.describes(&at("/w/ws2", 1, 10)));
        assert!(id.describes(&at("/w/ws", 9, 10)));
        // Another directory at the same path (removed and made again), or
        // another directory altogether.
        assert!(!id.describes(&at("/w/ws", 1, 11)));
        assert!(!id.describes(&at("/w/other", 2, 10)));
        // No inodes: the path.
        assert!(at("C:\\ws", 0, 0).describes(&at("C:\\ws", 0, 0)));
        assert!(!at("C:\\ws", 0, 0).describes(&at("C:\\ws2", 0, 0)));
    }
}
