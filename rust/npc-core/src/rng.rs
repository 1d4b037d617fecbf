//! Torch-compatible initial noise:
//! `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))` reproduced bit for
//! bit, without torch.
//!
//! What torch does (read from torch 2.15's `ATen/native/cpu/DistributionTemplates.h`,
//! `ATen/core/DistributionsHelper.h`, `ATen/core/TransformationHelper.h`, `CPUGeneratorImpl`,
//! and confirmed against torch by `tests/test_rng.py`):
//!
//! * **Generator.** `manual_seed(seed)` builds `std::mt19937` from the seed's low 32 bits
//!   (seeds 2^32 apart give the same stream) and clears the cached normal sample. `random()`
//!   is one 32-bit word; `random64()` is two words, the first one as the high half.
//! * **Uniforms.** A float uniform is `(word & (2^24 - 1)) * 2^-24`; a double uniform is
//!   `(random64() & (2^53 - 1)) * 2^-53`.
//! * **numel >= 16, float32** (`normal_fill`): the whole buffer is filled with float uniforms
//!   first; then each block of 16 is transformed in place by Box-Muller over the pairs
//!   (j, j+8): `u1 = 1 - d[j]`, `u2 = d[j+8]`, `r = sqrt(-2 * log(u1))`, `theta = 2pi_f32 * u2`,
//!   `d[j] = fma(r*cos(theta), std, mean)`, `d[j+8] = fma(r*sin(theta), std, mean)`. When
//!   `numel % 16 != 0` the **last 16 elements are redrawn** from 16 fresh uniforms and
//!   transformed again (they overlap the last full block).
//! * **numel >= 16, float16 / bfloat16**: the same transform in float32 (torch's opmath type),
//!   but uniforms are drawn 16 at a time into a scratch block per output block (so the tail
//!   block uses the words right after the last full block, not after `numel` words), and each
//!   result is rounded to the target type (round to nearest even). This is torch 2.15's code;
//!   older torch releases computed these dtypes in half precision from 11-bit (float16) or
//!   8-bit (bfloat16) uniforms, so their float16/bfloat16 noise differs (float32 is unchanged).
//! * **numel < 16, every dtype**: element by element `normal_distribution<double>`:
//!   `u1, u2` double uniforms, `r = sqrt(-2 * log1p(-u2))`, `theta = 2*pi*u1`; return
//!   `r*cos(theta)` and cache `r*sin(theta)` in the generator for the next element. The double
//!   is rounded to float32, then (for float16/bfloat16) to the target type.
//!
//! **Which log/sin/cos: two torch kernels.** torch compiles the float32 Box-Muller twice and
//! picks by CPU; the two differ in the low bits of some elements, by up to a few 1e-6
//! ([`TorchKernel`]):
//!
//! * [`TorchKernel::Avx2`] (default), torch on x86-64 CPUs with AVX2, and on AVX-512 CPUs
//!   (same bits: `ATEN_CPU_CAPABILITY=avx2` and `avx512` agree): `normal_fill_16_AVX2`
//!   evaluates `log`, `sin`, `cos` with the Cephes single-precision algorithms of
//!   `avx_mathfun.h`, contracted into FMAs by GCC, and the angle `2pi_f32 * u2` in float.
//!   [`cephes_f32`] reproduces those roundings with plain float arithmetic and `mul_add`, so
//!   this is exact on every platform.
//! * [`TorchKernel::Generic`], torch on CPUs without AVX2 (or with `ATEN_CPU_CAPABILITY=default`):
//!   the C library's `logf`/`cosf`/`sinf`, the angle computed in double and rounded to float.
//!   Rust's `f32::ln/cos/sin` call the platform libm, so this is exact where this process uses
//!   the same libm as torch (glibc on Linux, verified); elsewhere it may differ in last bits.
//!
//! The `numel < 16` path uses double-precision `log1p`/`sin`/`cos` from the platform's libm in
//! both kernels, as torch does; after rounding to float32 the libm choice practically never shows.
//! The accuracy of the Cephes functions (log <= 1 ulp, sin/cos <= 1.5 ulp away from their zeros)
//! is measured by `cephes_f32`'s tests; it is what torch computes, not a target of its own.

