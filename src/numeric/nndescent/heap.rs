//! Every point's neighbour list during NN-descent, in one slab: for each point the `k`
//! smallest `(d², index)` offers as a max-heap, a flag per entry (inserted since the
//! point's last round of joins), its current largest distance and a lock.
//!
//! One row of `u32` words per point: `[lock, worst, len, d² bits × k, index × k, new
//! flags × ⌈k/32⌉]`. An offer reads the row's first line (lock, worst, length) and the
//! lines of its indices and distances, all in one place (a `Mutex<Heap>` of three vectors
//! per point chased four pointers into four allocations). The lock and the worst distance
//! are atomics (the worst is read without the lock to turn offers away early); the rest of
//! a row is read and written only under its lock, as plain memory, so the membership test
//! every offer pays vectorises.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering::*};

use rayon::prelude::*;

const LOCK: usize = 0;
const WORST: usize = 1;
/// Where the part of a row its lock guards begins: its length, then its entries.
const BODY: usize = 2;
const LEN: usize = 0;
const D0: usize = 1;

/// Whether `v` holds `j`: compares 16 at a time without branching, which vectorises.
#[inline]
fn holds(v: &[u32], j: u32) -> bool {
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        if c.iter().fold(false, |m, &x| m | (x == j)) {
            return true;
        }
    }
    chunks.remainder().contains(&j)
}

/// All points' neighbour lists (see the module).
pub(super) struct Lists {
    k: usize,
    stride: usize,
    w: Box<[UnsafeCell<u32>]>,
}

// SAFETY: the lock and worst words are only ever accessed as atomics; the rest of a row
// only through a `List`, which holds the row's lock (acquired with `Acquire`, released
// with `Release`), so no two threads touch the same plain word at once.
unsafe impl Sync for Lists {}

impl Lists {
    pub(super) fn new(n: usize, k: usize) -> Self {
        let stride = BODY + D0 + 2 * k + k.div_ceil(32);
        // Offers read and write rows at random: huge pages, asked for before the rows are
        // filled (in parallel).
        let mut w: Vec<u32> = super::super::pages::zeroed(n * stride);
        w.par_chunks_mut(stride)
            .for_each(|row| row[WORST] = f32::INFINITY.to_bits());
        let mut w = std::mem::ManuallyDrop::new(w);
        // SAFETY: `UnsafeCell<u32>` has the layout of `u32` (it is `repr(transparent)`), and
        // the allocation passes whole from the `Vec<u32>` (not dropped) to the new `Vec`.
        let w: Box<[UnsafeCell<u32>]> = unsafe {
            Vec::from_raw_parts(
                w.as_mut_ptr() as *mut UnsafeCell<u32>,
                w.len(),
                w.capacity(),
            )
        }
        .into_boxed_slice();
        Lists { k, stride, w }
    }

    /// Word `s` of point `i`'s row as an atomic (only the lock and worst words).
    #[inline(always)]
    fn atomic(&self, i: usize, s: usize) -> &AtomicU32 {
        // SAFETY: the cell is valid and aligned for the life of `self`, and these words
        // are never accessed except as atomics (see `Sync` above).
        unsafe { AtomicU32::from_ptr(self.w[i * self.stride + s].get()) }
    }

    /// Point `i`'s largest distance as last published (`∞` until its list is full); it
    /// only decreases, so an offer beyond it can be turned away without the lock.
    #[inline(always)]
    pub(super) fn worst(&self, i: usize) -> f32 {
        f32::from_bits(self.atomic(i, WORST).load(Relaxed))
    }

    /// Offer every `(d, j)` of `offers` to point `i`'s list under one lock (the list keeps
    /// the same entries as after offering them one at a time, in any order).
    #[inline]
    pub(super) fn offer_all(&self, i: usize, offers: &[(f32, u32)]) {
        if !offers.is_empty() {
            let mut l = self.lock(i);
            for &(d, j) in offers {
                l.push(d, j);
            }
        }
    }

    /// Ask the CPU to start loading the first line of point `i`'s row (its lock and worst
    /// distance; a hint only).
    #[inline(always)]
    pub(super) fn prefetch_head(&self, i: usize) {
        self.prefetch_words(i, 1);
    }

    /// Point `i`'s list, locked until the guard drops.
    #[inline]
    pub(super) fn lock(&self, i: usize) -> List<'_> {
        let lock = self.atomic(i, LOCK);
        while lock.compare_exchange_weak(0, 1, Acquire, Relaxed).is_err() {
            while lock.load(Relaxed) != 0 {
                std::hint::spin_loop();
            }
        }
        let body = &self.w[i * self.stride + BODY..(i + 1) * self.stride];
        // SAFETY: the lock just taken gives this guard sole access to the row's body until
        // it drops (`UnsafeCell<u32>` has the layout of `u32`).
        let w = unsafe { std::slice::from_raw_parts_mut(body.as_ptr() as *mut u32, body.len()) };
        List {
            k: self.k,
            w,
            lock,
            worst: self.atomic(i, WORST),
        }
    }

    /// Ask the CPU to start loading point `i`'s row (a hint only).
    #[inline(always)]
    pub(super) fn prefetch(&self, i: usize) {
        self.prefetch_words(i, self.stride);
    }

    /// Ask the CPU to start loading the lines of the first `words` words of point `i`'s
    /// row (a hint only).
    #[inline(always)]
    fn prefetch_words(&self, i: usize, words: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let first = self.w[i * self.stride].get() as usize;
            let last = self.w[i * self.stride + words - 1].get() as usize;
            for p in (first & !63..=last).step_by(64) {
                // SAFETY: a prefetch is only a hint and never faults.
                unsafe {
                    core::arch::x86_64::_mm_prefetch(
                        p as *const i8,
                        core::arch::x86_64::_MM_HINT_T0,
                    )
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (i, words);
    }
}

/// One point's list, locked.
pub(super) struct List<'a> {
    k: usize,
    w: &'a mut [u32],
    lock: &'a AtomicU32,
    worst: &'a AtomicU32,
}

