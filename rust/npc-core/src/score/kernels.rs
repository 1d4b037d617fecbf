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

/// Sum of a block's 8 folded lanes, in f64, in lane order (shared by both versions).
#[inline(always)]
fn fold8(eight: &[f32; 8]) -> f64 {
    let mut sum = 0.0f64;
    for &x in eight {
        sum += f64::from(x);
    }
    sum
}

#[inline(always)]
fn lane_sum(lanes: &[f32; LANES]) -> f64 {
    let mut eight = [0.0f32; 8];
    for (i, e) in eight.iter_mut().enumerate() {
        *e = (lanes[i] + lanes[i + 8]) + (lanes[i + 16] + lanes[i + 24]);
    }
    fold8(&eight)
}

#[inline(always)]
fn accumulate(lanes: &mut [f32; LANES], a: &[f32], b: &[f32]) {
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            lanes[l] += ca[l] * cb[l];
        }
    }
}

/// Adds the last partial block (shorter than `BLOCK`) to `total`: whole lane groups in f32, then
/// single elements in f64.
#[inline(always)]
fn add_tail(total: &mut f64, a: &[f32], b: &[f32]) {
    let whole = a.len() / LANES * LANES;
    let mut lanes = [0.0f32; LANES];
    accumulate(&mut lanes, &a[..whole], &b[..whole]);
    *total += lane_sum(&lanes);
    for (&x, &y) in a[whole..].iter().zip(&b[whole..]) {
        *total += f64::from(x) * f64::from(y);
    }
}

#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let full = n / BLOCK * BLOCK;
    let mut total = 0.0f64;
    for (ba, bb) in a[..full]
        .chunks_exact(BLOCK)
        .zip(b[..full].chunks_exact(BLOCK))
    {
        let mut lanes = [0.0f32; LANES];
        accumulate(&mut lanes, ba, bb);
        total += lane_sum(&lanes);
    }
    add_tail(&mut total, &a[full..n], &b[full..n]);
    total
}

/// Folds a block's 4 x 8 lane accumulators to 8 lanes, in the pairs [`lane_sum`] uses, and adds
/// their f64 sum to `total`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fold_block_avx(total: &mut f64, lanes: &[std::arch::x86_64::__m256; 4]) {
    use std::arch::x86_64::{_mm256_add_ps, _mm256_storeu_ps};
    // SAFETY: only called from AVX2-enabled functions; `eight` holds exactly 8 f32.
    unsafe {
        let folded = _mm256_add_ps(
            _mm256_add_ps(lanes[0], lanes[1]),
            _mm256_add_ps(lanes[2], lanes[3]),
        );
        let mut eight = [0.0f32; 8];
        _mm256_storeu_ps(eight.as_mut_ptr(), folded);
        *total += fold8(&eight);
    }
}

/// `[dot(x, y) for y in ys]` in one pass that loads `x` once, each with exactly the arithmetic of
/// [`dot_portable`] (lane `l` holds the elements `l mod 32` of a block, lanes fold to 8 in the
/// same pairs, then f64), so results are bitwise those of the portable code. AVX intrinsics,
/// because the auto-vectorised 32-lane array spills badly.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots_shared_avx2<const N: usize>(x: &[f32], ys: &[&[f32]; N]) -> [f64; N] {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps,
    };
    let n = ys.iter().map(|y| y.len()).fold(x.len(), usize::min);
    let full = n / BLOCK * BLOCK;
    let mut totals = [0.0f64; N];
    let mut start = 0;
    while start < full {
        let mut acc: [[__m256; 4]; N] = [[_mm256_setzero_ps(); 4]; N];
        for chunk in (start..start + BLOCK).step_by(LANES) {
            for r in 0..4 {
                let at = chunk + 8 * r;
                // SAFETY: at + 8 <= start + BLOCK <= full <= n <= every length.
                let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(at)) };
                for (lanes, y) in acc.iter_mut().zip(ys) {
                    // SAFETY: as above.
                    let yv = unsafe { _mm256_loadu_ps(y.as_ptr().add(at)) };
                    lanes[r] = _mm256_add_ps(lanes[r], _mm256_mul_ps(xv, yv));
                }
            }
        }
        for (total, lanes) in totals.iter_mut().zip(&acc) {
            fold_block_avx(total, lanes);
        }
        start += BLOCK;
    }
    for (total, y) in totals.iter_mut().zip(ys) {
        add_tail(total, &x[full..n], &y[full..n]);
    }
    totals
}

