//! Binding of `npc_core::tokenize`: a native tokenizer class whose batch encode returns numpy
//! int64 `[N, L]` arrays. The texts are copied out of Python once, then the GIL is released for
//! the whole batch; the Rust buffers become the numpy arrays without another copy.

use std::path::PathBuf;

use npc_core::tokenize::{Padding, Preset, TextTokenizer};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;

use crate::errors::PyNpcError;

/// A `tokenizer.json` plus its batch layout (see `npc_rt.Tokenizer` for the public wrapper).
#[pyclass(name = "NativeTokenizer", module = "npc_rt._npc_rt", frozen)]
pub struct PyTokenizer {
    inner: TextTokenizer,
}

fn parse_padding(padding: &str) -> PyResult<Padding> {
    Ok(padding.parse::<Padding>().map_err(PyNpcError)?)
}

type BatchArrays<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<i64>>);

#[pymethods]
impl PyTokenizer {
    #[staticmethod]
    #[pyo3(signature = (path, *, max_length=None, pad_id=None, padding="max_length", truncation=true, add_special_tokens=true))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        max_length: Option<usize>,
        pad_id: Option<u32>,
        padding: &str,
        truncation: bool,
        add_special_tokens: bool,
    ) -> PyResult<Self> {
        let padding = parse_padding(padding)?;
        let inner = py
            .detach(|| {
                TextTokenizer::from_file(
                    &path,
                    max_length,
                    pad_id,
                    padding,
                    truncation,
                    add_special_tokens,
                )
            })
            .map_err(PyNpcError)?;
        Ok(PyTokenizer { inner })
    }

    #[staticmethod]
    #[pyo3(signature = (name, path, *, max_length=None))]
    fn from_preset(
        py: Python<'_>,
        name: &str,
        path: PathBuf,
        max_length: Option<usize>,
    ) -> PyResult<Self> {
        let preset = name.parse::<Preset>().map_err(PyNpcError)?;
        let inner = py
            .detach(|| TextTokenizer::from_preset(preset, &path, max_length))
            .map_err(PyNpcError)?;
        Ok(PyTokenizer { inner })
    }

    /// Names of the presets, in declaration order.
    #[staticmethod]
    fn preset_names() -> Vec<&'static str> {
        Preset::ALL.iter().map(|p| p.name()).collect()
    }

    #[getter]
    fn max_length(&self) -> Option<usize> {
        self.inner.options().max_length
    }

    #[getter]
    fn pad_id(&self) -> u32 {
        self.inner.options().pad_id
    }

    #[getter]
    fn padding(&self) -> &'static str {
        self.inner.options().padding.name()
    }

    #[getter]
    fn truncation(&self) -> bool {
        self.inner.options().truncation
    }

    #[getter]
    fn add_special_tokens(&self) -> bool {
        self.inner.options().add_special_tokens
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    #[getter]
    fn preset(&self) -> Option<&'static str> {
        self.inner.preset().map(Preset::name)
    }

    #[getter]
    fn n_special_tokens(&self) -> usize {
        self.inner.n_special_tokens()
    }

    /// Encode a list of texts into `(input_ids, attention_mask)`, both int64 `[N, L]`.
    #[pyo3(signature = (texts, *, add_special_tokens=None, padding=None))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        add_special_tokens: Option<bool>,
        padding: Option<&str>,
    ) -> PyResult<BatchArrays<'py>> {
        let padding = padding.map(parse_padding).transpose()?;
        let batch = py
            .detach(|| self.inner.encode_batch(&texts, add_special_tokens, padding))
            .map_err(PyNpcError)?;
        let shape = (batch.batch_size, batch.seq_len);
        let ids = Array2::from_shape_vec(shape, batch.input_ids).expect("core returns [N, L]");
        let mask =
            Array2::from_shape_vec(shape, batch.attention_mask).expect("core returns [N, L]");
        Ok((ids.into_pyarray(py), mask.into_pyarray(py)))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenizer>()?;
    Ok(())
}
