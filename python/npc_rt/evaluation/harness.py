"""The evaluation harness: every prompt x seed, judged without and with NPC, resumable.

Layout of an eval directory::

    eval_manifest.json        the arguments the run was started with (resumption checks them)
    records/<id>.json         one per finished sample (prompt index, seed); written last, atomically
    images/<id>_original.png  the original generation
    images/<id>_npc.png       the image NPC chose (absent in a baseline run)
    runs/<id>/                the correction's own run directory
    summary.json              accuracy per tag and overall, gain, attempts, latency

A sample is finished exactly when its record exists. Restarted with the same arguments, the harness
skips finished samples, discards the half-done work of the one it was killed in, and carries on.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npc_rt.errors import InvalidInputError, NpcIOError
from npc_rt.evaluation.files import (
    read_json,
    remove_temporaries,
    to_jsonable,
    write_json_atomic,
    write_png_atomic,
)
from npc_rt.evaluation.samples import EvalPrompt, SampleOutcome, Sampler
from npc_rt.evaluation.summary import summarize
from npc_rt.judges.base import Verdict

MANIFEST_NAME = "eval_manifest.json"
SUMMARY_NAME = "summary.json"
RECORD_SCHEMA = "npc_rt.eval.record/1"
MANIFEST_SCHEMA = "npc_rt.eval.manifest/1"

Progress = Callable[[int, int, Mapping[str, Any], bool], None]


@dataclass(frozen=True)
class EvalPlan:
    """What to run: the prompts and the seeds each is sampled at."""

    prompts: tuple[EvalPrompt, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.prompts:
            raise InvalidInputError("the evaluation has no prompts")
        if not self.seeds:
            raise InvalidInputError("the evaluation has no seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise InvalidInputError(f"seeds must be distinct, got {list(self.seeds)}")
        if any(s < 0 for s in self.seeds):
            raise InvalidInputError(f"seeds must be non-negative, got {list(self.seeds)}")
        indices = [p.index for p in self.prompts]
        if len(set(indices)) != len(indices):
            raise InvalidInputError("prompt indices must be distinct")

    def samples(self) -> Iterable[tuple[EvalPrompt, int]]:
        for item in self.prompts:
            for seed in self.seeds:
                yield item, seed

    @property
    def size(self) -> int:
        return len(self.prompts) * len(self.seeds)


def seeds_for(images_per_prompt: int | None, seeds: Sequence[int] | None) -> tuple[int, ...]:
    """Explicit seeds win; otherwise ``images_per_prompt`` seeds 0..N-1."""
    if seeds:
        return tuple(int(s) for s in seeds)
    count = 1 if images_per_prompt is None else int(images_per_prompt)
    if count < 1:
        raise InvalidInputError(f"--images-per-prompt must be at least 1, got {count}")
    return tuple(range(count))


def run_eval(
    eval_dir: Path,
    plan: EvalPlan,
    sampler: Sampler,
    arguments: Mapping[str, Any],
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run (or resume) the evaluation and return the summary it wrote to ``summary.json``.

    ``arguments`` is everything that determines the results (input file digest, engine hash,
    judge configuration, seeds, k, mode, baseline): a resumed run must present the same.
    """
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(arguments, plan, sampler.baseline)
    ensure_same_manifest(eval_dir, manifest)
    remove_temporaries(eval_dir)

    done = 0
    for item, seed in plan.samples():
        sample_id = item.sample_id(seed)
        record_path = eval_dir / "records" / f"{sample_id}.json"
        existing = _load_record(record_path)
        if existing is not None:
            done += 1
            if progress is not None:
                progress(done, plan.size, existing, True)
            continue
        run_dir = eval_dir / "runs" / sample_id
        if run_dir.exists():  # the half-done work of a killed run: start the sample afresh
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        outcome = sampler(item, seed, run_dir)
        record = _write_sample(eval_dir, item, seed, outcome)
        done += 1
        if progress is not None:
            progress(done, plan.size, record, False)

    records = load_records(eval_dir, plan)
    summary = summarize(records, baseline=sampler.baseline)
    write_json_atomic(eval_dir / SUMMARY_NAME, summary)
    return summary


