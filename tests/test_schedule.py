"""The numpy flow-matching schedule against diffusers' FlowMatchEulerDiscreteScheduler (bitwise)."""

from __future__ import annotations

import numpy as np
import pytest
from npc_rt.errors import EngineError, InvalidInputError
from npc_rt.schedule import (
    FlowMatchConfig,
    calculate_shift,
    euler_step,
    euler_step_into,
    flow_match_schedule,
    flux_schedule,
)

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
from diffusers import FlowMatchEulerDiscreteScheduler  # noqa: E402
from diffusers.pipelines.flux.pipeline_flux import (  # noqa: E402
    calculate_shift as diffusers_calculate_shift,
)
from diffusers.pipelines.flux.pipeline_flux import retrieve_timesteps  # noqa: E402

# FLUX.1-dev's scheduler_config.json values; schnell uses static shift 1.0.
FLUX_DEV = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
FLUX_SCHNELL = {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False}
CONFIGS = {
    "dev": FLUX_DEV,
    "schnell": FLUX_SCHNELL,
    "static_shift_3": {**FLUX_SCHNELL, "shift": 3.0},
    "linear_shift": {**FLUX_DEV, "time_shift_type": "linear"},
    "terminal": {**FLUX_DEV, "shift_terminal": 0.1},
}


def _diffusers_schedule(config: dict, steps: int, image_seq_len: int):
    """What FluxPipeline.__call__ does to set the schedule (step 5 of the pipeline)."""
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    sigmas = np.linspace(1.0, 1 / steps, steps)
    mu = diffusers_calculate_shift(
        image_seq_len,
        scheduler.config.get("base_image_seq_len", 256),
        scheduler.config.get("max_image_seq_len", 4096),
        scheduler.config.get("base_shift", 0.5),
        scheduler.config.get("max_shift", 1.15),
    )
    retrieve_timesteps(scheduler, steps, "cpu", sigmas=sigmas, mu=mu)
    return scheduler


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 7, 20, 28, 50])
@pytest.mark.parametrize(
    "hw", [(64, 64), (128, 96), (256, 256), (512, 768), (1024, 1024), (1360, 768)]
)
def test_schedule_matches_diffusers_bitwise(name: str, steps: int, hw: tuple[int, int]) -> None:
    config = CONFIGS[name]
    if name == "terminal" and steps == 1:
        pytest.skip(
            "diffusers yields NaN sigmas here (0/0); covered by test_nan_schedule_is_refused"
        )
    seq_len = (hw[0] // 16) * (hw[1] // 16)
    ref = _diffusers_schedule(config, steps, seq_len)
    ours = flux_schedule(FlowMatchConfig.from_dict(config), steps, seq_len)
    assert ours.sigmas.dtype == np.float32 and ours.timesteps.dtype == np.float32
    np.testing.assert_array_equal(ours.sigmas, ref.sigmas.numpy())
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    # what the pipeline feeds the transformer: t.expand(B).to(f32) / 1000
    for i, t in enumerate(ref.timesteps):
        expected = (t.expand(2).to(torch.float32) / 1000).numpy()[0]
        assert ours.model_timestep(i) == expected


@pytest.mark.parametrize("seq_len", [1, 16, 256, 1000, 4096, 9000])
def test_calculate_shift_matches_diffusers(seq_len: int) -> None:
    assert calculate_shift(seq_len) == diffusers_calculate_shift(seq_len)


def test_shift_grows_with_resolution() -> None:
    config = FlowMatchConfig.from_dict(FLUX_DEV)
    small = flux_schedule(config, 10, 64)
    large = flux_schedule(config, 10, 4096)
    # a larger image is shifted towards noise: every intermediate sigma is higher
    assert np.all(large.sigmas[1:-1] > small.sigmas[1:-1])
    assert small.sigmas[0] == large.sigmas[0] == 1.0 and small.sigmas[-1] == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_euler_step_matches_scheduler_step(dtype) -> None:
    steps, seq_len = 6, 64
    ref = _diffusers_schedule(FLUX_DEV, steps, seq_len)
    ours = flux_schedule(FlowMatchConfig.from_dict(FLUX_DEV), steps, seq_len)
    gen = torch.Generator("cpu").manual_seed(3)
    sample = torch.randn(2, seq_len, 64, generator=gen).to(dtype)
    ours_sample = sample.numpy()
    ref.set_begin_index(0)
    for i, t in enumerate(ref.timesteps):
        velocity = torch.randn(2, seq_len, 64, generator=gen).to(dtype)
        sample = ref.step(velocity, t, sample, return_dict=False)[0]
        ours_sample = euler_step(ours_sample, velocity.numpy(), ours.step_delta(i))
        assert ours_sample.dtype == sample.numpy().dtype
        np.testing.assert_array_equal(ours_sample, sample.numpy())


@pytest.mark.parametrize("flag", ["use_karras_sigmas", "invert_sigmas", "stochastic_sampling"])
def test_unsupported_scheduler_options_are_refused(flag: str) -> None:
    with pytest.raises(EngineError, match=flag):
        FlowMatchConfig.from_dict({**FLUX_DEV, flag: True})


def test_bad_time_shift_type_is_refused() -> None:
    with pytest.raises(EngineError, match="time_shift_type"):
        FlowMatchConfig.from_dict({**FLUX_DEV, "time_shift_type": "cubic"})


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_bad_step_count_is_refused(steps) -> None:
    with pytest.raises(InvalidInputError, match="steps"):
        flux_schedule(FlowMatchConfig.from_dict(FLUX_DEV), steps, 64)


def test_nan_schedule_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="non-finite"):
        flux_schedule(FlowMatchConfig.from_dict(CONFIGS["terminal"]), 1, 64)


def test_euler_step_into_is_bitwise_euler_step() -> None:
    rng = np.random.default_rng(5)
    sample = rng.standard_normal((3, 16, 64)).astype(np.float32)
    velocity = rng.standard_normal((3, 16, 64)).astype(np.float32)
    dt = np.float32(-0.0731)
    expected = euler_step(sample, velocity, dt)
    buffer, scratch = sample.copy(), np.empty_like(sample)
    out = euler_step_into(buffer, velocity, dt, scratch)
    assert out is buffer
    np.testing.assert_array_equal(out, expected)


SD3_LIKE = {
    "static_3": {"num_train_timesteps": 1000, "shift": 3.0},
    "static_1": {"num_train_timesteps": 1000, "shift": 1.0},
    "static_terminal": {"num_train_timesteps": 1000, "shift": 3.0, "shift_terminal": 0.05},
}


@pytest.mark.parametrize("name", sorted(SD3_LIKE))
@pytest.mark.parametrize("steps", [2, 5, 10, 28, 50])
def test_default_spacing_matches_set_timesteps(name: str, steps: int) -> None:
    """The scheduler's own spacing (``set_timesteps(n)`` without sigmas), as SD3's pipeline uses."""
    config = SD3_LIKE[name]
    ref = FlowMatchEulerDiscreteScheduler(**config)
    ref.set_timesteps(steps, device="cpu")
    ours = flow_match_schedule(FlowMatchConfig.from_dict(config), steps)
    np.testing.assert_array_equal(ours.sigmas, ref.sigmas.numpy())
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())


def test_dynamic_shift_needs_mu() -> None:
    with pytest.raises(InvalidInputError, match="mu"):
        flow_match_schedule(FlowMatchConfig.from_dict(FLUX_DEV), 4)
