"""The NPC loop: generate, verify, caption, propose, rank, regenerate (docs/npc-method.md).

``correct()`` is the product's main job. It talks to an ``ImageGenerator`` and a ``Judges`` set
only through their Protocols, and writes a run directory (``records``) after every stage so an
outage mid-run keeps what was done.

Outcomes (``CorrectionResult.status``):

- ``accepted_original``: the verifier accepted the first image; nothing else runs.
- ``accepted``: an attempt with a negative was accepted; the first accepted in rank order is kept.
- ``not_accepted``: every candidate was tried and none accepted; the image with the best verifier
  score is kept (the original included; ties keep the earlier image).
- ``unknown``: the verifier could not judge the first image (``correct == -1`` after its
  retries). The run stops with the original: without a verdict there is nothing to correct.
- ``judge_error``: a role failed later (captioner, proposer, or the verifier on an attempt). The
  run stops after the stage in progress (in batched mode: after the current batch) and keeps the
  best image judged so far.

Regeneration modes: ``sequential`` (the reference: one candidate at a time in rank order, stop at
the first accepted) and ``batched`` (the next M ranked candidates in one ``generate`` call,
verified concurrently, stop after a batch holding an accepted image). For a deterministic
verifier both keep the same image, and for the same candidates the generator makes the same images.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from npc_rt.errors import EngineError, InvalidInputError, NpcError, NpcIOError
from npc_rt.generator import GeneratedImage, GenerationParams, ImageGenerator
from npc_rt.judges.base import UNKNOWN, Caption, Judges, Proposal, Verdict
from npc_rt.records import (
    CONTACT_SHEET,
    RUN_JSON,
    SheetTile,
    atomic_write_json,
    contact_sheet,
    to_jsonable,
    write_png,
)

MODES = ("batched", "sequential")
RUN_SCHEMA = "npc_rt.run/1"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Attempt:
    """One generated image and its verdict. ``index`` 0 is the original (no negative); attempts
    are numbered 1.. in rank order, and ``rank`` is the candidate's rank (1 = best)."""

    index: int
    negative: str | None
    rank: int | None
    image: GeneratedImage
    verdict: Verdict
    path: Path | None = None
    batch: int | None = None

    @property
    def name(self) -> str:
        return "original" if self.index == 0 else f"attempt_{self.index:02d}"


@dataclass(frozen=True)
class CorrectionResult:
    prompt: str
    seed: int
    mode: str
    batch_size: int
    status: str
    original: Attempt
    attempts: tuple[Attempt, ...]
    chosen: Attempt
    caption: Caption | None = None
    proposal: Proposal | None = None
    candidates: tuple[str, ...] = ()
    ranking: Any = None
    timings: Mapping[str, float] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    run_dir: Path | None = None

    @property
    def accepted(self) -> bool:
        return self.chosen.verdict.accepted

    @property
    def pixels(self) -> Any:
        return self.chosen.image.pixels


def correct(
    prompt: str,
    seed: int,
    engine: ImageGenerator,
    judges: Judges,
    *,
    k: int = 5,
    mode: str = "batched",
    batch_size: int | None = None,
    out_dir: str | Path | None = None,
    params: GenerationParams | Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    speculative_caption: bool | None = None,
) -> CorrectionResult:
    """Run NPC on one prompt and seed. See the module docstring for the outcomes.

    ``params``: ``GenerationParams``, or a mapping of overrides of ``engine.default_params``
    (overriding ``steps`` alone resets ``negative_steps`` to the family default, capped at the new
    step count). ``batch_size``: M for batched mode (default ``engine.max_candidates_per_batch``).
    ``progress``: called with one line per stage. ``metadata``: passed to the verifier (e.g. a
    GenEval ``include`` checklist).

    ``speculative_caption``: ask the captioner while the verifier judges the original (default:
    on in batched mode, off in sequential mode, the reference). Results are the same either way;
    it saves one judge round trip of latency at the cost of an unused caption when the original
    is accepted or cannot be judged."""
    _check_inputs(prompt, seed, engine, judges, k, mode, batch_size)
    gen_params = _resolve_params(engine, params)
    if mode == "sequential":
        m = 1
    else:
        m = int(batch_size) if batch_size is not None else max(1, engine.max_candidates_per_batch)
    run = _Run(
        prompt=prompt,
        seed=seed,
        engine=engine,
        judges=judges,
        k=k,
        mode=mode,
        m=m,
        params=gen_params,
        metadata=metadata,
        progress=progress,
        out_dir=Path(out_dir) if out_dir is not None else None,
        speculative_caption=(mode == "batched")
        if speculative_caption is None
        else bool(speculative_caption),
    )
    return run.execute()


