"""The native TensorRT backend's own logic on the CPU, over ``fixtures.fake_gpu``.

The fake models device memory as separate buffers behind pointers (overruns, use after free and
double frees fail), stream capture, CUDA graphs, and a TensorRT context that reads and writes the
addresses bound to it, running each plan's ONNX file with ONNX Runtime. What runs on a real GPU
is ``tests/gpu/run.sh``; what these tests establish is that the backend allocates, binds, chains,
captures and frees correctly, and that a resident generation copies only what it should.

Tolerance: the fake executes the same ONNX graphs ONNX Runtime runs on the host path, so results
are compared for equality (``atol=0``) except whole images, which get the resident tests' 1e-5.
"""

from __future__ import annotations

import gc
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fixtures.fake_gpu import install_fake_gpu
from fixtures.tiny_engines import pipeline_over
from npc_rt.backends.ort import OrtBackend
from npc_rt.engine import open_engine
from npc_rt.errors import EngineError, ShapeError
from npc_rt.guidance import GuidanceLayout
from npc_rt.resident import STEP_COMPONENT, flux_rows

IMAGE_ATOL = 1e-5
PROMPT = "a red cube on top of a blue sphere"
NEGATIVES = [None, "green grass, blurry", "two dogs"]


@pytest.fixture()
def fake_gpu(monkeypatch: pytest.MonkeyPatch):
    return install_fake_gpu(monkeypatch)


def _with_plans(src: Path, dst: Path, **build) -> Path:
    from npc_rt_export.trt_build import build_trt_engines

    shutil.copytree(src, dst)
    build_trt_engines(dst, precision="fp16", **build)
    return dst


@pytest.mark.parametrize("family", ["flux", "sdxl", "sd3"])
def test_resident_generation_matches_onnxruntime_and_copies_only_the_result(
    family: str, tiny_engine_dirs: dict[str, Path], tmp_path: Path, fake_gpu
) -> None:
    from npc_rt.backends.trt import TrtBackend

    cuda, _ = fake_gpu
    engine_dir = _with_plans(tiny_engine_dirs[family], tmp_path / "engine")
    engine = open_engine(engine_dir)
    backend = TrtBackend(engine, precision="fp16")
    ours = pipeline_over(engine_dir, backend)
    assert ours.resident  # a GPU backend keeps latents on the device by default
    reference = pipeline_over(engine_dir, OrtBackend(engine, ["cpu"]), resident=False)
    params = replace(ours.default_params, steps=5, height=64, width=64, negative_steps=3)
    want = reference.sample(PROMPT, seed=7, negatives=NEGATIVES, params=params).images
    got = ours.sample(PROMPT, seed=7, negatives=NEGATIVES, params=params).images
    np.testing.assert_allclose(got, want, atol=IMAGE_ATOL, rtol=0)
    assert np.abs(want[1] - want[0]).max() > 100 * IMAGE_ATOL

    # texts are cached now: a generation downloads the final latents and the decoded images,
    # whatever the number of steps, and uploads per step only the timestep and three scalars
    def traffic(steps: int) -> tuple[int, int]:
        down, up = cuda.copies[2], cuda.bytes_copied[1]
        p = replace(params, steps=steps, negative_steps=1)
        ours.sample(PROMPT, seed=7, negatives=NEGATIVES, params=p)
        return cuda.copies[2] - down, cuda.bytes_copied[1] - up

    (down_2, up_2), (down_6, up_6) = traffic(2), traffic(6)
    assert down_2 == down_6 == 2
    k = len(NEGATIVES)
    rows = k if family == "flux" else (2 * k if params.guidance > 1 else k)
    assert up_6 - up_2 == 4 * (4 * rows + 12)  # timestep [rows] + sigma, sigma_next, divisor
    backend.close()
    assert cuda.memory == {}, "close() frees every allocation"


def test_chained_outputs_survive_the_next_call(
    tiny_flux_engine_dir: Path, tmp_path: Path, fake_gpu
) -> None:
    """The sampler step reads the latents its previous call wrote; the two alternating output
    sets keep them intact while the next call writes."""
    from npc_rt.backends.trt import DeviceArray, TrtBackend

    engine = open_engine(_with_plans(tiny_flux_engine_dir, tmp_path / "engine"))
    backend = TrtBackend(engine)
    host = OrtBackend(engine, ["cpu"])
    layout = GuidanceLayout((True, False))
    rows = flux_rows(layout, True)
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((2, 16, 64)).astype(np.float32)
    outputs = [rng.standard_normal((3, 16, 64)).astype(np.float32) for _ in range(6)]
    sigmas = np.linspace(1.0, 0.0, 7, dtype=np.float32)

    def step_inputs(i: int, state: object, out: object) -> dict:
        return {
            "latents": state,
            "model_output": out,
            "guided_rows": rows.guided_rows,
            "base_rows": rows.base_rows,
            "guidance": np.array([2.0], np.float32),
            "skipped_rows": rows.skipped,
            "skip_scale": np.zeros(1, np.float32),
            "sigma": sigmas[i : i + 1],
            "sigma_next": sigmas[i + 1 : i + 2],
            "next_rows": rows.model_rows,
            "input_divisor": np.ones(1, np.float32),
        }

    want = latents
    state: object = backend.place(latents)
    seen = set()
    for i, out in enumerate(outputs):
        want = host.run(STEP_COMPONENT, step_inputs(i, want, out))["latents_next"]
        result = backend.run_resident(STEP_COMPONENT, step_inputs(i, state, backend.place(out)))
        state = result["latents_next"]
        assert isinstance(state, DeviceArray)
        seen.add(state.ptr)
        np.testing.assert_array_equal(backend.to_host(state), want)
    assert len(seen) == 2  # two output sets, alternating
    backend.close()


