//! Dot products and cosines over f32 vectors, precise and fast enough for the salient score.
//!
//! Products are summed in f32 over 32 independent lanes within blocks of 256 elements (8 terms per
//! lane), the lanes are added pairwise down to 8, and those block sums are accumulated in f64. The
//! rounding error is that of a ~13-term f32 sum per block plus an f64 sum: below 1e-6 of
//! `sum |a_i * b_i|`, far inside the 1e-5 parity tolerance, at the speed of a plain f32 SIMD dot.
//! A product that overflows f32 (|x| > ~1.8e19) becomes infinite and the callers report it as a
//! non-finite result.
//!
//! On x86-64 the same code is also compiled with AVX2 enabled and chosen at run time when the CPU
//! has it (the wheel itself targets baseline x86-64). No FMA is used, so both versions round
//! identically and results do not depend on the machine.

const LANES: usize = 32;
const BLOCK: usize = 256;

#[inline(always)]
fn lane_sum(lanes: &[f32; LANES]) -> f64 {
    let mut eight = [0.0f32; 8];
    for (i, e) in eight.iter_mut().enumerate() {
        *e = (lanes[i] + lanes[i + 8]) + (lanes[i + 16] + lanes[i + 24]);
    }
    eight.iter().map(|&x| f64::from(x)).sum()
}

#[inline(always)]
fn accumulate(lanes: &mut [f32; LANES], a: &[f32], b: &[f32]) {
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            lanes[l] += ca[l] * cb[l];
        }
    }
}

#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f64 {
    let mut total = 0.0f64;
    let blocks_a = a.chunks_exact(BLOCK);
    let blocks_b = b.chunks_exact(BLOCK);
    let (tail_a, tail_b) = (blocks_a.remainder(), blocks_b.remainder());
    for (ba, bb) in blocks_a.zip(blocks_b) {
        let mut lanes = [0.0f32; LANES];
        accumulate(&mut lanes, ba, bb);
        total += lane_sum(&lanes);
    }
    // The last partial block: whole lane groups in f32, then single elements in f64.
    let whole = tail_a.len() / LANES * LANES;
    let mut lanes = [0.0f32; LANES];
    accumulate(&mut lanes, &tail_a[..whole], &tail_b[..whole]);
    total += lane_sum(&lanes);
    for (&x, &y) in tail_a[whole..].iter().zip(&tail_b[whole..]) {
        total += f64::from(x) * f64::from(y);
    }
    total
}

/// The same arithmetic as [`dot_portable`], in the same order (lane `l` of block sums holds the
/// elements `l mod 32`; the lanes are folded to 8 and summed in f64 in the same sequence), written
/// with AVX intrinsics because the auto-vectorised 32-lane array spills badly.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f64 {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let n = a.len().min(b.len());
    let full = n / BLOCK * BLOCK;
    let mut total = 0.0f64;
    let mut start = 0;
    while start < full {
        let mut acc = [_mm256_setzero_ps(); LANES / 8];
        for chunk in (start..start + BLOCK).step_by(LANES) {
            for (r, lane) in acc.iter_mut().enumerate() {
                let at = chunk + 8 * r;
                // SAFETY: at + 8 <= start + BLOCK <= full <= n, within both slices.
                let (x, y) = unsafe {
                    (
                        _mm256_loadu_ps(a.as_ptr().add(at)),
                        _mm256_loadu_ps(b.as_ptr().add(at)),
                    )
                };
                *lane = _mm256_add_ps(*lane, _mm256_mul_ps(x, y));
            }
        }
        let eight = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds exactly 8 f32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), eight) };
        total += out.iter().map(|&x| f64::from(x)).sum::<f64>();
        start += BLOCK;
    }
    total + dot_portable(&a[full..n], &b[full..n])
}

/// `sum(a[i] * b[i])`; `a` and `b` must have the same length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// Euclidean norm.
#[inline]
pub fn norm(a: &[f32]) -> f64 {
    dot(a, a).sqrt()
}

/// `dot / (norm_a * norm_b)`, and 0 when either norm is 0: a zero vector has no direction, so it
/// neither helps nor hurts a score component (the zero-vector rule of npc_rt).
#[inline]
pub fn cosine_from_parts(dot: f64, norm_a: f64, norm_b: f64) -> f64 {
    if norm_a == 0.0 || norm_b == 0.0 {
        0.0
    } else {
        dot / (norm_a * norm_b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum()
    }

    #[test]
    fn dot_matches_f64_reference_for_all_tail_lengths() {
        for len in [
            0usize, 1, 7, 31, 32, 33, 255, 256, 257, 300, 768, 4096, 4099,
        ] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 3.0)
                .collect();
            let scale: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| f64::from(x * y).abs())
                .sum();
            let err = (dot(&a, &b) - naive(&a, &b)).abs();
            assert!(
                err <= 1e-6 * scale.max(1.0),
                "len {len}: err {err} scale {scale}"
            );
        }
    }

    #[test]
    fn portable_and_dispatched_versions_agree_bitwise() {
        let a: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.11).cos()).collect();
        for len in [0, 5, 255, 256, 600, 1000] {
            let (a, b) = (&a[..len], &b[..len]);
            assert_eq!(
                dot(a, b).to_bits(),
                dot_portable(a, b).to_bits(),
                "len {len}"
            );
        }
    }

    #[test]
    fn zero_vector_rule() {
        assert_eq!(cosine_from_parts(0.0, 0.0, 3.0), 0.0);
        assert_eq!(cosine_from_parts(0.0, 2.0, 0.0), 0.0);
        assert_eq!(cosine_from_parts(6.0, 2.0, 3.0), 1.0);
    }
}
