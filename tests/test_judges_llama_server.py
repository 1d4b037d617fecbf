"""The proposer role served by a real local model: SmolLM2-135M-Instruct (GGUF) behind cyllama's
OpenAI-compatible server, started here on a free loopback port (see tests/fixtures/llama_server).

A 135M model follows the JSON instructions only loosely (nested objects, trailing commas, answers
cut by the token limit); what must hold is that whatever it says is parsed defensively, cleaned by
the core's rules, and that the loop proceeds with the result (topped up from the fallback list).
"""

from __future__ import annotations

import pytest
from fixtures.llama_server import LlamaServer
from fixtures.loop_fakes import FakeGenerator, FixedCaptioner, NegativeVerifier
from npc_rt.judges.base import Caption, Judges, Verdict
from npc_rt.judges.openai_compat import OpenAIProposer, RoleConfig
from npc_rt.loop import correct
from npc_rt.prompt import FALLBACK_NEGATIVES, MAX_PHRASE_WORDS, NEGATION_WORDS, clean_candidates
from npc_rt.records import read_json

PROMPT = "a photo of two cats on a sofa"
CAPTION = (
    "One grey cat sits on a red sofa next to a brass lamp and a striped cushion. The wall behind "
    "is white, the floor is wooden, and daylight comes from a window on the left."
)

pytestmark = pytest.mark.slow


def _proposer(server: LlamaServer) -> OpenAIProposer:
    # no key: a local server; greedy decoding (temperature 0) keeps the answer reproducible
    config = RoleConfig(
        model="smollm2",
        base_url=server.base_url,
        api_key_env=None,
        timeout=180,
        retries=1,
        max_tokens=200,
    )
    return OpenAIProposer(config)


def _is_clean(phrase: str) -> bool:
    words = phrase.split()
    return (
        clean_candidates([phrase]) == [phrase]
        and 1 <= len(words) <= MAX_PHRASE_WORDS
        and not set(words) & set(NEGATION_WORDS)
    )


def test_real_model_answer_is_parsed_and_cleaned(llama_server):
    proposal = _proposer(llama_server).propose(
        PROMPT, Caption(CAPTION), Verdict(0, 0.2, "there is only one cat"), 5
    )
    assert proposal.raw, "the server answered nothing"
    assert proposal.error is None, (proposal.error, llama_server.tail())
    assert len(proposal.candidates) <= 5
    assert all(_is_clean(c) for c in proposal.candidates), proposal.candidates


def test_loop_proceeds_with_the_real_proposer(llama_server, tmp_path):
    gen = FakeGenerator(max_batch=5)
    judges = Judges(
        verifier=NegativeVerifier(gen, {}, default=(0, 0.2)),  # rejects everything
        captioner=FixedCaptioner(CAPTION),
        proposer=_proposer(llama_server),
    )
    result = correct(PROMPT, 3, gen, judges, k=5, out_dir=tmp_path)
    assert result.status == "not_accepted", result.errors
    assert len(result.candidates) == 5 and len(result.attempts) == 5
    assert all(_is_clean(c) for c in result.candidates)
    model_part = [c for c in result.candidates if c in result.proposal.candidates]
    assert list(result.candidates[: len(model_part)]) == model_part  # model's phrases come first
    assert (
        list(result.candidates[len(model_part) :])
        == [n for n in FALLBACK_NEGATIVES if n not in model_part][: 5 - len(model_part)]
    )
    run = read_json(tmp_path / "run.json")
    assert (
        run["proposal"]["raw"] == result.proposal.raw
        and run["proposal"]["judge"] == "openai:smollm2"
    )
    assert sorted(c["text"] for c in run["candidates"]) == sorted(result.candidates)
