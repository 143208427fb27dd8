//! The base file's bytes: compact, checked records that can be appended.
//!
//! `MAGIC`, then framed records: `u32` payload length, `u32` CRC-32 of the
//! payload, the payload. The first record names the (bucket, prefix); each
//! later one sets or removes one path. Paths are front-coded (the length
//! shared with the previous record's path, then the rest), hashes are kept
//! as 16 bytes (plus the part count), times as differences from the mtime,
//! integers as LEB128: about 60 bytes a file, against ~200 as JSON. A
//! record that is cut short or fails its CRC (a killed writer) ends the
//! file: what follows cannot be decoded without it.
//!
//! Files of the first version (JSON lines) are still read.

use serde::Deserialize;

use super::BaseEntry;
use crate::local::FileStat;

pub const MAGIC: &[u8] = b"s3ws-base 2\n";

/// What one record says.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    Set(String, BaseEntry),
    Remove(String),
}

/// Encodes records, front-coding each path against the one before.
#[derive(Debug, Default)]
pub struct Encoder {
    last: String,
}

impl Encoder {
    /// The file's start: `MAGIC` and the (bucket, prefix) record.
    pub fn start(&mut self, out: &mut Vec<u8>, bucket: &str, prefix: &str) {
        out.extend_from_slice(MAGIC);
        frame(out, |p| {
            put_bytes(p, bucket.as_bytes());
            put_bytes(p, prefix.as_bytes());
        });
        self.last.clear();
    }

    pub fn set(&mut self, out: &mut Vec<u8>, rel: &str, e: &BaseEntry) {
        frame(out, |p| {
            self.path(p, 0, rel);
            let etag_hash = e.etag.as_deref().and_then(hash_bytes);
            let mut flags = 0u8;
            if e.etag.is_some() {
                flags |= 1;
            }
            if etag_hash.is_some() {
                flags |= 2;
            }
            let hash_is_etag = e.etag.as_deref() == Some(e.hash.as_str());
            if hash_is_etag {
                flags |= 4;
            }
            let content_hash = hash_bytes(&e.hash);
            if content_hash.is_some() {
                flags |= 8;
            }
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
        });
    }

    pub fn remove(&mut self, out: &mut Vec<u8>, rel: &str) {
        frame(out, |p| self.path(p, 1, rel));
    }

    fn path(&mut self, p: &mut Vec<u8>, kind: u8, rel: &str) {
        let shared = common_prefix(&self.last, rel);
        p.push(kind);
        put_u128(p, shared as u128);
        put_bytes(p, &rel.as_bytes()[shared..]);
        self.last.clear();
        self.last.push_str(rel);
    }
}

/// The length of the longest common prefix of `a` and `b` that ends on a
/// character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (0..=n).rev().find(|&i| b.is_char_boundary(i)).unwrap_or(0)
}

fn frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    fill(out);
    let payload = &out[at + 8..];
    let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
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

/// A content hash or MD5-shaped ETag as (digest, part count; 0 for none),
/// when it is one written exactly as `hash_text` would write it back
/// (lowercase, the count without leading zeros).
fn hash_bytes(text: &str) -> Option<([u8; 16], u32)> {
    let (hex_part, parts) = match text.split_once('-') {
        Some((h, n)) if !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()) => {
            (h, n.parse::<u32>().ok()?)
        }
        Some(_) => return None,
        None => (text, 0),
    };
    if hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut digest = [0u8; 16];
    hex::decode_to_slice(hex_part, &mut digest).ok()?;
    Some((digest, parts))
}

fn hash_text(digest: &[u8; 16], parts: u32) -> String {
    match parts {
        0 => hex::encode(digest),
        n => format!("{}-{n}", hex::encode(digest)),
    }
}

/// Reads records from the bytes after `MAGIC`.
struct Reader<'a> {
    data: &'a [u8],
    last: String,
}

impl<'a> Reader<'a> {
    /// The next record's payload, or `None` at the end or at a record that
    /// is cut short or corrupt.
    fn frame(&mut self) -> Option<Payload<'a>> {
        let len = u32::from_le_bytes(self.data.get(..4)?.try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(self.data.get(4..8)?.try_into().ok()?);
        let payload = self.data.get(8..8 + len)?;
        if crc32fast::hash(payload) != crc {
            return None;
        }
        self.data = &self.data[8 + len..];
        Some(Payload(payload))
    }

