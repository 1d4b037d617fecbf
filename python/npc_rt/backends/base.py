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
