"""Type stubs for the private extension module ``npc_rt._npc_rt`` (hand-written).

Every function that takes numpy arrays reads them zero-copy and releases the GIL while the Rust
core works. Errors are raised as the classes of ``npc_rt.errors``.
"""

import numpy as np
import numpy.typing as npt

__version__: str

# --- rng (torch-compatible initial noise; see npc_rt.rng) ---

def randn(shape: list[int], seed: int, dtype: str = "float32") -> npt.NDArray[np.generic]:
    """``torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)``.

    ``seed`` is torch's unsigned 64-bit seed (only its low 32 bits matter). dtype ``"float32"`` ->
    float32 array, ``"float16"`` -> float16 array, ``"bfloat16"`` -> float32 array holding the
    exact bfloat16 values (numpy has no bfloat16). The GIL is released for 4096+ elements.
    """

class TorchCpuGenerator:
    """A ``torch.Generator("cpu").manual_seed(seed)`` whose ``randn`` calls continue one stream."""

    def __init__(self, seed: int) -> None: ...
    def initial_seed(self) -> int: ...
    def randn(self, shape: list[int], dtype: str = "float32") -> npt.NDArray[np.generic]: ...
