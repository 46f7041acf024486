//! The router builds' global allocator: the C library's malloc, with the
//! last few freed blocks of packet size kept for the next allocation of
//! about that size.
//!
//! Why: that malloc gives a freed 32 KiB packet buffer back to the kernel at
//! once, so every packet cost an mmap, a munmap and nine fresh pages to
//! fault in (65 k mmap calls and 296 k faults per GiB on mipsel). In
//! scripts/cross-build's builds it is the malloc of zig 0.17's libc, Zig's
//! SmpAllocator (`heap.SmpAllocator.alloc` and `heap.PageAllocator.map` in
//! roadie.syms; musl's mallocng is not linked): blocks of packet size come
//! straight from mmap. An OpenWrt SDK build gets OpenWrt's musl malloc.
//! dlmalloc fixed that but keeps everything it ever held: with 200
//! connections moving data its peak was about 1 MiB above malloc's (README,
//! "On the router's own CPU"). This keeps at most [`SLOTS`] blocks: the
//! churn goes, the peak stays malloc's, plus at most `SLOTS` × [`MAX`], and
//! the daemon gives the kept blocks back once traffic stops
//! ([`PacketAlloc::trim_if_idle`]).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Blocks kept: one busy channel holds up to 25 packet buffers (16 queued
/// messages, `channel_buffer_size` in tunnel/session.rs, a write batch of
/// 8, one being decrypted). With 8 or 16 slots most of the churn stayed
/// (mipsel, chacha20-poly1305 server → target: 32 k and 1.5 k mmap calls per
/// GiB; 32 slots: 0.5 k, dlmalloc 0.2 k, in runs of 64 MiB).
pub const SLOTS: usize = 32;
/// The sizes kept: packet buffers (an SSH packet is at most 32 KiB of data
/// and its headers; buffers grow by doubling) and the session's write
/// buffer, 128 KiB and what was pending when russh patch 08 reserved it (it
/// grew to 148 KiB before that patch; with 128 KiB here malloc mapped it
/// afresh for every transfer), so a session that follows takes the last
/// one's. Smaller blocks come from malloc's size classes, which do not churn.
pub const MIN: usize = 8 * 1024;
pub const MAX: usize = 256 * 1024;
/// Requests at most this aligned; malloc's blocks always are.
const ALIGN: usize = 8;
/// A slot with no block.
const EMPTY: (*mut u8, usize) = (std::ptr::null_mut(), 0);

pub struct PacketAlloc<A> {
    inner: A,
    lock: AtomicBool,
    /// Blocks taken from or put into the cache since the last trim.
    activity: AtomicUsize,
    /// (block, the size it is known to hold); size 0 is an empty slot.
    slots: UnsafeCell<[(*mut u8, usize); SLOTS]>,
}

// SAFETY: `slots` is only touched with `lock` held; the pointers are free
// blocks of `inner`, owned by the cache.
unsafe impl<A: Sync> Sync for PacketAlloc<A> {}

impl<A> PacketAlloc<A> {
    pub const fn new(inner: A) -> Self {
        PacketAlloc {
            inner,
            lock: AtomicBool::new(false),
            activity: AtomicUsize::new(0),
            slots: UnsafeCell::new([EMPTY; SLOTS]),
        }
    }

