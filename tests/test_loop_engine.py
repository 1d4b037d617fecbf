"""End to end on the tiny exported FLUX engine (fixture ``tiny_flux_engine_dir``): the loop runs,
ranks with the engine's own T5, regenerates in both modes and records; judges over HTTP."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.openai_server import FakeOpenAIServer, reply, verdict
from npc_rt.cli import main
from npc_rt.judges.factory import build_judges
from npc_rt.loop import correct
from npc_rt.records import read_json, read_png_text
from npc_rt.scoring import rank_candidates

KEY_ENV = "NPC_E2E_KEY"
SECRET = "sk-e2e-SECRET-5b6c7d"
PROMPT = "a photo of two cats on a red sofa"
PROPOSED = ["grey cat", "blue sofa", "lamp", "cushion", "dog"]
PARAMS = {"steps": 4, "height": 64, "width": 64}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tiny_flux_engine_dir):
    from npc_rt.pipeline import load_engine

    return load_engine(tiny_flux_engine_dir)


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAIServer() as srv:
        srv.set_default("vlm", verdict(0, 0.25, "only one cat"))
        srv.set_default("cap", reply({"caption": "One grey cat on a blue sofa beside a lamp."}))
        srv.set_default("llm", reply({"candidates": PROPOSED}))
        yield srv


def _judges(server):
    return build_judges(
        "openai",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        verifier_model="vlm",
        captioner_model="cap",
        proposer_model="llm",
        timeout=10,
        retries=1,
    )


def test_both_modes_rank_regenerate_and_record_the_same_images(engine, server, tmp_path):
    results = {}
    for mode in ("sequential", "batched"):
        results[mode] = correct(
            PROMPT, 21, engine, _judges(server), k=5, mode=mode, params=PARAMS,
            out_dir=tmp_path / mode,
        )  # fmt: skip
    seq, bat = results["sequential"], results["batched"]
    assert seq.status == bat.status == "not_accepted"
    assert seq.batch_size == 1 and bat.batch_size == engine.max_candidates_per_batch
    # the ranking is the engine's T5 salient score, identical in both runs
    expected = rank_candidates(PROMPT, PROPOSED, engine.scoring_encoder())
    assert [r.text for r in seq.ranking.candidates] == list(expected.texts)
    assert [a.negative for a in seq.attempts] == [a.negative for a in bat.attempts]
    assert [a.negative for a in seq.attempts] == list(expected.texts)
    # batched sampling makes the same images as one-at-a-time sampling (uint8 rounding aside)
    for s_att, b_att in zip(seq.attempts, bat.attempts, strict=True):
        diff = np.abs(s_att.image.pixels.astype(int) - b_att.image.pixels.astype(int))
        assert diff.max() <= 1, (s_att.negative, diff.max())
    # ... while a negative changes the image by more than that tolerance (so it is not vacuous)
    spread = np.abs(
        seq.attempts[0].image.pixels.astype(int) - seq.original.image.pixels.astype(int)
    )
    assert spread.max() > 1
    np.testing.assert_array_equal(seq.original.image.pixels, bat.original.image.pixels)

    for mode, result in results.items():
        run_dir = tmp_path / mode
        run = read_json(run_dir / "run.json")
        assert run["engine"]["manifest_hash"] == engine.manifest_hash
        assert run["mode"] == mode and run["params"]["steps"] == 4
        assert [c["text"] for c in run["candidates"]] == list(expected.texts)
        for row, ref in zip(run["candidates"], expected.candidates, strict=True):
            assert row["score"] == pytest.approx(ref.score, abs=1e-9)
            assert row["s_qty"] == pytest.approx(ref.s_qty, abs=1e-9)
        text = read_png_text(run_dir / "attempt_01.png")
        assert text["negative"] == expected.texts[0] and text["seed"] == "21"
        assert text["engine"] == engine.manifest_hash
        assert (run_dir / "contact_sheet.png").exists()
        for path in run_dir.iterdir():
            assert SECRET.encode() not in path.read_bytes()
        assert result.chosen.verdict.score == 0.25 and result.chosen is result.original


def test_accepting_verifier_stops_early_on_the_engine(engine, server, tmp_path):
    # the verifier accepts only the image of the second-ranked negative (told apart by its pixels)
    ranked = rank_candidates(PROMPT, PROPOSED, engine.scoring_encoder()).texts
    (second_image,) = _engine_images(engine, [ranked[1]])

    def respond(request):
        same = np.abs(request.images[0].astype(int) - second_image.astype(int)).max() <= 1
        return verdict(1, 0.9, "two cats") if same else verdict(0, 0.3, "one cat")

    server.set_default("vlm", respond)
    result = correct(
        PROMPT, 21, engine, _judges(server), mode="sequential", params=PARAMS, out_dir=tmp_path
    )
    assert result.status == "accepted"
    assert [a.negative for a in result.attempts] == list(ranked[:2])
    assert result.chosen.negative == ranked[1]
    assert read_json(tmp_path / "run.json")["chosen"]["image"] == "attempt_02.png"


def _engine_images(engine, negatives):
    from dataclasses import replace

    params = replace(engine.default_params, **PARAMS)
    return [
        img.pixels for img in engine.generate(PROMPT, seed=21, negatives=negatives, params=params)
    ]


def test_cli_correct_and_rank_on_the_engine(tiny_flux_engine_dir, server, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main([
        "correct", "--engine", str(tiny_flux_engine_dir), "--prompt", PROMPT, "--seed", "5",
        "--out", str(run_dir), "--base-url", server.base_url, "--api-key-env", KEY_ENV,
        "--verifier-model", "vlm", "--captioner-model", "cap", "--proposer-model", "llm",
        "--steps", "2", "--height", "32", "--width", "32", "--batch-size", "2", "--json",
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "not_accepted" and summary["batch_size"] == 2
    assert summary["attempts"] == 5 and "batch 3" in err
    assert len(read_json(run_dir / "run.json")["batches"]) == 3
    assert SECRET not in out + err

    code = main([
        "rank", "--engine", str(tiny_flux_engine_dir), "--prompt", PROMPT, "--json",
        "--candidates", *PROPOSED,
    ])  # fmt: skip
    ranking = json.loads(capsys.readouterr().out)
    assert code == 0 and sorted(c["text"] for c in ranking["candidates"]) == sorted(PROPOSED)
    scores = [c["score"] for c in ranking["candidates"]]
    assert scores == sorted(scores, reverse=True)
    for c in ranking["candidates"]:
        assert c["score"] == pytest.approx(c["s_qty"] + c["s_obj"] - c["s_cand"])