mod box_muller;
pub mod cephes_f32;
pub mod mt19937;

use crate::error::{Error, Result};
use half::{bf16, f16, slice::HalfFloatSliceExt};
pub use mt19937::Mt19937;

/// Element types `randn` can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseDType {
    Float32,
    Float16,
    BFloat16,
}

impl NoiseDType {
    /// Parses torch's dtype names (`"float32"`, `"float16"`/`"half"`, `"bfloat16"`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "float32" | "float" => Ok(NoiseDType::Float32),
            "float16" | "half" => Ok(NoiseDType::Float16),
            "bfloat16" => Ok(NoiseDType::BFloat16),
            other => Err(Error::InvalidInput(format!(
                "randn dtype must be one of float32, float16, bfloat16, got {other:?}"
            ))),
        }
    }
}

/// Which of torch's two float32 Box-Muller kernels to reproduce. torch picks one by CPU:
/// `Avx2` on x86-64 CPUs with AVX2 (and AVX-512), `Generic` elsewhere (or with
/// `ATEN_CPU_CAPABILITY=default`). They differ in the last bits of some elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TorchKernel {
    /// `normal_fill_16_AVX2`: Cephes float log/sincos with GCC's FMA contractions. Exact on
    /// every platform (pure float arithmetic plus `mul_add`).
    #[default]
    Avx2,
    /// The generic kernel: C library `logf`/`cosf`/`sinf`. Exact only where this process's
    /// libm is the one torch runs with (glibc on Linux for the official wheels).
    Generic,
}

impl TorchKernel {
    /// Parses `"avx2"` or `"generic"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "avx2" => Ok(TorchKernel::Avx2),
            "generic" => Ok(TorchKernel::Generic),
            other => Err(Error::InvalidInput(format!(
                "randn kernel must be \"avx2\" or \"generic\", got {other:?}"
            ))),
        }
    }
}

/// Tensors with fewer elements than this take torch's per-element double path.
pub const BLOCK: usize = 16;

/// The state of `torch.Generator("cpu")`: the Mersenne Twister and the cached second sample of
/// the per-element double normal. Calls on one generator continue its stream, as in torch.
#[derive(Debug, Clone)]
pub struct TorchCpuGenerator {
    engine: Mt19937,
    next_double_normal: Option<f64>,
    kernel: TorchKernel,
}

impl TorchCpuGenerator {
    /// `torch.Generator("cpu").manual_seed(seed)`; only the low 32 bits of `seed` matter.
    pub fn new(seed: u64) -> Self {
        Self::with_kernel(seed, TorchKernel::Avx2)
    }

    /// As [`TorchCpuGenerator::new`], reproducing the given torch kernel.
    pub fn with_kernel(seed: u64, kernel: TorchKernel) -> Self {
        TorchCpuGenerator {
            engine: Mt19937::new(seed as u32),
            next_double_normal: None,
            kernel,
        }
    }

    /// torch's `random()`: one 32-bit word.
    #[inline]
    pub fn random_u32(&mut self) -> u32 {
        self.engine.next_u32()
    }

    /// torch's `random64()`: two words, the first one in the high half.
    #[inline]
    pub fn random_u64(&mut self) -> u64 {
        let hi = self.engine.next_u32() as u64;
        let lo = self.engine.next_u32() as u64;
        (hi << 32) | lo
    }

    /// `uniform_real_distribution<float>(0, 1)`: 24 random bits.
    #[inline]
    pub fn uniform_f32(&mut self) -> f32 {
        uniform_f32_from_word(self.random_u32())
    }

    /// `out.len()` successive [`TorchCpuGenerator::uniform_f32`] draws, in bulk.
    pub fn fill_uniform_f32(&mut self, out: &mut [f32]) {
        self.engine.fill_mapped(out, uniform_f32_from_word);
    }

