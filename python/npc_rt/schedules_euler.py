"""Numpy schedules for SDXL and SD3, reproducing diffusers' schedulers as those pipelines use them.

- SDXL: ``EulerDiscreteScheduler`` (epsilon / v prediction, ``leading``/``linspace``/``trailing``
  spacing, linear interpolation, ``final_sigmas_type``), including ``init_noise_sigma``,
  ``scale_model_input`` and the deterministic Euler step (``s_churn = 0``, diffusers' default).
  Betas, cumulative alphas and sigmas follow torch's float32 arithmetic: ``torch.linspace``'s
  two-ended scalar formula, a float64-accumulated ``cumprod`` (what torch's CPU kernel does), and
  numpy's float64 ``interp`` exactly as diffusers calls it. Timesteps are exact; sigmas agree to
  within a few float32 ulps (torch's vectorized linspace and its not correctly rounded float32
  ``pow(x, 0.5)`` round some values 1 ulp away from the scalar formula and ``sqrt``).
- SD3: ``FlowMatchEulerDiscreteScheduler.set_timesteps(num_inference_steps)`` without custom
  sigmas (what ``StableDiffusion3Pipeline`` calls): a float64 linspace between the shifted
  ``sigma_max``/``sigma_min`` timesteps, shifted again, then float32. The Euler step and the
  config reader are ``npc_rt.schedule``'s.
Options these pipelines do not use (karras/exponential/beta sigmas, zero-SNR rescaling, continuous
timesteps, stochastic churn) are refused with an ``EngineError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from npc_rt.errors import EngineError, InvalidInputError
from npc_rt.schedule import (
    FlowMatchConfig,
    FlowMatchSchedule,
    calculate_shift,
    read_scheduler_config,
    time_shift,
)

_EULER_UNSUPPORTED = (
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "rescale_betas_zero_snr",
    "trained_betas",
)


def torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps, dtype=torch.float32)`` on the CPU: float32 step, the
    first half counted up from ``start``, the second half down from ``end``."""
    start32, end32 = np.float32(start), np.float32(end)
    if steps == 1:
        return np.array([start32], dtype=np.float32)
    step = (end32 - start32) / np.float32(steps - 1)
    idx = np.arange(steps)
    half = steps // 2
    out = np.empty(steps, dtype=np.float32)
    out[:half] = start32 + step * idx[:half].astype(np.float32)
    out[half:] = end32 - step * (steps - idx[half:] - 1).astype(np.float32)
    return out


@dataclass(frozen=True)
class EulerConfig:
    """The ``EulerDiscreteScheduler`` options that shape the schedule (diffusers' names)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    interpolation_type: str = "linear"
    timestep_spacing: str = "linspace"
    timestep_type: str = "discrete"
    steps_offset: int = 0
    final_sigmas_type: str = "zero"

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> EulerConfig:
        return read_scheduler_config(
            cls,
            config,
            unsupported=_EULER_UNSUPPORTED,
            allowed={
                "beta_schedule": ("linear", "scaled_linear"),
                "prediction_type": ("epsilon", "v_prediction"),
                "interpolation_type": ("linear",),
                "timestep_spacing": ("linspace", "leading", "trailing"),
                "timestep_type": ("discrete",),
                "final_sigmas_type": ("zero", "sigma_min"),
            },
        )

    def alphas_cumprod(self) -> np.ndarray:
        """float32 cumulative alphas, as the scheduler's ``__init__`` computes them in torch."""
        n = self.num_train_timesteps
        if self.beta_schedule == "scaled_linear":
            root = torch_linspace_f32(self.beta_start**0.5, self.beta_end**0.5, n)
            betas = root * root
        else:
            betas = torch_linspace_f32(self.beta_start, self.beta_end, n)
        alphas = np.float32(1.0) - betas
        return np.cumprod(alphas.astype(np.float64)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class EulerSchedule:
    """``timesteps`` float32 [steps] (what the UNet gets) and ``sigmas`` float32 [steps + 1]."""

    timesteps: np.ndarray
    sigmas: np.ndarray
    prediction_type: str
    init_noise_sigma: np.float32

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])

    def model_timestep(self, step: int) -> np.float32:
        return np.float32(self.timesteps[step])

    def input_scale(self, step: int) -> np.float32:
        """``scale_model_input``'s divisor: ``(sigma ** 2 + 1) ** 0.5`` in float32."""
        sigma = self.sigmas[step]
        return np.sqrt(sigma * sigma + np.float32(1), dtype=np.float32)

    def scale_model_input(self, sample: np.ndarray, step: int) -> np.ndarray:
        return sample / self.input_scale(step)

    def step(self, sample: np.ndarray, model_output: np.ndarray, step: int) -> np.ndarray:
        """One deterministic Euler step in diffusers' operation order (float32)."""
        sample = sample.astype(np.float32, copy=False)
        sigma = self.sigmas[step]
        if self.prediction_type == "epsilon":
            denoised = sample - sigma * model_output
        else:  # v_prediction
            one = np.float32(1)
            c_out = -sigma / (sigma * sigma + one) ** np.float32(0.5)
            denoised = model_output * c_out + sample / (sigma * sigma + one)
        derivative = (sample - denoised) / sigma
        dt = self.sigmas[step + 1] - sigma
        return (sample + derivative * dt).astype(model_output.dtype, copy=False)


