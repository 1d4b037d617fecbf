//! Binding of `npc_core::score`: masked mean pooling and the ragged salient score.
//!
//! numpy inputs are read in place (`as_slice` on C-contiguous arrays); a non-contiguous array is
//! copied once into a contiguous buffer (the Python wrappers pass contiguous arrays, so this only
//! happens for direct callers). The GIL is released while the core works.

use std::borrow::Cow;

use npc_core::score::{self, HiddenElement, Matrix, RaggedInput};
use npc_core::Error;
use numpy::ndarray::{Array2, Dimension};
use numpy::{Element, IntoPyArray, PyArray1, PyArray2, PyReadonlyArray, PyReadonlyArray1};
use numpy::{PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::PyNpcError;

/// The array's data in row-major order: borrowed when C-contiguous, else copied.
fn contiguous<'a, T: Element + Copy, D: Dimension>(
    a: &'a PyReadonlyArray<'_, T, D>,
) -> Cow<'a, [T]> {
    match a.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

fn pool<'py, T: HiddenElement + Element>(
    py: Python<'py>,
    hidden: PyReadonlyArray3<'py, T>,
    mask: PyReadonlyArray2<'py, i64>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let [b, l, d] = [hidden.shape()[0], hidden.shape()[1], hidden.shape()[2]];
    if mask.shape() != [b, l] {
        return Err(PyNpcError(Error::Shape(format!(
            "mask has shape {:?}, expected [{b}, {l}] to match hidden [{b}, {l}, {d}]",
            mask.shape()
        )))
        .into());
    }
    let (h, m) = (contiguous(&hidden), contiguous(&mask));
    let pooled = py
        .detach(|| score::mean_pool(&h, &m, b, l, d))
        .map_err(PyNpcError)?;
    let pooled = Array2::from_shape_vec((b, d), pooled).expect("core returns [batch, dim]");
    Ok(pooled.into_pyarray(py))
}

/// Masked mean of float32 hidden states `[B, L, D]` over `mask [B, L]` -> float32 `[B, D]`.
#[pyfunction]
fn mean_pool_f32<'py>(
    py: Python<'py>,
    hidden: PyReadonlyArray3<'py, f32>,
    mask: PyReadonlyArray2<'py, i64>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    pool(py, hidden, mask)
}

/// Masked mean of float16 hidden states `[B, L, D]` over `mask [B, L]` -> float32 `[B, D]`.
#[pyfunction]
fn mean_pool_f16<'py>(
    py: Python<'py>,
    hidden: PyReadonlyArray3<'py, half::f16>,
    mask: PyReadonlyArray2<'py, i64>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    pool(py, hidden, mask)
}

fn offsets(name: &str, a: &PyReadonlyArray1<'_, i64>) -> Result<Vec<usize>, PyNpcError> {
    a.as_array()
        .iter()
        .map(|&v| {
            usize::try_from(v).map_err(|_| {
                PyNpcError(Error::InvalidInput(format!(
                    "{name} holds a negative value ({v})"
                )))
            })
        })
        .collect()
}

type ScoreArrays<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<i64>>,
);

/// Salient scores of many prompts' candidates. Embeddings are float32 `[rows, D]`; prompt `i` owns
/// rows `offsets[i]..offsets[i+1]` of each group. Returns `(s_qty, s_obj, s_cand, score, order)`,
/// flat per candidate; `order` holds each prompt's local candidate indices, best first.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn salient_scores_ragged<'py>(
    py: Python<'py>,
    prompt_embs: PyReadonlyArray2<'py, f32>,
    cand_embs: PyReadonlyArray2<'py, f32>,
    cand_phrases: PyReadonlyArray2<'py, f32>,
    cand_offsets: PyReadonlyArray1<'py, i64>,
    qty_phrases: PyReadonlyArray2<'py, f32>,
    qty_offsets: PyReadonlyArray1<'py, i64>,
    obj_phrases: PyReadonlyArray2<'py, f32>,
    obj_offsets: PyReadonlyArray1<'py, i64>,
) -> PyResult<ScoreArrays<'py>> {
    let offs = [
        offsets("cand_offsets", &cand_offsets)?,
        offsets("qty_offsets", &qty_offsets)?,
        offsets("obj_offsets", &obj_offsets)?,
    ];
    let data = [
        &prompt_embs,
        &cand_embs,
        &cand_phrases,
        &qty_phrases,
        &obj_phrases,
    ]
    .map(contiguous);
    let shapes = [
        &prompt_embs,
        &cand_embs,
        &cand_phrases,
        &qty_phrases,
        &obj_phrases,
    ]
    .map(|a| (a.shape()[0], a.shape()[1]));
    let names = [
        "prompt_embs",
        "cand_embs",
        "cand_phrases",
        "qty_phrases",
        "obj_phrases",
    ];
    let scores = py
        .detach(|| {
            let m = |i: usize| Matrix::new(names[i], &data[i], shapes[i].0, shapes[i].1);
            score::salient_scores_ragged(&RaggedInput {
                prompt_embs: m(0)?,
                cand_embs: m(1)?,
                cand_phrases: m(2)?,
                cand_offsets: &offs[0],
                qty_phrases: m(3)?,
                qty_offsets: &offs[1],
                obj_phrases: m(4)?,
                obj_offsets: &offs[2],
            })
        })
        .map_err(PyNpcError)?;
    let order: Vec<i64> = scores.order.iter().map(|&i| i as i64).collect();
    Ok((
        scores.s_qty.into_pyarray(py),
        scores.s_obj.into_pyarray(py),
        scores.s_cand.into_pyarray(py),
        scores.score.into_pyarray(py),
        order.into_pyarray(py),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mean_pool_f32, m)?)?;
    m.add_function(wrap_pyfunction!(mean_pool_f16, m)?)?;
    m.add_function(wrap_pyfunction!(salient_scores_ragged, m)?)?;
    Ok(())
}
