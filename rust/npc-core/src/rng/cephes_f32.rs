//! Single-precision `log` and `sincos` as computed by torch's AVX2 Box-Muller kernel.
//!
//! torch (`ATen/native/cpu/avx_mathfun.h`) evaluates these with the Cephes `logf`/`sinf`/`cosf`
//! algorithms (range reduction, Cephes minimax polynomials), written as AVX intrinsics. GCC
//! builds that file with `-mfma` and its default `-ffp-contract=fast`, so every multiply whose
//! only use is an add/subtract is fused into one FMA; where two products meet in one add, the
//! product defined first is the one fused. Each function below evaluates one lane with exactly
//! that sequence of roundings: `mul_add` marks a fused pair, a plain `*` then `+` marks two
//! roundings. Constants are the published Cephes single-precision coefficients, written with
//! their published digits and rounded to `f32` by the compiler (hence the lint allowance).
#![allow(clippy::excessive_precision)]

const MIN_NORM_POS: f32 = f32::MIN_POSITIVE;
/// Cephes' SQRTHF (0.707106781186547524), i.e. 1/sqrt(2) rounded to f32.
const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

const LOG_P: [f32; 9] = [
    7.0376836292E-2,
    -1.1514610310E-1,
    1.1676998740E-1,
    -1.2420140846E-1,
    1.4249322787E-1,
    -1.6668057665E-1,
    2.0000714765E-1,
    -2.4999993993E-1,
    3.3333331174E-1,
];
/// ln 2 split in two: `LN2_HI` has few significant bits so `e * LN2_HI` is exact.
const LN2_LO: f32 = -2.12194440E-4;
const LN2_HI: f32 = 0.693359375;

/// Natural logarithm, one lane of torch's `log256_ps`. NaN for `x <= 0` (as all-ones bits).
#[inline(always)]
pub fn log_f32(x: f32) -> f32 {
    let invalid = x <= 0.0;
    // Denormals are lifted to the smallest normal (the vector code's max with it).
    let x = if x > MIN_NORM_POS { x } else { MIN_NORM_POS };
    let bits = x.to_bits();
    let exponent = ((bits >> 23) as i32) - 0x7f;
    // Mantissa mapped into [0.5, 1).
    let mut m = f32::from_bits((bits & !0x7f80_0000) | 0.5f32.to_bits());
    let mut e = exponent as f32 + 1.0;
    let below = m < SQRT_HALF;
    let extra = if below { m } else { 0.0 };
    m -= 1.0;
    e -= if below { 1.0 } else { 0.0 };
    m += extra;

    let z = m * m;
    let mut y = LOG_P[0];
    for &p in &LOG_P[1..] {
        y = y.mul_add(m, p);
    }
    y *= m;
    y = y.mul_add(z, e * LN2_LO);
    y = (-z).mul_add(0.5, y);
    let r = e.mul_add(LN2_HI, m + y);
    if invalid {
        f32::from_bits(u32::MAX)
    } else {
        r
    }
}

/// pi/4 split in three parts for Cody-Waite reduction (negated, as added).
const MINUS_DP1: f32 = -0.785_156_25;
const MINUS_DP2: f32 = -2.4187564849853515625E-4;
const MINUS_DP3: f32 = -3.77489497744594108E-8;
const FOUR_OVER_PI: f32 = 1.27323954473516;
const SIN_P: [f32; 3] = [-1.9515295891E-4, 8.3321608736E-3, -1.6666654611E-1];
const COS_P: [f32; 3] = [
    2.443315711809948E-5,
    -1.388731625493765E-3,
    4.166664568298827E-2,
];
const SIGN_BIT: u32 = 0x8000_0000;

/// `cvttps2dq`: truncation, with the "integer indefinite" value for NaN or out of range.
#[inline(always)]
fn truncate_to_i32(y: f32) -> i32 {
    if y.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&y) {
        i32::MIN
    } else {
        y as i32
    }
}