    /// `uniform_real_distribution<double>(0, 1)`: 53 random bits.
    #[inline]
    pub fn uniform_f64(&mut self) -> f64 {
        (self.random_u64() & ((1u64 << 53) - 1)) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `normal_distribution<double>(0, 1)`, with torch's one-sample cache.
    pub fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached * 1.0 + 0.0;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let radius = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(radius * theta.sin());
        // `* std + mean` with std 1, mean 0: also turns -0.0 into +0.0 as torch does.
        radius * theta.cos() * 1.0 + 0.0
    }

    /// Fills `out` like `torch.randn(out.len(), generator=self)` in float32.
    pub fn fill_randn_f32(&mut self, out: &mut [f32]) {
        let n = out.len();
        if n < BLOCK {
            for v in out.iter_mut() {
                *v = self.normal_f64() as f32;
            }
            return;
        }
        self.fill_uniform_f32(out);
        let full = n / BLOCK * BLOCK;
        box_muller::transform_blocks(&mut out[..full], self.kernel);
        if n % BLOCK != 0 {
            let tail = &mut out[n - BLOCK..];
            self.fill_uniform_f32(tail);
            box_muller::transform_blocks(tail, self.kernel);
        }
    }

    /// Fills `out` like `torch.randn(..., dtype=float16)`.
    pub fn fill_randn_f16(&mut self, out: &mut [f16]) {
        self.fill_randn_narrow(out, |src, dst| dst.convert_from_f32_slice(src));
    }

    /// Fills `out` like `torch.randn(..., dtype=bfloat16)`.
    pub fn fill_randn_bf16(&mut self, out: &mut [bf16]) {
        self.fill_randn_narrow(out, |src, dst| dst.convert_from_f32_slice(src));
    }

    /// The float16/bfloat16 path: float32 math, then rounding to the target type (nearest
    /// even). torch draws 16 uniforms per output block, so the tail block takes the 16 words
    /// right after the last full block; `scratch` holds the full blocks then the tail block in
    /// that draw order.
    fn fill_randn_narrow<T: Copy>(&mut self, out: &mut [T], narrow: fn(&[f32], &mut [T])) {
        let n = out.len();
        if n < BLOCK {
            for v in out.iter_mut() {
                let value = self.normal_f64() as f32;
                narrow(std::slice::from_ref(&value), std::slice::from_mut(v));
            }
            return;
        }
        let full = n / BLOCK * BLOCK;
        let drawn = if n % BLOCK == 0 { full } else { full + BLOCK };
        let mut scratch = vec![0f32; drawn];
        self.fill_uniform_f32(&mut scratch);
        box_muller::transform_blocks(&mut scratch, self.kernel);
        narrow(&scratch[..full], &mut out[..full]);
        if drawn > full {
            narrow(&scratch[full..], &mut out[n - BLOCK..]);
        }
    }
}

/// torch's float uniform from one word: the low 24 bits times 2^-24 (exact).
#[inline(always)]
fn uniform_f32_from_word(word: u32) -> f32 {
    (word & 0x00ff_ffff) as f32 * (1.0 / 16_777_216.0)
}

/// `torch.randn(numel, generator=torch.Generator("cpu").manual_seed(seed))` as float32.
pub fn randn_f32(numel: usize, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; numel];
    TorchCpuGenerator::new(seed).fill_randn_f32(&mut out);
    out
}

/// As [`randn_f32`] with `dtype=torch.float16`.
pub fn randn_f16(numel: usize, seed: u64) -> Vec<f16> {
    let mut out = vec![f16::ZERO; numel];
    TorchCpuGenerator::new(seed).fill_randn_f16(&mut out);
    out
}

/// As [`randn_f32`] with `dtype=torch.bfloat16`.
pub fn randn_bf16(numel: usize, seed: u64) -> Vec<bf16> {
    let mut out = vec![bf16::ZERO; numel];
    TorchCpuGenerator::new(seed).fill_randn_bf16(&mut out);
    out
}

