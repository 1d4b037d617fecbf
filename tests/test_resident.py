"""Device-resident denoising (``npc_rt.resident``) on ONNX Runtime's CPU provider.

The sampler step graph and the resident loop run here exactly as they run on a GPU (same ONNX
graph, same IO-binding code path; only the device of the ``OrtValue``s differs).

Tolerances: the step graph performs the host loop's float32 operations in the same order, so the
two agree to rounding. ``STEP_RTOL = 1e-6`` (about 8 float32 ulps) leaves room for a kernel that
fuses a multiply and an add (one rounding instead of two); observed here: identical. Whole
generations (4-5 steps, then the VAE) get ``IMAGE_ATOL = 1e-5`` on [0, 1] images: a few ulps per
step amplified by guidance scales <= 5, still > 100x below what a negative prompt changes
(asserted, so the comparisons can fail).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fixtures.tiny_engines import pipeline_over
from npc_rt.backends.ort import OrtBackend
from npc_rt.engine import open_engine
from npc_rt.errors import EngineError
from npc_rt.generator import GenerationParams
from npc_rt.guidance import GuidanceLayout, true_cfg
from npc_rt.pipeline import load_engine
from npc_rt.pipelines_cfg import cfg_combine, cfg_family_for
from npc_rt.resident import STEP_COMPONENT, cfg_rows, flux_rows
from npc_rt.schedule import FlowMatchConfig, euler_step_into, flux_schedule

STEP_RTOL = 1e-6
IMAGE_ATOL = 1e-5
PROMPT = "a red cube on top of a blue sphere"
NEGATIVES = [None, "green grass, blurry", "two dogs"]
FAMILIES = ("flux", "sdxl", "sd3")


def _params(pipeline, **changes) -> GenerationParams:
    base = replace(pipeline.default_params, steps=5, height=64, width=64, negative_steps=3)
    return replace(base, **changes)


# --------------------------------------------------------------------------- the step graph


def _step_inputs(rng: np.random.Generator, k: int, rows: int, shape: tuple[int, ...]) -> dict:
    return {
        "latents": rng.standard_normal((k, *shape)).astype(np.float32),
        "model_output": rng.standard_normal((rows, *shape)).astype(np.float32),
    }


def _run_step(backend, x: dict, rows, next_rows, scale, sigmas, i: int, divisor) -> dict:
    """The sampler step at step ``i`` of ``sigmas`` on ``backend``."""
    return backend.run(
        STEP_COMPONENT,
        {
            **x,
            "guided_rows": rows.guided_rows,
            "base_rows": rows.base_rows,
            "guidance": np.array([scale], np.float32),
            "skipped_rows": rows.skipped,
            "skip_scale": np.array([rows.skip_scale], np.float32),
            "sigma": sigmas[i : i + 1],
            "sigma_next": sigmas[i + 1 : i + 2],
            "next_rows": next_rows,
            "input_divisor": np.array([divisor], np.float32),
        },
    )


def test_flux_step_graph_is_the_host_update(tiny_flux_engine_dir: Path) -> None:
    engine = open_engine(tiny_flux_engine_dir)
    backend = OrtBackend(engine, ["cpu"])
    layout = GuidanceLayout((True, False, True))
    rows = flux_rows(layout, with_negatives=True)
    schedule = flux_schedule(FlowMatchConfig.from_dict(engine.scheduler_config), 6, 16)
    rng = np.random.default_rng(0)
    x = _step_inputs(rng, 3, 5, (16, 64))
    scale, i = 1.8, 2
    next_rows = flux_rows(layout, with_negatives=False).model_rows
    out = _run_step(backend, x, rows, next_rows, scale, schedule.sigmas, i, 1.0)
    # the host loop: GuidanceLayout.combine (true CFG on candidates 0 and 2), then Euler
    pred = layout.combine(x["model_output"], scale, with_negatives=True)
    np.testing.assert_array_equal(pred[1], x["model_output"][1])
    want = euler_step_into(x["latents"].copy(), pred, schedule.step_delta(i), np.empty_like(pred))
    np.testing.assert_allclose(out["latents_next"], want, rtol=STEP_RTOL, atol=1e-7)
    np.testing.assert_array_equal(out["model_input_next"], out["latents_next"])
    # guidance really happened (the comparison could fail)
    assert not np.allclose(pred[0], x["model_output"][0], atol=1e-3)
    np.testing.assert_allclose(
        pred[0], true_cfg(x["model_output"][0], x["model_output"][3], scale), rtol=0
    )


@pytest.mark.parametrize(("family", "skip_scale"), [("sdxl", None), ("sd3", None), ("sd3", 2.8)])
def test_cfg_step_graph_is_the_host_update(
    family: str, skip_scale: float | None, tiny_engine_dirs: dict[str, Path]
) -> None:
    engine = open_engine(tiny_engine_dirs[family])
    fam = cfg_family_for(engine)
    backend = OrtBackend(engine, ["cpu"])
    schedule = fam.schedule(6, 64, 64)
    channels = engine.component(fam.backbone).inputs[0].shape[1]
    rng = np.random.default_rng(1)
    k, i, scale = 2, 3, 5.0
    copies = 2 if skip_scale is None else 3  # [uncond, cond(, skipped)] x K
    x = _step_inputs(rng, k, copies * k, (channels, 8, 8))
    rows = cfg_rows(k, do_cfg=True, skip_scale=skip_scale)
    divisor = fam.model_input_divisor(schedule, i + 1)
    out = _run_step(backend, x, rows, rows.model_rows, scale, schedule.sigmas, i, divisor)
    o = x["model_output"]
    pred = cfg_combine(o[:k], o[k : 2 * k], scale)
    if skip_scale is not None:  # the host loop's skip-layer term (diffusers' order)
        pred = pred + (o[k : 2 * k] - o[2 * k :]) * np.float32(skip_scale)
    want = fam.step(x["latents"], pred, schedule, i)
    np.testing.assert_allclose(out["latents_next"], want, rtol=STEP_RTOL, atol=1e-7)
    next_input = np.concatenate([want] * copies) / divisor
    np.testing.assert_allclose(out["model_input_next"], next_input, rtol=STEP_RTOL, atol=1e-7)
    if family == "sdxl":
        assert divisor > 1  # scale_model_input really divides (the check above could fail)


# --------------------------------------------------------------------------- whole loops


@pytest.mark.parametrize("family", FAMILIES)
def test_resident_loop_gives_the_host_loop_images(
    family: str, tiny_engine_dirs: dict[str, Path]
) -> None:
    engine = open_engine(tiny_engine_dirs[family])
    backend = OrtBackend(engine, ["cpu"], use_io_binding=True)
    host = pipeline_over(tiny_engine_dirs[family], backend, resident=False)
    resident = pipeline_over(tiny_engine_dirs[family], backend, resident=True)
    assert resident.resident and not host.resident
    for params in (_params(host), _params(host, guidance=1.0, true_cfg=1.0)):
        want = host.sample(PROMPT, seed=7, negatives=NEGATIVES, params=params).images
        got = resident.sample(PROMPT, seed=7, negatives=NEGATIVES, params=params).images
        np.testing.assert_allclose(got, want, atol=IMAGE_ATOL, rtol=0)
        if params.guidance > 1 or params.true_cfg > 1:
            assert np.abs(want[1] - want[0]).max() > 100 * IMAGE_ATOL  # the negative matters


def test_phase_switch_mid_generation(tiny_flux_engine_dir: Path) -> None:
    """FLUX's negatives end after step N: the batch shrinks from 2K-ish to K rows mid-loop."""
    engine = open_engine(tiny_flux_engine_dir)
    backend = OrtBackend(engine, ["cpu"])
    host = pipeline_over(tiny_flux_engine_dir, backend, resident=False)
    resident = pipeline_over(tiny_flux_engine_dir, backend, resident=True)
    for n in (0, 1, 4, 5):
        params = _params(host, negative_steps=n)
        want = host.sample(PROMPT, seed=3, negatives=NEGATIVES, params=params).images
        got = resident.sample(PROMPT, seed=3, negatives=NEGATIVES, params=params).images
        np.testing.assert_allclose(got, want, atol=IMAGE_ATOL, rtol=0)


