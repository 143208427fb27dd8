//! The addon's global allocator: mimalloc for small blocks, the system's
//! for large ones. The SDK makes many small allocations per request, and
//! glibc's malloc took a fifth of a 50,000-file pull's CPU (mimalloc: a
//! fifth less CPU, about 10% less time). Large blocks (8 MiB parts and
//! ranges, and their copies handed to JS, freed by its garbage collector on
//! another thread) stay with the system allocator, which returns them to the
//! OS when freed: in mimalloc they stayed resident (a 256 MiB upload through
//! a JS client grew RSS by 201 MiB, against a bound of 100).

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks from this size up come from the system allocator.
const LARGE: usize = 256 * 1024;

pub struct SplitAlloc;

/// The allocator for blocks of `size` bytes.
fn owner(size: usize) -> &'static dyn GlobalAlloc {
    if size >= LARGE {
        &System
    } else {
        &MiMalloc
    }
}

// SAFETY: each block is freed (and resized) by the allocator that made it,
// which its layout's size tells (the same at every call for one block).
unsafe impl GlobalAlloc for SplitAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        unsafe { owner(layout.size()).alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        unsafe { owner(layout.size()).alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the allocator its size picks.
        unsafe { owner(layout.size()).dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (from, to) = (owner(layout.size()), owner(new_size));
        // SAFETY: `ptr` came from `from`; a block that changes allocators
        // is copied over and freed where it was. (Both are zero-sized, so
        // their addresses cannot tell them apart: their sizes do.)
        unsafe {
            if (layout.size() >= LARGE) == (new_size >= LARGE) {
                return from.realloc(ptr, layout, new_size);
            }
            let new = to.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                from.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_block_keeps_its_bytes_as_it_grows_and_shrinks_across_the_threshold() {
        let mut v: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let expected = v.clone();
        v.reserve(super::LARGE * 2);
        assert_eq!(v, expected);
        v.extend(std::iter::repeat_n(7, super::LARGE));
        v.truncate(1000);
        v.shrink_to_fit();
        assert_eq!(v, expected);
        let zeroed = vec![0u8; super::LARGE + 1];
        assert!(zeroed.iter().all(|&b| b == 0));
    }
}
