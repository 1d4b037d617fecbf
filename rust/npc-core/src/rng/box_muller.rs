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
