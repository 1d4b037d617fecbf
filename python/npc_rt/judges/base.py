"""The judge contract shared by every implementation (OpenAI-compatible, local, a user's own).

Images are ``numpy.uint8`` arrays of shape ``[H, W, 3]`` (RGB). Implementations must be safe to
call from several threads at once: the batched loop verifies attempts concurrently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

CORRECT = 1
INCORRECT = 0
UNKNOWN = -1


@dataclass(frozen=True)
class Verdict:
    """A verifier's answer. ``correct`` is 1, 0, or -1 (unknown: the judge gave no usable answer)."""

    correct: int
    score: float
    reason: str
    judge: str = ""
    raw: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.correct == CORRECT

    @property
    def unknown(self) -> bool:
        return self.correct == UNKNOWN


@dataclass(frozen=True)
class Caption:
    text: str
    judge: str = ""
    raw: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Proposal:
    """Cleaned candidate negatives, best first as the proposer ordered them."""

    candidates: tuple[str, ...]
    judge: str = ""
    raw: str | None = None
    error: str | None = None


@runtime_checkable
class Verifier(Protocol):
    def verify(
        self, image: np.ndarray, prompt: str, *, metadata: Mapping[str, Any] | None = None
    ) -> Verdict: ...


@runtime_checkable
class Captioner(Protocol):
    def caption(self, image: np.ndarray, prompt: str) -> Caption: ...


@runtime_checkable
class Proposer(Protocol):
    def propose(self, prompt: str, caption: Caption, verdict: Verdict, k: int) -> Proposal: ...


@dataclass(frozen=True)
class Judges:
    """The three roles of one NPC run; any object satisfying each Protocol plugs in."""

    verifier: Verifier
    captioner: Captioner
    proposer: Proposer

    def describe(self) -> dict[str, str]:
        return {
            role: type(getattr(self, role)).__name__
            for role in ("verifier", "captioner", "proposer")
        }


def sequence_of_str(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)