/// `[x.x, x.y, y.y]` in one pass loading each vector once; arithmetic as [`dots_shared_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // `r` indexes three accumulator sets at once
fn self_and_cross_avx2(x: &[f32], y: &[f32]) -> [f64; 3] {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps,
    };
    let n = x.len().min(y.len());
    let full = n / BLOCK * BLOCK;
    let mut totals = [0.0f64; 3];
    let mut start = 0;
    while start < full {
        let mut acc: [[__m256; 4]; 3] = [[_mm256_setzero_ps(); 4]; 3];
        for chunk in (start..start + BLOCK).step_by(LANES) {
            for r in 0..4 {
                let at = chunk + 8 * r;
                // SAFETY: at + 8 <= start + BLOCK <= full <= n <= both lengths.
                let (xv, yv) = unsafe {
                    (
                        _mm256_loadu_ps(x.as_ptr().add(at)),
                        _mm256_loadu_ps(y.as_ptr().add(at)),
                    )
                };
                acc[0][r] = _mm256_add_ps(acc[0][r], _mm256_mul_ps(xv, xv));
                acc[1][r] = _mm256_add_ps(acc[1][r], _mm256_mul_ps(xv, yv));
                acc[2][r] = _mm256_add_ps(acc[2][r], _mm256_mul_ps(yv, yv));
            }
        }
        for (total, lanes) in totals.iter_mut().zip(&acc) {
            fold_block_avx(total, lanes);
        }
        start += BLOCK;
    }
    let (xt, yt) = (&x[full..n], &y[full..n]);
    add_tail(&mut totals[0], xt, xt);
    add_tail(&mut totals[1], xt, yt);
    add_tail(&mut totals[2], yt, yt);
    totals
}

/// Writes `delta = p - c` and returns `[delta.delta, delta.f, f.f]`, in one pass over `p`, `c`
/// and `f`; arithmetic as [`self_and_cross_avx2`] on the written `delta`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // `r` indexes three accumulator sets at once
fn delta_and_dots_avx2(p: &[f32], c: &[f32], f: &[f32], delta: &mut [f32]) -> [f64; 3] {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps, _mm256_storeu_ps,
        _mm256_sub_ps,
    };
    let n = p.len().min(c.len()).min(f.len()).min(delta.len());
    let full = n / BLOCK * BLOCK;
    let mut totals = [0.0f64; 3];
    let mut start = 0;
    while start < full {
        let mut acc: [[__m256; 4]; 3] = [[_mm256_setzero_ps(); 4]; 3];
        for chunk in (start..start + BLOCK).step_by(LANES) {
            for r in 0..4 {
                let at = chunk + 8 * r;
                // SAFETY: at + 8 <= start + BLOCK <= full <= n <= every length.
                let (xv, yv) = unsafe {
                    let xv = _mm256_sub_ps(
                        _mm256_loadu_ps(p.as_ptr().add(at)),
                        _mm256_loadu_ps(c.as_ptr().add(at)),
                    );
                    _mm256_storeu_ps(delta.as_mut_ptr().add(at), xv);
                    (xv, _mm256_loadu_ps(f.as_ptr().add(at)))
                };
                acc[0][r] = _mm256_add_ps(acc[0][r], _mm256_mul_ps(xv, xv));
                acc[1][r] = _mm256_add_ps(acc[1][r], _mm256_mul_ps(xv, yv));
                acc[2][r] = _mm256_add_ps(acc[2][r], _mm256_mul_ps(yv, yv));
            }
        }
        for (total, lanes) in totals.iter_mut().zip(&acc) {
            fold_block_avx(total, lanes);
        }
        start += BLOCK;
    }
    for ((x, &pv), &cv) in delta[full..n].iter_mut().zip(&p[full..n]).zip(&c[full..n]) {
        *x = pv - cv;
    }
    let (xt, yt) = (&delta[full..n], &f[full..n]);
    add_tail(&mut totals[0], xt, xt);
    add_tail(&mut totals[1], xt, yt);
    add_tail(&mut totals[2], yt, yt);
    totals
}

