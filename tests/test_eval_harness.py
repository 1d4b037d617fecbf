"""The eval harness on fakes: records, summary arithmetic, resumption, argument checks, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.eval_fakes import (
    FAKE_ARGUMENTS,
    FakeGenerator,
    FakeNpcSampler,
    FakeVerifier,
    fake_prompts,
    run_fake_eval,
)
from npc_rt.errors import InvalidInputError
from npc_rt.evaluation import (
    BaselineSampler,
    EvalPlan,
    EvalPrompt,
    load_records,
    run_eval,
    seeds_for,
    summarize,
    write_report,
)


def _without_latency(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "latency_s"}


def test_npc_run_writes_one_record_per_sample_and_a_consistent_summary(tmp_path: Path) -> None:
    summary = run_fake_eval(tmp_path, prompts=6, seeds=2)
    records = sorted((tmp_path / "records").glob("*.json"))
    assert len(records) == 12
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    # Recompute the expected accuracies from the fake's rule, independently of summarize().
    expected_orig = {}
    expected_npc = {}
    for item in fake_prompts(6):
        for seed in (0, 1):
            key = item.index + seed
            orig = key % 3 == 0
            expected_orig.setdefault(item.tag, []).append(orig)
            expected_npc.setdefault(item.tag, []).append(orig or key % 2 == 0)
    for tag, values in expected_orig.items():
        row = summary["tags"][tag]
        assert row["samples"] == len(values)
        assert row["original"]["accuracy"] == pytest.approx(np.mean(values))
        assert row["npc"]["accuracy"] == pytest.approx(np.mean(expected_npc[tag]))
        assert row["gain"] == pytest.approx(np.mean(expected_npc[tag]) - np.mean(values))
    tag_means = np.mean([np.mean(v) for v in expected_npc.values()])
    assert summary["overall"]["npc"]["mean_of_tags"] == pytest.approx(tag_means)
    all_orig = np.mean([x for v in expected_orig.values() for x in v])
    assert summary["overall"]["original"]["all_samples"] == pytest.approx(all_orig)
    assert summary["fixed"] == sum(
        (not o) and n
        for tag in expected_orig
        for o, n in zip(expected_orig[tag], expected_npc[tag], strict=True)
    )
    assert summary["broken"] == 0
    assert summary["attempts"]["max"] <= 3
    assert summary["latency_s"]["total_per_prompt"] == pytest.approx(
        2 * summary["latency_s"]["total_per_sample"]
    )


def test_mean_of_tags_differs_from_all_samples_when_tags_are_unbalanced() -> None:
    def record(index: int, tag: str, ok: int) -> dict:
        return {
            "index": index,
            "seed": 0,
            "tag": tag,
            "original": {"correct": ok},
            "npc": {"correct": ok, "attempts": 0},
            "latency_s": {"original": 1.0, "total": 2.0},
        }

    records = [record(0, "a", 1), record(1, "a", 1), record(2, "a", 1), record(3, "b", 0)]
    summary = summarize(records, baseline=False)
    assert summary["overall"]["original"]["mean_of_tags"] == pytest.approx(0.5)
    assert summary["overall"]["original"]["all_samples"] == pytest.approx(0.75)
    assert summary["overall"]["gain"]["all_samples"] == 0.0


def test_unknown_verdicts_count_as_incorrect_and_are_reported() -> None:
    records = [
        {
            "index": 0,
            "seed": s,
            "tag": "t",
            "original": {"correct": c},
            "latency_s": {"original": 1.0, "total": 1.0},
        }
        for s, c in enumerate((1, -1, 0, -1))
    ]
    summary = summarize(records, baseline=True)
    assert summary["tags"]["t"]["original"] == {"accuracy": 0.25, "correct": 1, "unknown": 2}
    assert "npc" not in summary["overall"]
    assert "gain" not in summary["overall"]


def test_baseline_runs_only_the_original_generation(tmp_path: Path) -> None:
    generator, verifier = FakeGenerator(), FakeVerifier()
    plan = EvalPlan(prompts=fake_prompts(3), seeds=(0, 5))
    summary = run_eval(tmp_path, plan, BaselineSampler(generator, verifier), FAKE_ARGUMENTS)
    assert [(c[1], c[2]) for c in generator.calls] == [(0, (None,)), (5, (None,))] * 3
    assert verifier.metadata_seen == [p.metadata for p in plan.prompts for _ in (0, 5)]
    assert summary["baseline"] is True and summary["seeds"] == [0, 5]
    record = json.loads((tmp_path / "records" / "00001_s5.json").read_text())
    assert record["npc"] is None
    saved = np.asarray(__import__("PIL.Image").Image.open(tmp_path / record["original"]["image"]))
    expected = generator.generate(record["prompt"], seed=5)[0].pixels
    np.testing.assert_array_equal(saved, expected)
    assert record["original"]["correct"] == (1 if expected[0, 0, 0] % 2 == 0 else 0)
    assert record["original"]["details"]["nan"] is None  # NaN from a judge stays valid JSON


def test_resume_after_a_crash_skips_finished_samples(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    plan = EvalPlan(prompts=fake_prompts(4), seeds=(0, 1))
    with pytest.raises(RuntimeError, match="injected"):
        run_eval(tmp_path / "e", plan, FakeNpcSampler(log=log, fail_at=(2, 1)), FAKE_ARGUMENTS)
    done_before = log.read_text().splitlines()
    assert len(done_before) == 5  # (0,0) .. (2,0) finished, (2,1) crashed
    assert (tmp_path / "e" / "runs" / "00002_s1" / "partial.txt").exists()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "e" / "records").glob("*.json")}
    summary = run_eval(tmp_path / "e", plan, FakeNpcSampler(log=log), FAKE_ARGUMENTS)
    after = log.read_text().splitlines()
    assert after[:5] == done_before
    assert sorted(after[5:]) == ["2 1", "3 0", "3 1"]
    for name, mtime in mtimes.items():
        assert (tmp_path / "e" / "records" / name).stat().st_mtime_ns == mtime
    fresh = run_eval(tmp_path / "fresh", plan, FakeNpcSampler(), FAKE_ARGUMENTS)
    assert _without_latency(summary) == _without_latency(fresh)


def test_resume_with_different_arguments_is_refused_naming_them(tmp_path: Path) -> None:
    plan = EvalPlan(prompts=fake_prompts(2), seeds=(0,))
    run_eval(tmp_path, plan, FakeNpcSampler(), FAKE_ARGUMENTS)
    with pytest.raises(InvalidInputError, match=r"k: was 3, now 5"):
        run_eval(tmp_path, plan, FakeNpcSampler(), {**FAKE_ARGUMENTS, "k": 5})
    with pytest.raises(InvalidInputError, match=r"seeds: was \[0\], now \[0, 1\]"):
        run_eval(tmp_path, EvalPlan(plan.prompts, (0, 1)), FakeNpcSampler(), FAKE_ARGUMENTS)
    with pytest.raises(InvalidInputError, match="baseline"):
        run_eval(tmp_path, plan, BaselineSampler(FakeGenerator(), FakeVerifier()), FAKE_ARGUMENTS)
    # The same arguments still resume (nothing to do).
    run_eval(tmp_path, plan, FakeNpcSampler(), FAKE_ARGUMENTS)


def test_plan_and_seed_validation() -> None:
    assert seeds_for(3, None) == (0, 1, 2)
    assert seeds_for(3, [7, 9]) == (7, 9)
    with pytest.raises(InvalidInputError, match="images-per-prompt"):
        seeds_for(0, None)
    with pytest.raises(InvalidInputError, match="distinct"):
        EvalPlan(prompts=fake_prompts(1), seeds=(1, 1))
    with pytest.raises(InvalidInputError, match="no prompts"):
        EvalPlan(prompts=(), seeds=(0,))
    with pytest.raises(InvalidInputError, match="non-negative"):
        EvalPlan(prompts=fake_prompts(1), seeds=(-1,))


def test_report_has_table_chart_and_grid_of_fixed_samples(tmp_path: Path) -> None:
    summary = run_fake_eval(tmp_path, prompts=6, seeds=2)
    plan = EvalPlan(prompts=fake_prompts(6), seeds=(0, 1))
    records = load_records(tmp_path, plan)
    files = write_report(tmp_path, summary, records, thumb=32)
    text = files.markdown.read_text()
    for tag in ("single_object", "counting", "colors"):
        assert f"| {tag} |" in text
    assert f"{summary['overall']['npc']['mean_of_tags']:.3f}" in text
    assert files.chart is not None and files.chart.stat().st_size > 1000
    from PIL import Image

    grid = np.asarray(Image.open(files.grid))
    assert grid.shape[0] > summary["fixed"] * 32 and grid.shape[1] >= 64
    fixed = [r for r in records if r["original"]["correct"] == 0 and r["npc"]["correct"] == 1]
    assert len(fixed) == summary["fixed"] > 0
    first = np.asarray(Image.open(tmp_path / fixed[0]["npc"]["image"]))
    assert first.shape == (16, 16, 3)
    for record in fixed:
        assert record["sample_id"] in text


def test_prompt_indices_are_part_of_sample_identity() -> None:
    item = EvalPrompt(index=12, prompt="p", tag="t")
    assert item.sample_id(3) == "00012_s3"


def test_rejudged_sampler_counts_the_evaluators_verdicts_and_keeps_the_loops(
    tmp_path: Path,
) -> None:
    from npc_rt.evaluation import RejudgedSampler

    evaluator = FakeVerifier()
    plan = EvalPlan(prompts=fake_prompts(3), seeds=(0, 1))
    summary = run_eval(tmp_path, plan, RejudgedSampler(FakeNpcSampler(), evaluator), FAKE_ARGUMENTS)
    assert len(evaluator.metadata_seen) == 2 * plan.size  # original and kept image, each sample
    from PIL import Image

    expected = 0
    for record in load_records(tmp_path, plan):
        for side in ("original", "npc"):
            pixels = np.asarray(Image.open(tmp_path / record[side]["image"]))
            assert record[side]["correct"] == (1 if pixels[0, 0, 0] % 2 == 0 else 0)
        key = record["index"] + record["seed"]
        assert record["extra"]["loop_verdicts"]["original"]["correct"] == int(key % 3 == 0)
        expected += record["npc"]["correct"]
    assert summary["overall"]["npc"]["all_samples"] == pytest.approx(expected / plan.size)
