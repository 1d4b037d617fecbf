//! `npc_rt._npc_rt`: the private extension module. No logic lives here: each file converts
//! Python/numpy values to core types, releases the GIL around core work, and maps errors.

use pyo3::prelude::*;

mod convert;
mod errors;
mod prompt;
mod rng;
mod score;
mod tokenize;

#[pymodule]
fn _npc_rt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    tokenize::register(m)?;
    convert::register(m)?;
    prompt::register(m)?;
    score::register(m)?;
    rng::register(m)?;
    Ok(())
}