class _Run:
    """The state of one correction, and the record it keeps on disk."""

    def __init__(
        self,
        *,
        prompt: str,
        seed: int,
        engine: ImageGenerator,
        judges: Judges,
        k: int,
        mode: str,
        m: int,
        params: GenerationParams,
        metadata: Mapping[str, Any] | None,
        progress: Progress | None,
        out_dir: Path | None,
        speculative_caption: bool,
    ) -> None:
        self.prompt, self.seed, self.engine, self.judges = prompt, seed, engine, judges
        self.k, self.mode, self.m, self.params = k, mode, m, params
        self.metadata = dict(metadata) if metadata else None
        self.progress = progress
        self.out_dir = out_dir
        self.speculative_caption = speculative_caption
        self.timings: dict[str, float] = {}
        self.errors: list[str] = []
        self.original: Attempt | None = None
        self.attempts: list[Attempt] = []
        self.caption: Caption | None = None
        self.proposal: Proposal | None = None
        self.candidates: tuple[str, ...] = ()
        self.ranking: Any = None
        self.ranked_rows: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.status = "running"
        self.chosen: Attempt | None = None
        self.chosen_reason = ""
        self.started_at = _now()
        self.manifest_hash = _safe_attr(engine, "manifest_hash")
        self.family = _safe_attr(engine, "family")
        if out_dir is not None:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise NpcIOError(f"cannot create run directory {out_dir}: {exc}") from exc
            _clear_previous_run(out_dir)

    # -- stages ---------------------------------------------------------------------------------

    def execute(self) -> CorrectionResult:
        t_start = time.perf_counter()
        self._save()
        try:
            self._run_stages()
        except BaseException as exc:
            self.status = "failed"
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.timings["total"] = time.perf_counter() - t_start
            self._save(final=True)
            raise
        self.timings["total"] = time.perf_counter() - t_start
        self._save(final=True)
        assert self.original is not None and self.chosen is not None
        return CorrectionResult(
            prompt=self.prompt,
            seed=self.seed,
            mode=self.mode,
            batch_size=self.m,
            status=self.status,
            original=self.original,
            attempts=tuple(self.attempts),
            chosen=self.chosen,
            caption=self.caption,
            proposal=self.proposal,
            candidates=self.candidates,
            ranking=self.ranking,
            timings=dict(self.timings),
            errors=tuple(self.errors),
            run_dir=self.out_dir,
        )

    def _run_stages(self) -> None:
        self._say("generating the original image")
        with self._timed("generate_original"):
            image0 = self._generate([None])[0]
        self.original = self._attempt(0, None, None, image0, _pending_verdict(), None)
        self._save()

        # The caption depends on the image only, so it can be asked for while the verifier
        # works; its answer is simply unused when the original is accepted (one wasted call).
        caption_pool = caption_job = None
        if self.speculative_caption:
            caption_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-caption")
            caption_job = caption_pool.submit(
                _timed_call, _safe_caption, self.judges, image0.pixels, self.prompt
            )
            caption_pool.shutdown(wait=False)
            self._say("verifying and (speculatively) captioning the original image")
        else:
            self._say("verifying the original image")
        with self._timed("verify_original"):
            verdict0 = _safe_verify(self.judges, image0.pixels, self.prompt, self.metadata)
        self.original = dataclasses.replace(self.original, verdict=verdict0)
        self._say(f"original: {_verdict_line(verdict0)}")
        if verdict0.accepted:
            return self._finish("accepted_original", self.original, "the original was accepted")
        if verdict0.unknown:
            self.errors.append(f"verifier: {verdict0.error or 'no usable answer'}")
            return self._finish(
                "unknown", self.original, "the verifier could not judge the original"
            )
        self._save()

        if caption_job is not None:
            self._say("waiting for the caption")
            self.caption, self.timings["caption"] = caption_job.result()
        else:
            self._say("captioning the original image")
            with self._timed("caption"):
                self.caption = _safe_caption(self.judges, image0.pixels, self.prompt)
        if self.caption.error is not None or not self.caption.text.strip():
            self.errors.append(f"captioner: {self.caption.error or 'empty caption'}")
            return self._finish_best("judge_error")
        self._save()

        self._say(f"proposing {self.k} negative candidates")
        with self._timed("propose"):
            self.proposal = _safe_propose(self.judges, self.prompt, self.caption, verdict0, self.k)
        if self.proposal.error is not None:
            self.errors.append(f"proposer: {self.proposal.error}")
            return self._finish_best("judge_error")
        self.candidates = _final_candidates(self.proposal.candidates, self.k)
        self._save()

        self._say(f"ranking {len(self.candidates)} candidates")
        with self._timed("rank"):
            from npc_rt.scoring import rank_candidates

            self.ranking = rank_candidates(
                self.prompt, list(self.candidates), self.engine.scoring_encoder()
            )
        self.ranked_rows = _ranking_rows(self.ranking)
        self._save()

        ordered = [row["text"] for row in self.ranked_rows]
        step = self.m
        for batch_index, start in enumerate(range(0, len(ordered), step)):
            negatives = ordered[start : start + step]
            self._say(
                f"batch {batch_index + 1}: generating {len(negatives)} image(s) with "
                + ", ".join(repr(n) for n in negatives)
            )
            t0 = time.perf_counter()
            images = self._generate(negatives)
            t_gen = time.perf_counter() - t0
            # On disk before they are judged: a verifier outage must not lose the images.
            first = len(self.attempts)
            for offset, (negative, image) in enumerate(zip(negatives, images, strict=True)):
                rank = start + offset + 1
                self.attempts.append(
                    self._attempt(rank, negative, rank, image, _pending_verdict(), batch_index)
                )
            self._save()
            t0 = time.perf_counter()
            verdicts = self._verify_many([img.pixels for img in images])
            t_ver = time.perf_counter() - t0
            self.timings["regenerate"] = self.timings.get("regenerate", 0.0) + t_gen
            self.timings["verify_attempts"] = self.timings.get("verify_attempts", 0.0) + t_ver
            for index, verdict in enumerate(verdicts, start=first):
                attempt = dataclasses.replace(self.attempts[index], verdict=verdict)
                self.attempts[index] = attempt
                self._say(f"  #{attempt.rank} {attempt.negative!r}: {_verdict_line(verdict)}")
            self.batches.append(
                {
                    "index": batch_index,
                    "negatives": negatives,
                    "generate_s": t_gen,
                    "verify_s": t_ver,
                }
            )
            self._save()
            batch_attempts = self.attempts[-len(negatives) :]
            if any(a.verdict.accepted for a in batch_attempts):
                first = next(a for a in self.attempts if a.verdict.accepted)
                return self._finish("accepted", first, "first accepted attempt in rank order")
            unknown = [a for a in batch_attempts if a.verdict.unknown]
            if unknown:
                for a in unknown:
                    self.errors.append(
                        f"verifier on {a.name}: {a.verdict.error or 'no usable answer'}"
                    )
                return self._finish_best("judge_error")
        return self._finish_best("not_accepted")

    def _finish(self, status: str, chosen: Attempt, reason: str) -> None:
        self.status, self.chosen, self.chosen_reason = status, chosen, reason

    def _finish_best(self, status: str) -> None:
        assert self.original is not None
        judged = [a for a in [self.original, *self.attempts] if not a.verdict.unknown]
        if not judged:
            return self._finish(status, self.original, "no image was judged: the original is kept")
        best = max(judged, key=lambda a: (a.verdict.score, -a.index))
        self._finish(status, best, "best verifier score (none accepted)")

    def _generate(self, negatives: Sequence[str | None]) -> list[GeneratedImage]:
        images = self.engine.generate(
            self.prompt, seed=self.seed, negatives=list(negatives), params=self.params
        )
        if len(images) != len(negatives):
            raise EngineError(
                f"the generator returned {len(images)} image(s) for {len(negatives)} negative(s)"
            )
        return list(images)

    def _verify_many(self, pixels: Sequence[Any]) -> list[Verdict]:
        if len(pixels) == 1:
            return [_safe_verify(self.judges, pixels[0], self.prompt, self.metadata)]
        with ThreadPoolExecutor(max_workers=len(pixels), thread_name_prefix="npc-verify") as pool:
            futures = [
                pool.submit(_safe_verify, self.judges, p, self.prompt, self.metadata)
                for p in pixels
            ]
            return [f.result() for f in futures]

    def _attempt(
        self,
        index: int,
        negative: str | None,
        rank: int | None,
        image: GeneratedImage,
        verdict: Verdict,
        batch: int | None,
    ) -> Attempt:
        path = None
        if self.out_dir is not None:
            name = "original.png" if index == 0 else f"attempt_{index:02d}.png"
            path = write_png(self.out_dir / name, image.pixels, self._png_text(image, rank))
        return Attempt(index, negative, rank, image, verdict, path, batch)

    def _png_text(self, image: GeneratedImage, rank: int | None) -> dict[str, str]:
        from npc_rt.images import png_text

        extra = {"engine": self.manifest_hash or ""}
        if rank is not None:
            extra["rank"] = str(rank)
        return png_text(image, extra)

    # -- records --------------------------------------------------------------------------------

    def _timed(self, stage: str) -> _Timer:
        return _Timer(self.timings, stage)

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def _save(self, *, final: bool = False) -> None:
        if self.out_dir is None:
            return
        atomic_write_json(self.out_dir / RUN_JSON, self._record(final))
        # The sheet is a summary: drawn once at the end (also after a failure), not per stage.
        if final and self.original is not None:
            self._write_sheet()

    def _write_sheet(self) -> None:
        assert self.out_dir is not None and self.original is not None
        tiles = []
        for attempt in [self.original, *self.attempts]:
            head = (
                "original (no negative)"
                if attempt.index == 0
                else f"#{attempt.rank} - {attempt.negative}"
            )
            if self.chosen is not None and attempt.index == self.chosen.index:
                head = "[chosen] " + head
            lines = (head, _verdict_line(attempt.verdict), attempt.verdict.reason[:160])
            tiles.append(SheetTile(attempt.image.pixels, tuple(line for line in lines if line)))
        write_png(self.out_dir / CONTACT_SHEET, contact_sheet(tiles))

    def _record(self, final: bool) -> dict[str, Any]:
        attempts_by_neg = {a.negative: a for a in self.attempts}
        candidates = []
        for row in self.ranked_rows:
            attempt = attempts_by_neg.get(row["text"])
            candidates.append(
                {
                    **row,
                    "image": attempt.path.name if attempt and attempt.path else None,
                    "verdict": _verdict_json(attempt.verdict) if attempt else None,
                }
            )
        record: dict[str, Any] = {
            "schema": RUN_SCHEMA,
            "status": self.status,
            "prompt": self.prompt,
            "seed": self.seed,
            "k": self.k,
            "mode": self.mode,
            "batch_size": self.m,
            "speculative_caption": self.speculative_caption,
            "engine": {"family": self.family, "manifest_hash": self.manifest_hash},
            "params": to_jsonable(self.params),
            "metadata": self.metadata,
            "judges": {
                role: _describe_role(getattr(self.judges, role))
                for role in ("verifier", "captioner", "proposer")
            },
            "original": _attempt_json(self.original) if self.original else None,
            "caption": to_jsonable(self.caption) if self.caption else None,
            "proposal": to_jsonable(self.proposal) if self.proposal else None,
            "candidates_used": list(self.candidates),
            "candidates": candidates,
            "attempts": [_attempt_json(a) for a in self.attempts],
            "batches": self.batches,
            "timings": dict(self.timings),
            "chosen": None,
            "errors": list(self.errors),
            "started_at": self.started_at,
            "finished_at": _now() if final else None,
        }
        if self.chosen is not None:
            record["chosen"] = {
                "index": self.chosen.index,
                "image": self.chosen.path.name if self.chosen.path else None,
                "negative": self.chosen.negative,
                "rank": self.chosen.rank,
                "accepted": self.chosen.verdict.accepted,
                "score": self.chosen.verdict.score,
                "why": self.chosen_reason,
            }
        return record


