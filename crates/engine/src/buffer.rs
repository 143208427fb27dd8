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
//!
//! Smaller buffers (each small file an upload reads) come from the system
//! allocator, whatever the global one is: they are filled on a blocking
//! thread and freed on another once sent. In a per-thread-heap allocator
//! (mimalloc, the addon's below 256 KiB) such a block goes back to its
//! thread's page only when that thread allocates again, so each of the
//! many blocking threads kept pages of every size the files had: under
//! `watch()` with an agent churning small files, RSS grew 4 MiB a minute
//! for 16 minutes (206 MiB at the end; 107 MiB with this).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;

use bytes::Bytes;

/// Buffers from this size up are mapped.
const MAPPED_MIN: usize = 1024 * 1024;

/// A zeroed buffer to fill, then hand on as `Bytes`.
pub enum Buffer {
    Heap(SystemBlock),
    Mapped(memmap2::MmapMut),
}

impl Buffer {
    /// `len` zeroed bytes.
    pub fn zeroed(len: usize) -> std::io::Result<Buffer> {
        if len < MAPPED_MIN {
            return SystemBlock::zeroed(len).map(Buffer::Heap);
        }
        memmap2::MmapMut::map_anon(len).map(Buffer::Mapped)
    }

    /// The first `len` bytes, without copying.
    pub fn into_bytes(self, len: usize) -> Bytes {
        match self {
            Buffer::Heap(b) => Bytes::from_owner(b).slice(..len),
            Buffer::Mapped(m) => Bytes::from_owner(m).slice(..len),
        }
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Heap(b) => b.as_ref(),
            Buffer::Mapped(m) => m,
        }
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Buffer::Heap(b) => b.as_mut(),
            Buffer::Mapped(m) => m,
        }
    }
}

/// Bytes from the system allocator (see the module's comment), owned as a
/// `Box<[u8]>` would be.
pub struct SystemBlock {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: it owns its bytes alone, as a `Box<[u8]>` does.
unsafe impl Send for SystemBlock {}
// SAFETY: a shared reference only reads them.
unsafe impl Sync for SystemBlock {}

impl SystemBlock {
    fn zeroed(len: usize) -> std::io::Result<SystemBlock> {
        if len == 0 {
            let ptr = NonNull::dangling();
            return Ok(SystemBlock { ptr, len });
        }
        let layout = Layout::array::<u8>(len).map_err(std::io::Error::other)?;
        // SAFETY: the layout's size is not zero.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        NonNull::new(ptr)
            .map(|ptr| SystemBlock { ptr, len })
            .ok_or_else(|| std::io::ErrorKind::OutOfMemory.into())
    }
}

impl Drop for SystemBlock {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated by `System` with this very layout (its
            // size checked in `zeroed`).
            unsafe {
                let layout = Layout::from_size_align_unchecked(self.len, 1);
                System.dealloc(self.ptr.as_ptr(), layout);
            }
        }
    }
}

impl AsRef<[u8]> for SystemBlock {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len` bytes it owns, initialized (zeroed when made).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsMut<[u8]> for SystemBlock {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_ref`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
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
