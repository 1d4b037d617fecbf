"""Engine directory loading and validation (docs/engine-format.md), on small hand-built engines."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from npc_rt.engine import FORMAT_VERSION, open_engine, read_manifest
from npc_rt.errors import EngineError, ManifestVersionError, ShapeError

onnx = pytest.importorskip("onnx")


def scale_model_bytes(input_name: str = "x", output_name: str = "y", factor: float = 2.0) -> bytes:
    """ONNX graph ``y = x * factor`` over float32 ``[batch, n]``."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", [input_name, "factor"], [output_name])],
        "scale",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor("factor", TensorProto.FLOAT, [], [factor])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model.SerializeToString()


def _file_entry(root: Path, rel: str, data: bytes) -> dict:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"file": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def write_scale_engine(root: Path, *, batch_max: int = 4, n_max: int = 8) -> Path:
    """A one-component engine directory (component ``scale``: ``y = 2x``) with a valid manifest."""
    root.mkdir(parents=True, exist_ok=True)
    component = {
        "kind": "test_scale",
        **_file_entry(root, "scale.onnx", scale_model_bytes()),
        "external_data": [],
        "precision": "fp32",
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", "n"]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", "n"]}],
        "dims": {
            "batch": {"min": 1, "opt": 2, "max": batch_max},
            "n": {"min": 2, "opt": 4, "max": n_max},
        },
    }
    tok = _file_entry(root, "tokenizer/tokenizer.json", b"{}")
    sched = _file_entry(
        root, "scheduler/scheduler_config.json", json.dumps({"shift": 3.0}).encode()
    )
    manifest = {
        "format": "npc-rt-engine",
        "format_version": FORMAT_VERSION,
        "family": "flux",
        "precision": "fp32",
        "components": {"scale": component},
        "tokenizers": {
            "tokenizer": {
                "file": tok["file"],
                "sha256": tok["sha256"],
                "preset": "clip-l",
                "encoder": "scale",
                "max_length": 77,
                "pad_id": 49407,
                "bos_id": 49406,
                "eos_id": 49407,
            }
        },
        "scheduler": {
            "class_name": "FlowMatchEulerDiscreteScheduler",
            "config_file": sched["file"],
            "sha256": sched["sha256"],
        },
        "pipeline": {"max_batch": batch_max},
        "scoring_encoder": {},
        "check": None,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root


def _edit_manifest(root: Path, edit) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_valid_engine_loads_and_describes(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    engine = open_engine(root, verify_hashes=True)
    assert engine.family == "flux" and engine.precision == "fp32"
    assert engine.manifest_hash == hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()
    comp = engine.component("scale")
    assert comp.input_names == ("x",) and comp.output_names == ("y",)
    assert comp.dims["batch"].max == 4
    assert engine.tokenizer("tokenizer").pad_id == 49407
    assert engine.scheduler_config["shift"] == 3.0
    text = engine.describe()
    assert "scale (test_scale" in text and "dim batch: 1..4" in text


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="does not exist"):
        open_engine(tmp_path / "nope")


def test_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(EngineError, match="not a directory"):
        open_engine(tmp_path / "f")


def test_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no manifest.json"):
        open_engine(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"), [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object")]
)
def test_corrupt_manifest(tmp_path: Path, content: bytes, message: str) -> None:
    root = write_scale_engine(tmp_path / "e")
    (root / "manifest.json").write_bytes(content)
    with pytest.raises(EngineError, match=message):
        read_manifest(root)


@pytest.mark.parametrize("version", [0, 2, "1", None, True])
def test_other_format_version(tmp_path: Path, version) -> None:
    root = write_scale_engine(tmp_path / "e")
    _edit_manifest(root, lambda m: m.__setitem__("format_version", version))
    with pytest.raises(ManifestVersionError, match="format_version"):
        open_engine(root)


def test_wrong_format_name(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    _edit_manifest(root, lambda m: m.__setitem__("format", "something-else"))
    with pytest.raises(EngineError, match="format is 'something-else'"):
        open_engine(root)


def test_unknown_family(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    _edit_manifest(root, lambda m: m.__setitem__("family", "dalle"))
    with pytest.raises(EngineError, match="family 'dalle' is unknown"):
        open_engine(root)


def test_missing_component_file(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    (root / "scale.onnx").unlink()
    with pytest.raises(EngineError, match="scale.onnx is missing"):
        open_engine(root)


def test_truncated_component_file(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    data = (root / "scale.onnx").read_bytes()
    (root / "scale.onnx").write_bytes(data[:-3])
    with pytest.raises(EngineError, match="truncated or replaced"):
        open_engine(root)


def test_hash_mismatch_found_only_when_verifying(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    data = bytearray((root / "scale.onnx").read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    (root / "scale.onnx").write_bytes(bytes(data))
    open_engine(root)  # sizes agree
    with pytest.raises(EngineError, match="corrupt"):
        open_engine(root, verify_hashes=True)


def test_paths_must_stay_inside(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    _edit_manifest(root, lambda m: m["components"]["scale"].__setitem__("file", "../x.onnx"))
    with pytest.raises(EngineError, match="inside the directory"):
        open_engine(root)


def test_missing_key_is_named(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    _edit_manifest(root, lambda m: m["components"]["scale"].pop("kind"))
    with pytest.raises(EngineError, match="components.scale lacks 'kind'"):
        open_engine(root)


def test_undeclared_dim(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    _edit_manifest(
        root, lambda m: m["components"]["scale"]["inputs"][0].__setitem__("shape", ["rows", "n"])
    )
    with pytest.raises(EngineError, match="undeclared dim 'rows'"):
        open_engine(root)


def test_unknown_component_and_tokenizer_are_named(tmp_path: Path) -> None:
    engine = open_engine(write_scale_engine(tmp_path / "e"))
    with pytest.raises(EngineError, match="no component 'unet'"):
        engine.component("unet")
    with pytest.raises(EngineError, match="no tokenizer 'tokenizer_3'"):
        engine.tokenizer("tokenizer_3")


def test_check_inputs(tmp_path: Path) -> None:
    comp = open_engine(write_scale_engine(tmp_path / "e")).component("scale")
    assert comp.check_inputs({"x": (3, 5)}) == {"batch": 3, "n": 5}
    with pytest.raises(ShapeError, match="missing inputs"):
        comp.check_inputs({})
    with pytest.raises(ShapeError, match="unknown inputs"):
        comp.check_inputs({"x": (1, 2), "z": (1,)})
    with pytest.raises(ShapeError, match="rank"):
        comp.check_inputs({"x": (1, 2, 3)})
    with pytest.raises(ShapeError, match=r"'batch' = 5 is outside the exported range \[1, 4\]"):
        comp.check_inputs({"x": (5, 4)})
    with pytest.raises(ShapeError, match="'n' = 1"):
        comp.check_inputs({"x": np.zeros((1, 1)).shape})


def test_outputs_may_use_scaled_dims(tmp_path: Path) -> None:
    root = write_scale_engine(tmp_path / "e")
    _edit_manifest(
        root,
        lambda m: m["components"]["scale"]["outputs"][0].__setitem__("shape", ["batch", "2*n"]),
    )
    assert open_engine(root).component("scale").outputs[0].shape == ("batch", "2*n")
    _edit_manifest(
        root,
        lambda m: m["components"]["scale"]["outputs"][0].__setitem__("shape", ["batch", "2*m"]),
    )
    with pytest.raises(EngineError, match="undeclared dim '2\\*m'"):
        open_engine(root)
