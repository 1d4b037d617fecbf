"""What one evaluation sample is, what producing it returns, and the two ways to produce it.

A sample is one prompt at one seed. ``Sampler`` is the seam between the harness (bookkeeping,
resumption, records) and the work (generation, judging, correction), so the harness can be driven
by fakes in tests and by the real engine and judges in use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from npc_rt.errors import InvalidInputError
from npc_rt.generator import GenerationParams, ImageGenerator
from npc_rt.judges.base import Judges, Verdict, Verifier


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt of the evaluation set. ``metadata`` is what the verifier receives (GenEval
    ``include``/``exclude`` expectations); ``None`` for a plain-text prompt."""

    index: int
    prompt: str
    tag: str
    metadata: Mapping[str, Any] | None = None

    def sample_id(self, seed: int) -> str:
        return f"{self.index:05d}_s{seed}"


@dataclass(frozen=True)
class SampleOutcome:
    """The result of one sample. ``final_*`` is ``None`` for a baseline run (no correction)."""

    original_pixels: np.ndarray
    original_verdict: Verdict
    original_seconds: float
    final_pixels: np.ndarray | None = None
    final_verdict: Verdict | None = None
    attempts: int = 0
    negative: str | None = None
    mode: str | None = None
    total_seconds: float = 0.0
    run_dir: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Sampler(Protocol):
    """Produces one sample; ``run_dir`` is an empty directory it may write its own files into."""

    @property
    def baseline(self) -> bool: ...

    def __call__(self, item: EvalPrompt, seed: int, run_dir: Path) -> SampleOutcome: ...


@dataclass(frozen=True)
class BaselineSampler:
    """The original generation only: one image, no negative, judged once."""

    generator: ImageGenerator
    verifier: Verifier
    params: GenerationParams | None = None
    baseline: bool = field(default=True, init=False)

    def __call__(self, item: EvalPrompt, seed: int, run_dir: Path) -> SampleOutcome:
        start = time.perf_counter()
        (image,) = self.generator.generate(
            item.prompt, seed=seed, negatives=(None,), params=self.params
        )
        verdict = self.verifier.verify(image.pixels, item.prompt, metadata=item.metadata)
        elapsed = time.perf_counter() - start
        return SampleOutcome(
            original_pixels=image.pixels,
            original_verdict=verdict,
            original_seconds=elapsed,
            total_seconds=elapsed,
        )


CorrectFn = Callable[..., Any]


@dataclass(frozen=True)
class CorrectionSampler:
    """The NPC loop (``npc_rt.correct``): its original generation and verdict are the "without
    NPC" result, its chosen image and verdict the "with NPC" one, so nothing is generated twice."""

    generator: ImageGenerator
    judges: Judges
    k: int = 5
    mode: str | None = None
    params: GenerationParams | None = None
    correct_fn: CorrectFn | None = None
    baseline: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidInputError(f"k must be at least 1, got {self.k}")

    def __call__(self, item: EvalPrompt, seed: int, run_dir: Path) -> SampleOutcome:
        correct = self.correct_fn or _library_correct()
        options: dict[str, Any] = {"k": self.k, "out_dir": run_dir, "metadata": item.metadata}
        if self.mode is not None:
            options["mode"] = self.mode
        if self.params is not None:
            options["params"] = self.params
        start = time.perf_counter()
        result = correct(item.prompt, seed, self.generator, self.judges, **options)
        elapsed = time.perf_counter() - start
        return outcome_from_correction(result, elapsed, run_dir)


def _library_correct() -> CorrectFn:
    from npc_rt.loop import correct

    return correct


def outcome_from_correction(result: Any, elapsed: float, run_dir: Path) -> SampleOutcome:
    """Map the loop's ``CorrectionResult`` onto a sample outcome."""
    original = result.original
    chosen = result.chosen
    attempts = tuple(getattr(result, "attempts", ()) or ())
    timings = getattr(result, "timings", None) or {}
    original_seconds = _original_seconds(timings, elapsed)
    return SampleOutcome(
        original_pixels=_pixels(original),
        original_verdict=_verdict(original),
        original_seconds=original_seconds,
        final_pixels=_pixels(chosen),
        final_verdict=_verdict(chosen),
        attempts=len(attempts),
        negative=getattr(chosen, "negative", None),
        mode=_text_or_none(getattr(result, "mode", None)),
        total_seconds=elapsed,
        run_dir=run_dir,
        extra={
            "status": _text_or_none(getattr(result, "status", None)),
            "errors": list(getattr(result, "errors", ()) or ()),
            "batch_size": getattr(result, "batch_size", None),
        },
    )


def _pixels(step: Any) -> np.ndarray:
    image = getattr(step, "image", step)
    return np.asarray(getattr(image, "pixels", image))


def _verdict(step: Any) -> Verdict:
    verdict = getattr(step, "verdict", None)
    if not isinstance(verdict, Verdict):
        raise InvalidInputError(f"the correction result has no verdict for {type(step).__name__}")
    return verdict


def _original_seconds(timings: Mapping[str, Any], elapsed: float) -> float:
    """Generation plus verdict of the original, from the loop's stage timings."""
    stages = [timings.get(k) for k in ("generate_original", "verify_original")]
    if any(v is None for v in stages):
        return elapsed
    return float(sum(stages))


def _text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


@dataclass(frozen=True)
class RejudgedSampler:
    """Scores another sampler's images with a separate evaluation verifier.

    GenEval's protocol measures with a fixed evaluator (its detector) whatever judge guided the
    generation; this wrapper does that: the loop runs with its own judges, then both the original
    and the kept image are verified again by ``verifier``, whose verdicts the summary counts. The
    loop's own verdicts stay in the record (``extra.loop_verdicts``).
    """

    inner: Sampler
    verifier: Verifier

    @property
    def baseline(self) -> bool:
        return self.inner.baseline

    def __call__(self, item: EvalPrompt, seed: int, run_dir: Path) -> SampleOutcome:
        outcome = self.inner(item, seed, run_dir)
        original = self.verifier.verify(
            outcome.original_pixels, item.prompt, metadata=item.metadata
        )
        final = outcome.final_verdict
        if outcome.final_pixels is not None:
            final = self.verifier.verify(outcome.final_pixels, item.prompt, metadata=item.metadata)
        loop_verdicts = {"original": _verdict_summary(outcome.original_verdict)}
        if outcome.final_verdict is not None:
            loop_verdicts["npc"] = _verdict_summary(outcome.final_verdict)
        return replace(
            outcome,
            original_verdict=original,
            final_verdict=final,
            extra={**outcome.extra, "loop_verdicts": loop_verdicts},
        )


def _verdict_summary(verdict: Verdict) -> dict[str, Any]:
    return {"correct": verdict.correct, "score": verdict.score, "reason": verdict.reason}
