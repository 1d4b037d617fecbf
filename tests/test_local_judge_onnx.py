"""A user-supplied ONNX detector: the documented layout, the mapping back from the letterbox, and
clear errors for models that do not follow it. The models are built here with ``onnx.helper``:
they output fixed rows (plus 0 x the image mean, so the image input is really consumed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="building test models needs onnx")
from npc_rt.errors import EngineError, InvalidInputError, NpcIOError  # noqa: E402
from npc_rt.judges.base import CORRECT, INCORRECT  # noqa: E402
from npc_rt.judges.factory import build_judges  # noqa: E402
from npc_rt.judges.local.detector import DetectorConfig, OnnxDetector  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402


def write_model(path: Path, rows: np.ndarray, size: int | str = 64) -> Path:
    """A detector whose output is ``rows`` ([1, N, 6]) whatever the image."""
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    out = helper.make_tensor_value_info("detections", TensorProto.FLOAT, list(rows.shape))
    const = helper.make_tensor("rows", TensorProto.FLOAT, list(rows.shape), rows.ravel().tolist())
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["rows", "nothing"], ["detections"]),
    ]
    graph = helper.make_graph(nodes, "fixed_detector", [image], [out], [const, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def names(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("person\nmotorbike\ndog\n", encoding="utf-8")  # a darknet spelling on line 2
    return path


def test_boxes_map_back_from_the_letterbox(tmp_path: Path, names: Path) -> None:
    # A 100 x 200 (H x W) image in a 64 x 64 input: scale 0.32, 16 rows of padding above.
    rows = np.array(
        [
            [
                [0, 16, 32, 48, 0.9, 2],  # a dog: image x 0..100, y 0..100
                [2, 18, 30, 46, 0.8, 2],  # the same dog again, nested: suppressed
                [32, 16, 64, 48, 0.7, 1],  # a motorcycle: image x 100..200
                [10, 20, 20, 30, 0.2, 0],  # a person below the threshold
            ]
        ],
        dtype=np.float32,
    )
    detector = OnnxDetector(write_model(tmp_path / "d.onnx", rows), names)
    assert detector.class_names == ("person", "motorcycle", "dog")
    found = detector.detect(np.zeros((100, 200, 3), np.uint8))
    assert [(d.name, round(d.score, 2)) for d in found] == [("dog", 0.9), ("motorcycle", 0.7)]
    assert found[0].box == pytest.approx((0.0, 0.0, 100.0, 100.0))
    assert found[1].box == pytest.approx((100.0, 0.0, 200.0, 100.0))


def test_onnx_detector_in_the_judge(tmp_path: Path, names: Path) -> None:
    rows = np.array([[[0, 16, 32, 48, 0.9, 2], [32, 16, 64, 48, 0.7, 1]]], dtype=np.float32)
    model = write_model(tmp_path / "d.onnx", rows)
    judges = build_judges("local", detector=str(model), names=str(names))
    image = np.zeros((100, 200, 3), np.uint8)
    assert judges.verifier.verify(image, "a dog left of a motorbike").correct == CORRECT
    verdict = judges.verifier.verify(image, "a photo of a person")
    assert verdict.correct == INCORRECT
    assert "missing person" in verdict.reason and "dog, motorcycle" in verdict.reason


def test_dynamic_input_size_uses_the_option(tmp_path: Path, names: Path) -> None:
    rows = np.array([[[0, 0, 128, 128, 0.9, 0]]], dtype=np.float32)
    model = write_model(tmp_path / "d.onnx", rows, size="S")
    detector = OnnxDetector(model, names, DetectorConfig(), input_size=128)
    (person,) = detector.detect(np.zeros((50, 50, 3), np.uint8))
    assert person.box == pytest.approx((0.0, 0.0, 50.0, 50.0))


def test_bad_models_and_files(tmp_path: Path, names: Path) -> None:
    with pytest.raises(NpcIOError, match="not found"):
        OnnxDetector(tmp_path / "missing.onnx", names)
    wrong_width = write_model(tmp_path / "w.onnx", np.zeros((1, 2, 5), np.float32))
    with pytest.raises(EngineError, match=r"\[N, 6\] rows"):
        OnnxDetector(wrong_width, names).detect(np.zeros((8, 8, 3), np.uint8))
    bad_class = write_model(tmp_path / "c.onnx", np.array([[[0, 0, 9, 9, 0.9, 7]]], np.float32))
    with pytest.raises(EngineError, match="class index 7 outside the 3 names"):
        OnnxDetector(bad_class, names).detect(np.zeros((8, 8, 3), np.uint8))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="has no names"):
        OnnxDetector(bad_class, empty)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(EngineError, match="cannot load detector model"):
        OnnxDetector(garbage, names)
    with pytest.raises(InvalidInputError, match="needs names="):
        build_judges("local", detector=str(bad_class))
    with pytest.raises(InvalidInputError, match="unknown option"):
        build_judges("local", threshold=0.3)


def test_cascade_kind_puts_the_local_verifier_before_the_vlm(tmp_path: Path, names: Path) -> None:
    from npc_rt.judges.local import CascadeVerifier, LocalVerifier
    from npc_rt.judges.openai_compat import OpenAICaptioner, OpenAIVerifier

    rows = np.array([[[0, 16, 32, 48, 0.9, 2]]], dtype=np.float32)
    model = write_model(tmp_path / "d.onnx", rows)
    judges = build_judges(
        "cascade",
        model="some-vlm",
        base_url="http://127.0.0.1:9/v1",
        api_key_env="",  # a loopback server takes no key (None would be dropped as unset)
        local_detector=str(model),
        local_names=str(names),
    )
    assert isinstance(judges.verifier, CascadeVerifier)
    assert isinstance(judges.verifier.local, LocalVerifier)
    assert isinstance(judges.verifier.vlm, OpenAIVerifier)
    assert isinstance(judges.captioner, OpenAICaptioner)
    # The local verifier rejects a missing person without any call to the (unreachable) VLM.
    verdict = judges.verifier.verify(np.zeros((100, 200, 3), np.uint8), "a photo of a person")
    assert verdict.correct == INCORRECT and verdict.details["stage"] == "local"
    assert (
        verdict.reason
        == "local: failed 1 of 1 checks: missing person; also detected, not requested: dog"
    )


def test_local_kind_takes_a_loopback_llm_for_its_proposer(tmp_path: Path, names: Path) -> None:
    import json

    from npc_rt.judges.base import Caption, Verdict
    from npc_rt.judges.openai_compat import OpenAIProposer

    rows = np.array([[[0, 16, 32, 48, 0.9, 2]]], dtype=np.float32)
    model = write_model(tmp_path / "d.onnx", rows)
    common = {"detector": str(model), "names": str(names)}
    # VLM-only flags a CLI passes to every kind are accepted and unused.
    plain = build_judges("local", verifier_model="big-vlm", timeout=3.0, **common)
    assert plain.proposer.llm is None
    # Nothing listens on port 9: the LLM fails, the rules and the fallback list still answer.
    judges = build_judges(
        "local", base_url="http://127.0.0.1:9/v1", model="smollm2", retries=0, timeout=2.0, **common
    )
    assert isinstance(judges.proposer.llm, OpenAIProposer)
    image = np.zeros((100, 200, 3), np.uint8)
    verdict = judges.verifier.verify(image, "a photo of a person")
    caption = judges.captioner.caption(image, "a photo of a person")
    assert isinstance(verdict, Verdict) and isinstance(caption, Caption)
    proposal = judges.proposer.propose("a photo of a person", caption, verdict, 3)
    assert proposal.candidates[0] == "dog" and len(proposal.candidates) == 3
    assert proposal.error is None
    assert "llm_error" in json.loads(proposal.raw)
    with pytest.raises(InvalidInputError, match="both llm_base_url and llm_model"):
        build_judges("local", llm_model="smollm2", **common)
