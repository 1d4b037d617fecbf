//! Binding of `npc_core::rng`: torch-compatible `randn` (see the core module for the facts).

use crate::errors::{PyNpcError, PyNpcResult};
use npc_core::rng::{self, NoiseDType, TorchCpuGenerator, TorchKernel};
use numpy::PyArray1;
use pyo3::prelude::*;

/// Tensors at least this large are generated with the GIL released.
const DETACH_MIN_NUMEL: usize = 4096;

/// Validates the dtype name and the element count before any work.
fn parse_request(shape: &[usize], dtype: &str) -> PyNpcResult<(NoiseDType, usize)> {
    Ok((NoiseDType::parse(dtype)?, rng::numel(shape)?))
}

fn fill<'py>(
    py: Python<'py>,
    generator: &mut TorchCpuGenerator,
    shape: Vec<usize>,
    dtype: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let (dtype, numel) = parse_request(&shape, dtype)?;
    let run = |g: &mut TorchCpuGenerator, work: &mut (dyn FnMut(&mut TorchCpuGenerator) + Send)| {
        if numel >= DETACH_MIN_NUMEL {
            py.detach(|| work(g));
        } else {
            work(g);
        }
    };
    let flat: Bound<'py, PyAny> = match dtype {
        NoiseDType::Float32 => {
            let mut out = vec![0f32; numel];
            run(generator, &mut |g| g.fill_randn_f32(&mut out));
            PyArray1::from_vec(py, out).into_any()
        }
        NoiseDType::Float16 => {
            let mut out = vec![half::f16::ZERO; numel];
            run(generator, &mut |g| g.fill_randn_f16(&mut out));
            PyArray1::from_vec(py, out).into_any()
        }
        NoiseDType::BFloat16 => {
            // numpy has no bfloat16: return float32 arrays holding the exact bfloat16 values.
            let mut out = vec![half::bf16::ZERO; numel];
            run(generator, &mut |g| g.fill_randn_bf16(&mut out));
            let widened: Vec<f32> = out.iter().map(|v| v.to_f32()).collect();
            PyArray1::from_vec(py, widened).into_any()
        }
    };
    flat.call_method1("reshape", (shape,))
}

/// `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)`.
/// `seed` is the unsigned 64-bit value torch stores (negative seeds already mapped).
/// `kernel` names the torch Box-Muller kernel to reproduce: "avx2" or "generic".
#[pyfunction]
#[pyo3(signature = (shape, seed, dtype = "float32", kernel = "avx2"))]
fn randn<'py>(
    py: Python<'py>,
    shape: Vec<usize>,
    seed: u64,
    dtype: &str,
    kernel: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let kernel = TorchKernel::parse(kernel).map_err(PyNpcError)?;
    let mut generator = TorchCpuGenerator::with_kernel(seed, kernel);
    fill(py, &mut generator, shape, dtype)
}

/// A `torch.Generator("cpu")` seeded with `manual_seed(seed)`: successive `randn` calls continue
/// its stream (and its cached normal sample) exactly as torch does.
#[pyclass(name = "TorchCpuGenerator", module = "npc_rt._npc_rt")]
struct PyTorchCpuGenerator {
    inner: TorchCpuGenerator,
    seed: u64,
}

#[pymethods]
impl PyTorchCpuGenerator {
    #[new]
    #[pyo3(signature = (seed, kernel = "avx2"))]
    fn new(seed: u64, kernel: &str) -> PyResult<Self> {
        let kernel = TorchKernel::parse(kernel).map_err(PyNpcError)?;
        Ok(PyTorchCpuGenerator {
            inner: TorchCpuGenerator::with_kernel(seed, kernel),
            seed,
        })
    }

    /// The seed given at construction (torch's `initial_seed()`).
    fn initial_seed(&self) -> u64 {
        self.seed
    }

    #[pyo3(signature = (shape, dtype = "float32"))]
    fn randn<'py>(
        &mut self,
        py: Python<'py>,
        shape: Vec<usize>,
        dtype: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        fill(py, &mut self.inner, shape, dtype)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(randn, m)?)?;
    m.add_class::<PyTorchCpuGenerator>()?;
    Ok(())
}