impl Drop for List<'_> {
    fn drop(&mut self) {
        self.lock.store(0, Release);
    }
}

impl List<'_> {
    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.w[LEN] as usize
    }
    #[inline(always)]
    pub(super) fn d(&self, s: usize) -> f32 {
        f32::from_bits(self.w[D0 + s])
    }
    #[inline(always)]
    pub(super) fn idx(&self, s: usize) -> u32 {
        self.w[D0 + self.k + s]
    }
    #[inline(always)]
    pub(super) fn is_new(&self, s: usize) -> bool {
        self.w[D0 + 2 * self.k + s / 32] >> (s % 32) & 1 == 1
    }
    #[inline(always)]
    pub(super) fn set_new(&mut self, s: usize, on: bool) {
        let f = &mut self.w[D0 + 2 * self.k + s / 32];
        let bit = 1 << (s % 32);
        *f = if on { *f | bit } else { *f & !bit };
    }
    #[inline(always)]
    fn set(&mut self, s: usize, d: f32, j: u32, new: bool) {
        self.w[D0 + s] = d.to_bits();
        self.w[D0 + self.k + s] = j;
        self.set_new(s, new);
    }
    #[inline(always)]
    fn key(&self, s: usize) -> (f32, u32) {
        (self.d(s), self.idx(s))
    }
    #[inline(always)]
    fn swap(&mut self, a: usize, b: usize) {
        let (ka, na, kb, nb) = (self.key(a), self.is_new(a), self.key(b), self.is_new(b));
        self.set(a, kb.0, kb.1, nb);
        self.set(b, ka.0, ka.1, na);
    }

    /// Offer `(d, j)`; true if it entered (newly flagged).
    pub(super) fn push(&mut self, d: f32, j: u32) -> bool {
        let (n, k) = (self.len(), self.k);
        if n == k && (d, j) >= self.key(0) {
            return false;
        }
        if holds(&self.w[D0 + k..D0 + k + n], j) {
            return false;
        }
        if n < k {
            self.set(n, d, j, true);
            self.w[LEN] = n as u32 + 1;
            let mut i = n;
            while i > 0 {
                let p = (i - 1) / 2;
                if self.key(i) <= self.key(p) {
                    break;
                }
                self.swap(i, p);
                i = p;
            }
        } else {
            self.set(0, d, j, true);
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut m = i;
                if l < n && self.key(l) > self.key(m) {
                    m = l;
                }
                if r < n && self.key(r) > self.key(m) {
                    m = r;
                }
                if m == i {
                    break;
                }
                self.swap(i, m);
                i = m;
            }
        }
        if self.len() == k {
            self.worst.store(self.d(0).to_bits(), Relaxed);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_finds_exactly_the_members() {
        for len in [0, 1, 15, 16, 17, 50, 64] {
            let v: Vec<u32> = (0..len).map(|i| i * 3).collect();
            for j in 0..3 * len + 2 {
                assert_eq!(holds(&v, j), v.contains(&j), "len {len}, j {j}");
            }
        }
    }

    /// The list keeps the k smallest (d, index) offered, whatever their order and however
    /// they are batched under a lock, and turns away repeats.
    #[test]
    fn keeps_the_k_smallest_offers_in_any_order() {
        // Each index at its own distance (as in the descent), ties between indices, repeats.
        let offers: Vec<(f32, u32)> = (0..200u32)
            .map(|s| s * 7 % 150)
            .map(|j| ((j * 37 % 50) as f32 * 0.5, j))
            .collect();
        let mut want: Vec<(f32, u32)> = Vec::new();
        for &(d, j) in &offers {
            if !want.iter().any(|e| e.1 == j) {
                want.push((d, j));
            }
        }
        want.sort_by(|a, b| a.partial_cmp(b).unwrap());
        want.truncate(33);
        for (rot, batch) in [(0, 1), (17, 1), (101, 1), (0, 200), (17, 7), (101, 40)] {
            let lists = Lists::new(2, 33);
            let order: Vec<(f32, u32)> = (0..offers.len())
                .map(|s| offers[(s + rot) % offers.len()])
                .collect();
            for b in order.chunks(batch) {
                lists.offer_all(1, b);
            }
            let l = lists.lock(1);
            let mut got: Vec<(f32, u32)> = (0..l.len()).map(|s| l.key(s)).collect();
            got.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert_eq!(got, want, "rotation {rot}, batches of {batch}");
            assert_eq!(f32::from_bits(l.worst.load(Relaxed)), want[32].0);
            assert!((0..l.len()).all(|s| l.is_new(s)));
            drop(l);
            assert_eq!(lists.lock(0).len(), 0, "the other list is untouched");
        }
    }
}
