"""``LocalVerifier``: the detector and GenEval-style checks as an NPC verifier, in-process.

Verdict: ``correct`` is 1 when every check passed, 0 when any failed, and -1 (unknown) when there
was nothing the detector could check (no known class in the prompt or metadata) or when every
check passed but the prompt or metadata names something the detector cannot see. ``score`` is the
fraction of checks passed (0.0 when unknown). ``reason`` names each failed check, then the classes
detected but not asked for. ``details`` holds the expectations, every check, the detections and
the timing, for run records and for the local proposer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from npc_rt.errors import InvalidInputError
from npc_rt.judges.base import CORRECT, INCORRECT, UNKNOWN, Verdict
from npc_rt.judges.local.checks import CheckReport, run_checks
from npc_rt.judges.local.detector import check_image
from npc_rt.judges.local.expectations import Expectations, expectations_for
from npc_rt.judges.local.scene import LocalScene
from npc_rt.metadata import PromptSpec


class LocalVerifier:
    def __init__(self, scene: LocalScene | None = None, *, name: str = "local") -> None:
        self.scene = scene or LocalScene()
        self.name = name

    def __repr__(self) -> str:
        return f"LocalVerifier({self.name!r})"

    def verify(
        self,
        image: np.ndarray,
        prompt: str,
        *,
        metadata: Mapping[str, Any] | PromptSpec | None = None,
    ) -> Verdict:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInputError("prompt must be a non-empty string")
        image = check_image(image)
        start = time.perf_counter()
        expectations = expectations_for(prompt, metadata, self.scene.detector.class_names)
        objects = self.scene.observe(image)
        size = (image.shape[0], image.shape[1])
        report = run_checks(expectations.spec, objects, size, self.scene.check_config)
        details = {
            "expectations": expectations.spec.to_mapping(),
            "expectations_source": expectations.source,
            "unsupported": list(expectations.unsupported),
            "checks": [asdict(check) for check in report.checks],
            "unrequested": list(report.unrequested),
            "detections": self.scene.describe(objects, size),
            "seconds": round(time.perf_counter() - start, 4),
        }
        correct, reason = judge(report, expectations)
        score = report.score if correct != UNKNOWN and report.score is not None else 0.0
        return Verdict(
            correct=correct, score=float(score), reason=reason, judge=self.name, details=details
        )


def judge(report: CheckReport, expectations: Expectations) -> tuple[int, str]:
    """(correct, reason) from a check report (rules in the module docstring)."""
    extra = (
        f"; also detected, not requested: {', '.join(report.unrequested)}"
        if report.unrequested
        else ""
    )
    unsupported = ", ".join(expectations.unsupported)
    if not report.checks:
        what = (
            f"the detector has no class for: {unsupported}"
            if unsupported
            else ("the prompt names no object the detector knows")
        )
        return UNKNOWN, f"nothing to check: {what}{extra}"
    failed = report.failed
    if failed:
        listed = "; ".join(check.message for check in failed)
        return INCORRECT, f"failed {len(failed)} of {len(report.checks)} checks: {listed}{extra}"
    if unsupported:
        return UNKNOWN, (
            f"all {len(report.checks)} checks passed, but the detector cannot check: "
            f"{unsupported}{extra}"
        )
    return CORRECT, f"all {len(report.checks)} checks passed{extra}"
