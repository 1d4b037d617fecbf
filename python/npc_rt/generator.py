"""The contract between image generation (pipelines over exported engines) and the NPC loop.

A pipeline for any backbone (FLUX, SDXL, SD3) satisfies ``ImageGenerator``; the loop, the eval
harness and the benchmarks only ever talk to this Protocol, so tests can drive them with a fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from npc_rt.errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from npc_rt.tokenizer import Tokenizer


Pair = tuple[int, int]


def _pair(name: str, value: object, minimum: int) -> Pair:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in value)
    ):
        raise InvalidInputError(f"{name} must be two integers >= {minimum}, got {value!r}")
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class SizeConditioning:
    """SDXL's micro-conditioning: diffusers' ``original_size``, ``crops_coords_top_left``,
    ``target_size`` and their ``negative_*`` counterparts, each ``(height, width)`` or
    ``(top, left)`` in pixels. Sizes left None are the generated image's size (diffusers'
    default). The negative triple conditions the unconditional rows, and is used only when both
    negative sizes are given (otherwise those rows get the positive triple, as in diffusers;
    giving one of the two is refused rather than silently ignored)."""

    original_size: Pair | None = None
    crops_coords_top_left: Pair = (0, 0)
    target_size: Pair | None = None
    negative_original_size: Pair | None = None
    negative_crops_coords_top_left: Pair = (0, 0)
    negative_target_size: Pair | None = None

    def __post_init__(self) -> None:
        for name in (
            "original_size",
            "target_size",
            "negative_original_size",
            "negative_target_size",
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _pair(name, value, 1))
        for name in ("crops_coords_top_left", "negative_crops_coords_top_left"):
            object.__setattr__(self, name, _pair(name, getattr(self, name), 0))
        if (self.negative_original_size is None) != (self.negative_target_size is None):
            raise InvalidInputError(
                "negative_original_size and negative_target_size go together (diffusers ignores "
                "one without the other)"
            )

    def time_ids(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(positive, negative)`` float32 ``[6]`` time ids for an image of ``height x width``."""
        size = (height, width)
        positive = np.array(
            [
                *(self.original_size or size),
                *self.crops_coords_top_left,
                *(self.target_size or size),
            ],
            dtype=np.float32,
        )
        if self.negative_original_size is None or self.negative_target_size is None:
            return positive, positive
        negative = np.array(
            [
                *self.negative_original_size,
                *self.negative_crops_coords_top_left,
                *self.negative_target_size,
            ],
            dtype=np.float32,
        )
        return positive, negative


@dataclass(frozen=True)
class SkipLayerGuidance:
    """SD3's skip-layer guidance (diffusers' ``skip_guidance_layers``,
    ``skip_layer_guidance_scale``, ``_start``, ``_stop``; defaults as diffusers'): on steps i with
    ``steps * start < i < steps * stop`` the prompt is run once more with ``layers`` skipped and
    ``(cond - skipped) * scale`` is added to the guided prediction. Needs CFG (guidance > 1)."""

    layers: tuple[int, ...]
    scale: float = 2.8
    start: float = 0.01
    stop: float = 0.2

    def __post_init__(self) -> None:
        layers = tuple(self.layers) if isinstance(self.layers, (tuple, list)) else None
        if not layers or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in layers
        ):
            raise InvalidInputError(
                f"skip-layer guidance layers must be block indices >= 0, got {self.layers!r}"
            )
        object.__setattr__(self, "layers", tuple(sorted(set(layers))))
        for name in ("scale", "start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise InvalidInputError(
                    f"skip-layer guidance {name} must be a number, got {value!r}"
                )
        if not 0 <= self.start <= self.stop <= 1:
            raise InvalidInputError(
                f"skip-layer guidance needs 0 <= start <= stop <= 1, got {self.start}/{self.stop}"
            )

    def active(self, step: int, steps: int) -> bool:
        """Whether step ``step`` (0-based) of ``steps`` runs the skip pass (diffusers' test)."""
        return steps * self.start < step < steps * self.stop


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
    size_conditioning: SizeConditioning | None = None  # SDXL only
    skip_layer_guidance: SkipLayerGuidance | None = None  # SD3 only


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
