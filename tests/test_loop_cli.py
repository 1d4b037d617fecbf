"""``npc-rt correct`` and ``npc-rt rank`` through the real argument parser, with the engine loader
pointed at the fake generator and the judges at the loopback OpenAI server."""

from __future__ import annotations

import json

import pytest
from fixtures.loop_fakes import FakeGenerator
from fixtures.openai_server import FakeOpenAIServer, reply, status, verdict
from npc_rt.cli import correct as correct_cli
from npc_rt.cli import main
from npc_rt.cli import rank as rank_cli
from npc_rt.records import read_json
from npc_rt.scoring import rank_candidates

KEY_ENV = "NPC_CLI_TEST_KEY"
SECRET = "sk-cli-test-SECRET-99aa"
PROMPT = "a photo of two cats on a sofa"


@pytest.fixture()
def fake_engine(monkeypatch):
    gen = FakeGenerator(max_batch=3)
    monkeypatch.setattr(correct_cli, "_load_engine", lambda path, providers: gen)
    monkeypatch.setattr(rank_cli, "_load_engine", lambda path, providers: gen)
    monkeypatch.setenv(KEY_ENV, SECRET)
    return gen


@pytest.fixture()
def server():
    with FakeOpenAIServer() as srv:
        srv.set_default("vlm", verdict(0, 0.3))
        srv.set_default("cap", reply({"caption": "One grey cat on a red sofa."}))
        srv.set_default("llm", reply({"candidates": ["grey cat", "red sofa", "lamp"]}))
        yield srv


def _args(server, tmp_path, *extra):
    return [
        "correct",
        "--engine", str(tmp_path / "engine"),
        "--prompt", PROMPT,
        "--seed", "4",
        "--out", str(tmp_path / "run"),
        "--judge", "openai",
        "--base-url", server.base_url,
        "--api-key-env", KEY_ENV,
        "--verifier-model", "vlm",
        "--captioner-model", "cap",
        "--proposer-model", "llm",
        "--timeout", "2",
        "--retries", "1",
        "--judge-option", "backoff_base=0.01",
        *extra,
    ]  # fmt: skip


def test_correct_json_summary_and_progress(fake_engine, server, tmp_path, capsys):
    code = main(_args(server, tmp_path, "--json", "--k", "4", "--steps", "2"))
    out, err = capsys.readouterr()
    assert code == 0
    summary = json.loads(out)
    assert summary["status"] == "not_accepted" and summary["mode"] == "batched"
    assert summary["batch_size"] == 3 and summary["attempts"] == 4
    assert summary["candidates"] == ["grey cat", "red sofa", "lamp", "cgi"]  # topped up to K = 4
    assert "npc-rt correct: batch 2" in err and "generating the original image" in err
    run = read_json(tmp_path / "run" / "run.json")
    assert run["params"]["steps"] == 2 and run["k"] == 4
    assert SECRET not in out + err


def test_correct_quiet_sequential_text_output(fake_engine, server, tmp_path, capsys):
    code = main(_args(server, tmp_path, "--quiet", "--mode", "sequential"))
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "status: not_accepted" in out and "mode: sequential (M = 1)" in out
    assert len(fake_engine.calls) == 1 + 5


def test_correct_judge_failure_exit_status(fake_engine, server, tmp_path, capsys):
    server.set_default("vlm", status(500, '{"error": "down ' + SECRET + '"}'))
    code = main(_args(server, tmp_path, "--quiet"))
    out, err = capsys.readouterr()
    assert code == correct_cli.EXIT_JUDGE_FAILURE
    assert "status: unknown" in out and "HTTP 500" in out
    assert SECRET not in out + err
    assert read_json(tmp_path / "run" / "run.json")["status"] == "unknown"


def test_correct_bad_options_are_clear_errors(fake_engine, server, tmp_path, capsys):
    assert main(_args(server, tmp_path, "--judge-option", "oops")) == 1
    assert "--judge-option expects KEY=VALUE" in capsys.readouterr().err
    assert main(_args(server, tmp_path, "--judge-option", "colour=1")) == 1
    assert "unknown option 'colour'" in capsys.readouterr().err
    assert main(_args(server, tmp_path, "--metadata", "[1]")) == 1
    assert "--metadata must be a JSON object" in capsys.readouterr().err


def test_correct_metadata_reaches_the_verifier(fake_engine, server, tmp_path, capsys):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"include": [{"class": "cat", "count": 2}]}))
    assert main(_args(server, tmp_path, "--quiet", "--metadata", f"@{meta}")) == 0
    first = server.requests_for("vlm")[0]
    assert "Checklist" in first.text and "2 cat" in first.text


def test_rank_table_and_json_match_the_api(fake_engine, tmp_path, capsys):
    cands = ["Grey cat.", "red sofa", "a sofa without cushions", "lamp"]
    expected = rank_candidates(PROMPT, cands, fake_engine.scoring_encoder())
    base = ["rank", "--engine", str(tmp_path), "--prompt", PROMPT, "--candidates", *cands]
    assert main([*base, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["text"] for c in data["candidates"]] == list(expected.texts)
    assert "a sofa without cushions" not in [c["text"] for c in data["candidates"]]
    assert data["candidates"][0]["score"] == pytest.approx(expected.candidates[0].score)
    assert data["objects"] == list(expected.terms.objects)
    assert main(base) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[3].split() == ["rank", "score", "s_qty", "s_obj", "s_cand", "candidate"]
    first = table[4].split()
    assert first[0] == "1" and " ".join(first[5:]) == expected.texts[0]
    assert float(first[1]) == pytest.approx(expected.candidates[0].score, abs=1e-4)
