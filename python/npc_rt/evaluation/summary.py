"""Accuracy, gain, attempts and latency from eval records: a pure function of the records.

Accuracy follows GenEval: a sample counts as correct when its verdict is exactly 1; an unknown
verdict (-1, the judge gave no usable answer) counts as incorrect and is reported separately so a
judge outage cannot pass for a model failure. "Overall" is given both ways GenEval-style papers
use: the mean of the per-tag accuracies (each tag weighs the same) and the accuracy over all samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import mean
from typing import Any

SUMMARY_SCHEMA = "npc_rt.eval.summary/1"
SIDES = ("original", "npc")


def summarize(records: Sequence[Mapping[str, Any]], *, baseline: bool) -> dict[str, Any]:
    """The summary of a finished evaluation; ``baseline`` runs have no "npc" side."""
    sides = ("original",) if baseline else SIDES
    tags = _tags_in_order(records)
    per_tag = {tag: _tag_summary([r for r in records if r["tag"] == tag], sides) for tag in tags}
    overall: dict[str, Any] = {}
    for side in sides:
        overall[side] = {
            "mean_of_tags": _mean([per_tag[t][side]["accuracy"] for t in tags]),
            "all_samples": _accuracy(records, side),
            "correct": _count(records, side, 1),
            "unknown": _count(records, side, -1),
        }
    if not baseline:
        overall["gain"] = {
            key: overall["npc"][key] - overall["original"][key]
            for key in ("mean_of_tags", "all_samples")
        }
    prompts = sorted({int(r["index"]) for r in records})
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "baseline": baseline,
        "samples": len(records),
        "prompts": len(prompts),
        "seeds": sorted({int(r["seed"]) for r in records}),
        "tags": per_tag,
        "overall": overall,
        "latency_s": _latency(records, prompts),
    }
    if not baseline:
        summary["fixed"] = sum(1 for r in records if _outcome(r) == "fixed")
        summary["broken"] = sum(1 for r in records if _outcome(r) == "broken")
        attempts = [int(r["npc"]["attempts"]) for r in records]
        summary["attempts"] = {
            "mean_per_sample": _mean(attempts),
            "mean_per_corrected_sample": _mean(
                [int(r["npc"]["attempts"]) for r in records if r["original"]["correct"] != 1]
            ),
            "max": max(attempts, default=0),
        }
    return summary


def sample_outcome(record: Mapping[str, Any]) -> str:
    """'fixed' (wrong before NPC, right after), 'broken', 'kept_correct' or 'still_wrong'."""
    return _outcome(record)


def _outcome(record: Mapping[str, Any]) -> str:
    before = record["original"]["correct"] == 1
    npc = record.get("npc")
    after = npc is not None and npc["correct"] == 1
    if before and after:
        return "kept_correct"
    if before:
        return "broken"
    return "fixed" if after else "still_wrong"


def _tag_summary(records: Sequence[Mapping[str, Any]], sides: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": len(records)}
    for side in sides:
        out[side] = {
            "accuracy": _accuracy(records, side),
            "correct": _count(records, side, 1),
            "unknown": _count(records, side, -1),
        }
    if "npc" in sides:
        out["gain"] = out["npc"]["accuracy"] - out["original"]["accuracy"]
    return out


def _latency(records: Sequence[Mapping[str, Any]], prompts: Sequence[int]) -> dict[str, Any]:
    def per_prompt(key: str) -> float:
        totals = {i: 0.0 for i in prompts}
        for r in records:
            totals[int(r["index"])] += float(r["latency_s"][key])
        return _mean(list(totals.values()))

    return {
        "original_per_sample": _mean([float(r["latency_s"]["original"]) for r in records]),
        "total_per_sample": _mean([float(r["latency_s"]["total"]) for r in records]),
        "original_per_prompt": per_prompt("original"),
        "total_per_prompt": per_prompt("total"),
    }


def _accuracy(records: Sequence[Mapping[str, Any]], side: str) -> float:
    if not records:
        return 0.0
    return _count(records, side, 1) / len(records)


def _count(records: Sequence[Mapping[str, Any]], side: str, value: int) -> int:
    return sum(1 for r in records if r.get(side) is not None and int(r[side]["correct"]) == value)


def _tags_in_order(records: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen.setdefault(str(r["tag"]), None)
    return list(seen)


def _mean(values: Sequence[float]) -> float:
    return float(mean(values)) if values else 0.0
