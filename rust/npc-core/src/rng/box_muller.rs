//! torch's float32 Box-Muller block transform (`normal_fill_16`) for standard normals, in the
//! two variants torch compiles: the AVX2 kernel and the generic one.

use super::cephes_f32::{log_f32, sincos_f32};
use super::{TorchKernel, BLOCK};

/// `2.0f * c10::pi<double>` rounded to float (`_mm256_set1_ps` in the AVX2 kernel).
const TWO_PI_F32: f32 = (2.0 * std::f64::consts::PI) as f32;
/// `2.0f * c10::pi<double>` kept in double (the generic kernel's angle is computed in double).
const TWO_PI_F64: f64 = 2.0 * std::f64::consts::PI;

/// Transforms each block of 16 uniforms in place: pairs (j, j+8) give (r cos, r sin).
/// `data.len()` must be a multiple of 16.
pub(super) fn transform_blocks(data: &mut [f32], kernel: TorchKernel) {
    debug_assert_eq!(data.len() % BLOCK, 0);
    match kernel {
        TorchKernel::Avx2 => transform_avx2(data),
        TorchKernel::Generic => transform_generic(data),
    }
}

/// `normal_fill_16_AVX2`: Cephes log/sincos (see `cephes_f32`), angle `2pi_f32 * u2` in float,
/// final `fmadd(r*cos, std, mean)`.
fn transform_avx2(data: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        unsafe { transform_avx2_with_fma_unit(data) };
        return;
    }
    transform_avx2_portable(data);
}

/// The same code compiled with AVX2 and hardware FMA: `mul_add` becomes one `vfmadd` instead
/// of a libm call and the 8 lanes vectorize. Results are identical (Rust never contracts
/// plain `*`/`+`, and `mul_add` is a single rounding either way).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_avx2_with_fma_unit(data: &mut [f32]) {
    transform_avx2_portable(data);
}

#[inline(always)]
fn transform_avx2_portable(data: &mut [f32]) {
    for block in data.chunks_exact_mut(BLOCK) {
        let (lo, hi) = block.split_at_mut(BLOCK / 2);
        for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
            let radius = (-2.0 * log_f32(1.0 - *a)).sqrt();
            let (sin, cos) = sincos_f32(TWO_PI_F32 * *b);
            // The kernel's final `fmadd(n, std, mean)` with std 1 and mean 0 (turns -0 into +0).
            *a = (radius * cos).mul_add(1.0, 0.0);
            *b = (radius * sin).mul_add(1.0, 0.0);
        }
    }
}

/// The generic `NormalFill16<float>`: the C library's `logf`, `cosf`, `sinf` (Rust's `f32`
/// methods call the platform libm), angle computed in double and rounded to float, no
/// contraction (the generic x86-64 build has no FMA unit to contract into).
fn transform_generic(data: &mut [f32]) {
    for block in data.chunks_exact_mut(BLOCK) {
        let (lo, hi) = block.split_at_mut(BLOCK / 2);
        for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
            let radius = (-2.0 * (1.0 - *a).ln()).sqrt();
            let theta = (TWO_PI_F64 * f64::from(*b)) as f32;
            *a = (radius * theta.cos()).mul_add(1.0, 0.0);
            *b = (radius * theta.sin()).mul_add(1.0, 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_fma_build_matches_the_portable_one_bit_for_bit() {
        // On x86-64 with AVX2+FMA `transform_blocks` runs the vectorized build; the portable
        // build (libm `fmaf` for `mul_add`) must give the same bits. Every 24-bit uniform pair
        // shape is covered by a strided sweep including the endpoints.
        let mut uniforms = Vec::with_capacity(1 << 16);
        let mut k = 0u32;
        while uniforms.len() < (1 << 16) {
            uniforms.push((k % (1 << 24)) as f32 * (1.0 / 16_777_216.0));
            k = k.wrapping_add(16_777_213);
        }
        uniforms[0] = 0.0;
        uniforms[8] = 1.0 - 1.0 / 16_777_216.0;
        let mut dispatched = uniforms.clone();
        transform_blocks(&mut dispatched, TorchKernel::Avx2);
        let mut portable = uniforms;
        transform_avx2_portable(&mut portable);
        let same = dispatched
            .iter()
            .zip(&portable)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same);
    }
}