# --------------------------------------------------------------------------- choosing the loop


def test_cpu_default_is_the_host_loop(tiny_flux_engine_dir: Path) -> None:
    assert not load_engine(tiny_flux_engine_dir, providers=["cpu"]).resident
    assert load_engine(tiny_flux_engine_dir, providers=["cpu"], resident=True).resident


def _edited_engine(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    manifest_path = dst / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    edit(manifest)
    manifest_path.write_text(json.dumps(manifest))
    return dst


def test_engine_without_a_step_falls_back_or_refuses(
    tiny_sdxl_engine_dir: Path, tmp_path: Path
) -> None:
    old = _edited_engine(
        tiny_sdxl_engine_dir,
        tmp_path / "old",
        lambda m: m["components"].pop(STEP_COMPONENT),
    )
    with pytest.raises(EngineError, match="no sampler_step component.*re-export"):
        load_engine(old, providers=["cpu"], resident=True)
    pipeline = load_engine(old, providers=["cpu"])  # the default: the host loop, as before
    assert not pipeline.resident
    params = _params(pipeline, steps=2, negative_steps=2)
    images = pipeline.sample(PROMPT, seed=1, negatives=[None], params=params).images
    assert images.shape == (1, 64, 64, 3)


def test_step_of_the_wrong_prediction_type_is_refused(
    tiny_flux_engine_dir: Path, tmp_path: Path
) -> None:
    def mislabel(manifest: dict) -> None:
        manifest["components"][STEP_COMPONENT]["kind"] = "eps_euler_step"

    engine = _edited_engine(tiny_flux_engine_dir, tmp_path / "e", mislabel)
    with pytest.raises(EngineError, match="prediction type 'flow' needs a 'flow_euler_step'"):
        load_engine(engine, providers=["cpu"], resident=True)
