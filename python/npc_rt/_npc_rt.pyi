"""Type stubs for the private extension module ``npc_rt._npc_rt`` (hand-written).

Every function that takes numpy arrays reads them zero-copy and releases the GIL while the Rust
core works. Errors are raised as the classes of ``npc_rt.errors``.
"""

import numpy as np
import numpy.typing as npt

__version__: str
