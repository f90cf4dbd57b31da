//! Distances and the memory hints of the loops that compute them: one place for the
//! kernels every numeric module shares.
//!
//! - [`sqdist`] and [`dot`] for wide rows (the 128-d representations): eight partial sums,
//!   run with AVX2 where the CPU has it, added in the same order (no FMA), so the bits are
//!   the same on every x86-64 CPU.
//! - [`dist2`] for short rows (layouts, 2–10 columns): one sum, in column order.
//! - [`prefetch_row`] (every cache line a row touches): a hint only.

/// Squared Euclidean distance, in eight independent lanes so it vectorises.
#[inline]
pub fn sqdist(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { sqdist_avx2(a, b) };
        }
    }
    sqdist_lanes(a, b)
}

/// [`sqdist_lanes`] compiled with 256-bit registers: the same eight lanes added in the same
/// order (and no FMA), so the same bits as without AVX2, about twice as fast.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sqdist_avx2(a: &[f32], b: &[f32]) -> f32 {
    sqdist_lanes(a, b)
}

#[inline(always)]
pub(crate) fn sqdist_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        let d = x - y;
        acc[l] += d * d;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// `a · b` with eight partial sums (vectorises; the same bits on every run, with or without
/// AVX2, as for [`sqdist`]).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
pub(crate) fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Ask the CPU to start loading a row (every cache line it touches) before it is needed:
/// the lines of its first and last bytes, and any between. A row that does not start on a
/// line boundary thus gets its last line too (a packed 5-D row straddles two lines one
/// time in three). No branch depends on where a short row sits: a loop whose trip count
/// did (0 or 1 middle line) made the 5-D layout SGD 20% slower.
#[inline(always)]
pub fn prefetch_row(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(first), Some(last)) = (row.first(), row.last()) {
        let line = |p: usize| {
            // SAFETY: a prefetch is only a hint and never faults; the addresses are those
            // of lines under a live slice.
            unsafe { core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0) }
        };
        let (first, last) = (first as *const f32 as usize, last as *const f32 as usize);
        line(first);
        for p in ((first & !63) + 64..last & !63).step_by(64) {
            line(p);
        }
        // A row of one or two floats sits in one line where it is 8-byte aligned, as the
        // rows of an allocated 1- or 2-wide array are (a second prefetch cost the 2-D SGD 5%).
        if row.len() > 2 {
            line(last);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Squared Euclidean distance of short rows (a layout's 2–10 columns), summed in column
/// order: the arithmetic of the KD-tree, the layout SGD and UMAP's transform.
#[inline]
pub fn dist2(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0f32;
    for k in 0..a.len() {
        let d = a[k] - b[k];
        s += d * d;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqdist_is_the_same_with_and_without_avx2() {
        let mut r = crate::numeric::rng::Rng::new(5, 0);
        for dim in [1, 5, 8, 13, 128, 1280] {
            let a: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
            let b: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
            assert_eq!(sqdist(&a, &b).to_bits(), sqdist_lanes(&a, &b).to_bits(), "dim {dim}");
        }
    }

    #[test]
    fn dot_is_the_same_with_and_without_avx2() {
        let mut r = crate::numeric::rng::Rng::new(6, 0);
        for dim in [1, 5, 8, 13, 128, 1280] {
            let a: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
            let b: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
            assert_eq!(dot(&a, &b).to_bits(), dot_lanes(&a, &b).to_bits(), "dim {dim}");
        }
    }

    #[test]
    fn sqdist_matches_scalar() {
        let a: Vec<f32> = (0..131).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..131).map(|i| (i as f32).sin()).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((sqdist(&a, &b) - want).abs() <= 1e-3 * want);
    }

    #[test]
    fn dist2_is_the_in_order_sum() {
        let a = [0.1f32, -2.0, 3.5, 1e-3, 7.0];
        let b = [1.0f32, 0.5, -1.0, 2.0, 7.0];
        let want: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert_eq!(dist2(&a, &b).to_bits(), want.to_bits());
    }
}