def ensure_same_manifest(eval_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Write the manifest on a fresh directory; on an existing one, refuse different arguments."""
    path = eval_dir / MANIFEST_NAME
    if not path.exists():
        if any((eval_dir / "records").glob("*.json")):
            raise InvalidInputError(
                f"{eval_dir} holds eval records but no {MANIFEST_NAME}: "
                "it was not written by this harness; use an empty --out directory"
            )
        write_json_atomic(path, dict(manifest))
        return
    previous = read_json(path)
    comparable = json.loads(json.dumps(dict(manifest), sort_keys=True))
    if previous == comparable:
        return
    differences = _differences(previous, comparable)
    raise InvalidInputError(
        f"{eval_dir} was started with different arguments, so it cannot be resumed: "
        + "; ".join(differences)
        + ". Use the original arguments to resume, or another --out directory for a new run"
    )


def load_records(eval_dir: Path, plan: EvalPlan) -> list[dict[str, Any]]:
    """The records of the plan's samples, in plan order; a missing one is an error."""
    records = []
    for item, seed in plan.samples():
        path = Path(eval_dir) / "records" / f"{item.sample_id(seed)}.json"
        record = _load_record(path)
        if record is None:
            raise NpcIOError(f"the record of sample {item.sample_id(seed)} is missing: {path}")
        records.append(record)
    return records


def print_progress(done: int, total: int, record: Mapping[str, Any], skipped: bool) -> None:
    """A one-line-per-sample progress report on stderr."""
    if skipped:
        print(f"[{done}/{total}] {record['sample_id']}: already done", file=sys.stderr)
        return
    line = (
        f"[{done}/{total}] {record['sample_id']} ({record['tag']}) "
        f"original={_mark(record['original']['correct'])}"
    )
    npc = record.get("npc")
    if npc is not None:
        line += f" npc={_mark(npc['correct'])} attempts={npc['attempts']}"
    line += f" {record['latency_s']['total']:.2f}s  {record['prompt']!r}"
    print(line, file=sys.stderr)


def _mark(correct: int) -> str:
    return {1: "yes", 0: "no"}.get(int(correct), "unknown")


def _manifest(arguments: Mapping[str, Any], plan: EvalPlan, baseline: bool) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "arguments": dict(arguments),
        "baseline": bool(baseline),
        "seeds": list(plan.seeds),
        "prompts": [[p.index, p.prompt] for p in plan.prompts],
    }


def _differences(previous: Any, current: Mapping[str, Any]) -> list[str]:
    if not isinstance(previous, dict):
        return [f"{MANIFEST_NAME} is not a JSON object"]
    out = []
    for key in sorted(set(previous) | set(current)):
        if key == "arguments" and isinstance(previous.get(key), dict):
            before, after = previous[key], current.get(key, {})
            for name in sorted(set(before) | set(after)):
                if before.get(name) != after.get(name):
                    out.append(f"{name}: was {before.get(name)!r}, now {after.get(name)!r}")
        elif key == "prompts" and previous.get(key) != current.get(key):
            out.append(
                f"prompts: was {len(previous.get(key) or [])} prompts, now "
                f"{len(current.get(key) or [])} (or their text changed)"
            )
        elif previous.get(key) != current.get(key):
            out.append(f"{key}: was {previous.get(key)!r}, now {current.get(key)!r}")
    return out or ["the manifest differs"]


def _load_record(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        record = read_json(path)
    except NpcIOError:
        return None  # unreadable: cannot happen with atomic writes; redo the sample
    if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA:
        return None
    return record


def _write_sample(
    eval_dir: Path, item: EvalPrompt, seed: int, outcome: SampleOutcome
) -> dict[str, Any]:
    sample_id = item.sample_id(seed)
    images = eval_dir / "images"
    original_png = images / f"{sample_id}_original.png"
    write_png_atomic(original_png, outcome.original_pixels)
    npc: dict[str, Any] | None = None
    if outcome.final_verdict is not None and outcome.final_pixels is not None:
        npc_png = images / f"{sample_id}_npc.png"
        write_png_atomic(npc_png, outcome.final_pixels)
        npc = {
            **verdict_json(outcome.final_verdict),
            "image": npc_png.relative_to(eval_dir).as_posix(),
            "attempts": int(outcome.attempts),
            "negative": outcome.negative,
            "mode": outcome.mode,
            "run_dir": (
                outcome.run_dir.relative_to(eval_dir).as_posix()
                if outcome.run_dir is not None and outcome.run_dir.is_relative_to(eval_dir)
                else None
            ),
        }
    record = {
        "schema": RECORD_SCHEMA,
        "sample_id": sample_id,
        "index": item.index,
        "prompt": item.prompt,
        "tag": item.tag,
        "seed": seed,
        "metadata": _json_safe(item.metadata),
        "original": {
            **verdict_json(outcome.original_verdict),
            "image": original_png.relative_to(eval_dir).as_posix(),
        },
        "npc": npc,
        "latency_s": {
            "original": _finite(outcome.original_seconds),
            "total": _finite(outcome.total_seconds or outcome.original_seconds),
        },
        "extra": _json_safe(outcome.extra),
    }
    write_json_atomic(eval_dir / "records" / f"{sample_id}.json", record)
    return record


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "correct": int(verdict.correct),
        "score": _finite(verdict.score),
        "reason": verdict.reason,
        "judge": verdict.judge,
        "error": verdict.error,
        "details": _json_safe(verdict.details),
    }


def _finite(value: float) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _json_safe(value: Any) -> Any:
    """Plain JSON (no NaN, no numpy, no dataclasses) from whatever a judge put in its details."""
    return to_jsonable(value)
