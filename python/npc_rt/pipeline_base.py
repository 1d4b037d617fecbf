"""What every backbone's pipeline shares: request checks, parameter resolution, splitting K
candidates into batches the engine profile holds, and turning float samples into
``GeneratedImage``s. A family pipeline supplies only its sampling of one batch."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from npc_rt.backends.base import Backend
from npc_rt.engine import Engine
from npc_rt.errors import InvalidInputError, NonFiniteError
from npc_rt.families.flux import check_prompt
from npc_rt.generator import GeneratedImage, GenerationParams
from npc_rt.images import to_uint8


@dataclass(frozen=True, eq=False)
class Samples:
    """Float images ``[K, H, W, 3]`` in [0, 1] (before uint8 quantisation) and the stage timings
    (seconds) of their call."""

    images: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


class _LruCache:
    """Text embeddings by text, least recently used evicted first; counts hits and misses."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item

    def put(self, key: str, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class BatchedPipeline:
    """Base of the family pipelines. Subclasses set ``_engine``, ``_backend``, ``_config`` (with
    ``check_size`` and ``max_batch``) and ``_cache``, and provide ``_backbone``,
    ``default_params``, ``default_negative_steps`` and ``_sample_batch``; ``_check_params`` may
    add family rules."""

    _engine: Engine
    _backend: Backend
    _cache: _LruCache

    @property
    def manifest_hash(self) -> str:
        return self._engine.manifest_hash

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def text_cache(self) -> _LruCache:
        return self._cache

    def _batch_max(self, component: str) -> int:
        dims = self._engine.component(component).dims
        return dims["batch"].max if "batch" in dims else self._config.max_batch

    @property
    def _backbone(self) -> str:
        """The denoising component's name (the one guidance batches rows for)."""
        raise NotImplementedError

    @property
    def max_candidates_per_batch(self) -> int:
        """Candidates one backbone call holds: two rows each (cond and negative/uncond)."""
        return max(1, self._batch_max(self._backbone) // 2)

    def default_negative_steps(self, steps: int) -> int:
        raise NotImplementedError

    def _check_params(self, params: GenerationParams) -> None:
        """Family-specific parameter rules, beyond the shared ones."""

    def _candidates_per_call(self, params: GenerationParams) -> int:
        """How many candidates one batched sampling call takes with these parameters."""
        return self.max_candidates_per_batch

    def _sample_batch(
        self, prompt: str, seed: int, negatives: list[str | None], params: GenerationParams
    ) -> Samples:
        raise NotImplementedError

    def generate(
        self,
        prompt: str,
        *,
        seed: int,
        negatives: Sequence[str | None] = (None,),
        params: GenerationParams | None = None,
    ) -> list[GeneratedImage]:
        """One uint8 image per negative (``ImageGenerator.generate``); all from one batched
        sampling call, so every image carries that call's (shared) stage timings."""
        params = self.resolve_params(params)
        samples = self.sample(prompt, seed=seed, negatives=negatives, params=params)
        pixels = to_uint8(samples.images)
        return [
            GeneratedImage(
                pixels=pixels[k],
                prompt=prompt,
                negative=negatives[k],
                seed=seed,
                params=params,
                timings=dict(samples.timings),
            )
            for k in range(len(negatives))
        ]

    def resolve_params(self, params: GenerationParams | None) -> GenerationParams:
        """Fill the family default for ``negative_steps`` and check every value."""
        params = params or self.default_params
        steps = params.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InvalidInputError(f"steps must be a positive integer, got {steps!r}")
        n = params.negative_steps
        if n is None:
            n = self.default_negative_steps(steps)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidInputError(f"negative_steps must be a non-negative integer, got {n!r}")
        if n > steps:
            raise InvalidInputError(f"negative_steps {n} is larger than steps {steps}")
        for name in ("guidance", "true_cfg"):
            value = getattr(params, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise NonFiniteError(f"{name} must be a finite number, got {value!r}")
        if params.size_conditioning is not None and self.family != "sdxl":
            raise InvalidInputError(
                "size_conditioning (original/target size, crop) is SDXL's micro-conditioning; "
                f"a {self.family} engine has no time ids"
            )
        if params.skip_layer_guidance is not None and self.family != "sd3":
            raise InvalidInputError(
                f"skip_layer_guidance is SD3's; a {self.family} engine does not support it"
            )
        self._check_params(params)
        self._config.check_size(params.height, params.width)
        return replace(params, negative_steps=n)

    def sample(
        self,
        prompt: str,
        *,
        seed: int,
        negatives: Sequence[str | None] = (None,),
        params: GenerationParams | None = None,
    ) -> Samples:
        """Float images for ``prompt`` and each negative; every check runs before any compute."""
        check_prompt(prompt)
        if isinstance(negatives, str) or len(negatives) == 0:
            raise InvalidInputError("negatives must be a non-empty sequence of str or None")
        for neg in negatives:
            if neg is not None and (not isinstance(neg, str) or not neg.strip()):
                raise InvalidInputError(
                    f"a negative must be None or a non-empty string, got {neg!r}"
                )
        params = self.resolve_params(params)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidInputError(f"seed must be an integer, got {seed!r}")
        negatives = list(negatives)
        chunk = self._candidates_per_call(params)
        if len(negatives) <= chunk:
            return self._sample_batch(prompt, seed, negatives, params)
        # more candidates than the exported batch holds: consecutive batched calls
        parts = [
            self._sample_batch(prompt, seed, negatives[i : i + chunk], params)
            for i in range(0, len(negatives), chunk)
        ]
        timings = {k: sum(p.timings[k] for p in parts) for k in parts[0].timings}
        return Samples(np.concatenate([p.images for p in parts]), timings)
