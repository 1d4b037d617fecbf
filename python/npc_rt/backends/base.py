"""The backend Protocol: what a sampling loop needs from whatever runs the model components."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """Runs an engine's components by name. IO names are the manifest's (``ComponentSpec``).

    ``run`` takes host arrays (or handles from ``place``) and returns host float32/int64 arrays
    keyed by output name. ``place`` puts an input that stays constant across many ``run`` calls
    (text embeddings, ids) where the backend computes, so a GPU backend uploads it once; host
    backends return it unchanged.
    """

    @property
    def name(self) -> str: ...

    def load(self, components: Sequence[str] | None = None) -> None:
        """Open every component's session/plan now, so a corrupt file fails before sampling."""
        ...

    def run(self, component: str, inputs: Mapping[str, object]) -> dict[str, np.ndarray]: ...

    def place(self, array: np.ndarray) -> object: ...

    def close(self) -> None: ...


@runtime_checkable
class ResidentBackend(Backend, Protocol):
    """A backend that can keep tensors where it computes (a GPU) between component calls.

    ``run_resident`` takes host arrays or values it returned earlier (``place``d inputs or
    outputs of ``run_resident``) and returns opaque values that stay on the device; ``to_host``
    copies one back. The sampling loops use it to keep the latents on the device for a whole
    generation (``npc_rt.resident``). ``prefers_resident`` says whether that pays: true on a GPU,
    false on the CPU, where the host loop does the same work without the graph overhead.

    A value returned by ``run_resident`` stays valid at least until the second next
    ``run_resident`` of the same component: a backend may reuse its output memory after that
    (the TensorRT one alternates two output sets per shape).
    """

    @property
    def prefers_resident(self) -> bool: ...

    def run_resident(self, component: str, inputs: Mapping[str, object]) -> dict[str, object]: ...

    def to_host(self, value: object) -> np.ndarray: ...
