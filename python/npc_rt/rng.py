"""Initial noise identical bit for bit to torch's CPU ``randn``, without torch.

``randn(shape, seed, dtype)`` returns what
``torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)`` returns,
as a numpy array. The work happens in the Rust core (``npc_core::rng``), which documents what torch
does. torch itself has two CPU kernels for this, chosen by the CPU it runs on, and they differ in
the low bits of some elements (by up to a few 1e-6):

* ``kernel="avx2"`` (default): torch on x86-64 CPUs with AVX2 or AVX-512. Reproduced exactly on
  any platform.
* ``kernel="generic"``: torch on CPUs without AVX2 (or with ``ATEN_CPU_CAPABILITY=default``). It
  calls the C library's ``logf``/``cosf``/``sinf``; reproduced exactly where this process uses the
  same libm as torch (glibc on Linux).

dtypes: ``"float32"`` gives ``np.float32``; ``"float16"`` gives ``np.float16``; ``"bfloat16"``
gives ``np.float32`` arrays holding the exact bfloat16 values (numpy has no bfloat16), i.e.
``torch.randn(..., dtype=torch.bfloat16).float()``. float16/bfloat16 follow torch 2.15, which
computes them in float32 and rounds; older torch releases computed them in half precision and
give different values for those dtypes (float32 is the same across versions).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

from npc_rt import _npc_rt
from npc_rt.errors import InvalidInputError, ShapeError

NOISE_DTYPES = ("float32", "float16", "bfloat16")
"""dtype names ``randn`` accepts (torch's names)."""

TORCH_KERNELS = ("avx2", "generic")
"""torch CPU Box-Muller kernels ``randn`` can reproduce (see the module docstring)."""

SEED_MIN = -(2**63)
SEED_MAX = 2**64 - 1
"""torch's ``manual_seed`` accepts this range; negative seeds wrap to ``2**64 + seed``."""


def torch_seed(seed: int) -> int:
    """The unsigned 64-bit seed torch stores for ``manual_seed(seed)``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"seed must be an integer, got {type(seed).__name__}")
    value = int(seed)
    if not SEED_MIN <= value <= SEED_MAX:
        raise InvalidInputError(f"seed must be in [-2**63, 2**64 - 1] as in torch, got {value}")
    return value % 2**64


def noise_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    """Normalises an int or a sequence of ints to a shape tuple of non-negative dimensions."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        dims: Sequence[object] = (shape,)
    elif isinstance(shape, Sequence) and not isinstance(shape, (str, bytes)):
        dims = shape
    else:
        raise ShapeError(f"shape must be an int or a sequence of ints, got {shape!r}")
    out = []
    for d in dims:
        if isinstance(d, bool):
            raise ShapeError(f"shape dimensions must be integers, got {shape!r}")
        try:
            size = operator.index(d)
        except TypeError:
            raise ShapeError(f"shape dimensions must be integers, got {shape!r}") from None
        if size < 0:
            raise ShapeError(f"shape dimensions must be non-negative, got {tuple(shape)!r}")
        out.append(size)
    return tuple(out)


def _check_dtype(dtype: str) -> str:
    if dtype not in NOISE_DTYPES:
        raise InvalidInputError(f"dtype must be one of {', '.join(NOISE_DTYPES)}, got {dtype!r}")
    return dtype


def _check_kernel(kernel: str) -> str:
    if kernel not in TORCH_KERNELS:
        raise InvalidInputError(f"kernel must be one of {', '.join(TORCH_KERNELS)}, got {kernel!r}")
    return kernel


def randn(
    shape: int | Sequence[int], seed: int, dtype: str = "float32", kernel: str = "avx2"
) -> np.ndarray:
    """``torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)``."""
    return _npc_rt.randn(
        list(noise_shape(shape)), torch_seed(seed), _check_dtype(dtype), _check_kernel(kernel)
    )


class TorchCpuGenerator:
    """A ``torch.Generator("cpu").manual_seed(seed)``: successive ``randn`` calls continue one
    stream (including torch's cached normal sample), exactly as the same calls on torch's."""

    def __init__(self, seed: int, kernel: str = "avx2") -> None:
        self._seed = torch_seed(seed)
        self._inner = _npc_rt.TorchCpuGenerator(self._seed, _check_kernel(kernel))

    def initial_seed(self) -> int:
        """The seed as torch reports it (negative seeds wrapped to unsigned)."""
        return self._seed

    def randn(self, shape: int | Sequence[int], dtype: str = "float32") -> np.ndarray:
        """The next ``torch.randn(shape, generator=self, dtype=dtype)``."""
        return self._inner.randn(list(noise_shape(shape)), _check_dtype(dtype))


__all__ = [
    "NOISE_DTYPES",
    "SEED_MAX",
    "SEED_MIN",
    "TORCH_KERNELS",
    "TorchCpuGenerator",
    "noise_shape",
    "randn",
    "torch_seed",
]
