//! Maps `npc_core::Error` onto the Python exception tree defined in `npc_rt/errors.py`.
//!
//! The classes live in Python (so they can inherit from both `NpcError` and the matching builtin,
//! e.g. `ValueError`); they are looked up once and cached.

use npc_core::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Newtype so `?` converts core errors into Python exceptions (orphan rule).
pub struct PyNpcError(pub Error);

impl From<Error> for PyNpcError {
    fn from(e: Error) -> Self {
        PyNpcError(e)
    }
}

fn class_name(e: &Error) -> &'static str {
    match e {
        Error::InvalidInput(_) => "InvalidInputError",
        Error::Shape(_) => "ShapeError",
        Error::NonFinite(_) => "NonFiniteError",
        Error::Tokenizer(_) => "TokenizerError",
        Error::Io(_) => "NpcIOError",
    }
}

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn exception_type<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module =
        ERRORS_MODULE.get_or_try_init(py, || py.import("npc_rt.errors").map(|m| m.unbind()))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

impl From<PyNpcError> for PyErr {
    fn from(err: PyNpcError) -> PyErr {
        Python::attach(|py| match exception_type(py, class_name(&err.0)) {
            Ok(ty) => PyErr::from_type(ty, err.0.to_string()),
            Err(lookup) => PyRuntimeError::new_err(format!("{} (and {lookup})", err.0)),
        })
    }
}

pub type PyNpcResult<T> = Result<T, PyNpcError>;
