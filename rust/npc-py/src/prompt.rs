//! Binding of `npc_core::prompt`: quantity/object extraction and candidate cleaning. Strings in,
//! plain tuples and lists out; `npc_rt/prompt.py` wraps them in dataclasses.

use npc_core::prompt::{self, PromptTerms};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Batches at least this large are processed with the GIL released (and in parallel).
const DETACH_MIN_ITEMS: usize = 64;

type TermsTuple = (Vec<String>, Vec<String>, bool);

fn as_tuple(t: PromptTerms) -> TermsTuple {
    (t.quantities, t.objects, t.fallback)
}

/// `(quantities, objects, fallback)` of one prompt.
#[pyfunction]
fn analyze_prompt(prompt: &str) -> TermsTuple {
    as_tuple(prompt::analyze_prompt(prompt))
}

/// `analyze_prompt` over a list of prompts, in parallel, returned flat to keep the number of
/// Python containers small (thousands of small lists make the garbage collector the bottleneck):
/// `(words, counts, fallbacks)` where prompt `i` has `counts[2i]` quantities then `counts[2i+1]`
/// objects, taken in order from `words`.
#[pyfunction]
fn analyze_prompts(py: Python<'_>, prompts: Vec<String>) -> (Vec<String>, Vec<usize>, Vec<bool>) {
    let run = || prompt::analyze_prompts(&prompts);
    let terms = if prompts.len() >= DETACH_MIN_ITEMS {
        py.detach(run)
    } else {
        run()
    };
    let mut words = Vec::new();
    let mut counts = Vec::with_capacity(2 * terms.len());
    let mut fallbacks = Vec::with_capacity(terms.len());
    for t in terms {
        counts.push(t.quantities.len());
        counts.push(t.objects.len());
        fallbacks.push(t.fallback);
        words.extend(t.quantities);
        words.extend(t.objects);
    }
    (words, counts, fallbacks)
}

/// The cleaned candidate list (first `k` kept; `None`: all).
#[pyfunction]
#[pyo3(signature = (phrases, k = None))]
fn clean_candidates(phrases: Vec<String>, k: Option<usize>) -> Vec<String> {
    prompt::clean_candidates(&phrases, k)
}

/// `clean_candidates` over many lists, in parallel.
#[pyfunction]
#[pyo3(signature = (lists, k = None))]
fn clean_candidates_batch(
    py: Python<'_>,
    lists: Vec<Vec<String>>,
    k: Option<usize>,
) -> Vec<Vec<String>> {
    let run = || prompt::clean_candidates_batch(&lists, k);
    if lists.len() >= DETACH_MIN_ITEMS {
        py.detach(run)
    } else {
        run()
    }
}

/// Candidates first, then the fallback negatives, distinct, at most `k`.
#[pyfunction]
fn top_up(candidates: Vec<String>, k: usize) -> Vec<String> {
    prompt::top_up(&candidates, k)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(analyze_prompt, m)?)?;
    m.add_function(wrap_pyfunction!(analyze_prompts, m)?)?;
    m.add_function(wrap_pyfunction!(clean_candidates, m)?)?;
    m.add_function(wrap_pyfunction!(clean_candidates_batch, m)?)?;
    m.add_function(wrap_pyfunction!(top_up, m)?)?;
    let py = m.py();
    m.add(
        "FALLBACK_NEGATIVES",
        PyTuple::new(py, prompt::FALLBACK_NEGATIVES)?,
    )?;
    m.add("STOP_WORDS", PyTuple::new(py, prompt::STOP_WORDS)?)?;
    m.add("NEGATION_WORDS", PyTuple::new(py, prompt::NEGATION_WORDS)?)?;
    m.add("MAX_PHRASE_WORDS", prompt::MAX_PHRASE_WORDS)?;
    m.add("MAX_COUNT", prompt::MAX_COUNT)?;
    Ok(())
}
