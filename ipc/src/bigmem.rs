//! Fixed-length arrays for the core engine's large tables (dedupe, orders), backed by transparent
//! huge pages where the kernel offers them.
//!
//! A table of a few million random plan ids is touched at a random place per plan. With 4 KiB
//! pages each such touch is a TLB miss as well as a cache miss, and in a virtual machine a TLB
//! miss walks two page tables. A mapping advised `MADV_HUGEPAGE` is served with 2 MiB pages
//! (when `/sys/kernel/mm/transparent_hugepage/enabled` says `always` or `madvise`), so the
//! whole table needs a few dozen TLB entries. Small arrays, and any system where the mapping
//! or the advice fails, use the ordinary heap: the advice changes speed, never behaviour.

use std::ops::{Deref, DerefMut};

/// Arrays at least this large go into a huge-page mapping.
pub const HUGE_PAGE: usize = 2 << 20;

/// A fixed-length `[T]`, filled at construction, allocated once.
pub struct BigSlice<T: Copy> {
    storage: Storage<T>,
}

enum Storage<T> {
    Heap(Box<[T]>),
    Mapped {
        /// Owns the memory; never read through after construction except via `ptr`.
        _map: memmap2::MmapMut,
        ptr: *mut T,
        len: usize,
    },
}

// SAFETY: `BigSlice` owns its memory exclusively (the mapping is private and anonymous and
// `ptr` points into it), exactly as a `Box<[T]>` does, so it may move to and be shared with
// other threads under the same conditions as `T`.
unsafe impl<T: Copy + Send> Send for BigSlice<T> {}
// SAFETY: as above; shared access only hands out `&[T]`.
unsafe impl<T: Copy + Sync> Sync for BigSlice<T> {}

impl<T: Copy> BigSlice<T> {
    /// `len` copies of `fill`.
    pub fn new(len: usize, fill: T) -> Self {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        if bytes >= HUGE_PAGE && std::mem::align_of::<T>() <= 4096 {
            if let Some(s) = Self::mapped(len, bytes, fill) {
                return s;
            }
        }
        BigSlice {
            storage: Storage::Heap(vec![fill; len].into_boxed_slice()),
        }
    }

    fn mapped(len: usize, bytes: usize, fill: T) -> Option<Self> {
        // One huge page more than needed, so the array can start on a 2 MiB boundary inside
        // the mapping (huge pages only back aligned 2 MiB ranges).
        let map = memmap2::MmapOptions::new()
            .len(bytes.checked_add(HUGE_PAGE)?)
            .map_anon()
            .ok()?;
        // Advice before the first touch, so the page faults below allocate huge pages. A
        // kernel without THP refuses or ignores it: the array still works on small pages.
        let _ = map.advise(memmap2::Advice::HugePage);
        let base = map.as_ptr() as usize;
        let offset = base.next_multiple_of(HUGE_PAGE) - base;
        let ptr = map.as_ptr().wrapping_add(offset) as *mut T;
        for i in 0..len {
            // SAFETY: `offset + len * size_of::<T>() <= bytes + HUGE_PAGE`, the mapping's
            // length, so every element lies inside the writable mapping; `ptr` is 2 MiB
            // aligned, hence aligned for `T` (checked `align_of::<T>() <= 4096`); nothing else
            // references the mapping yet.
            unsafe { ptr.add(i).write(fill) };
        }
        Some(BigSlice {
            storage: Storage::Mapped {
                _map: map,
                ptr,
                len,
            },
        })
    }

    /// Asks the CPU to start loading element `i`'s cache line (no effect out of range or off
    /// x86-64). A load that will miss the cache can so overlap with work that does not need
    /// it; unlike a load, a prefetch does not hold back a later locked instruction (a CAS).
    #[inline]
    pub fn prefetch(&self, i: usize) {
        if i >= self.len() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = self.as_ptr().wrapping_add(i).cast::<i8>();
            // SAFETY: a prefetch is a hint that never faults and changes no memory; `p` points
            // at element `i` of this live slice anyway (checked in range above). SSE, which
            // provides it, is part of the x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
        }
    }

    /// True when the array lives in a mapping advised for huge pages.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }
}

impl<T: Copy> Deref for BigSlice<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match &self.storage {
            Storage::Heap(b) => b,
            // SAFETY: `ptr..ptr+len` was initialised in `mapped` and stays mapped while `self`
            // (which owns the mapping) lives; `&self` forbids a concurrent `&mut`.
            Storage::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}

impl<T: Copy> DerefMut for BigSlice<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.storage {
            Storage::Heap(b) => b,
            // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
            Storage::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(*ptr, *len)
            },
        }
    }
}

impl<T: Copy> Clone for BigSlice<T> {
    fn clone(&self) -> Self {
        match self.first() {
            Some(f) => {
                let mut c = BigSlice::new(self.len(), *f);
                c.copy_from_slice(self);
                c
            }
            None => BigSlice {
                storage: Storage::Heap(Vec::new().into_boxed_slice()),
            },
        }
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for BigSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigSlice")
            .field("len", &self.len())
            .field("huge_page_mapping", &self.is_mapped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_arrays_hold_what_is_written() {
        for len in [0usize, 1, 100, (HUGE_PAGE / 8) + 3] {
            let mut s = BigSlice::new(len, 7u64);
            assert_eq!(s.len(), len);
            assert!(s.iter().all(|v| *v == 7));
            if len > 0 {
                s[len - 1] = 9;
                let c = s.clone();
                assert_eq!(c[len - 1], 9);
                assert_eq!(c.len(), len);
            }
            assert_eq!(s.is_mapped(), len * 8 >= HUGE_PAGE);
        }
    }
}