/// Number of elements of `shape`, rejecting overflow.
pub fn numel(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        acc.checked_mul(d).ok_or_else(|| {
            Error::InvalidInput(format!("randn shape {shape:?} has too many elements"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_uses_only_the_low_32_bits() {
        assert_eq!(randn_f32(40, 7), randn_f32(40, 7 + (1u64 << 32)));
        assert_ne!(randn_f32(40, 7), randn_f32(40, 8));
    }

    #[test]
    fn random64_puts_the_first_word_high() {
        let mut words = TorchCpuGenerator::new(3);
        let (a, b) = (words.random_u32() as u64, words.random_u32() as u64);
        assert_eq!(TorchCpuGenerator::new(3).random_u64(), (a << 32) | b);
    }

    #[test]
    fn uniforms_are_in_the_unit_interval_with_24_bits() {
        let mut g = TorchCpuGenerator::new(0);
        for _ in 0..1000 {
            let u = g.uniform_f32();
            assert!((0.0..1.0).contains(&u));
            assert_eq!((u * 16_777_216.0).fract(), 0.0);
        }
    }

    #[test]
    fn tail_redraws_the_last_block_and_keeps_the_prefix() {
        // Elements before the last 16 are the same as for the next multiple of 16 below.
        let a = randn_f32(37, 5);
        let b = randn_f32(32, 5);
        assert_eq!(a[..21], b[..21]);
        assert_ne!(a[21..32], b[21..32]);
    }

    #[test]
    fn small_tensors_share_pairs_through_the_cache() {
        // Odd sizes below 16: each pair (cos, sin) comes from one pair of double uniforms, so
        // a 3-element draw starts with the 2-element draw.
        assert_eq!(randn_f32(3, 11)[..2], randn_f32(2, 11)[..]);
        let mut g = TorchCpuGenerator::new(11);
        let mut one = [0f32; 1];
        g.fill_randn_f32(&mut one);
        let mut next = [0f32; 1];
        g.fill_randn_f32(&mut next);
        assert_eq!([one[0], next[0]], randn_f32(2, 11)[..]);
    }

    #[test]
    fn samples_look_standard_normal() {
        let v = randn_f32(1 << 16, 42);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn narrow_types_round_the_float_path_values_for_whole_blocks() {
        // For numel a multiple of 16 both paths draw the same words in the same order.
        let f = randn_f32(64, 9);
        let h = randn_f16(64, 9);
        let b = randn_bf16(64, 9);
        for i in 0..64 {
            assert_eq!(h[i], f16::from_f32(f[i]));
            assert_eq!(b[i], bf16::from_f32(f[i]));
        }
    }

    #[test]
    fn kernels_share_the_stream_and_differ_only_in_low_bits() {
        let mut a = vec![0f32; 4096];
        let mut b = vec![0f32; 4096];
        TorchCpuGenerator::with_kernel(1, TorchKernel::Avx2).fill_randn_f32(&mut a);
        TorchCpuGenerator::with_kernel(1, TorchKernel::Generic).fill_randn_f32(&mut b);
        assert_ne!(a, b);
        // The angles differ by up to |theta| * 2^-24 (float vs double-rounded 2*pi*u2), times a
        // radius of at most ~6 for 24-bit uniforms: a few 1e-6 at most.
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
        }
        assert_eq!(TorchKernel::parse("generic").unwrap(), TorchKernel::Generic);
        assert!(matches!(
            TorchKernel::parse("sse"),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn dtype_names_parse_and_bad_ones_are_rejected() {
        assert_eq!(NoiseDType::parse("float16").unwrap(), NoiseDType::Float16);
        assert!(matches!(
            NoiseDType::parse("int8"),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn numel_rejects_overflow() {
        assert_eq!(numel(&[2, 3, 4]).unwrap(), 24);
        assert_eq!(numel(&[]).unwrap(), 1);
        assert!(numel(&[usize::MAX, 2]).is_err());
    }
}
