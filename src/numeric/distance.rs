//! Distances and the memory hints of the loops that compute them: one place for the
//! kernels every numeric module shares.
//!
//! - [`sqdist`] and [`dot`] for wide rows (the 128-d representations): [`WIDE`] partial
//!   sums folded in one fixed order, no fused multiply-add, so the bits are the same on
//!   every x86-64 CPU; with AVX2 (where the CPU has it) the sums are four registers.
//! - [`dist2`] for short rows (layouts, 2–10 columns): one sum, in column order.
//! - [`prefetch_row`] (every cache line a row touches): a hint only.

/// Whether this CPU has AVX2: where the kernels here and the layout's (the SGD, the
/// spectral product) run their AVX2 builds, with the same bits as the portable ones.
#[inline]
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Partial sums of [`sqdist`] and [`dot`]: element `i` goes to sum `i % WIDE`. Part of the
/// numeric definition. Four independent AVX2 registers hide the latency of their additions:
/// with one (eight sums, as before) each 128-d distance waited on sixteen chained additions,
/// and the compiler split even that register into pieces (about 3× slower).
pub const WIDE: usize = 32;

/// The fixed order in which the [`WIDE`] partial sums are added: sums `l`, `l+8`, `l+16`,
/// `l+24` pairwise, then the eight results halves to quarters to one (the order of the
/// AVX2 horizontal add below).
#[inline(always)]
fn fold(acc: &[f32; WIDE]) -> f32 {
    let v: [f32; 8] = std::array::from_fn(|l| (acc[l] + acc[l + 8]) + (acc[l + 16] + acc[l + 24]));
    let w: [f32; 4] = std::array::from_fn(|l| v[l] + v[l + 4]);
    (w[0] + w[2]) + (w[1] + w[3])
}

/// Squared Euclidean distance, in [`WIDE`] partial sums.
#[inline]
pub fn sqdist(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2::sqdist(a, b) };
        }
    }
    sqdist_lanes(a, b)
}

/// [`sqdist`] in portable code: the definition the AVX2 kernel reproduces bit for bit.
#[inline(always)]
pub(crate) fn sqdist_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; WIDE];
    let (ca, cb) = (a.chunks_exact(WIDE), b.chunks_exact(WIDE));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..WIDE {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        let d = x - y;
        acc[l] += d * d;
    }
    fold(&acc)
}

/// `a · b` in [`WIDE`] partial sums (the same bits with or without AVX2, as [`sqdist`]).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2::dot(a, b) };
        }
    }
    dot_lanes(a, b)
}

/// [`dot`] in portable code.
#[inline(always)]
pub(crate) fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; WIDE];
    let (ca, cb) = (a.chunks_exact(WIDE), b.chunks_exact(WIDE));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..WIDE {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    fold(&acc)
}

/// The AVX2 kernels: the [`WIDE`] sums as four registers, the same operations in the same
/// order as the portable code (a tail shorter than [`WIDE`] is finished by it).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    use super::{fold, WIDE};

    /// `f(sum, x, y)` over the whole blocks of [`WIDE`], the rest by `tail`, folded.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn sums(
        a: &[f32],
        b: &[f32],
        f: impl Fn(__m256, __m256, __m256) -> __m256,
        tail: impl Fn(&mut [f32; WIDE], &[f32], &[f32]),
    ) -> f32 {
        let n = a.len().min(b.len());
        let whole = n - n % WIDE;
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < whole {
            for (r, sr) in s.iter_mut().enumerate() {
                // SAFETY: `i + 8r + 8 <= whole <= len` of both slices.
                let (x, y) = unsafe {
                    (
                        _mm256_loadu_ps(pa.add(i + 8 * r)),
                        _mm256_loadu_ps(pb.add(i + 8 * r)),
                    )
                };
                *sr = f(*sr, x, y);
            }
            i += WIDE;
        }
        if whole == n {
            // fold() in registers: (s0 + s1) + (s2 + s3), halves, quarters, one.
            let v = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
            let w = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let x = _mm_add_ps(w, _mm_movehl_ps(w, w));
            return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps::<1>(x, x)));
        }
        let mut acc = [0f32; WIDE];
        for (r, sr) in s.iter().enumerate() {
            // SAFETY: `acc` holds 32 floats, row `r` writes 8 of them.
            unsafe { _mm256_storeu_ps(acc.as_mut_ptr().add(8 * r), *sr) };
        }
        tail(&mut acc, &a[whole..n], &b[whole..n]);
        fold(&acc)
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sqdist(a: &[f32], b: &[f32]) -> f32 {
        let f = |s, x, y| {
            let d = _mm256_sub_ps(x, y);
            _mm256_add_ps(s, _mm256_mul_ps(d, d))
        };
        let tail = |acc: &mut [f32; WIDE], a: &[f32], b: &[f32]| {
            for (l, (x, y)) in a.iter().zip(b).enumerate() {
                let d = x - y;
                acc[l] += d * d;
            }
        };
        // SAFETY: this function runs only where the CPU has AVX2.
        unsafe { sums(a, b, f, tail) }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let f = |s, x, y| _mm256_add_ps(s, _mm256_mul_ps(x, y));
        let tail = |acc: &mut [f32; WIDE], a: &[f32], b: &[f32]| {
            for (l, (x, y)) in a.iter().zip(b).enumerate() {
                acc[l] += x * y;
            }
        };
        // SAFETY: this function runs only where the CPU has AVX2.
        unsafe { sums(a, b, f, tail) }
    }
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
            unsafe {
                core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0)
            }
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
pub(crate) mod tests {
    use super::*;

    /// Whether this CPU has AVX2, so that a test can compare the AVX2 build of a kernel with
    /// the baseline one; without it there is nothing to compare: the test says so, and
    /// fails under `CI`, which must check both builds.
    pub(crate) fn both_builds(test: &str) -> bool {
        if avx2() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: this CPU has no AVX2, so CI cannot compare the AVX2 and baseline builds"
        );
        eprintln!("{test}: skipped, this CPU has no AVX2 (only the baseline build runs here)");
        false
    }

    #[test]
    fn sqdist_is_the_same_with_and_without_avx2() {
        if !both_builds("sqdist_is_the_same_with_and_without_avx2") {
            return;
        }
        let mut r = crate::numeric::rng::Rng::new(5, 0);
        for dim in [1, 5, 8, 13, 31, 32, 33, 100, 128, 1280] {
            let a: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
            let b: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
            assert_eq!(
                sqdist(&a, &b).to_bits(),
                sqdist_lanes(&a, &b).to_bits(),
                "dim {dim}"
            );
        }
    }

    #[test]
    fn dot_is_the_same_with_and_without_avx2() {
        if !both_builds("dot_is_the_same_with_and_without_avx2") {
            return;
        }
        let mut r = crate::numeric::rng::Rng::new(6, 0);
        for dim in [1, 5, 8, 13, 31, 32, 33, 100, 128, 1280] {
            let a: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
            let b: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
            assert_eq!(
                dot(&a, &b).to_bits(),
                dot_lanes(&a, &b).to_bits(),
                "dim {dim}"
            );
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
