"""The NPC loop's logic on a fake generator and in-process fake judges (the ranking is real)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from fixtures.loop_fakes import (
    FakeGenerator,
    FixedCaptioner,
    FixedProposer,
    NegativeVerifier,
    fake_pixels,
)
from npc_rt.errors import EngineError, InvalidInputError
from npc_rt.judges.base import Judges
from npc_rt.loop import correct
from npc_rt.prompt import FALLBACK_NEGATIVES
from npc_rt.records import read_json, read_png_text

PROMPT = "a photo of one cat on a sofa"
CANDIDATES = ("grey cats", "red sofa", "cushion", "lamp", "rug")


def _judges(gen, verdicts=None, *, captioner=None, proposer=None, **verifier_options):
    verifier = NegativeVerifier(gen, verdicts or {}, **verifier_options)
    return Judges(verifier, captioner or FixedCaptioner(), proposer or FixedProposer(CANDIDATES))


def _ranked(result):
    return [row.text for row in result.ranking.candidates]


@pytest.mark.parametrize("speculative", [False, True])
def test_accepted_original_stops_at_once(tmp_path, speculative):
    gen = FakeGenerator()
    judges = _judges(gen, {None: (1, 0.95)})
    result = correct(PROMPT, 7, gen, judges, out_dir=tmp_path, speculative_caption=speculative)
    assert result.status == "accepted_original" and result.accepted
    assert result.chosen is result.original and result.attempts == ()
    assert gen.calls == [(None,)] and result.caption is None
    # a speculative caption was asked for while verifying, and is left unused
    assert judges.captioner.calls == int(speculative) and judges.proposer.calls == 0
    run = read_json(tmp_path / "run.json")
    assert run["status"] == "accepted_original" and run["chosen"]["image"] == "original.png"
    assert run["original"]["verdict"]["correct"] == 1
    assert (tmp_path / "original.png").exists() and (tmp_path / "contact_sheet.png").exists()


def test_unknown_original_stops_with_the_original(tmp_path):
    gen = FakeGenerator()
    judges = _judges(gen, {None: (-1, 0.0)})
    result = correct(PROMPT, 7, gen, judges, out_dir=tmp_path, mode="sequential")
    assert result.status == "unknown" and not result.accepted
    assert result.chosen is result.original
    assert judges.captioner.calls == 0 and judges.proposer.calls == 0
    run = read_json(tmp_path / "run.json")
    assert run["status"] == "unknown" and run["errors"] and run["chosen"]["index"] == 0
    assert run["caption"] is None and run["speculative_caption"] is False


@pytest.mark.parametrize("speculative", [False, True])
def test_speculative_caption_overlaps_the_verifier(speculative):
    gen = FakeGenerator()
    caption_started = threading.Event()
    overlapped = []

    class RecordingCaptioner(FixedCaptioner):
        def caption(self, image, prompt):
            caption_started.set()
            return super().caption(image, prompt)

    class WaitingVerifier(NegativeVerifier):
        def verify(self, image, prompt, *, metadata=None):
            if not overlapped:  # the original: is the caption being made meanwhile?
                overlapped.append(caption_started.wait(timeout=10 if speculative else 0.5))
            return super().verify(image, prompt, metadata=metadata)

    judges = Judges(WaitingVerifier(gen, {None: (0, 0.2)}), RecordingCaptioner(), FixedProposer())
    result = correct(PROMPT, 1, gen, judges, k=2, speculative_caption=speculative)
    assert overlapped == [speculative]
    assert result.caption.text and judges.captioner.calls == 1 and len(result.attempts) == 2


@pytest.mark.parametrize(
    "mode, batch_size, calls", [("sequential", None, 5), ("batched", 2, 3), ("batched", None, 2)]
)
def test_nothing_accepted_tries_every_candidate_and_keeps_the_best(
    tmp_path, mode, batch_size, calls
):
    gen = FakeGenerator(max_batch=4)
    scores = {None: (0, 0.30), "lamp": (0, 0.72), "rug": (0, 0.72), "cushion": (0, 0.10)}
    judges = _judges(gen, scores)
    result = correct(PROMPT, 3, gen, judges, mode=mode, batch_size=batch_size, out_dir=tmp_path)
    assert result.status == "not_accepted"
    assert len(gen.calls) == 1 + calls
    assert sorted(n for call in gen.calls[1:] for n in call) == sorted(CANDIDATES)
    order = _ranked(result)
    assert [a.negative for a in result.attempts] == order  # attempts follow the ranking
    # best score wins; of the two tied at 0.72 the earlier (better ranked) attempt is kept
    tied = [a for a in result.attempts if a.negative in ("lamp", "rug")]
    assert result.chosen is tied[0]
    assert result.batch_size == (1 if mode == "sequential" else (batch_size or 4))
    run = read_json(tmp_path / "run.json")
    assert run["mode"] == mode and run["batch_size"] == result.batch_size
    assert [c["text"] for c in run["candidates"]] == order
    for row in run["candidates"]:
        assert set(row) >= {"s_qty", "s_obj", "s_cand", "score", "rank", "verdict", "image"}
        assert row["score"] == pytest.approx(row["s_qty"] + row["s_obj"] - row["s_cand"])
        assert (tmp_path / row["image"]).exists()
        assert row["verdict"]["raw"] == f"raw:{row['text']}"
    assert run["chosen"]["negative"] == result.chosen.negative
    assert {
        "generate_original",
        "verify_original",
        "caption",
        "propose",
        "rank",
        "regenerate",
        "verify_attempts",
        "total",
    } <= set(run["timings"])


def test_sequential_stops_at_first_accepted_and_batched_after_its_batch(tmp_path):
    gen = FakeGenerator()
    probe = correct(PROMPT, 5, gen, _judges(gen), mode="sequential")
    order = _ranked(probe)
    accept = {order[2]: (1, 0.9), order[3]: (1, 0.99)}  # ranks 3 and 4 would both pass

    seq_gen, bat_gen = FakeGenerator(), FakeGenerator()
    seq = correct(
        PROMPT, 5, seq_gen, _judges(seq_gen, accept), mode="sequential", out_dir=tmp_path / "s"
    )
    bat = correct(
        PROMPT,
        5,
        bat_gen,
        _judges(bat_gen, accept),
        mode="batched",
        batch_size=2,
        out_dir=tmp_path / "b",
    )
    assert seq.status == bat.status == "accepted"
    assert [a.negative for a in seq.attempts] == order[:3]
    assert [a.negative for a in bat.attempts] == order[:4]  # the whole second batch was sampled
    assert seq_gen.calls[1:] == [(n,) for n in order[:3]]
    assert bat_gen.calls[1:] == [tuple(order[:2]), tuple(order[2:4])]
    # both keep the first accepted in rank order (not the higher-scored rank 4)
    assert seq.chosen.negative == bat.chosen.negative == order[2]
    np.testing.assert_array_equal(seq.pixels, bat.pixels)
    assert read_json(tmp_path / "b" / "run.json")["chosen"]["image"] == "attempt_03.png"


def test_batched_verifies_a_batch_concurrently():
    gen = FakeGenerator(max_batch=5)
    judges = _judges(gen, latency_s=0.5)
    result = correct(PROMPT, 1, gen, judges, mode="batched")
    assert result.batch_size == 5 and len(gen.calls) == 2
    assert judges.verifier.max_concurrent == 5


def test_same_seed_for_every_attempt_and_images_recorded_with_parameters(tmp_path):
    gen = FakeGenerator()
    result = correct(PROMPT, 11, gen, _judges(gen), out_dir=tmp_path, params={"steps": 2})
    for attempt in (result.original, *result.attempts):
        assert attempt.image.seed == 11 and attempt.image.params.steps == 2
        expected = fake_pixels(PROMPT, 11, attempt.negative, attempt.image.params)
        np.testing.assert_array_equal(attempt.image.pixels, expected)
        text = read_png_text(attempt.path)
        assert text["prompt"] == PROMPT and text["seed"] == "11" and text["steps"] == "2"
        assert text["negative"] == (attempt.negative or "")
        assert text["engine"] == gen.manifest_hash
        assert json.loads(text["npc_rt"])["negative"] == attempt.negative
    assert read_json(tmp_path / "run.json")["params"]["steps"] == 2


@pytest.mark.parametrize("role", ["captioner", "proposer"])
def test_caption_or_proposal_failure_keeps_what_was_done(tmp_path, role):
    gen = FakeGenerator()
    kwargs = {role: (FixedCaptioner if role == "captioner" else FixedProposer)(error="server down")}
    judges = _judges(gen, {None: (0, 0.4)}, **kwargs)
    result = correct(PROMPT, 2, gen, judges, out_dir=tmp_path)
    assert result.status == "judge_error" and result.chosen is result.original
    assert any(role in e and "server down" in e for e in result.errors)
    run = read_json(tmp_path / "run.json")
    assert run["status"] == "judge_error" and run["errors"] == list(result.errors)
    assert run["original"]["verdict"]["score"] == 0.4
    assert gen.calls == [(None,)]


def test_verifier_failure_on_an_attempt_stops_after_the_batch(tmp_path):
    gen = FakeGenerator()
    probe = correct(PROMPT, 4, gen, _judges(gen), mode="sequential")
    order = _ranked(probe)
    gen = FakeGenerator()
    verdicts = {None: (0, 0.2), order[0]: (0, 0.6), order[1]: RuntimeError("verifier crashed")}
    result = correct(PROMPT, 4, gen, _judges(gen, verdicts), batch_size=2, out_dir=tmp_path)
    assert result.status == "judge_error"
    assert [a.negative for a in result.attempts] == order[:2]
    assert result.attempts[1].verdict.unknown
    assert "RuntimeError: verifier crashed" in result.attempts[1].verdict.error
    assert result.chosen.negative == order[0]  # best judged so far
    run = read_json(tmp_path / "run.json")
    assert run["attempts"][1]["verdict"]["correct"] == -1
    assert (tmp_path / "attempt_01.png").exists() and (tmp_path / "attempt_02.png").exists()


def test_short_or_dirty_proposals_are_cleaned_and_topped_up():
    gen = FakeGenerator()
    proposer = FixedProposer(["Not a cat", "a cat without ears", "RED Sofa!!", "red sofa"])
    result = correct(PROMPT, 1, gen, _judges(gen, proposer=proposer), k=5)
    assert result.candidates == ("red sofa", *FALLBACK_NEGATIVES[:4])
    assert sorted(_ranked(result)) == sorted(result.candidates)


def test_engine_failure_is_recorded_then_raised(tmp_path):
    gen = FakeGenerator(fail_on_call=2)
    with pytest.raises(EngineError, match="fake engine failure"):
        correct(PROMPT, 1, gen, _judges(gen), out_dir=tmp_path)
    run = read_json(tmp_path / "run.json")
    assert run["status"] == "failed" and "fake engine failure" in run["errors"][0]
    assert run["candidates"] and run["original"]["image"] == "original.png"
    assert (tmp_path / "original.png").exists() and run["finished_at"]


def test_run_json_is_rewritten_after_every_stage(tmp_path):
    gen = FakeGenerator()
    seen = []

    def progress(message):
        path = tmp_path / "run.json"
        if path.exists():
            seen.append((message, read_json(path)))

    correct(PROMPT, 1, gen, _judges(gen), out_dir=tmp_path, progress=progress, batch_size=2)
    messages = [m for m, _ in seen]
    assert messages[0] == "generating the original image" and any(
        m.startswith("batch 3") for m in messages
    )
    by_stage = dict(seen)
    assert by_stage["proposing 5 negative candidates"]["caption"]["text"]
    assert by_stage["ranking 5 candidates"]["candidates_used"]
    batch3 = next(run for m, run in seen if m.startswith("batch 3"))
    assert len(batch3["attempts"]) == 4 and batch3["status"] == "running"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prompt": " "}, "prompt"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"k": 0}, "k"),
        ({"mode": "parallel"}, "mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"mode": "sequential", "batch_size": 3}, "mode=.batched. only"),
        ({"params": {"stepz": 2}}, "stepz"),
        ({"judges": object()}, "Judges"),
        ({"engine": object()}, "ImageGenerator"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(kwargs, match):
    gen = FakeGenerator()
    args = {"prompt": PROMPT, "seed": 1, "engine": gen, "judges": _judges(gen)}
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=match):
        correct(
            args.pop("prompt"), args.pop("seed"), args.pop("engine"), args.pop("judges"), **args
        )


def test_a_rerun_into_the_same_directory_leaves_no_stale_files(tmp_path):
    gen = FakeGenerator()
    correct(PROMPT, 1, gen, _judges(gen), out_dir=tmp_path)  # 5 attempts
    (tmp_path / "notes.txt").write_text("mine")
    gen = FakeGenerator()
    correct(PROMPT, 1, gen, _judges(gen, {None: (1, 0.9)}), out_dir=tmp_path)  # original accepted
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "contact_sheet.png", "notes.txt", "original.png", "run.json"
    ]  # fmt: skip


def test_images_are_on_disk_before_they_are_judged(tmp_path):
    gen = FakeGenerator(max_batch=3)
    verdicts = {None: (0, 0.2), **{c: KeyboardInterrupt() for c in CANDIDATES}}
    with pytest.raises(KeyboardInterrupt):
        correct(PROMPT, 1, gen, _judges(gen, verdicts), out_dir=tmp_path)
    run = read_json(tmp_path / "run.json")
    assert run["status"] == "failed" and len(run["attempts"]) == 3  # the first batch
    for attempt in run["attempts"]:
        assert (tmp_path / attempt["image"]).exists()
        assert attempt["verdict"]["error"] == "not verified yet"