def euler_schedule(config: EulerConfig, steps: int) -> EulerSchedule:
    """``EulerDiscreteScheduler.set_timesteps(steps)``: timesteps, sigmas, init_noise_sigma."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps!r}")
    n = config.num_train_timesteps
    if steps > n:
        raise InvalidInputError(f"steps {steps} is more than the {n} training timesteps")
    if config.timestep_spacing == "linspace":
        timesteps = np.linspace(0, n - 1, steps, dtype=np.float32)[::-1].copy()
    elif config.timestep_spacing == "leading":
        ratio = n // steps
        timesteps = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.float32)
        timesteps += config.steps_offset
    else:  # trailing
        timesteps = np.arange(n, 0, -n / steps).round().copy().astype(np.float32)
        timesteps -= 1
    alphas_cumprod = config.alphas_cumprod()
    table = ((np.float32(1) - alphas_cumprod) / alphas_cumprod) ** np.float32(0.5)
    sigmas = np.interp(timesteps, np.arange(0, len(table)), table)
    if config.final_sigmas_type == "sigma_min":
        last = float(((1 - alphas_cumprod[0]) / alphas_cumprod[0]) ** 0.5)
    else:
        last = 0.0
    sigmas = np.concatenate([sigmas, [last]]).astype(np.float32)
    max_sigma = sigmas.max()
    if config.timestep_spacing in ("linspace", "trailing"):
        init = np.float32(max_sigma)
    else:
        init = np.float32((max_sigma * max_sigma + np.float32(1)) ** np.float32(0.5))
    return EulerSchedule(
        timesteps=timesteps.astype(np.float32),
        sigmas=sigmas,
        prediction_type=config.prediction_type,
        init_noise_sigma=init,
    )


def sd3_schedule(config: FlowMatchConfig, steps: int, image_seq_len: int) -> FlowMatchSchedule:
    """``FlowMatchEulerDiscreteScheduler.set_timesteps(steps[, mu])`` as SD3's pipeline calls it.

    ``image_seq_len`` (patches of the latent) matters only with dynamic shifting (SD3.5-style).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps!r}")
    if config.shift_terminal:
        raise EngineError("scheduler option shift_terminal is not supported for SD3 by npc_rt")
    n = config.num_train_timesteps
    # __init__: float32 training sigmas, statically shifted unless shifting is dynamic
    train = np.linspace(1, n, n, dtype=np.float32)[::-1] / np.float32(n)
    if not config.use_dynamic_shifting:
        train = config.shift * train / (1 + (config.shift - 1) * train)
    sigma_max, sigma_min = float(train[0]), float(train[-1])
    # set_timesteps: float64 linspace between the two, shifted again (float64), then float32
    sigmas = np.linspace(sigma_max * n, sigma_min * n, steps) / n
    if config.use_dynamic_shifting:
        mu = calculate_shift(
            image_seq_len,
            config.base_image_seq_len,
            config.max_image_seq_len,
            config.base_shift,
            config.max_shift,
        )
        sigmas = time_shift(mu, 1.0, sigmas, config.time_shift_type)
    else:
        sigmas = config.shift * sigmas / (1 + (config.shift - 1) * sigmas)
    sigmas = np.asarray(sigmas).astype(np.float32)
    if not np.all(np.isfinite(sigmas)) or math.isnan(float(sigmas.sum())):
        raise InvalidInputError(f"the scheduler config gives non-finite sigmas for steps={steps}")
    timesteps = sigmas * np.float32(n)
    return FlowMatchSchedule(
        sigmas=np.concatenate([sigmas, np.zeros(1, dtype=np.float32)]),
        timesteps=timesteps,
        num_train_timesteps=n,
    )


__all__ = [
    "torch_linspace_f32",
    "EulerConfig",
    "EulerSchedule",
    "euler_schedule",
    "sd3_schedule",
]