    fn with_slots<R>(&self, f: impl FnOnce(&mut [(*mut u8, usize); SLOTS]) -> R) -> R {
        // A spin lock: held for a scan of the slots, by one thread nearly
        // always (the daemon's runtime is single-threaded).
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held: no other reference to `slots` exists.
        let r = f(unsafe { &mut *self.slots.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

impl<A: GlobalAlloc> PacketAlloc<A> {
    /// Gives every kept block back to `inner` when the cache saw no use
    /// since the last call: call it every few seconds, and the memory of a
    /// finished transfer goes back to the system within two periods.
    /// Returns how many blocks went back.
    pub fn trim_if_idle(&self) -> usize {
        if self.activity.swap(0, Ordering::Relaxed) != 0 {
            return 0;
        }
        let kept = self.with_slots(|slots| std::mem::replace(slots, [EMPTY; SLOTS]));
        let mut n = 0;
        for (p, size) in kept {
            if size != 0 {
                // SAFETY: taken out of the cache, so nothing else has it.
                unsafe { self.free_kept(p, size) };
                n += 1;
            }
        }
        n
    }

    /// A kept block that holds `size` bytes (at most twice that), taken out
    /// of the cache.
    fn take(&self, size: usize) -> Option<*mut u8> {
        let p = self.with_slots(|slots| {
            pick(slots, size).map(|i| std::mem::replace(&mut slots[i], EMPTY).0)
        })?;
        self.activity.fetch_add(1, Ordering::Relaxed);
        Some(p)
    }

    /// Keeps the freed block `ptr` of `size` bytes if there is room (its
    /// slot's smaller block, if any, goes back to `inner`); false when not
    /// kept.
    ///
    /// # Safety
    /// `ptr` is a free block of `inner`'s of at least `size` bytes, aligned
    /// to ALIGN, that nothing else will use.
    unsafe fn keep(&self, ptr: *mut u8, size: usize) -> bool {
        let Some((old, old_size)) = self.with_slots(|slots| {
            place(slots, size).map(|i| std::mem::replace(&mut slots[i], (ptr, size)))
        }) else {
            return false;
        };
        self.activity.fetch_add(1, Ordering::Relaxed);
        if old_size != 0 {
            // SAFETY: evicted from the cache, so nothing else has it.
            unsafe { self.free_kept(old, old_size) };
        }
        true
    }

    /// # Safety
    /// `p` was kept (a free block of `inner`'s, at least `size` bytes and
    /// ALIGN-aligned) and is no longer in the cache.
    unsafe fn free_kept(&self, p: *mut u8, size: usize) {
        // SAFETY: as the caller says; `inner` (malloc) frees by pointer.
        unsafe {
            self.inner
                .dealloc(p, Layout::from_size_align_unchecked(size, ALIGN))
        };
    }
}

fn cached(layout: &Layout) -> bool {
    layout.align() <= ALIGN && (MIN..=MAX).contains(&layout.size())
}

/// The slot to take for `size`: the smallest block that holds it and is at
/// most twice as big (a bigger one would waste what it does not use).
fn pick(slots: &[(*mut u8, usize)], size: usize) -> Option<usize> {
    (0..slots.len())
        .filter(|&i| slots[i].1 >= size && slots[i].1 <= 2 * size)
        .min_by_key(|&i| slots[i].1)
}

/// The slot to keep a freed block of `size` in: an empty one, or else the
/// smallest block if this one is bigger (it serves more requests).
fn place(slots: &[(*mut u8, usize)], size: usize) -> Option<usize> {
    if let Some(i) = slots.iter().position(|s| s.1 == 0) {
        return Some(i);
    }
    let i = (0..slots.len()).min_by_key(|&i| slots[i].1)?;
    (slots[i].1 < size).then_some(i)
}

// SAFETY: every block handed out is `inner`'s, at least `layout.size()`
// long and aligned to at least ALIGN; cached blocks are handed out once.
unsafe impl<A: GlobalAlloc> GlobalAlloc for PacketAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if cached(&layout)
            && let Some(p) = self.take(layout.size())
        {
            return p;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Straight to calloc, not the default (alloc, then clear every
        // byte, of a kept block too): calloc leaves fresh pages untouched,
        // so a large zeroed buffer that is mostly never written (a netlink
        // socket's receive buffer) costs only the pages it uses.
        // SAFETY: the caller's layout, passed on.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller gives the block up; in the cached range it is
        // one of `inner`'s (malloc's blocks are ALIGN-aligned).
        if cached(&layout) && unsafe { self.keep(ptr, layout.size()) } {
            return;
        }
        // SAFETY: the caller's block and layout, passed on.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Packet buffers mostly start small and grow (Vec, BytesMut): a
        // cached block serves the growth too, or the cache would fill with
        // blocks nothing asks for while malloc maps fresh ones. Shrinking
        // stays `inner`'s (in place).
        // SAFETY: `layout.align()` is a valid alignment and new_size does not
        // overflow isize (the caller's contract).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if new_size > layout.size()
            && cached(&new)
            && let Some(p) = self.take(new_size)
        {
            // SAFETY: both blocks hold the bytes copied and are distinct
            // (the cached one was free); the old block is the caller's.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size());
                self.dealloc(ptr, layout);
            }
            return p;
        }
        // A cached block handed out is `inner`'s own, so `inner` can grow it.
        // SAFETY: the caller's block, layout and size, passed on.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::sync::atomic::AtomicUsize;

    /// System's allocator, counting the blocks it hands out and takes back.
    struct Counting {
        allocs: AtomicUsize,
        frees: AtomicUsize,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.allocs.fetch_add(1, Ordering::Relaxed);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.frees.fetch_add(1, Ordering::Relaxed);
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    fn cache() -> PacketAlloc<Counting> {
        PacketAlloc::new(Counting {
            allocs: AtomicUsize::new(0),
            frees: AtomicUsize::new(0),
        })
    }

    fn l(size: usize) -> Layout {
        Layout::from_size_align(size, 1).unwrap()
    }

    #[test]
    fn pick_and_place() {
        let p = std::ptr::null_mut();
        let slots = [(p, 0), (p, 40_000), (p, 33_000), (p, 70_000)];
        // (size asked, slot picked)
        for (size, want) in [
            (32_800, Some(2)),
            (33_001, Some(1)),
            (36_000, Some(1)),
            (45_000, Some(3)),
            (16_000, None),
            (80_000, None),
        ] {
            assert_eq!(pick(&slots, size), want, "pick {size}");
        }
        assert_eq!(place(&slots, 1), Some(0), "an empty slot first");
        let full = [(p, 40_000), (p, 33_000), (p, 70_000)];
        assert_eq!(
            place(&full, 50_000),
            Some(1),
            "the smallest goes for a bigger block"
        );
        assert_eq!(place(&full, 20_000), None, "a smaller block is not kept");
    }

    #[test]
    fn a_freed_packet_buffer_serves_the_next_and_the_cache_stays_bounded() {
        let a = cache();
        unsafe {
            // Packet after packet: one block from malloc, then the same one.
            let first = a.alloc(l(32_800));
            first.write_bytes(1, 32_800);
            a.dealloc(first, l(32_800));
            for _ in 0..100 {
                let p = a.alloc(l(32_790));
                assert_eq!(p, first);
                p.write_bytes(2, 32_790);
                a.dealloc(p, l(32_790));
            }
            assert_eq!(a.inner.allocs.load(Ordering::Relaxed), 1);
            // Zeroed: calloc's, not the dirty kept block.
            let z = a.alloc_zeroed(l(32_000));
            assert_ne!(z, first);
            assert!(
                std::slice::from_raw_parts(z, 32_000)
                    .iter()
                    .all(|&b| b == 0)
            );
            assert_eq!(a.inner.allocs.load(Ordering::Relaxed), 2);
            a.dealloc(z, l(32_000));
            assert_eq!(a.alloc(l(32_790)), first, "the kept block is still there");
            a.dealloc(first, l(32_790));
            // Outside the range: straight through.
            let small = a.alloc(l(100));
            a.dealloc(small, l(100));
            let huge = a.alloc(l(MAX + 1));
            a.dealloc(huge, l(MAX + 1));
            assert_eq!(a.inner.frees.load(Ordering::Relaxed), 2);
            // Many at once, then all freed: at most SLOTS stay.
            let many: Vec<_> = (0..3 * SLOTS).map(|_| a.alloc(l(40_000))).collect();
            for p in many {
                a.dealloc(p, l(40_000));
            }
            let allocs = a.inner.allocs.load(Ordering::Relaxed);
            let frees = a.inner.frees.load(Ordering::Relaxed);
            assert_eq!(allocs - frees, SLOTS, "blocks held by the cache");
            // A small buffer grown to packet size takes a cached block, its
            // bytes copied; grown past the range, malloc's realloc.
            let allocs = a.inner.allocs.load(Ordering::Relaxed);
            let small = a.alloc(l(64));
            small.write_bytes(7, 64);
            let grown = a.realloc(small, l(64), 40_000);
            assert_eq!(std::slice::from_raw_parts(grown, 64), &[7; 64]);
            assert_eq!(
                a.inner.allocs.load(Ordering::Relaxed),
                allocs + 1,
                "only the small one"
            );
            let q = a.realloc(grown, l(40_000), MAX + 1000);
            assert!(!q.is_null());
            assert_eq!(std::slice::from_raw_parts(q, 64), &[7; 64]);
            a.dealloc(q, l(MAX + 1000));

            // Used since the last trim: kept. Then idle: all given back.
            assert_eq!(a.trim_if_idle(), 0);
            assert_eq!(a.trim_if_idle(), SLOTS - 1, "the grown buffer took one");
            let allocs = a.inner.allocs.load(Ordering::Relaxed);
            let frees = a.inner.frees.load(Ordering::Relaxed);
            assert_eq!(allocs, frees, "nothing held after the trim");
            assert_eq!(a.trim_if_idle(), 0);
        }
    }
}