    fn record(&mut self) -> Option<Record> {
        let mut p = self.frame()?;
        let kind = p.byte()?;
        let shared = p.uint()? as usize;
        let rest = std::str::from_utf8(p.bytes()?).ok()?;
        let mut rel = String::with_capacity(shared + rest.len());
        rel.push_str(self.last.get(..shared)?);
        rel.push_str(rest);
        self.last.clone_from(&rel);
        if kind == 1 {
            return Some(Record::Remove(rel));
        }
        let flags = p.byte()?;
        let etag = match (flags & 1 != 0, flags & 2 != 0) {
            (true, true) => Some(p.hash()?),
            (true, false) => Some(p.text()?),
            _ => None,
        };
        let hash = match (flags & 4 != 0, flags & 8 != 0) {
            (true, _) => etag.clone()?,
            (false, true) => p.hash()?,
            (false, false) => p.text()?,
        };
        let size = u64::try_from(p.uint()?).ok()?;
        let mtime_ns = unzigzag(p.uint()?);
        let ctime_ns = mtime_ns + unzigzag(p.uint()?);
        let ino = u64::try_from(p.uint()?).ok()?;
        let recorded_ns = mtime_ns + unzigzag(p.uint()?);
        let stat = FileStat {
            size,
            mtime_ns,
            ctime_ns,
            ino,
        };
        Some(Record::Set(
            rel,
            BaseEntry {
                etag,
                hash,
                stat,
                recorded_ns,
            },
        ))
    }
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
        Some(hash_text(&digest, parts))
    }
}

/// Decodes the base file of `bucket`/`prefix` (either version), handing
/// each record to `apply`. Returns whether the file ended cleanly (else the
/// next write must rewrite it whole before appending), or `None` if it is
/// neither version or another prefix's.
pub fn decode(data: &[u8], bucket: &str, prefix: &str, apply: impl FnMut(Record)) -> Option<bool> {
    let Some(rest) = data.strip_prefix(MAGIC) else {
        return decode_json_lines(data, bucket, prefix, apply);
    };
    let mut reader = Reader {
        data: rest,
        last: String::new(),
    };
    let mut header = reader.frame()?;
    if header.bytes()? != bucket.as_bytes() || header.bytes()? != prefix.as_bytes() {
        return None;
    }
    std::iter::from_fn(|| reader.record()).for_each(apply);
    Some(reader.data.is_empty())
}

/// The first version: a JSON header line, then one JSON line per record.
fn decode_json_lines(
    data: &[u8],
    bucket: &str,
    prefix: &str,
    apply: impl FnMut(Record),
) -> Option<bool> {
    #[derive(Deserialize)]
    struct Header {
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
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.lines();
    let header = serde_json::from_str::<Header>(lines.next()?).ok()?;
    if header.v != 1 || header.bucket != bucket || header.prefix != prefix {
        return None;
    }
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
                },
            ),
        })
        .for_each(apply);
    // Always rewritten in the current version before appending.
    Some(false)
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
        }
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
            // Front coding stops at a character boundary.
            Record::Set("docs/é".into(), entry(Some(hash), hash)),
            Record::Set("docs/ê".into(), entry(Some(hash), hash)),
        ];
        let mut out = Vec::new();
        let mut enc = Encoder::default();
        enc.start(&mut out, "bucket", "p/");
        let start = out.len();
        for r in &records {
            match r {
                Record::Set(rel, e) => enc.set(&mut out, rel, e),
                Record::Remove(rel) => enc.remove(&mut out, rel),
            }
        }
        let all = |data: &[u8]| {
            let mut got = Vec::new();
            let clean = decode(data, "bucket", "p/", |r| got.push(r)).unwrap();
            (got, clean)
        };
        assert!(decode(&out, "bucket", "q/", |_| {}).is_none());
        let count = records.len();
        assert_eq!(all(&out), (records, true));
        // The common case (an MD5 ETag that is the hash), with a shared
        // directory: well under the 100 bytes a file allowed.
        let mut one = Vec::new();
        enc.set(&mut one, "docs/ë", &entry(Some(hash), hash));
        assert!(one.len() <= 60, "{} bytes", one.len());
        // A record cut short, or with a flipped bit, ends the file there.
        for cut in [out.len() - 1, out.len() - 5] {
            let (got, clean) = all(&out[..cut]);
            assert_eq!(got.len(), count - 1);
            assert!(!clean);
        }
        let mut flipped = out.clone();
        flipped[start + 12] ^= 1;
        assert_eq!(all(&flipped), (vec![], false));
    }
}
