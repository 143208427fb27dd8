//! Content hashes: what identifies a file's bytes on both sides.
//!
//! A file under `PART_SIZE` is known by its MD5; a larger one by the S3
//! multipart form `md5(md5(part 1) ‖ … ‖ md5(part N))-N` over `PART_SIZE`
//! parts. Either is the ETag S3 gives the object as this package uploads it
//! (one PUT below `PART_SIZE`, parts of `PART_SIZE` from there on, as
//! `aws s3 cp` does by default), and a large file's parts hash in parallel
//! where a whole-file MD5 would take one core through every byte in order.

use md5::{Digest, Md5};

/// Size of the parts large files are hashed, uploaded and verified in.
pub const PART_SIZE: u64 = 8 * 1024 * 1024;

/// Number of `PART_SIZE` parts a content hash of `size` bytes covers.
pub fn part_count(size: u64) -> u64 {
    size.div_ceil(PART_SIZE).max(1)
}

/// The content hash of `size` bytes whose parts have the MD5s `parts`.
pub fn content_hash(size: u64, parts: &[[u8; 16]]) -> String {
    match parts {
        [whole] if size < PART_SIZE => hex::encode(whole),
        _ => {
            let mut outer = Md5::new();
            for part in parts {
                outer.update(part);
            }
            format!("{}-{}", hex::encode(outer.finalize()), parts.len())
        }
    }
}

/// A content hash (or MD5) written by someone else, validated and in
/// lowercase: 32 hex digits, optionally followed by `-N`.
pub fn parse_hash(text: &str) -> Option<String> {
    let text = text.trim_matches('"');
    let (digest, parts) = match text.split_once('-') {
        Some((d, n)) => (d, Some(n)),
        None => (text, None),
    };
    let hex_ok = digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit());
    let parts_ok = parts.is_none_or(|n| {
        !n.is_empty()
            && n.len() <= 5
            && n.bytes().all(|b| b.is_ascii_digit())
            && !n.starts_with('0')
    });
    (hex_ok && parts_ok).then(|| text.to_ascii_lowercase())
}

/// The content hash an ETag may stand for: an MD5, or the multipart form
/// (see `hashing`). Equal to a local hash, it means the same bytes whatever
/// the uploader's part size; unequal, it may only mean other part sizes.
pub fn etag_hash(etag: &str) -> Option<String> {
    parse_hash(etag)
}

/// The MD5 a content hash is, when it is one (a file under `PART_SIZE`).
pub fn plain_md5(hash: &str) -> Option<[u8; 16]> {
    let mut md5 = [0u8; 16];
    hex::decode_to_slice(hash, &mut md5).ok().map(|()| md5)
}

/// A content hash or MD5-shaped ETag as (digest, part count; 0 for none),
/// when it is one written exactly as `unpack_hash` writes it back
/// (lowercase, the count without leading zeros): how the sync base keeps
/// them, on disk and in memory.
pub fn pack_hash(text: &str) -> Option<([u8; 16], u32)> {
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

/// The text of a packed hash (see `pack_hash`).
pub fn unpack_hash(digest: [u8; 16], parts: u32) -> String {
    match parts {
        0 => hex::encode(digest),
        n => format!("{}-{n}", hex::encode(digest)),
    }
}

/// Whether `hash` has the form of the content hash of `size` bytes: an
/// MD5 below `PART_SIZE`, else the multipart form over `part_count(size)`
/// parts.
pub fn has_content_hash_form(hash: &str, size: u64) -> bool {
    match hash.split_once('-') {
        Some((_, n)) => size >= PART_SIZE && n.parse::<u64>().ok() == Some(part_count(size)),
        None => size < PART_SIZE,
    }
}

/// Whether `hash` is in the multipart form (`…-N`).
pub fn is_composite(hash: &str) -> bool {
    hash.contains('-')
}

/// A content hash computed as bytes stream in. Whole parts can instead be
/// handed over already hashed (`push_part`), so a download hashes its
/// ranges in parallel.
#[derive(Default)]
pub struct ContentHasher {
    part: Md5,
    in_part: u64,
    size: u64,
    parts: Vec<[u8; 16]>,
}

impl ContentHasher {
    /// Whether the next byte starts a part: then a whole part may be hashed
    /// elsewhere.
    pub fn at_part_boundary(&self) -> bool {
        self.in_part == 0
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            let n = ((PART_SIZE - self.in_part) as usize).min(data.len());
            self.part.update(&data[..n]);
            self.in_part += n as u64;
            if self.in_part == PART_SIZE {
                self.parts.push(self.part.finalize_reset().into());
                self.in_part = 0;
            }
            data = &data[n..];
        }
    }

    /// Adds a part of `len` bytes hashed elsewhere (at a part boundary; a
    /// short part only as the last).
    pub fn push_part(&mut self, len: u64, md5: [u8; 16]) {
        debug_assert!(self.at_part_boundary() && len <= PART_SIZE);
        self.size += len;
        self.parts.push(md5);
    }

    /// The content hash of all the bytes given.
    pub fn finish(mut self) -> String {
        if self.in_part > 0 || self.parts.is_empty() {
            self.parts.push(self.part.finalize().into());
        }
        content_hash(self.size, &self.parts)
    }
}

/// Content hash of bytes in memory.
pub fn hash_bytes(data: &[u8]) -> String {
    let mut hasher = ContentHasher::default();
    hasher.update(data);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(data: &[u8], chunk: usize) -> String {
        let mut h = ContentHasher::default();
        for c in data.chunks(chunk) {
            h.update(c);
        }
        h.finish()
    }

    #[test]
    fn small_files_are_known_by_their_md5() {
        assert_eq!(streamed(b"", 7), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(streamed(b"abc", 1), hex::encode(Md5::digest(b"abc")));
    }

    #[test]
    fn large_files_have_the_multipart_etag_form() {
        let size = 2 * PART_SIZE as usize + 5;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let p = PART_SIZE as usize;
        let digests: Vec<[u8; 16]> = [&data[..p], &data[p..2 * p], &data[2 * p..]]
            .iter()
            .map(|c| Md5::digest(c).into())
            .collect();
        let mut outer = Md5::new();
        digests.iter().for_each(|d| outer.update(d));
        let expected = format!("{}-3", hex::encode(outer.finalize()));
        // However the bytes arrive, and with whole parts hashed elsewhere.
        assert_eq!(streamed(&data, 1 << 20), expected);
        assert_eq!(streamed(&data, 3_000_001), expected);
        let mut h = ContentHasher::default();
        h.push_part(PART_SIZE, digests[0]);
        h.update(&data[p..2 * p]);
        assert!(h.at_part_boundary());
        h.push_part(5, digests[2]);
        assert_eq!(h.finish(), expected);
        // Exactly one part is still the multipart form, as S3 gives it.
        assert!(streamed(&data[..p], p).ends_with("-1"));
    }

    #[test]
    fn parses_hashes() {
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        assert_eq!(parse_hash(&format!("\"{md5}\"")), Some(md5.to_lowercase()));
        assert_eq!(
            parse_hash(&format!("{md5}-12")),
            Some(format!("{}-12", md5.to_lowercase()))
        );
        for bad in [
            "xyz",
            "",
            &format!("{md5}-"),
            &format!("{md5}-0"),
            &format!("{md5}-1a"),
        ] {
            assert_eq!(parse_hash(bad), None, "{bad}");
        }
    }
}
