//! A global allocator for programs that train or run large models: the system allocator, with every
//! block of 4 MiB or more marked for transparent huge pages.
//!
//! Why: a training step at a 151,936-token vocabulary allocates and frees several buffers of
//! hundreds of megabytes (the embedding's gradient, the tied output layer's gradient, logits and
//! their gradients, activations). glibc serves each with a fresh `mmap` and returns it with
//! `munmap`, so every step faults every page of them in again, 4 KiB at a time, and the kernel zeroes
//! and maps each one: profiled on the 2-layer Qwen2.5-0.5B-shaped model, page faults and unmapping
//! took about 40 % of a forward + backward pass. On Linux with transparent huge pages in `madvise`
//! mode (the common default, `/sys/kernel/mm/transparent_hugepage/enabled`), `madvise(MADV_HUGEPAGE)`
//! on those blocks makes each fault map 2 MiB: the same step ran in 1.6 s instead of 3.05 s.
//!
//! A library cannot choose the allocator; a binary does, in one line:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: rlox_nn::alloc::HugePageAlloc = rlox_nn::alloc::HugePageAlloc;
//! ```
//!
//! Elsewhere than Linux it is the system allocator unchanged. Memory use is the same (huge pages are
//! used only inside blocks of 4 MiB or more, which are themselves whole-page mappings).

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks from this size on are advised (smaller ones live in the malloc heap, shared with others).
pub const THRESHOLD: usize = 4 << 20;

/// The system allocator with huge-page advice on large blocks (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePageAlloc;

#[cfg(target_os = "linux")]
fn advise(p: *mut u8, size: usize) {
    if p.is_null() || size < THRESHOLD {
        return;
    }
    let page = 4096;
    let start = (p as usize).div_ceil(page) * page;
    let end = (p as usize + size) / page * page;
    if end > start {
        // SAFETY: [start, end) lies inside the block just returned by the system allocator; the
        // advice changes how the kernel backs those pages, never their contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_p: *mut u8, _size: usize) {}

// SAFETY: every method forwards to `System` with the same arguments; `advise` only adds a hint.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_usable_and_zeroed_when_asked() {
        let a = HugePageAlloc;
        for size in [64, THRESHOLD - 8, THRESHOLD, 3 * THRESHOLD + 123] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                p.write_bytes(7, size);
                let q = a.realloc(p, layout, size * 2);
                assert!(std::slice::from_raw_parts(q, size).iter().all(|&b| b == 7));
                a.dealloc(q, Layout::from_size_align(size * 2, 64).unwrap());
            }
        }
    }
}
