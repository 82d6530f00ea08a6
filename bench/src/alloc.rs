//! A global allocator that counts live heap bytes by the kind of thread that
//! allocated them: the library's threads (`sfu-worker-N`, `sfu-notifier`) or any
//! other (the load generator). It is what lets one process hold both the SFU and its
//! load generator and still say how much memory the SFU uses per consumer.
//!
//! Each allocation carries a small header (in front of the returned pointer) with
//! the class of the thread that made it, so a free on another thread is charged to
//! the right class. Off with `SFU_LOAD_TRACK_ALLOC=0` (then a plain `System`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering::Relaxed};

pub struct Tracking;

#[repr(align(64))]
struct Counter(AtomicI64);

/// Live bytes: [0] allocated on SFU threads, [1] on any other thread.
static LIVE: [Counter; 2] = [Counter(AtomicI64::new(0)), Counter(AtomicI64::new(0))];
/// 0: undecided (first allocation reads the environment), 1: on, 2: off.
static MODE: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// 0: unknown; 1: SFU thread; 2: other (final); 3..: other, still re-checking
    /// the name (a new thread may allocate before std names it).
    static CLASS: Cell<u8> = const { Cell::new(0) };
}

/// Live bytes of SFU-thread allocations by size class (log2 of the size).
static BY_SIZE: [AtomicI64; 40] = [const { AtomicI64::new(0) }; 40];
static COUNT_BY_SIZE: [AtomicI64; 40] = [const { AtomicI64::new(0) }; 40];

fn size_class(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()).min(39) as usize
}

fn account(c: usize, size: usize, sign: i64) {
    LIVE[c].0.fetch_add(sign * size as i64, Relaxed);
    if c == SFU {
        BY_SIZE[size_class(size)].fetch_add(sign * size as i64, Relaxed);
        COUNT_BY_SIZE[size_class(size)].fetch_add(sign, Relaxed);
    }
}

/// (size class upper bound, live bytes, live allocations) of SFU-thread allocations.
pub fn sfu_by_size() -> Vec<(usize, i64, i64)> {
    (0..40)
        .map(|i| (1usize << i, BY_SIZE[i].load(Relaxed), COUNT_BY_SIZE[i].load(Relaxed)))
        .filter(|v| v.1 != 0)
        .collect()
}

const SFU: usize = 0;
const OTHER: usize = 1;

fn on() -> bool {
    match MODE.load(Relaxed) {
        1 => true,
        2 => false,
        _ => {
            // The first allocation happens in the runtime's start-up, on one thread.
            // SAFETY: getenv with a NUL-terminated name; the result is only read.
            let v = unsafe { libc::getenv(c"SFU_LOAD_TRACK_ALLOC".as_ptr()) };
            let off = !v.is_null() && unsafe { *v } == b'0' as libc::c_char;
            MODE.store(if off { 2 } else { 1 }, Relaxed);
            !off
        }
    }
}

fn class() -> usize {
    CLASS
        .try_with(|c| match c.get() {
            1 => SFU,
            2 => OTHER,
            v => {
                let mut name = [0u8; 17];
                // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer.
                unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
                if name.starts_with(b"sfu-worker") || name.starts_with(b"sfu-notifier") {
                    c.set(1);
                    SFU
                } else {
                    let n = if v == 0 { 3 } else { v.saturating_add(1) };
                    c.set(if n >= 64 { 2 } else { n });
                    OTHER
                }
            }
        })
        .unwrap_or(OTHER)
}

/// Live heap bytes allocated by (SFU threads, other threads); zeros when tracking is off.
pub fn live() -> (i64, i64) {
    (LIVE[SFU].0.load(Relaxed), LIVE[OTHER].0.load(Relaxed))
}

pub fn enabled() -> bool {
    MODE.load(Relaxed) == 1
}

fn header(l: &Layout) -> usize {
    l.align().max(16)
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if !on() {
            return unsafe { System.alloc(l) };
        }
        let h = header(&l);
        // SAFETY: size + h does not overflow for any layout Rust can make (size <= isize::MAX - align).
        let p = unsafe { System.alloc(Layout::from_size_align_unchecked(l.size() + h, h)) };
        if p.is_null() {
            return p;
        }
        let c = class();
        // SAFETY: the block is l.size() + h bytes; the header is the first h bytes.
        unsafe {
            let u = p.add(h);
            *u.sub(8) = c as u8;
            account(c, l.size(), 1);
            u
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if !on() {
            return unsafe { System.alloc_zeroed(l) };
        }
        let h = header(&l);
        let p = unsafe { System.alloc_zeroed(Layout::from_size_align_unchecked(l.size() + h, h)) };
        if p.is_null() {
            return p;
        }
        let c = class();
        unsafe {
            let u = p.add(h);
            *u.sub(8) = c as u8;
            account(c, l.size(), 1);
            u
        }
    }

    unsafe fn dealloc(&self, u: *mut u8, l: Layout) {
        if !on() {
            return unsafe { System.dealloc(u, l) };
        }
        let h = header(&l);
        // SAFETY: u came from alloc above with the same layout: the header precedes it.
        unsafe {
            let c = (*u.sub(8) as usize).min(1);
            account(c, l.size(), -1);
            System.dealloc(u.sub(h), Layout::from_size_align_unchecked(l.size() + h, h));
        }
    }

    unsafe fn realloc(&self, u: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if !on() {
            return unsafe { System.realloc(u, l, new_size) };
        }
        let h = header(&l);
        // SAFETY: as in dealloc; System.realloc keeps the header bytes (a prefix).
        unsafe {
            let c = (*u.sub(8) as usize).min(1);
            let p = System.realloc(u.sub(h), Layout::from_size_align_unchecked(l.size() + h, h), new_size + h);
            if p.is_null() {
                return p;
            }
            account(c, l.size(), -1);
            account(c, new_size, 1);
            p.add(h)
        }
    }
}
