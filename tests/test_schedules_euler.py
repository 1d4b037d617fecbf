"""The numpy SDXL Euler schedule and SD3 flow-match schedule against diffusers' schedulers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler
from npc_rt.errors import EngineError, InvalidInputError
from npc_rt.schedule import FlowMatchConfig
from npc_rt.schedules_euler import EulerConfig, euler_schedule, sd3_schedule, torch_linspace_f32
from npc_rt_export.tiny.sdxl import SDXL_SCHEDULER

STEP_COUNTS = [*range(1, 61), 75, 100, 250, 500, 999, 1000]
# torch's vectorized CPU linspace rounds some betas 1 ulp apart from its scalar formula (which we
# follow); through cumprod and interp that leaves sigmas within a few float32 ulps: rtol 1e-6.
SIGMA_RTOL = 1e-6
ONE_ULP = 2.5e-7


@pytest.mark.parametrize(
    "config",
    [
        SDXL_SCHEDULER,
        {**SDXL_SCHEDULER, "timestep_spacing": "linspace", "steps_offset": 0},
        {**SDXL_SCHEDULER, "timestep_spacing": "trailing", "prediction_type": "v_prediction"},
        {"beta_schedule": "linear", "final_sigmas_type": "sigma_min"},
    ],
    ids=["sdxl", "linspace", "trailing-v", "linear-sigma_min"],
)
def test_euler_schedule_matches_diffusers(config: dict) -> None:
    reference = EulerDiscreteScheduler(**config)
    ours_config = EulerConfig.from_dict(dict(reference.config))
    np.testing.assert_allclose(
        ours_config.alphas_cumprod(), reference.alphas_cumprod.numpy(), rtol=SIGMA_RTOL
    )
    for steps in STEP_COUNTS:
        reference.set_timesteps(steps)
        ours = euler_schedule(ours_config, steps)
        np.testing.assert_array_equal(ours.timesteps, reference.timesteps.numpy())
        np.testing.assert_allclose(ours.sigmas, reference.sigmas.numpy(), rtol=SIGMA_RTOL)
        assert ours.sigmas.dtype == np.float32 and ours.sigmas[-1] == reference.sigmas[-1]
        np.testing.assert_allclose(
            ours.init_noise_sigma, float(reference.init_noise_sigma), rtol=SIGMA_RTOL
        )


def test_euler_step_and_input_scaling_match_diffusers() -> None:
    # the step itself is bit-exact; the input scale differs by 1 ulp where torch's float32
    # pow(x, 0.5) (not correctly rounded) and our sqrt (correctly rounded) disagree
    reference = EulerDiscreteScheduler(**SDXL_SCHEDULER)
    reference.set_timesteps(6)
    schedule = euler_schedule(EulerConfig.from_dict(dict(reference.config)), 6)
    # feed diffusers' own sigmas so the step arithmetic alone is compared (exactly)
    schedule = type(schedule)(
        schedule.timesteps, reference.sigmas.numpy(), "epsilon", schedule.init_noise_sigma
    )
    gen = torch.Generator().manual_seed(3)
    sample = torch.randn(2, 4, 8, 8, generator=gen)
    for i, t in enumerate(reference.timesteps):
        scaled = reference.scale_model_input(sample, t)
        np.testing.assert_allclose(
            schedule.scale_model_input(sample.numpy(), i), scaled.numpy(), rtol=ONE_ULP
        )
        eps = torch.randn(2, 4, 8, 8, generator=gen)
        expected = reference.step(eps, t, sample).prev_sample
        np.testing.assert_array_equal(
            schedule.step(sample.numpy(), eps.numpy(), i), expected.numpy()
        )
        sample = expected


def test_torch_linspace_close_to_torch() -> None:
    for n in (2, 7, 50, 1000):
        got = torch_linspace_f32(0.00085**0.5, 0.012**0.5, n)
        want = torch.linspace(0.00085**0.5, 0.012**0.5, n, dtype=torch.float32).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert got[0] == want[0] and got[-1] == want[-1]


@pytest.mark.parametrize("shift", [3.0, 1.0, 5.5])
def test_sd3_schedule_equals_diffusers(shift: float) -> None:
    reference = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    config = FlowMatchConfig.from_dict(dict(reference.config))
    for steps in STEP_COUNTS:
        reference.set_timesteps(steps)
        ours = sd3_schedule(config, steps, image_seq_len=64)
        np.testing.assert_array_equal(ours.sigmas, reference.sigmas.numpy())
        np.testing.assert_array_equal(ours.timesteps, reference.timesteps.numpy())


def test_schedule_errors() -> None:
    with pytest.raises(EngineError, match="use_karras_sigmas"):
        EulerConfig.from_dict({**SDXL_SCHEDULER, "use_karras_sigmas": True})
    with pytest.raises(EngineError, match="interpolation_type"):
        EulerConfig.from_dict({**SDXL_SCHEDULER, "interpolation_type": "log_linear"})
    config = EulerConfig.from_dict(SDXL_SCHEDULER)
    for bad in (0, -1, True, 1001):
        with pytest.raises(InvalidInputError):
            euler_schedule(config, bad)
    with pytest.raises(InvalidInputError):
        sd3_schedule(FlowMatchConfig(shift=3.0), 0, 64)
