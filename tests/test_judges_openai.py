"""The OpenAI-compatible judges against a real HTTP server on loopback (tests/fixtures/openai_server)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from fixtures.openai_server import (
    FakeOpenAIServer,
    drop,
    hang,
    rate_limited,
    reply,
    status,
    verdict,
)
from npc_rt.errors import InvalidInputError
from npc_rt.judges import factory
from npc_rt.judges.base import Caption, Judges, Verdict
from npc_rt.judges.factory import build_judges, judge_kinds, register_judge_kind
from npc_rt.judges.openai_compat import (
    ChatClient,
    OpenAICaptioner,
    OpenAIProposer,
    OpenAIVerifier,
    RoleConfig,
    encode_image_data_url,
    load_prompt,
    render_checklist,
)

KEY_ENV = "NPC_TEST_JUDGE_KEY"
SECRET = "sk-test-DO-NOT-LEAK-7f3a91c2"


@pytest.fixture()
def server():
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture()
def secret_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def _config(server: FakeOpenAIServer, model: str, **overrides) -> RoleConfig:
    options = dict(
        model=model,
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        timeout=2.0,
        retries=2,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    options.update(overrides)
    return RoleConfig(**options)


def test_valid_verdict_round_trip_with_png_image(server, secret_env):
    server.script("vlm", verdict(1, 0.93, "all good"))
    judge = OpenAIVerifier(_config(server, "vlm"))
    image = _image()
    out = judge.verify(image, "a red cup")
    assert (out.correct, out.score, out.reason, out.error) == (
        1,
        pytest.approx(0.93),
        "all good",
        None,
    )
    assert out.judge == "openai:vlm" and '"correct": 1' in out.raw
    (request,) = server.requests_for("vlm")
    assert request.image_types == ("data:image/png;base64",)
    np.testing.assert_array_equal(request.images[0], image)  # PNG is lossless
    assert "a red cup" in request.text and '"correct"' in request.text
    assert request.headers["authorization"] == f"Bearer {SECRET}"


def test_jpeg_data_url(server, secret_env):
    server.script("vlm", verdict(0, 0.1))
    judge = OpenAIVerifier(_config(server, "vlm", image_format="jpeg"))
    judge.verify(_image(), "a red cup")
    (request,) = server.requests_for("vlm")
    assert request.image_types == ("data:image/jpeg;base64",)
    assert request.images[0].shape == (24, 32, 3)


def test_500_then_success_is_retried(server, secret_env):
    server.script("vlm", status(500), status(503), verdict(0, 0.4, "one cat"))
    out = OpenAIVerifier(_config(server, "vlm")).verify(_image(), "two cats")
    assert out.correct == 0 and out.reason == "one cat" and out.error is None
    outcomes = [a["outcome"] for a in out.details["attempts"]]
    assert outcomes == ["http_500", "http_503", "ok"]


def test_429_honours_retry_after(server, secret_env):
    server.script("vlm", rate_limited(0.6), verdict(1, 1.0))
    t0 = time.perf_counter()
    out = OpenAIVerifier(_config(server, "vlm")).verify(_image(), "x")
    elapsed = time.perf_counter() - t0
    assert out.correct == 1
    first = out.details["attempts"][0]
    assert first["outcome"] == "rate_limited" and first["waited"] == pytest.approx(0.6)
    assert elapsed >= 0.6  # backoff alone (<= 0.05 s) could not explain this wait


def test_hang_past_timeout_ends_unknown(server, secret_env):
    server.set_default("vlm", hang(5.0))
    t0 = time.perf_counter()
    out = OpenAIVerifier(_config(server, "vlm", timeout=0.3, retries=1)).verify(_image(), "x")
    assert time.perf_counter() - t0 < 3.0
    assert out.correct == -1 and out.unknown
    assert [a["outcome"] for a in out.details["attempts"]] == ["timeout", "timeout"]
    assert "after 2 attempt(s)" in out.error


def test_dropped_connection_then_success(server, secret_env):
    server.script("vlm", drop(), verdict(1, 0.8))
    out = OpenAIVerifier(_config(server, "vlm")).verify(_image(), "x")
    assert out.correct == 1
    assert [a["outcome"] for a in out.details["attempts"]] == ["connection", "ok"]


def test_malformed_answers_after_retries_are_unknown_never_pass_or_fail(server, secret_env):
    server.set_default("vlm", reply("I am quite sure it is fine!"))
    out = OpenAIVerifier(_config(server, "vlm", retries=2)).verify(_image(), "x")
    assert out.correct == -1
    assert len(server.requests_for("vlm")) == 3
    assert all(a["outcome"] == "malformed" for a in out.details["attempts"])
    assert out.raw == "I am quite sure it is fine!"  # the last answer is kept for the record


def test_client_errors_other_than_429_are_not_retried(server, secret_env):
    server.set_default("vlm", status(401, '{"error": {"message": "bad key ' + SECRET + '"}}'))
    out = OpenAIVerifier(_config(server, "vlm", retries=3)).verify(_image(), "x")
    assert out.correct == -1 and len(server.requests_for("vlm")) == 1
    assert "HTTP 401" in out.error
    assert SECRET not in out.error and "***" in out.error  # an echoed key is scrubbed


def test_concurrency_limit_is_respected(server, secret_env):
    server.set_default("vlm", verdict(0, 0.2, delay=0.4))
    judge = OpenAIVerifier(_config(server, "vlm", concurrency=2))
    threads = [threading.Thread(target=judge.verify, args=(_image(i), "x")) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(server.requests_for("vlm")) == 6
    assert server.max_in_flight("vlm") == 2


def test_captioner_and_proposer(server, secret_env):
    pytest.importorskip("npc_rt.prompt")
    server.script("cap", reply('```json\n{"caption": "Two grey cats on a red sofa."}\n```'))
    server.script(
        "llm",
        reply(
            'Sure! {"candidates": ["Grey Cats.", "a cat without fur", "red  sofa", "red sofa", "x y z a b c d"]}'
        ),
    )
    caption = OpenAICaptioner(_config(server, "cap")).caption(_image(), "one cat")
    assert caption.text == "Two grey cats on a red sofa." and caption.error is None
    assert len(server.requests_for("cap")[0].images) == 1
    proposal = OpenAIProposer(_config(server, "llm")).propose(
        "one cat", caption, Verdict(0, 0.2, "there are two cats"), 5
    )
    # cleaned by the core rules: lowercase, trailing punctuation, negations, duplicates, length
    assert proposal.candidates == ("grey cats", "red sofa")
    request = server.requests_for("llm")[0]
    assert request.images == () and "there are two cats" in request.text
    assert "Two grey cats on a red sofa." in request.text


def test_failed_roles_report_errors(server, secret_env):
    server.set_default("cap", status(500))
    server.set_default("llm", reply("no idea"))
    caption = OpenAICaptioner(_config(server, "cap", retries=1)).caption(_image(), "x")
    assert caption.text == "" and "HTTP 500" in caption.error
    proposal = OpenAIProposer(_config(server, "llm", retries=0)).propose(
        "x", Caption("c"), Verdict(0, 0.0, "r"), 5
    )
    assert proposal.candidates == () and "no JSON" in proposal.error


def test_secret_never_in_repr_logs_or_records(server, secret_env, caplog):
    caplog.set_level(logging.DEBUG)
    server.script("vlm", status(500, '{"error": "echo ' + SECRET + '"}'), verdict(0, 0.3))
    judge = OpenAIVerifier(_config(server, "vlm"))
    out = judge.verify(_image(), "x")
    client = judge.client
    assert SECRET not in repr(judge) and SECRET not in repr(client)
    assert SECRET not in repr(client.config) and SECRET not in str(client.config.describe())
    assert SECRET not in repr(out) and SECRET not in str(out.details)
    assert SECRET not in caplog.text
    assert any("attempt 1/3 failed" in r.getMessage() for r in caplog.records)


def test_missing_key_variable_is_a_clear_error(monkeypatch, server):
    monkeypatch.delenv("NPC_UNSET_KEY", raising=False)
    with pytest.raises(InvalidInputError, match="NPC_UNSET_KEY"):
        ChatClient(_config(server, "vlm", api_key_env="NPC_UNSET_KEY"), role="verifier")
    # a server that takes no key
    server.script("vlm", verdict(1, 1.0))
    out = OpenAIVerifier(_config(server, "vlm", api_key_env=None)).verify(_image(), "x")
    assert out.correct == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", ""),
        ("base_url", "ftp://x"),
        ("timeout", 0),
        ("retries", -1),
        ("concurrency", 0),
        ("image_format", "gif"),
        ("jpeg_quality", 0),
        ("max_tokens", 0),
        ("token_limit_field", "n"),
    ],
)
def test_bad_role_config_is_refused(field, value):
    options = {"model": "m", "base_url": "http://127.0.0.1:1/v1", field: value}
    with pytest.raises(InvalidInputError, match=field.split("_")[0]):
        RoleConfig(**options)


def test_prompts_are_package_data_and_checklist_renders():
    for role in ("verifier", "captioner", "proposer"):
        assert "$prompt" in load_prompt(role)
    assert "$caption" in load_prompt("proposer") and "$k" in load_prompt("proposer")
    with pytest.raises(InvalidInputError):
        load_prompt("nobody")
    checklist = render_checklist(
        {
            "include": [
                {"class": "cat", "count": 2, "color": "black"},
                {"class": "dog", "position": ["left of", 0]},
            ],
            "exclude": [{"class": "bird", "count": 1}],
        }
    )
    assert "2 black cat" in checklist and "left of" in checklist and "bird" in checklist
    assert render_checklist(None) == "" and render_checklist({"include": []}) == ""


def test_data_url_refuses_wrong_images():
    with pytest.raises(InvalidInputError, match="uint8"):
        encode_image_data_url(np.zeros((4, 4), np.uint8))
    assert encode_image_data_url(np.zeros((4, 4, 3), np.uint8)).startswith("data:image/png;base64,")


def test_factory_builds_openai_and_is_extensible(server, secret_env, monkeypatch):
    judges = build_judges(
        "openai",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        verifier_model="vlm",
        captioner_model="cap",
        model="llm",
        proposer_timeout=7.0,
        retries=None,
    )
    assert isinstance(judges, Judges)
    assert judges.verifier.client.config.model == "vlm"
    assert judges.proposer.client.config.model == "llm"
    assert judges.proposer.client.config.timeout == 7.0
    assert judges.verifier.client.config.timeout == 60.0
    with pytest.raises(InvalidInputError, match="unknown option"):
        build_judges("openai", model="m", api_key_env=KEY_ENV, bogus=1)
    with pytest.raises(InvalidInputError, match="need a model"):
        build_judges("openai", api_key_env=KEY_ENV)
    with pytest.raises(InvalidInputError, match="unknown judge kind"):
        build_judges("nope")
    monkeypatch.setattr(factory, "_BUILDERS", dict(factory._BUILDERS))  # undone after the test
    register_judge_kind("echo-test", lambda **o: judges)
    assert "echo-test" in judge_kinds() and build_judges("echo-test") is judges


def test_non_completion_body_is_retried_then_unknown(server, secret_env):
    server.set_default("vlm", status(200, "<html>gateway says hello</html>"))
    out = OpenAIVerifier(_config(server, "vlm", retries=1)).verify(_image(), "x")
    assert out.correct == -1 and len(server.requests_for("vlm")) == 2
    assert out.details["attempts"][0]["outcome"] in ("malformed", "bad_response")


def test_sampling_fields_are_configurable(server, secret_env):
    server.set_default("vlm", verdict(1, 1.0))
    OpenAIVerifier(_config(server, "vlm")).verify(_image(), "x")
    OpenAIVerifier(
        _config(
            server,
            "vlm",
            temperature=None,
            token_limit_field="max_completion_tokens",
            max_tokens=900,
        )
    ).verify(_image(), "x")
    first, second = (r.body for r in server.requests_for("vlm"))
    assert first["temperature"] == 0.0 and first["max_tokens"] == 512
    assert "temperature" not in second and "max_tokens" not in second
    assert second["max_completion_tokens"] == 900