def _clear_previous_run(out_dir: Path) -> None:
    """Remove the files an earlier run left here (only ours, by name): a rerun into the same
    directory (an interrupted eval sample) must not show a stale attempt as its own."""
    names = [RUN_JSON, CONTACT_SHEET, "original.png"]
    stale = [out_dir / n for n in names] + sorted(out_dir.glob("attempt_[0-9][0-9].png"))
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise NpcIOError(f"cannot clear the previous run file {path}: {exc}") from exc


def _timed_call(func: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return func(*args), time.perf_counter() - t0


class _Timer:
    def __init__(self, sink: dict[str, float], stage: str) -> None:
        self.sink, self.stage = sink, stage

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.sink[self.stage] = self.sink.get(self.stage, 0.0) + time.perf_counter() - self.t0


# -- judges, guarded: a judge that raises is a judge that gave no usable answer ------------------


def _safe_verify(
    judges: Judges, pixels: Any, prompt: str, metadata: Mapping[str, Any] | None
) -> Verdict:
    try:
        verdict = judges.verifier.verify(pixels, prompt, metadata=metadata)
    except Exception as exc:  # noqa: BLE001 - any failure of a plug-in judge is an unknown verdict
        return Verdict(UNKNOWN, 0.0, "", judge=type(judges.verifier).__name__, error=_exc_text(exc))
    if not isinstance(verdict, Verdict) or verdict.correct not in (-1, 0, 1):
        return Verdict(
            UNKNOWN,
            0.0,
            "",
            judge=type(judges.verifier).__name__,
            error=f"verifier returned an invalid verdict: {verdict!r}"[:300],
        )
    return verdict


def _safe_caption(judges: Judges, pixels: Any, prompt: str) -> Caption:
    try:
        caption = judges.captioner.caption(pixels, prompt)
    except Exception as exc:  # noqa: BLE001
        return Caption("", judge=type(judges.captioner).__name__, error=_exc_text(exc))
    if not isinstance(caption, Caption):
        return Caption(
            "", judge=type(judges.captioner).__name__, error="captioner returned no Caption"
        )
    return caption


def _safe_propose(
    judges: Judges, prompt: str, caption: Caption, verdict: Verdict, k: int
) -> Proposal:
    try:
        proposal = judges.proposer.propose(prompt, caption, verdict, k)
    except Exception as exc:  # noqa: BLE001
        return Proposal((), judge=type(judges.proposer).__name__, error=_exc_text(exc))
    if not isinstance(proposal, Proposal):
        return Proposal(
            (), judge=type(judges.proposer).__name__, error="proposer returned no Proposal"
        )
    return proposal


def _final_candidates(proposed: Sequence[str], k: int) -> tuple[str, ...]:
    """The core's cleaning rules again (a plug-in proposer may not apply them), then the fallback
    list fills up to K."""
    from npc_rt.prompt import clean_candidates, top_up

    cleaned = clean_candidates(list(proposed), k)
    return tuple(top_up(list(cleaned), k))


def _ranking_rows(ranking: Any) -> list[dict[str, Any]]:
    items = getattr(ranking, "candidates", ranking)
    rows = []
    for item in items:
        rows.append(
            {
                "text": item.text,
                "rank": int(item.rank),
                "score": float(item.score),
                "s_qty": float(item.s_qty),
                "s_obj": float(item.s_obj),
                "s_cand": float(item.s_cand),
            }
        )
    rows.sort(key=lambda r: r["rank"])
    return rows


# -- small helpers --------------------------------------------------------------------------------


def _check_inputs(
    prompt: Any, seed: Any, engine: Any, judges: Any, k: Any, mode: Any, batch_size: Any
) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError("prompt must be a non-empty string")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise InvalidInputError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k (number of candidates) must be an integer >= 1, got {k!r}")
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if mode == "sequential" and batch_size != 1:
            raise InvalidInputError("batch_size applies to mode='batched' only")
    if not isinstance(judges, Judges):
        raise InvalidInputError(
            f"judges must be an npc_rt.judges.Judges, got {type(judges).__name__}"
        )
    if not isinstance(engine, ImageGenerator):
        raise InvalidInputError(
            f"engine must implement npc_rt.generator.ImageGenerator, got {type(engine).__name__}"
        )


def _resolve_params(
    engine: ImageGenerator, params: GenerationParams | Mapping[str, Any] | None
) -> GenerationParams:
    if params is None:
        return engine.default_params
    if isinstance(params, GenerationParams):
        return params
    if isinstance(params, Mapping):
        known = {f.name for f in dataclasses.fields(GenerationParams)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidInputError(f"unknown generation parameter(s): {', '.join(unknown)}")
        overrides = dict(params)
        if "steps" in overrides and "negative_steps" not in overrides:
            # the engine's default cutoff was chosen for its default step count: let the family
            # default (capped at the new step count) apply instead
            overrides["negative_steps"] = None
        return dataclasses.replace(engine.default_params, **overrides)
    raise InvalidInputError(
        f"params must be GenerationParams or a mapping, got {type(params).__name__}"
    )


def _pending_verdict() -> Verdict:
    return Verdict(UNKNOWN, 0.0, "", error="not verified yet")


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    return to_jsonable(verdict)


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "index": attempt.index,
        "negative": attempt.negative,
        "rank": attempt.rank,
        "batch": attempt.batch,
        "image": attempt.path.name if attempt.path else None,
        "verdict": _verdict_json(attempt.verdict),
        "generation_timings": to_jsonable(attempt.image.timings),
    }


def _verdict_line(verdict: Verdict) -> str:
    label = {1: "accepted", 0: "rejected", -1: "unknown"}.get(verdict.correct, str(verdict.correct))
    return f"{label} (score {verdict.score:.2f})"


def _describe_role(role: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"class": type(role).__name__}
    name = getattr(role, "name", None)
    if isinstance(name, str):
        info["name"] = name
    config = getattr(getattr(role, "client", None), "config", None)
    describe = getattr(config, "describe", None)
    if callable(describe):
        info["config"] = describe()
    return info


def _safe_attr(obj: Any, name: str) -> str | None:
    try:
        value = getattr(obj, name)
    except (AttributeError, NpcError):
        return None
    return str(value) if value is not None else None


def _exc_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
