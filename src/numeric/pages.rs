//! Huge pages for arrays read at random.
//!
//! The layout SGD and NN-descent read rows of large arrays at random; with 4 KiB pages
//! almost every such read also misses the TLB (worse in a VM, where a miss walks two page
//! tables). [`advise`] asks Linux to back an array with 2 MiB pages: `MADV_HUGEPAGE` for
//! pages not yet touched and `MADV_COLLAPSE` (Linux ≥ 6.1) for those already there. It is a
//! hint: where the kernel refuses, nothing changes but speed. Values are never touched.
//!
//! Collapsing pages already touched copies them (about 1 s per 300 MB, on one core), so
//! large arrays that are filled after they are made start from [`zeroed`]: fresh pages,
//! advised before the first is touched, so each fault brings a huge page in directly.

const HUGE: usize = 2 << 20;

/// Ask for huge pages under the whole 2 MiB-aligned pages inside `v`.
pub fn advise<T>(v: &[T]) {
    if std::mem::size_of_val(v) < 2 * HUGE {
        return;
    }
    madvise(v, true);
}

/// `MADV_HUGEPAGE` on the whole 2 MiB-aligned pages inside `v`, then (`collapse`)
/// `MADV_COLLAPSE`.
fn madvise<T>(v: &[T], collapse: bool) {
    let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
    let end = (v.as_ptr() as usize + std::mem::size_of_val(v)) / HUGE * HUGE;
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: madvise with these advice values only changes how the kernel backs pages of
    // this live allocation; contents are preserved and errors are ignored (a hint).
    unsafe {
        const MADV_COLLAPSE: libc::c_int = 25;
        let p = start as *mut libc::c_void;
        libc::madvise(p, end - start, libc::MADV_HUGEPAGE);
        if collapse {
            libc::madvise(p, end - start, MADV_COLLAPSE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = collapse;
}

/// Element types [`zeroed`] makes: plain numbers whose all-zero bytes are zero.
pub trait Zero: Copy + Default + Send + Sync {}
impl Zero for f32 {}
impl Zero for u32 {}

/// `len` zeros, in memory asked to be backed by huge pages before any of it is touched
/// (large allocations come from the kernel as untouched zero pages).
pub fn zeroed<T: Zero>(len: usize) -> Vec<T> {
    let v = vec![T::default(); len];
    if std::mem::size_of_val(&v[..]) >= 2 * HUGE {
        hint_huge(&v);
    }
    v
}

/// `MADV_HUGEPAGE` only, for pages not yet touched (a fresh zeroed allocation): unlike
/// [`advise`], nothing is copied or zeroed now.
pub fn hint_huge<T>(v: &[T]) {
    madvise(v, false);
}
