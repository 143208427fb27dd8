//! Buffers of the parts of a file being read (8 MiB each, several in
//! flight in an upload). Buffers of `MAPPED_MIN` or more are mapped from
//! the OS, not taken from the allocator, and unmapped when the last
//! reference to their bytes drops. glibc raises its mmap threshold to the
//! size of a mapped block it frees, then serves blocks of that size from
//! its heap, which it keeps: an upload's peak of parts in flight stayed
//! resident after it (a 512 MiB push peaked at 154 MiB RSS with heap
//! buffers, 107 MiB with mapped ones, in the same time). Downloads keep
//! heap buffers: there the page faults of fresh mappings cost 6–10% of a
//! 512 MiB pull's time, on its critical path.

use bytes::Bytes;

/// Buffers from this size up are mapped.
const MAPPED_MIN: usize = 1024 * 1024;

/// A zeroed buffer to fill, then hand on as `Bytes`.
pub enum Buffer {
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
}

impl Buffer {
    /// `len` zeroed bytes.
    pub fn zeroed(len: usize) -> std::io::Result<Buffer> {
        if len < MAPPED_MIN {
            return Ok(Buffer::Heap(vec![0; len]));
        }
        memmap2::MmapMut::map_anon(len).map(Buffer::Mapped)
    }

    /// The first `len` bytes, without copying.
    pub fn into_bytes(self, len: usize) -> Bytes {
        match self {
            Buffer::Heap(mut v) => {
                v.truncate(len);
                Bytes::from(v)
            }
            Buffer::Mapped(m) => Bytes::from_owner(m).slice(..len),
        }
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Heap(v) => v,
            Buffer::Mapped(m) => m,
        }
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Buffer::Heap(v) => v,
            Buffer::Mapped(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_hand_on_what_was_written() {
        for len in [0, 10, MAPPED_MIN, MAPPED_MIN + 3] {
            let mut buf = Buffer::zeroed(len).unwrap();
            assert!(matches!(buf, Buffer::Mapped(_)) == (len >= MAPPED_MIN));
            assert!(buf.iter().all(|&b| b == 0));
            if len > 0 {
                buf[len - 1] = 7;
            }
            let bytes = buf.into_bytes(len.saturating_sub(1));
            assert_eq!(bytes.len(), len.saturating_sub(1));
            assert!(bytes.iter().all(|&b| b == 0));
        }
    }
}
