//! Binding of `npc_core::convert`: vocabulary files -> `tokenizer.json`, GIL released.

use std::path::PathBuf;

use npc_core::convert::{self, SentencePieceOptions};
use pyo3::prelude::*;

use crate::errors::PyNpcError;

/// Write the `tokenizer.json` of a CLIP `vocab.json` + `merges.txt`.
#[pyfunction]
fn convert_clip_vocab(
    py: Python<'_>,
    vocab_json: PathBuf,
    merges_txt: PathBuf,
    out_json: PathBuf,
) -> PyResult<()> {
    py.detach(|| convert::convert_clip_vocab(&vocab_json, &merges_txt, &out_json))
        .map_err(PyNpcError)?;
    Ok(())
}

/// Write the T5-style `tokenizer.json` of a sentencepiece unigram `spiece.model`.
#[pyfunction]
#[pyo3(signature = (spiece_model, out_json, *, extra_ids=convert::T5_EXTRA_IDS))]
fn convert_sentencepiece(
    py: Python<'_>,
    spiece_model: PathBuf,
    out_json: PathBuf,
    extra_ids: usize,
) -> PyResult<()> {
    let options = SentencePieceOptions { extra_ids };
    py.detach(|| convert::convert_sentencepiece(&spiece_model, &out_json, &options))
        .map_err(PyNpcError)?;
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert_clip_vocab, m)?)?;
    m.add_function(wrap_pyfunction!(convert_sentencepiece, m)?)?;
    Ok(())
}