def test_cuda_graph_replays_give_the_eager_results(
    tiny_flux_engine_dir: Path, tmp_path: Path, fake_gpu
) -> None:
    from npc_rt.backends.trt import TrtBackend

    cuda, _ = fake_gpu
    sizes = {"candidates": 2, "batch": 3, "next_batch": 3, "image_seq": 16}
    engine_dir = _with_plans(
        tiny_flux_engine_dir, tmp_path / "engine", components=[STEP_COMPONENT], static_sizes=sizes
    )
    engine = open_engine(engine_dir)
    graphed = TrtBackend(engine, static=True, cuda_graphs=True)
    eager = TrtBackend(engine, static=True)
    rows = flux_rows(GuidanceLayout((True, False)), True)
    rng = np.random.default_rng(1)
    latents = rng.standard_normal((2, 16, 64)).astype(np.float32)
    out = rng.standard_normal((3, 16, 64)).astype(np.float32)
    results = {}
    for name, backend in (("graphed", graphed), ("eager", eager)):
        state = backend.place(latents)
        fixed = {
            "model_output": backend.place(out),
            "guided_rows": backend.place(rows.guided_rows),
            "base_rows": backend.place(rows.base_rows),
            "guidance": backend.place(np.array([1.5], np.float32)),
            "skipped_rows": backend.place(rows.skipped),
            "skip_scale": backend.place(np.zeros(1, np.float32)),
            "next_rows": backend.place(rows.model_rows),
            "input_divisor": backend.place(np.ones(1, np.float32)),
        }
        trace = []
        for i in range(8):
            sigma = np.array([1.0 - i / 8], np.float32)
            step = {"sigma": sigma, "sigma_next": sigma - np.float32(1 / 8)}
            state = backend.run_resident(STEP_COMPONENT, {"latents": state, **fixed, **step})[
                "latents_next"
            ]
            trace.append(backend.to_host(state))
        results[name] = np.stack(trace)
    np.testing.assert_array_equal(results["graphed"], results["eager"])
    # addresses alternate with the output sets: the placed latents, then set A and set B feed
    # the step; each address set runs eagerly once, is captured on its second call, replayed after
    assert cuda.graphs_alive == 2 and cuda.graphs_launched == 8 - 3
    graphed.close()
    eager.close()
    assert cuda.graphs_alive == 0 and cuda.memory == {}


def test_placed_arrays_free_their_memory(
    tiny_flux_engine_dir: Path, tmp_path: Path, fake_gpu
) -> None:
    from npc_rt.backends.trt import TrtBackend

    cuda, _ = fake_gpu
    engine = open_engine(_with_plans(tiny_flux_engine_dir, tmp_path / "engine"))
    backend = TrtBackend(engine)
    before = cuda.live_bytes
    placed = backend.place(np.zeros((1024,), np.float32))
    assert cuda.live_bytes == before + 4096
    del placed
    gc.collect()
    assert cuda.live_bytes == before
    backend.close()


def test_bad_device_inputs_are_named(tiny_flux_engine_dir: Path, tmp_path: Path, fake_gpu) -> None:
    from npc_rt.backends.trt import TrtBackend

    engine = open_engine(_with_plans(tiny_flux_engine_dir, tmp_path / "engine"))
    backend = TrtBackend(engine)
    latents = backend.place(np.zeros((1, 16, 64), np.float64))
    with pytest.raises(
        EngineError, match="vae_decoder.latents wants float32, got a device float64"
    ):
        backend.run_resident("vae_decoder", {"latents": latents})
    with pytest.raises(ShapeError):
        backend.run_resident("vae_decoder", {"latents": np.zeros((1, 16, 999, 4), np.float32)})
    with pytest.raises(EngineError, match="no input 'sample'"):
        backend.run_resident("vae_decoder", {"sample": np.zeros((1, 16, 8, 8), np.float32)})
    backend.close()


def test_a_corrupt_plan_is_a_clear_error(
    tiny_flux_engine_dir: Path, tmp_path: Path, fake_gpu
) -> None:
    from npc_rt.backends.trt import TrtBackend

    engine_dir = _with_plans(tiny_flux_engine_dir, tmp_path / "engine")
    for plan in (engine_dir / "trt").glob("vae_decoder.*.plan"):
        plan.write_bytes(b"\x00" * 64)
    backend = TrtBackend(open_engine(engine_dir))
    with pytest.raises(EngineError, match="vae_decoder"):
        backend.load()
