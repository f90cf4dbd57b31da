//! A small, stable pseudo-random generator for reproducible data.
//!
//! dagrun's outputs must be bit-identical for the same seed across versions of its
//! dependencies and across thread counts, so we do not use `rand` (whose streams may change
//! between releases). Every independent unit of work (a row, a class centre) derives its own
//! stream from `(seed, stream id)` with SplitMix64, so the order in which threads visit the
//! units never changes the numbers they draw.

/// SplitMix64 step: used for seeding and hashing stream ids.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** with a cached second normal deviate.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    /// A generator for stream `stream` of `seed`: distinct (seed, stream) pairs give
    /// independent-looking sequences.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut sm = seed ^ stream.wrapping_mul(0xD605_BBB5_8C8A_BBB5).rotate_left(17);
        // Mix twice so neighbouring stream ids diverge immediately.
        splitmix64(&mut sm);
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s, spare: None }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n) (n > 0), by rejection so it is unbiased.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Standard normal deviate (Box–Muller, both halves used).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// In-place Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// The stream ids of every purpose that draws random numbers, in one list so no two share
/// one by accident: a purpose draws from `Rng::new(seed, BASE + unit)` (or `BASE ^ unit`).
/// Values are part of the numeric definition: changing one changes outputs.
pub mod stream {
    /// `synthetic`: the class centres and maps; the class shuffle; each row (plus its index).
    pub const SAMPLE_MAPS: u64 = 1;
    pub const SAMPLE_SHUFFLE: u64 = 2;
    pub const SAMPLE_ROWS: u64 = 1_000_000;
    /// NN-descent: its random-projection trees and its candidate sampling.
    pub const NNDESCENT_TREE: u64 = 1 << 40;
    pub const NNDESCENT_SAMPLE: u64 = 2 << 40;
    /// The spectral initialisation: the start block, the noise added, tiny coordinates.
    pub const SPECTRAL_START: u64 = 3 << 40;
    pub const SPECTRAL_NOISE: u64 = 7 << 40;
    pub const SPECTRAL_TINY: u64 = 11 << 40;
    /// UMAP's random initialisation.
    pub const UMAP_RANDOM_INIT: u64 = 5 << 40;
    /// `assign`'s search-index trees, and each new galaxy's negative samples.
    pub const SEARCH_TREE: u64 = 13 << 40;
    pub const ASSIGN: u64 = 17 << 40;

    pub const ALL: &[u64] = &[
        SAMPLE_MAPS,
        SAMPLE_SHUFFLE,
        SAMPLE_ROWS,
        NNDESCENT_TREE,
        NNDESCENT_SAMPLE,
        SPECTRAL_START,
        SPECTRAL_NOISE,
        SPECTRAL_TINY,
        UMAP_RANDOM_INIT,
        SEARCH_TREE,
        ASSIGN,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_bases_are_distinct() {
        let mut v = stream::ALL.to_vec();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), stream::ALL.len());
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..8)
            .map(|_| 0)
            .scan(Rng::new(7, 1), |r, _: u64| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..8)
            .map(|_| 0)
            .scan(Rng::new(7, 1), |r, _: u64| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..8)
            .map(|_| 0)
            .scan(Rng::new(7, 2), |r, _: u64| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn normal_moments() {
        let mut r = Rng::new(42, 0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn below_is_in_range_and_covers() {
        let mut r = Rng::new(1, 1);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[r.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
    }
}