/// Writes `delta = p - c` (f32) and returns `[delta.delta, delta.f, f.f]` in one pass; all four
/// slices must have the same length.
#[inline]
pub fn delta_and_dots(p: &[f32], c: &[f32], f: &[f32], delta: &mut [f32]) -> [f64; 3] {
    debug_assert!(p.len() == c.len() && c.len() == f.len() && f.len() == delta.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { delta_and_dots_avx2(p, c, f, delta) };
    }
    for ((x, &pv), &cv) in delta.iter_mut().zip(p).zip(c) {
        *x = pv - cv;
    }
    self_and_cross(delta, f)
}

#[inline(always)]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `[dot(x, y) for y in ys]`, in one pass over the data; all slices must have the same length.
#[inline]
pub fn dots_shared<const N: usize>(x: &[f32], ys: [&[f32]; N]) -> [f64; N] {
    debug_assert!(ys.iter().all(|y| y.len() == x.len()));
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { dots_shared_avx2(x, &ys) };
    }
    ys.map(|y| dot_portable(x, y))
}

/// `[x.x, x.y, y.y]` in one pass; `x` and `y` must have the same length.
#[inline]
pub fn self_and_cross(x: &[f32], y: &[f32]) -> [f64; 3] {
    debug_assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { self_and_cross_avx2(x, y) };
    }
    [dot_portable(x, x), dot_portable(x, y), dot_portable(y, y)]
}

/// `sum(a[i] * b[i])`; `a` and `b` must have the same length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    dots_shared(a, [b])[0]
}

/// `dot(x, row)` for every row, three rows per pass over `x`.
pub fn dots_against<'a>(x: &[f32], rows: impl ExactSizeIterator<Item = &'a [f32]>) -> Vec<f64> {
    let rows: Vec<&[f32]> = rows.collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut groups = rows.chunks_exact(3);
    for g in &mut groups {
        out.extend(dots_shared(x, [g[0], g[1], g[2]]));
    }
    match groups.remainder() {
        [a, b] => out.extend(dots_shared(x, [*a, *b])),
        [a] => out.push(dot(x, a)),
        _ => {}
    }
    out
}

/// Squared norms of the rows.
pub fn squared_norms<'a>(rows: impl ExactSizeIterator<Item = &'a [f32]>) -> Vec<f64> {
    rows.map(|r| dot(r, r)).collect()
}

/// Ask the CPU to start loading `row` into L2 now. The scoring loop calls this for the next
/// candidate's rows before working on cached data, so the main-memory reads overlap compute
/// instead of stalling it (the hardware prefetcher only follows the stream already being read).
#[inline]
pub fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        const FLOATS_PER_LINE: usize = 16;
        for at in (0..row.len()).step_by(FLOATS_PER_LINE) {
            // SAFETY: SSE is part of the x86-64 baseline; a prefetch never faults, and the
            // address is inside `row` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(row[at..].as_ptr().cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

#[inline(always)]
fn add_to_f64_portable(sum: &mut [f64], row: &[f32]) {
    for (s, &x) in sum.iter_mut().zip(row) {
        *s += f64::from(x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_to_f64_avx2(sum: &mut [f64], row: &[f32]) {
    add_to_f64_portable(sum, row);
}

/// `sum[i] += row[i]` in f64 (exact widening, one rounding per add); the AVX2 build of the same
/// loop is chosen at run time (4 lanes per instruction instead of 2).
#[inline]
pub fn add_to_f64(sum: &mut [f64], row: &[f32]) {
    debug_assert_eq!(sum.len(), row.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { add_to_f64_avx2(sum, row) };
    }
    add_to_f64_portable(sum, row)
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
