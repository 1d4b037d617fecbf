//! torch's float32 Box-Muller block transform (`normal_fill_16_AVX2`) for standard normals.

use super::cephes_f32::{log_f32, sincos_f32};
use super::BLOCK;

/// `_mm256_set1_ps(2.0f * c10::pi<double>)`: 2*pi in double, rounded to float.
const TWO_PI: f32 = (2.0 * std::f64::consts::PI) as f32;

/// Transforms each block of 16 uniforms in place: pairs (j, j+8) give (r cos, r sin).
/// `data.len()` must be a multiple of 16.
pub(super) fn transform_blocks(data: &mut [f32]) {
    debug_assert_eq!(data.len() % BLOCK, 0);
    for block in data.chunks_exact_mut(BLOCK) {
        let (lo, hi) = block.split_at_mut(BLOCK / 2);
        for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
            let u1 = 1.0 - *a;
            let u2 = *b;
            let radius = (-2.0 * log_f32(u1)).sqrt();
            let (sin, cos) = sincos_f32(TWO_PI * u2);
            // The kernel's final `fmadd(n, std, mean)` with std 1 and mean 0.
            *a = (radius * cos).mul_add(1.0, 0.0);
            *b = (radius * sin).mul_add(1.0, 0.0);
        }
    }
}
