"""The loop over HTTP judges (a scripted OpenAI-compatible server on loopback): every fault ends in
the documented outcome, the run directory keeps everything done, and the API key leaks nowhere."""

from __future__ import annotations

import logging

import pytest
from fixtures.loop_fakes import FakeGenerator
from fixtures.openai_server import (
    Action,
    FakeOpenAIServer,
    drop,
    hang,
    rate_limited,
    reply,
    status,
    verdict,
)
from npc_rt.judges.factory import build_judges
from npc_rt.loop import correct
from npc_rt.records import read_json

KEY_ENV = "NPC_FAULT_TEST_KEY"
SECRET = "sk-fault-test-SECRET-0c1d2e3f"
PROMPT = "a photo of two cats on a sofa"
CAPTION = reply({"caption": "One grey cat sits on a red sofa next to a lamp and a cushion."})
PROPOSAL = reply({"candidates": ["grey cat", "red sofa", "lamp", "cushion", "rug"]})


@pytest.fixture()
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def _judges(server, **overrides):
    options = dict(
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        verifier_model="vlm",
        captioner_model="cap",
        proposer_model="llm",
        retries=2,
        timeout=0.5,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    options.update(overrides)
    return build_judges("openai", **options)


def _verifier_by_negative(gen: FakeGenerator, table: dict, default: Action):
    """A responder that answers by which negative made the image it was sent."""

    def respond(request):
        negative = gen.negative_of(request.images[0])
        return table.get(negative, default)

    return respond


def _assert_run_dir_intact(run_dir, result):
    run = read_json(run_dir / "run.json")  # valid JSON
    assert run["status"] == result.status and run["finished_at"]
    assert (run_dir / "original.png").exists() and (run_dir / "contact_sheet.png").exists()
    for attempt in run["attempts"]:
        assert (run_dir / attempt["image"]).exists()
    assert len(run["attempts"]) == len(result.attempts)
    assert run["chosen"]["index"] == result.chosen.index
    assert run["errors"] == list(result.errors)
    return run


def _assert_no_secret(run_dir, result, caplog):
    for path in run_dir.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path.name
    assert SECRET not in caplog.text
    assert SECRET not in repr(result)


def _happy(server, gen):
    server.set_default(
        "vlm", _verifier_by_negative(gen, {"lamp": verdict(1, 0.9)}, verdict(0, 0.2))
    )
    server.set_default("cap", CAPTION)
    server.set_default("llm", PROPOSAL)


SCENARIOS = {
    # name: (setup(server, gen), expected status, check(run, result, server))
    "all good": (lambda s, g: None, "accepted", None),
    "verifier malformed on the original": (
        lambda s, g: s.set_default("vlm", reply("Looks great to me!")),
        "unknown",
        lambda run, res, s: (
            run["original"]["verdict"]["raw"] == "Looks great to me!"
            and len(run["original"]["verdict"]["details"]["attempts"]) == 3
            and run["caption"] is None
        ),
    ),
    "verifier 500s then recovers": (
        lambda s, g: s.script("vlm", status(500), status(502)),
        "accepted",
        lambda run, res, s: (
            [a["outcome"] for a in run["original"]["verdict"]["details"]["attempts"]]
            == ["http_500", "http_502", "ok"]
        ),
    ),
    "captioner 429 with Retry-After": (
        lambda s, g: s.script("cap", rate_limited(0.3)),
        "accepted",
        lambda run, res, s: run["caption"]["details"]["attempts"][0]["waited"] == 0.3,
    ),
    "captioner hangs past the timeout": (
        lambda s, g: s.set_default("cap", hang(5.0)),
        "judge_error",
        lambda run, res, s: (
            run["attempts"] == []
            and "no answer within 0.5 s" in run["caption"]["error"]
            and res.chosen is res.original
        ),
    ),
    "proposer connection dropped every time": (
        lambda s, g: s.set_default("llm", drop()),
        "judge_error",
        lambda run, res, s: (
            "connection failed" in run["proposal"]["error"] and run["attempts"] == []
        ),
    ),
    "proposer malformed then valid": (
        lambda s, g: s.script("llm", reply("```json\n{candidates: [oops]}\n```")),
        "accepted",
        lambda run, res, s: run["proposal"]["candidates"][:2] == ["grey cat", "red sofa"],
    ),
    "verifier outage mid-run": (
        lambda s, g: s.set_default(
            "vlm", _verifier_by_negative(g, {None: verdict(0, 0.2)}, status(503))
        ),
        "judge_error",
        lambda run, res, s: (
            len(run["attempts"]) == 2  # the first batch (M = 2) was generated and recorded
            and all(a["verdict"]["correct"] == -1 for a in run["attempts"])
            and "HTTP 503" in run["attempts"][0]["verdict"]["error"]
            and res.chosen is res.original
        ),
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_ends_in_documented_outcome(name, server, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, SECRET)
    setup, expected, check = SCENARIOS[name]
    gen = FakeGenerator(max_batch=2)
    _happy(server, gen)
    setup(server, gen)
    run_dir = tmp_path / "run"
    result = correct(PROMPT, 9, gen, _judges(server), out_dir=run_dir)
    assert result.status == expected, result.errors
    run = _assert_run_dir_intact(run_dir, result)
    if expected == "accepted":
        assert result.chosen.negative == "lamp" and run["chosen"]["accepted"]
    if expected in ("unknown", "judge_error"):
        assert run["errors"]
    if check is not None:
        assert check(run, result, server)
    _assert_no_secret(run_dir, result, caplog)
    for request in server.requests:
        assert request.headers["authorization"] == f"Bearer {SECRET}"


def test_batched_verification_runs_concurrently_over_http(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    gen = FakeGenerator(max_batch=5)
    server.set_default("vlm", verdict(0, 0.2, delay=0.5))
    server.set_default("cap", CAPTION)
    server.set_default("llm", PROPOSAL)
    result = correct(PROMPT, 9, gen, _judges(server, concurrency=8, timeout=5.0), out_dir=tmp_path)
    assert result.status == "not_accepted" and len(result.attempts) == 5
    assert server.max_in_flight("vlm") == 5
    judges_record = read_json(tmp_path / "run.json")["judges"]
    assert judges_record["verifier"]["config"]["api_key_env"] == KEY_ENV
    assert judges_record["verifier"]["config"]["model"] == "vlm"
