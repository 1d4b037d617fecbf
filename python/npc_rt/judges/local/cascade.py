"""``CascadeVerifier``: the cheap local verifier first, the VLM only for images it does not reject.

An image the local verifier rejects (``correct == 0``) is rejected with the local verdict: a
detector that sees a missing object or a wrong count is trusted, and no VLM call is paid. An
image it accepts, or cannot judge (``-1``), goes to the VLM, whose verdict is the answer: the
detector cannot see style, coherence or most of what a VLM checks, so its acceptance is not final.
Both verdicts are recorded in ``details`` (``local``, ``vlm``; ``stage`` says who decided).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from npc_rt.judges.base import INCORRECT, Verdict, Verifier


class CascadeVerifier:
    def __init__(self, local: Verifier, vlm: Verifier, *, name: str | None = None) -> None:
        self.local = local
        self.vlm = vlm
        local_name = getattr(local, "name", type(local).__name__)
        vlm_name = getattr(vlm, "name", type(vlm).__name__)
        self.name = name or f"cascade({local_name}>{vlm_name})"

    def __repr__(self) -> str:
        return f"CascadeVerifier({self.local!r}, {self.vlm!r})"

    def verify(
        self, image: np.ndarray, prompt: str, *, metadata: Mapping[str, Any] | None = None
    ) -> Verdict:
        first = self.local.verify(image, prompt, metadata=metadata)
        if first.correct == INCORRECT:
            return Verdict(
                correct=first.correct,
                score=first.score,
                reason=f"local: {first.reason}",
                judge=self.name,
                raw=first.raw,
                details={"stage": "local", "local": asdict(first), "vlm": None},
                error=first.error,
            )
        second = self.vlm.verify(image, prompt, metadata=metadata)
        return Verdict(
            correct=second.correct,
            score=second.score,
            reason=second.reason,
            judge=self.name,
            raw=second.raw,
            details={"stage": "vlm", "local": asdict(first), "vlm": asdict(second)},
            error=second.error,
        )
