//! `x^b` for a row of lanes in plain IEEE arithmetic (no libm), the same bits on every CPU
//! and vector width: the layout SGD's and densMAP's power of a squared distance.

/// Lanes computed together: the SGD walks as many (its `LANES`).
pub const WIDTH: usize = 16;

/// `x^b` for each lane (`x >= 0`; 0 and subnormals give a tiny positive value), as
/// `2^(b·log2 x)`: `log2` from the exponent and the `atanh` series of the mantissa folded
/// into [√½, √2), `2^f` for |f| ≤ ½ from the exponential's Taylor series to degree 7.
/// Relative error within 2e-6 of `powf` for x in [1e-4, 1e4], 1e-5 where `b·log2 x` is
/// within ±125 (f32 rounds `b·log2 x` as libm's `exp(b·ln x)` does); plain IEEE arithmetic, so
/// the same bits on every CPU and at every vector width.
#[inline(always)]
pub fn pow_lanes(x: &[f32; WIDTH], b: f32) -> [f32; WIDTH] {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    let mut out = [0f32; WIDTH];
    for l in 0..WIDTH {
        let bits = x[l].to_bits();
        let e = ((bits >> 23) & 0xff) as i32 - 127;
        let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        let big = m > std::f32::consts::SQRT_2;
        let m = if big { m * 0.5 } else { m };
        let e = if big { e + 1 } else { e };
        let s = (m - 1.0) / (m + 1.0);
        let s2 = s * s;
        let series =
            1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
        let log2x = e as f32 + (2.0 * std::f32::consts::LOG2_E) * (s * series);
        let y = (b * log2x).clamp(-126.0, 126.0);
        let n = (y + ROUND) - ROUND;
        let f = (y - n) * std::f32::consts::LN_2;
        let p = 1.0
            + f * (1.0
                + f * (0.5
                    + f * (1.0 / 6.0
                        + f * (1.0 / 24.0
                            + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
        out[l] = p * f32::from_bits(((n as i32 + 127) as u32) << 23);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 `powf`: within 2e-6 over the squared distances a layout has (1e-4 to
    /// 1e4), and within 1e-5 wherever `b·log2 x` stays within ±125, as good as f32's own
    /// `exp(b·ln x)` (which rounds `b·ln x` to f32 the same way).
    #[test]
    fn power_series_matches_powf() {
        let (mut worst_near, mut worst_far, mut libm_far) = (0f64, 0f64, 0f64);
        for b in [0.5f32, 0.79, 0.8950609, 1.0, 1.5, 1.93] {
            let mut x = 1e-12f32;
            while x < 1e12 {
                let xs: [f32; WIDTH] = std::array::from_fn(|l| x * (1.0 + l as f32 / WIDTH as f32));
                let got = pow_lanes(&xs, b);
                for (l, &v) in xs.iter().enumerate() {
                    let want = (v as f64).powf(b as f64);
                    if want.log2().abs() < 125.0 {
                        let err = ((got[l] as f64 - want) / want).abs();
                        worst_far = worst_far.max(err);
                        libm_far = libm_far.max((((b * v.ln()).exp() as f64 - want) / want).abs());
                        if (1e-4..1e4).contains(&v) {
                            worst_near = worst_near.max(err);
                        }
                    }
                }
                x *= 2.0;
            }
        }
        assert!(
            worst_near < 2e-6,
            "worst relative error {worst_near:e} for x in [1e-4, 1e4]"
        );
        assert!(
            worst_far < 1e-5 && worst_far < 2.0 * libm_far,
            "worst relative error {worst_far:e} (f32 exp(b ln x): {libm_far:e})"
        );
        let z = pow_lanes(&[0.0; WIDTH], 0.9);
        assert!(z.iter().all(|v| (0.0..1e-30).contains(v)), "{z:?}");
    }
}
