"""The ONNX Runtime backend on a one-component engine (``y = 2x``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from npc_rt.backends import Backend, OrtBackend, clear_session_cache, resolve_providers
from npc_rt.engine import open_engine
from npc_rt.errors import EngineError, ShapeError

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from test_engine import _edit_manifest, scale_model_bytes, write_scale_engine  # noqa: E402


@pytest.fixture
def engine(tmp_path: Path):
    clear_session_cache()
    return open_engine(write_scale_engine(tmp_path / "e"))


def test_backend_satisfies_protocol(engine) -> None:
    backend = OrtBackend(engine)
    assert isinstance(backend, Backend)
    assert backend.providers[-1] == "CPUExecutionProvider"


def test_run_matches_numpy(engine) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = OrtBackend(engine, ["cpu"]).run("scale", {"x": x})
    assert set(out) == {"y"}
    np.testing.assert_array_equal(out["y"], 2 * x)


def test_inputs_are_cast_to_manifest_dtype(engine) -> None:
    x = np.arange(4, dtype=np.float64).reshape(1, 4)
    out = OrtBackend(engine).run("scale", {"x": x})
    assert out["y"].dtype == np.float32
    np.testing.assert_array_equal(out["y"], 2 * x)


def test_io_binding_path_equals_plain_path(engine) -> None:
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    bound = OrtBackend(engine, use_io_binding=True)
    placed = bound.place(x)
    assert isinstance(placed, ort.OrtValue)
    np.testing.assert_array_equal(bound.run("scale", {"x": placed})["y"], 2 * x)
    np.testing.assert_array_equal(bound.run("scale", {"x": x})["y"], 2 * x)
    plain = OrtBackend(engine, use_io_binding=False)
    assert plain.place(x) is x


def test_sessions_are_created_once_per_file(engine) -> None:
    a = OrtBackend(engine)
    b = OrtBackend(open_engine(engine.root))
    a.load()
    b.load()
    assert a._session("scale") is b._session("scale")
    clear_session_cache()
    c = OrtBackend(engine)
    assert c._session("scale") is not a._session("scale")


def test_shapes_checked_before_running(engine) -> None:
    backend = OrtBackend(engine)
    with pytest.raises(ShapeError, match="'batch' = 9"):
        backend.run("scale", {"x": np.zeros((9, 4), np.float32)})
    with pytest.raises(ShapeError, match="missing inputs"):
        backend.run("scale", {})


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(EngineError, match="not available"):
        resolve_providers(["NoSuchExecutionProvider"])
    assert resolve_providers(["cpu"]) == ("CPUExecutionProvider",)


def test_corrupt_onnx_fails_at_load(tmp_path: Path) -> None:
    clear_session_cache()
    root = write_scale_engine(tmp_path / "e")
    size = (root / "scale.onnx").stat().st_size
    (root / "scale.onnx").write_bytes(b"\0" * size)  # same size: passes the cheap check
    backend = OrtBackend(open_engine(root))
    with pytest.raises(EngineError, match="cannot load scale"):
        backend.load()


def test_graph_io_must_match_manifest(tmp_path: Path) -> None:
    clear_session_cache()
    root = write_scale_engine(tmp_path / "e")
    data = scale_model_bytes(input_name="other")
    (root / "scale.onnx").write_bytes(data)
    _edit_manifest(root, lambda m: m["components"]["scale"].__setitem__("bytes", len(data)))
    with pytest.raises(EngineError, match="does not match the manifest"):
        OrtBackend(open_engine(root)).load()


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="needs onnxruntime-gpu with a visible CUDA device",
)
def test_cuda_matches_cpu(engine) -> None:  # pragma: no cover - GPU machines only
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    gpu = OrtBackend(engine, ["cuda"])
    assert gpu.providers[0] == "CUDAExecutionProvider"
    np.testing.assert_allclose(gpu.run("scale", {"x": gpu.place(x)})["y"], 2 * x, rtol=1e-6)
