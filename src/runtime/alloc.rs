//! The process allocator: mimalloc, called the way its fast paths expect.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, whose fast path
//! only covers blocks up to 1 KiB; a larger block with an ordinary alignment of 8 or 16 goes through
//! mimalloc's generic aligned path (~230 instructions, counted with callgrind). The request future
//! that ringway boxes per request is ~2.9 KiB, so every request paid that. Like Rust's own `System`
//! allocator, this one uses the plain `mi_malloc` family whenever the alignment is one malloc
//! guarantees anyway, and the aligned calls only for the rest.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// Alignment every `mi_malloc` block of at least this size has (`MI_MAX_ALIGN_SIZE` on 64-bit).
const MIN_ALIGN: usize = 16;

/// mimalloc as the global allocator (`#[global_allocator]` in `main.rs`).
pub struct MiAlloc;

/// Whether a plain `mi_malloc` block of `size` bytes is already aligned to `align`.
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// Safety: every method forwards to mimalloc with the size and, where the plain call would not
// guarantee it, the alignment of `layout`; mimalloc's blocks satisfy both, and `mi_free` accepts any
// block from either family.
unsafe impl GlobalAlloc for MiAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Safety: see the impl.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Safety: see the impl.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // Safety: `ptr` came from this allocator.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Safety: `ptr` came from this allocator with `layout`.
        unsafe {
            if plain(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let a = MiAlloc;
        for &(size, align) in &[
            (1, 1),
            (8, 8),
            (24, 8),
            (2896, 8),
            (3000, 16),
            (64, 64),
            (768, 128),
            (5000, 4096),
            (1 << 20, 8),
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // Safety: non-zero sizes; every pointer is checked, written within `size` and freed
            // once with the layout it was allocated with.
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                std::ptr::write_bytes(p, 0xab, size);
                let grown = size * 3;
                let q = a.realloc(p, layout, grown);
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0, "realloc to {grown}, align {align}");
                assert!((0..size).all(|i| *q.add(i) == 0xab));
                a.dealloc(q, Layout::from_size_align(grown, align).unwrap());

                let z = a.alloc_zeroed(layout);
                assert_eq!(z as usize % align, 0);
                assert!((0..size).all(|i| *z.add(i) == 0));
                a.dealloc(z, layout);
            }
        }
    }
}