/// `(sin x, cos x)`, one lane of torch's `sincos256_ps`. Accurate for |x| below about 8192
/// (the Box-Muller angle is in [0, 2*pi)).
#[inline(always)]
pub fn sincos_f32(x: f32) -> (f32, f32) {
    let mut sign_sin = x.to_bits() & SIGN_BIT;
    let ax = f32::from_bits(x.to_bits() & !SIGN_BIT);

    // Octant j, rounded up to even, and the reduced argument x - j*pi/4.
    let mut j = truncate_to_i32(ax * FOUR_OVER_PI);
    j = j.wrapping_add(1) & !1;
    let jf = j as f32;
    let swap_sign_sin = ((j & 4) as u32) << 29;
    let use_sin_poly_for_sin = (j & 2) == 0;
    let mut r = jf.mul_add(MINUS_DP1, ax);
    r = jf.mul_add(MINUS_DP2, r);
    r = jf.mul_add(MINUS_DP3, r);
    let sign_cos = ((!j.wrapping_sub(2) & 4) as u32) << 29;
    sign_sin ^= swap_sign_sin;

    let z = r * r;
    let mut cos_poly = COS_P[0].mul_add(z, COS_P[1]);
    cos_poly = cos_poly.mul_add(z, COS_P[2]);
    cos_poly *= z;
    cos_poly = cos_poly.mul_add(z, -(z * 0.5));
    cos_poly += 1.0;

    let mut sin_poly = SIN_P[0].mul_add(z, SIN_P[1]);
    sin_poly = sin_poly.mul_add(z, SIN_P[2]);
    sin_poly *= z;
    sin_poly = sin_poly.mul_add(r, r);

    // Blend as the vector code does (masked values are +0.0, then add/subtract).
    let sin_part_a = if use_sin_poly_for_sin { sin_poly } else { 0.0 };
    let sin_part_b = if use_sin_poly_for_sin { 0.0 } else { cos_poly };
    let cos_rest_a = sin_poly - sin_part_a;
    let cos_rest_b = cos_poly - sin_part_b;
    let sin_v = sin_part_b + sin_part_a;
    let cos_v = cos_rest_b + cos_rest_a;
    (
        f32::from_bits(sin_v.to_bits() ^ sign_sin),
        f32::from_bits(cos_v.to_bits() ^ sign_cos),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place of `got` from the exact value `want`.
    fn ulp_error(got: f32, want: f64) -> f64 {
        let rounded = want as f32;
        let ulp = if rounded == 0.0 {
            f32::from_bits(1) as f64
        } else {
            let next = f32::from_bits(rounded.abs().to_bits() + 1) as f64;
            next - rounded.abs() as f64
        };
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn log_is_within_tolerance_on_the_box_muller_domain() {
        // u1 = 1 - k * 2^-24 for every 24-bit uniform k, sampled with a stride.
        let mut worst: f64 = 0.0;
        let mut k = 0u32;
        while k < (1 << 24) {
            let u = 1.0f32 - (k as f32) * (1.0 / 16_777_216.0);
            let got = log_f32(u);
            let want = (u as f64).ln();
            if want != 0.0 {
                worst = worst.max(ulp_error(got, want));
            } else {
                assert_eq!(got, 0.0);
            }
            k += 97;
        }
        assert!(worst <= 1.0, "worst log error {worst} ulp");
    }

    #[test]
    fn log_handles_edges() {
        assert!(log_f32(0.0).is_nan());
        assert!(log_f32(-1.0).is_nan());
        assert_eq!(log_f32(1.0), 0.0);
        let l2 = log_f32(2.0) as f64;
        assert!((l2 - std::f64::consts::LN_2).abs() < 1e-7);
    }

    #[test]
    fn sincos_is_within_tolerance_on_the_box_muller_domain() {
        // Cephes sinf/cosf are not 1-ulp functions: measured over every 24-bit angle they stay
        // within 1.5 ulp where |f| >= 1/4, and within 2^-23 in absolute terms everywhere
        // (near the zeros the relative error grows, the absolute one does not).
        let two_pi = (2.0 * std::f64::consts::PI) as f32;
        let (mut worst_s, mut worst_c, mut worst_abs): (f64, f64, f64) = (0.0, 0.0, 0.0);
        let mut k = 0u32;
        while k < (1 << 24) {
            let theta = two_pi * (k as f32) * (1.0 / 16_777_216.0);
            let (s, c) = sincos_f32(theta);
            let (ws, wc) = ((theta as f64).sin(), (theta as f64).cos());
            if ws.abs() >= 0.25 {
                worst_s = worst_s.max(ulp_error(s, ws));
            }
            if wc.abs() >= 0.25 {
                worst_c = worst_c.max(ulp_error(c, wc));
            }
            worst_abs = worst_abs
                .max((s as f64 - ws).abs())
                .max((c as f64 - wc).abs());
            k += 89;
        }
        assert!(worst_s <= 1.5, "worst sin error {worst_s} ulp");
        assert!(worst_c <= 1.5, "worst cos error {worst_c} ulp");
        assert!(
            worst_abs <= 2f64.powi(-23),
            "worst absolute error {worst_abs}"
        );
    }

    #[test]
    fn sincos_signs_follow_the_quadrant() {
        for (x, s_pos, c_pos) in [
            (0.5f32, true, true),
            (2.0, true, false),
            (4.0, false, false),
            (5.5, false, true),
        ] {
            let (s, c) = sincos_f32(x);
            assert_eq!(s > 0.0, s_pos, "sin({x})");
            assert_eq!(c > 0.0, c_pos, "cos({x})");
        }
    }
}
