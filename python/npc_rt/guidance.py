"""Guidance with a negative prompt for the first N steps, and the batch layout that carries it.

For step ``i < negative_steps``: ``pred = neg + s * (cond - neg)``; afterwards ``pred = cond``
(see docs/npc-method). K candidates share one prompt and one seed and differ only in their
negative, so one backbone call carries all of them: the K cond rows first, then one neg row for
each candidate that has a negative, while negatives apply; only the K cond rows afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from npc_rt.errors import InvalidInputError, ShapeError


def true_cfg(cond: np.ndarray, neg: np.ndarray, scale: float) -> np.ndarray:
    """``neg + scale * (cond - neg)``, in the operation order (and so the rounding) of diffusers."""
    if cond.shape != neg.shape:
        raise ShapeError(f"cond {cond.shape} and neg {neg.shape} predictions differ in shape")
    return neg + scale * (cond - neg)


def negatives_apply(step: int, negative_steps: int) -> bool:
    """Whether step ``step`` (0-based) still uses the negative prompts."""
    return step < negative_steps


@dataclass(frozen=True)
class GuidanceLayout:
    """Which rows of a batched backbone call belong to which candidate.

    ``has_negative[k]`` says whether candidate k has a negative prompt (and a scale that makes it
    matter). Rows while negatives apply: ``[cond_0 .. cond_{K-1}, neg_{j0}, neg_{j1}, ...]`` with
    ``j`` running over ``negative_candidates``; afterwards ``[cond_0 .. cond_{K-1}]``.
    """

    has_negative: tuple[bool, ...]

    @classmethod
    def for_negatives(cls, negatives: Sequence[str | None], scale: float) -> GuidanceLayout:
        if len(negatives) == 0:
            raise InvalidInputError("negatives must hold at least one entry (None: no negative)")
        # scale 1 makes neg + 1 * (cond - neg) equal cond: diffusers then skips the neg pass too
        active = scale != 1.0
        return cls(tuple(active and n is not None for n in negatives))

    @property
    def num_candidates(self) -> int:
        return len(self.has_negative)

    @property
    def negative_candidates(self) -> tuple[int, ...]:
        return tuple(k for k, has in enumerate(self.has_negative) if has)

    def rows(self, with_negatives: bool) -> int:
        """Batch rows of the backbone call: 2K-ish while negatives apply, K after."""
        extra = len(self.negative_candidates) if with_negatives else 0
        return self.num_candidates + extra

    def row_candidates(self, with_negatives: bool) -> np.ndarray:
        """For each batch row, the candidate whose latents it reads (int64 index array)."""
        cond = np.arange(self.num_candidates, dtype=np.int64)
        if not with_negatives:
            return cond
        return np.concatenate([cond, np.asarray(self.negative_candidates, dtype=np.int64)])

    def combine(self, output: np.ndarray, scale: float, with_negatives: bool) -> np.ndarray:
        """Per-candidate prediction ``[K, ...]`` from the backbone's batched ``output``."""
        expected = self.rows(with_negatives)
        if output.shape[0] != expected:
            raise ShapeError(f"backbone output has {output.shape[0]} rows, expected {expected}")
        k = self.num_candidates
        pred = output[:k]
        if not with_negatives or expected == k:
            return pred
        pred = pred.copy()
        idx = np.asarray(self.negative_candidates, dtype=np.int64)
        pred[idx] = true_cfg(output[idx], output[k:], scale)
        return pred


__all__ = ["true_cfg", "negatives_apply", "GuidanceLayout"]
