"""TensorRT plan cache, profiles and build logic, on the CPU (no TensorRT needed).

The GPU half (real builds, TensorRT vs ONNX Runtime outputs) is in tests/gpu/ and in
``test_trt_backend_matches_onnxruntime`` below, which skips without a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from npc_rt.backends.trt_plans import (
    PlanCache,
    PlanEntry,
    TrtTarget,
    optimization_profile,
    plan_cache_key,
    plan_file_name,
    sha256_bytes,
    static_profile,
)
from npc_rt.demo import demo_engine_dir
from npc_rt.errors import EngineError, InvalidInputError, ShapeError

H200 = TrtTarget("10.13.0", "NVIDIA H200", "9.0")


@pytest.fixture()
def engine_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo_engine_dir(), tmp_path / "engine"))


def _component(engine_dir: Path, name: str = "transformer") -> dict:
    return json.loads((engine_dir / "manifest.json").read_text())["components"][name]


def test_profile_is_the_manifest_contract(engine_dir: Path) -> None:
    raw = _component(engine_dir)
    profile = optimization_profile(raw)
    assert [row.name for row in profile] == [spec["name"] for spec in raw["inputs"]]
    for row in profile:
        assert list(row.min) == raw["profiles"]["min"][row.name]
        assert list(row.opt) == raw["profiles"]["opt"][row.name]
        assert list(row.max) == raw["profiles"]["max"][row.name]
    assert not any(row.static for row in profile)


def test_static_profile_fixes_every_dynamic_dim(engine_dir: Path) -> None:
    raw = _component(engine_dir)
    rows = static_profile(raw, {"batch": 2, "image_seq": 64, "text_length": 64})
    shapes = {row.name: row.min for row in rows}
    assert all(row.static for row in rows)
    assert shapes["hidden_states"] == (2, 64, 64)
    assert shapes["img_ids"] == (64, 3)
    with pytest.raises(ShapeError, match="image_seq=100000"):
        static_profile(raw, {"batch": 2, "image_seq": 100000, "text_length": 64})
    with pytest.raises(InvalidInputError, match="text_length"):
        static_profile(raw, {"batch": 2, "image_seq": 64})
    with pytest.raises(InvalidInputError, match="unknown dynamic dimension"):
        static_profile(raw, {"height": 2})


def test_cache_key_depends_on_everything_a_plan_is_bound_to(engine_dir: Path) -> None:
    raw = _component(engine_dir)
    profile = optimization_profile(raw)
    base = plan_cache_key("a" * 64, H200, "fp16", profile)
    assert base == plan_cache_key("a" * 64, H200, "fp16", profile)
    variants = [
        plan_cache_key("b" * 64, H200, "fp16", profile),
        plan_cache_key("a" * 64, replace(H200, tensorrt_version="10.14.0"), "fp16", profile),
        plan_cache_key("a" * 64, replace(H200, gpu_name="NVIDIA L4"), "fp16", profile),
        plan_cache_key("a" * 64, replace(H200, compute_capability="8.9"), "fp16", profile),
        plan_cache_key("a" * 64, H200, "bf16", profile),
        plan_cache_key(
            "a" * 64,
            H200,
            "fp16",
            static_profile(raw, {"batch": 2, "image_seq": 64, "text_length": 64}),
        ),
    ]
    assert len({base, *variants}) == 1 + len(variants)
    with pytest.raises(InvalidInputError, match="precision"):
        plan_cache_key("a" * 64, H200, "int3", profile)


def _entry(key: str, data: bytes, target: TrtTarget = H200) -> PlanEntry:
    return PlanEntry(
        component="transformer",
        key=key,
        file=plan_file_name("transformer", key, False),
        sha256=sha256_bytes(data),
        bytes=len(data),
        precision="fp16",
        static=False,
        target=target,
    )


def test_plan_cache_hit_miss_and_corruption(engine_dir: Path) -> None:
    cache = PlanCache(engine_dir)
    assert cache.lookup("transformer", "k1" * 32) is None
    path = cache.store(_entry("k1" * 32, b"plan-one"), b"plan-one")
    assert cache.lookup("transformer", "k1" * 32) == path
    # Another GPU / TensorRT version gives another key: a miss, so the caller rebuilds.
    assert cache.lookup("transformer", "k2" * 32) is None
    # A rebuild replaces the entry and removes the old plan file.
    new = cache.store(_entry("k2" * 32, b"plan-two"), b"plan-two")
    assert not path.exists() and cache.lookup("transformer", "k2" * 32) == new
    new.write_bytes(b"plan-twX")  # same size, other bytes
    with pytest.raises(EngineError, match="corrupt"):
        cache.lookup("transformer", "k2" * 32)
    new.write_bytes(b"short")
    with pytest.raises(EngineError, match="corrupt"):
        cache.lookup("transformer", "k2" * 32)
    new.unlink()
    with pytest.raises(EngineError, match="missing"):
        cache.lookup("transformer", "k2" * 32)
    cache.index_path.write_text("{not json")
    with pytest.raises(EngineError, match="unreadable"):
        cache.lookup("transformer", "k2" * 32)


def test_second_build_is_a_no_op_and_a_new_gpu_rebuilds(
    engine_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnx")
    import npc_rt.backends.trt as trt_backend
    from npc_rt_export import trt_build

    target = {"now": H200}
    builds: list[str] = []

    flags: dict[str, str] = {}

    def fake_build(_trt, onnx_path, profile, precision, timing_path):
        builds.append(onnx_path.name)
        flags[onnx_path.stem] = precision
        return f"{onnx_path.name}|{precision}|{target['now'].gpu_name}".encode()

    monkeypatch.setattr(trt_backend, "_modules", lambda: (object(), object()))
    monkeypatch.setattr(trt_backend, "current_target", lambda device=0: target["now"])
    monkeypatch.setattr(trt_build, "_build_plan", fake_build)

    first = trt_build.build_trt_engines(engine_dir, precision="fp16")
    assert all(o.built for o in first) and len(builds) == 5
    # fp16 for the model components; the sampler step keeps the latents' update in float32
    assert flags.pop("sampler_step") == "fp32" and set(flags.values()) == {"fp16"}
    second = trt_build.build_trt_engines(engine_dir, precision="fp16")
    assert not any(o.built for o in second) and len(builds) == 5
    assert [o.plan for o in second] == [o.plan for o in first]

    target["now"] = TrtTarget("10.13.0", "NVIDIA L4", "8.9")
    third = trt_build.build_trt_engines(engine_dir, precision="fp16", components=["transformer"])
    assert third[0].built and len(builds) == 6
    assert not first[[o.component for o in first].index("transformer")].plan.exists()

    with pytest.raises(InvalidInputError, match="FP8-quantized"):
        trt_build.build_trt_engines(engine_dir, precision="fp8", components=["vae_decoder"])


def test_parse_static_sizes() -> None:
    from npc_rt_export.trt_build import parse_static_sizes

    assert parse_static_sizes("batch=2, image_seq=4096") == {"batch": 2, "image_seq": 4096}
    with pytest.raises(InvalidInputError):
        parse_static_sizes("batch:2")


HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: the missing-package path cannot run")
def test_trt_backend_without_tensorrt_says_what_to_install(engine_dir: Path) -> None:
    from npc_rt.backends.trt import TrtBackend
    from npc_rt.engine import open_engine

    with pytest.raises(EngineError, match="tensorrt"):
        TrtBackend(open_engine(engine_dir))


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: the missing-package path cannot run")
def test_load_engine_with_the_trt_backend_fails_before_sampling(engine_dir: Path) -> None:
    from npc_rt.pipeline import load_engine

    with pytest.raises(EngineError, match="tensorrt"):
        load_engine(engine_dir, backend="trt")
    with pytest.raises(InvalidInputError, match="backend must be"):
        load_engine(engine_dir, backend="tpu")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRT, reason="needs TensorRT and an NVIDIA GPU (tests/gpu/run.sh)")
def test_trt_backend_matches_onnxruntime(engine_dir: Path) -> None:
    from npc_rt.backends.ort import OrtBackend
    from npc_rt.backends.trt import TrtBackend
    from npc_rt.engine import open_engine
    from npc_rt_export.trt_build import build_trt_engines

    build_trt_engines(engine_dir, precision="fp32", components=["vae_decoder"])
    engine = open_engine(engine_dir)
    latents = np.random.default_rng(0).standard_normal((1, 16, 16, 16)).astype(np.float32)
    name = engine.component("vae_decoder").input_names[0]
    want = OrtBackend(engine, ["cpu"]).run("vae_decoder", {name: latents})
    got = TrtBackend(engine, precision="fp32").run("vae_decoder", {name: latents})
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, atol=1e-3)


def test_plans_of_two_precisions_live_side_by_side(engine_dir: Path) -> None:
    cache = PlanCache(engine_dir)
    half = cache.store(_entry("k1" * 32, b"plan-half"), b"plan-half")
    full_entry = replace(_entry("k3" * 32, b"plan-full"), precision="fp32")
    full = cache.store(full_entry, b"plan-full")
    assert half.exists() and cache.lookup("transformer", "k1" * 32) == half
    assert cache.lookup("transformer", "k3" * 32) == full
    assert cache.entry("transformer", "fp32") == full_entry
    assert cache.entry("transformer", "fp16", static=True) is None


def test_an_index_of_the_previous_layout_reads_as_empty(engine_dir: Path) -> None:
    cache = PlanCache(engine_dir)
    cache.index_path.parent.mkdir(parents=True)
    cache.index_path.write_text(json.dumps({"version": 1, "plans": {"transformer": {}}}))
    assert cache.lookup("transformer", "k1" * 32) is None  # rebuilt, not misread
    path = cache.store(_entry("k1" * 32, b"plan-one"), b"plan-one")
    assert cache.lookup("transformer", "k1" * 32) == path
    assert json.loads(cache.index_path.read_text())["version"] == 2


def test_gpu_check_script_runs_on_the_fake_gpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """tests/gpu/check_gpu.py is otherwise only run on a GPU machine: run its TensorRT half on the
    fake GPU (fixtures.fake_gpu) so the script cannot rot unseen."""
    import sys

    from fixtures.fake_gpu import install_fake_gpu

    install_fake_gpu(monkeypatch)
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "gpu"))
    sys.modules.pop("check_gpu", None)
    import check_gpu

    out = tmp_path / "gpu.json"
    assert check_gpu.main(["--out", str(out), "--backends", "fp32,fp16"]) == 0
    (summary,) = json.loads(out.read_text()).values()
    assert summary["failures"] == []
    assert set(summary["generate"]) == {"fp32/device", "fp32/host", "fp16/device", "fp16/host"}
    assert summary["max_abs_err"]["sampler_step/fp16"] == 0.0  # the fake runs the ONNX graph
