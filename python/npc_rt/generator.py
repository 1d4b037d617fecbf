"""The contract between image generation (pipelines over exported engines) and the NPC loop.

A pipeline for any backbone (FLUX, SDXL, SD3) satisfies ``ImageGenerator``; the loop, the eval
harness and the benchmarks only ever talk to this Protocol, so tests can drive them with a fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from npc_rt.tokenizer import Tokenizer


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters of one image. ``negative_steps=None`` means the family default
    (3 for FLUX, all steps for SDXL/SD3, see docs/npc-method)."""

    steps: int
    height: int
    width: int
    guidance: float
    true_cfg: float
    negative_steps: int | None = None


@dataclass(frozen=True)
class GeneratedImage:
    pixels: np.ndarray  # uint8 [H, W, 3], RGB
    prompt: str
    negative: str | None
    seed: int
    params: GenerationParams
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds: encode, denoise, decode


@runtime_checkable
class ScoringEncoder(Protocol):
    """The text encoder the salient score uses (T5 for FLUX/SD3, CLIP for SDXL)."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Last hidden state ``[N, L, D]`` (float32 or float16) for int64 ids/mask ``[N, L]``."""
        ...


@runtime_checkable
class ImageGenerator(Protocol):
    @property
    def family(self) -> str: ...

    @property
    def manifest_hash(self) -> str: ...

    @property
    def default_params(self) -> GenerationParams: ...

    @property
    def max_candidates_per_batch(self) -> int:
        """Largest K whose 2K guidance rows fit the engine's exported batch profile."""
        ...

    def generate(
        self,
        prompt: str,
        *,
        seed: int,
        negatives: Sequence[str | None] = (None,),
        params: GenerationParams | None = None,
    ) -> list[GeneratedImage]:
        """One image per entry of ``negatives`` (``None``: no negative), all from the same seed,
        sampled in one batched call; equal to separate calls with one negative each."""
        ...

    def scoring_encoder(self) -> ScoringEncoder: ...
