//! Masked mean pooling of a text encoder's last hidden state: `[B, L, D]` with a `[B, L]` mask to
//! `[B, D]` float32.
//!
//! - Hidden states may be f32 or f16 ([`HiddenElement`]); sums are accumulated in f64 and divided
//!   once, so the result is the correctly rounded f32 of the exact mean for any realistic L, and
//!   right-padding a batch (more masked-out positions) never changes a row's result.
//! - Mask values must be 0 or 1. Positions with mask 0 are never read, so padding may hold anything
//!   (even NaN). A row whose mask selects no token is an error: its mean is undefined.
//! - A NaN or infinity at a selected position is a [`Error::NonFinite`] naming the row.

use rayon::prelude::*;

use super::kernels;
use crate::error::{Error, Result};

/// A hidden-state element type, added a row at a time into f64 sums.
pub trait HiddenElement: Copy + Send + Sync {
    /// `sum[i] += src[i]`; `scratch` (same length) is free working space.
    fn add_to(src: &[Self], sum: &mut [f64], scratch: &mut [f32]);
}

impl HiddenElement for f32 {
    #[inline]
    fn add_to(src: &[f32], sum: &mut [f64], _scratch: &mut [f32]) {
        kernels::add_to_f64(sum, src);
    }
}

impl HiddenElement for half::f16 {
    #[inline]
    fn add_to(src: &[half::f16], sum: &mut [f64], scratch: &mut [f32]) {
        // Uses the F16C instructions when the CPU has them (runtime detection in `half`).
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, scratch);
        kernels::add_to_f64(sum, scratch);
    }
}

fn check_mask(mask: &[i64], len: usize) -> Result<()> {
    for (row, values) in mask.chunks_exact(len.max(1)).enumerate() {
        if let Some(col) = values.iter().position(|&m| m != 0 && m != 1) {
            return Err(Error::InvalidInput(format!(
                "mask[{row}, {col}] = {}: mask values must be 0 or 1",
                values[col]
            )));
        }
        if !values.contains(&1) {
            return Err(Error::InvalidInput(format!(
                "mask row {row} selects no token: the mean of an empty set is undefined"
            )));
        }
    }
    Ok(())
}

/// Mean of `hidden[b, l, :]` over the positions `l` where `mask[b, l] == 1`, for every row `b`.
///
/// `hidden` is `[batch, len, dim]` and `mask` is `[batch, len]`, both row-major. Returns
/// `[batch, dim]` row-major.
pub fn mean_pool<T: HiddenElement>(
    hidden: &[T],
    mask: &[i64],
    batch: usize,
    len: usize,
    dim: usize,
) -> Result<Vec<f32>> {
    if dim == 0 || len == 0 {
        return Err(Error::Shape(format!(
            "hidden has shape [{batch}, {len}, {dim}]: sequence length and hidden size must be > 0"
        )));
    }
    let expected = batch.checked_mul(len).and_then(|n| n.checked_mul(dim));
    if expected != Some(hidden.len()) {
        return Err(Error::Shape(format!(
            "hidden has {} elements, expected [{batch}, {len}, {dim}]",
            hidden.len()
        )));
    }
    if mask.len() != batch * len {
        return Err(Error::Shape(format!(
            "mask has {} elements, expected [{batch}, {len}] to match hidden",
            mask.len()
        )));
    }
    check_mask(mask, len)?;
    let mut pooled = vec![0.0f32; batch * dim];
    pooled
        .par_chunks_mut(dim)
        .zip(hidden.par_chunks(len * dim))
        .zip(mask.par_chunks(len))
        .enumerate()
        .try_for_each_init(
            || (vec![0.0f64; dim], vec![0.0f32; dim]),
            |(sum, row), (b, ((out, tokens), row_mask))| {
                sum.fill(0.0);
                let mut count = 0usize;
                for (token, _) in tokens
                    .chunks_exact(dim)
                    .zip(row_mask)
                    .filter(|(_, &m)| m == 1)
                {
                    T::add_to(token, sum, row);
                    count += 1;
                }
                let scale = 1.0 / count as f64;
                for (o, &s) in out.iter_mut().zip(sum.iter()) {
                    *o = (s * scale) as f32;
                }
                if out.iter().all(|x| x.is_finite()) {
                    Ok(())
                } else {
                    Err(Error::NonFinite(format!(
                        "hidden row {b} has NaN or infinity at a position the mask selects"
                    )))
                }
            },
        )?;
    Ok(pooled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn pools_selected_positions_only() {
        // batch 2, len 3, dim 2
        let hidden = [
            1.0,
            2.0,
            3.0,
            4.0,
            f32::NAN,
            9.0,
            5.0,
            6.0,
            7.0,
            8.0,
            9.0,
            10.0,
        ];
        let mask = [1, 1, 0, 0, 0, 1];
        let pooled = mean_pool(&hidden, &mask, 2, 3, 2).unwrap();
        assert_eq!(pooled, vec![2.0, 3.0, 9.0, 10.0]);
    }

    #[test]
    fn f16_matches_f32() {
        let values: Vec<f32> = (0..24).map(|i| (i as f32 - 11.0) * 0.375).collect();
        let halves: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
        let mask = [1, 1, 1, 0, 1, 0, 1, 1];
        assert_eq!(
            mean_pool(&values, &mask, 2, 4, 3).unwrap(),
            mean_pool(&halves, &mask, 2, 4, 3).unwrap()
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let hidden = [0.0f32; 12];
        let err = |r: Result<Vec<f32>>| r.unwrap_err();
        assert!(
            matches!(err(mean_pool(&hidden, &[1; 6], 2, 3, 3)), Error::Shape(m) if m.contains("hidden"))
        );
        assert!(
            matches!(err(mean_pool(&hidden, &[1; 5], 2, 3, 2)), Error::Shape(m) if m.contains("mask"))
        );
        assert!(
            matches!(err(mean_pool(&hidden, &[1, 2, 1, 1, 1, 1], 2, 3, 2)), Error::InvalidInput(m) if m.contains("mask[0, 1]"))
        );
        assert!(
            matches!(err(mean_pool(&hidden, &[1, 1, 1, 0, 0, 0], 2, 3, 2)), Error::InvalidInput(m) if m.contains("row 1"))
        );
        let mut bad = hidden;
        bad[8] = f32::INFINITY;
        assert!(
            matches!(err(mean_pool(&bad, &[1; 6], 2, 3, 2)), Error::NonFinite(m) if m.contains("row 1"))
        );
    }
}
