"""``npc-rt eval`` end to end on the tiny engine, and its inputs (GenEval, GenEval++, plain text).

The loop integration uses deterministic judges: the verifier rejects every original image (it
knows their pixels, generated beforehand) and accepts corrected images only for "fixable"
prompts, so the expected accuracies and gain are known without trusting the harness's arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from npc_rt.cli import main as cli_main
from npc_rt.cli.eval import load_eval_prompts
from npc_rt.errors import InvalidInputError
from npc_rt.evaluation import CorrectionSampler, EvalPlan, EvalPrompt, run_eval
from npc_rt.generator import GenerationParams
from npc_rt.judges.base import Caption, Judges, Proposal, Verdict

GENEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "geneval"
GENEVAL_METADATA = GENEVAL / "evaluation_metadata.jsonl"


def test_geneval_metadata_becomes_tagged_prompts_with_expectations() -> None:
    prompts = load_eval_prompts(GENEVAL_METADATA, limit=3)
    lines = GENEVAL_METADATA.read_text().splitlines()[:3]
    assert [p.index for p in prompts] == [0, 1, 2]
    for prompt, line in zip(prompts, lines, strict=True):
        raw = json.loads(line)
        assert prompt.prompt == raw["prompt"] and prompt.tag == raw["tag"]
        assert prompt.metadata["include"][0]["class"] == raw["include"][0]["class"]
    assert len(load_eval_prompts(GENEVAL_METADATA)) == len(
        GENEVAL_METADATA.read_text().splitlines()
    )


def test_per_tag_keeps_a_balanced_subset_with_file_numbering() -> None:
    prompts = load_eval_prompts(GENEVAL_METADATA, per_tag=2)
    raw = [json.loads(line) for line in GENEVAL_METADATA.read_text().splitlines()]
    tags = list(dict.fromkeys(r["tag"] for r in raw))
    assert [p.tag for p in prompts] == [t for t in tags for _ in range(2)]
    for item in prompts:
        assert raw[item.index]["prompt"] == item.prompt
    assert len(load_eval_prompts(GENEVAL_METADATA, per_tag=2, limit=3)) == 3


def test_geneval_plus_plus_shape_and_plain_text(tmp_path: Path) -> None:
    plus = tmp_path / "plus.jsonl"
    plus.write_text(
        json.dumps(
            {
                "tag": "region",
                "prompt": "a red apple on the left and a cup",
                "include": [
                    {"class": "apple", "count": 1, "color": "red", "region": "left"},
                    {"class": "cup", "count": 1, "size": ["smaller than", 0]},
                ],
                "exclude": [{"class": "banana"}],
            }
        )
        + "\n"
    )
    (item,) = load_eval_prompts(plus)
    assert item.tag == "region"
    assert item.metadata["include"][0]["region"] == "left"
    assert item.metadata["include"][1]["size"] == ["smaller than", 0]
    assert item.metadata["exclude"][0]["class"] == "banana"
    text = tmp_path / "prompts.txt"
    text.write_text("a photo of a cat\n\n  a   photo of two dogs \n")
    prompts = load_eval_prompts(text)
    assert [(p.prompt, p.tag, p.metadata) for p in prompts] == [
        ("a photo of a cat", "untagged", None),
        ("a photo of two dogs", "untagged", None),
    ]
    with pytest.raises(InvalidInputError, match="limit"):
        load_eval_prompts(text, limit=0)


def _digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


class _KnownOriginalsVerifier:
    def __init__(self, originals: set[str], fixable: set[str]) -> None:
        self.originals, self.fixable = originals, fixable
        self.lock = threading.Lock()
        self.calls = 0

    def verify(self, image: np.ndarray, prompt: str, *, metadata=None) -> Verdict:
        with self.lock:
            self.calls += 1
        if _digest(image) in self.originals:
            return Verdict(0, 0.1, "original: rejected", "test")
        ok = prompt in self.fixable
        return Verdict(1 if ok else 0, 0.9 if ok else 0.2, "attempt", "test")


class _FixedCaptioner:
    def caption(self, image: np.ndarray, prompt: str) -> Caption:
        return Caption("a blurry cartoon with text", "test")


class _FixedProposer:
    def propose(self, prompt: str, caption: Caption, verdict: Verdict, k: int) -> Proposal:
        return Proposal(("blurry", "cartoon", "text", "logo")[:k], "test")


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_flux_engine_dir: Path):
    from npc_rt.pipeline import load_engine

    return load_engine(tiny_flux_engine_dir, providers=["cpu"])


PARAMS = GenerationParams(steps=2, height=32, width=32, guidance=3.5, true_cfg=1.8)


@pytest.mark.parametrize("mode", ["batched", "sequential"])
def test_real_loop_on_tiny_engine_gives_the_expected_gain(
    tiny_pipeline, tmp_path: Path, mode: str
) -> None:
    prompts = tuple(
        EvalPrompt(i, p, tag)
        for i, (p, tag) in enumerate(
            [
                ("a photo of a cat", "single"),
                ("a photo of two dogs", "counting"),
                ("a photo of a red cup", "colors"),
            ]
        )
    )
    seeds = (0, 1)
    originals = {
        _digest(tiny_pipeline.generate(p.prompt, seed=s, params=PARAMS)[0].pixels)
        for p in prompts
        for s in seeds
    }
    fixable = {"a photo of a cat", "a photo of a red cup"}
    verifier = _KnownOriginalsVerifier(originals, fixable)
    judges = Judges(verifier, _FixedCaptioner(), _FixedProposer())
    sampler = CorrectionSampler(tiny_pipeline, judges, k=3, mode=mode, params=PARAMS)
    summary = run_eval(tmp_path, EvalPlan(prompts, seeds), sampler, {"test": mode})
    assert summary["overall"]["original"]["all_samples"] == 0.0
    assert summary["overall"]["npc"]["all_samples"] == pytest.approx(4 / 6)
    assert summary["overall"]["gain"]["mean_of_tags"] == pytest.approx(2 / 3)
    assert summary["tags"]["counting"]["npc"]["accuracy"] == 0.0
    assert summary["fixed"] == 4
    record = json.loads((tmp_path / "records" / "00000_s1.json").read_text())
    assert record["npc"]["mode"] == mode and record["npc"]["negative"] == "blurry"
    assert (tmp_path / record["npc"]["run_dir"] / "run.json").exists()
    assert record["npc"]["attempts"] == (1 if mode == "sequential" else 3)
    still = json.loads((tmp_path / "records" / "00001_s0.json").read_text())
    assert still["npc"]["correct"] == 0 and still["npc"]["attempts"] == 3
    assert still["extra"]["status"] == "not_accepted"


def test_cli_eval_local_judge_resume_and_refusal(
    tiny_flux_engine_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "eval"
    base = [
        "eval",
        str(GENEVAL_METADATA),
        "--engine",
        str(tiny_flux_engine_dir),
        "--judge",
        "local",
        "--out",
        str(out),
        "--limit",
        "2",
        "--images-per-prompt",
        "1",
        "--steps",
        "2",
        "--size",
        "64x64",
        "--k",
        "2",
        "--quiet",
    ]
    assert cli_main([*base, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 2 and summary["tags"]["single_object"]["samples"] == 2
    assert (out / "report.md").exists() and (out / "accuracy_by_tag.png").exists()
    records = sorted((out / "records").glob("*.json"))
    mtimes = [p.stat().st_mtime_ns for p in records]
    assert cli_main(base) == 0  # resume: nothing to redo
    assert [p.stat().st_mtime_ns for p in records] == mtimes
    capsys.readouterr()
    assert cli_main([*base[:-2], "3", "--quiet"]) == 1  # --k changed
    err = capsys.readouterr().err
    assert "different arguments" in err and "k: was 2, now 3" in err
    baseline_out = tmp_path / "baseline"
    args = [*base, "--baseline", "--eval-judge", "local"]
    args[args.index(str(out))] = str(baseline_out)
    assert cli_main(args) == 0
    baseline = json.loads((baseline_out / "summary.json").read_text())
    assert baseline["baseline"] is True and "npc" not in baseline["overall"]
    record = json.loads((baseline_out / "records" / "00000_s0.json").read_text())
    # the same local verifier as evaluator: its verdict equals the loop judge's
    assert record["extra"]["loop_verdicts"]["original"]["correct"] == record["original"]["correct"]
    # The baseline's originals are the NPC run's originals: same engine, prompt, seed and params.
    for name in ("00000_s0", "00001_s0"):
        a = (out / "images" / f"{name}_original.png").read_bytes()
        b = (baseline_out / "images" / f"{name}_original.png").read_bytes()
        assert a == b
