"""Flow-matching Euler schedule in numpy, reproducing diffusers' FlowMatchEulerDiscreteScheduler.

The arithmetic follows the scheduler and FluxPipeline operation by operation and in the same
dtypes (float64 linspace, float32 shifting, float32 ``sigma * num_train_timesteps``, float32
``timestep / 1000`` fed to the model), so the schedule is bit-identical to diffusers' and a seed
gives the same trajectory. Only the options FLUX-style pipelines use are supported; the others
(karras/exponential/beta sigmas, inverted sigmas, stochastic sampling, flow sigmas) are refused
with an ``EngineError`` rather than silently approximated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np

from npc_rt.errors import EngineError, InvalidInputError

_UNSUPPORTED_FLAGS = (
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "invert_sigmas",
    "stochastic_sampling",
    "use_flow_sigmas",
)


_Config = TypeVar("_Config")


@dataclass(frozen=True)
class FlowMatchConfig:
    """The scheduler options that shape the schedule (names as in diffusers' scheduler_config.json)."""

    num_train_timesteps: int = 1000
    shift: float = 1.0
    use_dynamic_shifting: bool = False
    base_shift: float = 0.5
    max_shift: float = 1.15
    base_image_seq_len: int = 256
    max_image_seq_len: int = 4096
    time_shift_type: str = "exponential"
    shift_terminal: float | None = None

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> FlowMatchConfig:
        """Read a diffusers scheduler config; refuse options this schedule does not reproduce."""
        return read_scheduler_config(
            cls,
            config,
            unsupported=_UNSUPPORTED_FLAGS,
            allowed={"time_shift_type": ("exponential", "linear")},
        )


def read_scheduler_config(
    cls: type[_Config],
    config: Mapping[str, Any],
    *,
    unsupported: tuple[str, ...],
    allowed: Mapping[str, tuple[Any, ...]],
) -> _Config:
    """A scheduler-options dataclass from a diffusers ``scheduler_config.json``: each field takes
    the config's value converted to the type of its default (missing or null: the default; an
    optional field's falsy value: None, as diffusers treats it). Options set in ``unsupported``
    and values outside ``allowed`` are refused, so nothing is silently sampled differently."""
    for flag in unsupported:
        if config.get(flag):
            raise EngineError(f"scheduler option {flag}=true is not supported by npc_rt")
    defaults = cls()
    values: dict[str, Any] = {}
    try:
        for f in fields(cls):
            raw, default = config.get(f.name), getattr(defaults, f.name)
            if default is None:
                values[f.name] = float(raw) if raw else None
            else:
                values[f.name] = default if raw is None else type(default)(raw)
    except (TypeError, ValueError) as exc:
        raise EngineError(f"scheduler config has a malformed value: {exc}") from exc
    out = cls(**values)
    for name, options in allowed.items():
        if getattr(out, name) not in options:
            raise EngineError(
                f"scheduler {name}={getattr(out, name)!r} is not supported (supported: {options})"
            )
    return out


@dataclass(frozen=True, eq=False)
class FlowMatchSchedule:
    """``sigmas`` float32 [steps + 1] (terminal 0 appended); ``timesteps`` float32 [steps]."""

    sigmas: np.ndarray
    timesteps: np.ndarray
    num_train_timesteps: int

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])

    def model_timestep(self, step: int, dtype: np.dtype | str = np.float32) -> np.ndarray:
        """The timestep FluxPipeline feeds the transformer: ``t`` cast to the latents' dtype, then
        divided by 1000 in that dtype (a 0-d array)."""
        t = np.asarray(self.timesteps[step]).astype(dtype)
        return t / np.asarray(1000, dtype=dtype)

    def step_delta(self, step: int) -> np.float32:
        """``sigma_{i+1} - sigma_i``, the Euler step's dt (float32, as the scheduler computes it)."""
        return np.float32(self.sigmas[step + 1] - self.sigmas[step])


def calculate_shift(
    image_seq_len: int,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
    """FLUX's resolution-dependent ``mu``: linear in the packed image sequence length."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    intercept = base_shift - slope * base_seq_len
    return image_seq_len * slope + intercept


def time_shift(mu: float, sigma: float, t: np.ndarray, kind: str = "exponential") -> np.ndarray:
    """Shift float32 sigmas ``t`` towards noise by ``mu``; same expression order as diffusers."""
    if kind == "exponential":
        return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)
    return mu / (mu + (1 / t - 1) ** sigma)


def _stretch_to_terminal(t: np.ndarray, shift_terminal: float) -> np.ndarray:
    one_minus_t = 1 - t
    scale = one_minus_t[-1] / (1 - shift_terminal)
    with np.errstate(divide="ignore", invalid="ignore"):  # non-finite results are refused later
        return 1 - (one_minus_t / scale)


def _train_sigma_range(config: FlowMatchConfig) -> tuple[float, float]:
    """``sigma_max``/``sigma_min`` the scheduler derives at construction (float32 arithmetic, with
    the static shift applied unless shifting is dynamic)."""
    n = config.num_train_timesteps
    t = np.linspace(1, n, n, dtype=np.float32)[::-1].copy()
    sigmas = t / np.float32(n)
    if not config.use_dynamic_shifting:
        shift = np.float32(config.shift)
        sigmas = shift * sigmas / (np.float32(1) + (shift - np.float32(1)) * sigmas)
    return float(sigmas[0]), float(sigmas[-1])


def flow_match_schedule(
    config: FlowMatchConfig,
    steps: int,
    *,
    sigmas: np.ndarray | None = None,
    mu: float | None = None,
) -> FlowMatchSchedule:
    """``FlowMatchEulerDiscreteScheduler.set_timesteps(steps, sigmas=sigmas, mu=mu)``.

    ``sigmas=None`` is the scheduler's default spacing (SD3's pipeline uses it): timesteps
    evenly spaced from ``sigma_max`` to ``sigma_min`` in float64. FLUX passes its own sigmas
    (``flux_schedule``). ``mu`` is required with dynamic shifting.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps!r}")
    if config.use_dynamic_shifting and mu is None:
        raise InvalidInputError("mu is required when the scheduler shifts dynamically")
    if sigmas is None:
        sigma_max, sigma_min = _train_sigma_range(config)
        n = config.num_train_timesteps
        sigmas = np.linspace(sigma_max * n, sigma_min * n, steps) / n
    else:
        sigmas = np.asarray(sigmas).astype(np.float32)
        if sigmas.shape != (steps,):
            raise InvalidInputError(f"sigmas must hold {steps} values, got shape {sigmas.shape}")
    if config.use_dynamic_shifting:
        sigmas = time_shift(mu, 1.0, sigmas, config.time_shift_type)
    else:
        sigmas = config.shift * sigmas / (1 + (config.shift - 1) * sigmas)
    if config.shift_terminal:
        sigmas = _stretch_to_terminal(sigmas, config.shift_terminal)
    # diffusers converts to a float32 tensor here (the default spacing is float64 until now)
    sigmas = np.asarray(sigmas).astype(np.float32)
    if not np.all(np.isfinite(sigmas)):
        # e.g. shift_terminal with a single step: diffusers divides 0 by 0 there
        raise InvalidInputError(
            f"the scheduler config gives non-finite sigmas for steps={steps}: {sigmas.tolist()}"
        )
    timesteps = sigmas * np.float32(config.num_train_timesteps)
    sigmas = np.concatenate([sigmas, np.zeros(1, dtype=np.float32)])
    return FlowMatchSchedule(
        sigmas=sigmas, timesteps=timesteps, num_train_timesteps=config.num_train_timesteps
    )


def flux_schedule(config: FlowMatchConfig, steps: int, image_seq_len: int) -> FlowMatchSchedule:
    """The schedule FluxPipeline sets for ``steps`` steps on a packed image of ``image_seq_len``:
    its own sigmas ``linspace(1, 1/steps)`` and ``mu`` from the image sequence length."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps!r}")
    if image_seq_len < 1:
        raise InvalidInputError(f"image_seq_len must be positive, got {image_seq_len}")
    mu = calculate_shift(
        image_seq_len,
        config.base_image_seq_len,
        config.max_image_seq_len,
        config.base_shift,
        config.max_shift,
    )
    return flow_match_schedule(config, steps, sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)


def euler_step(sample: np.ndarray, model_output: np.ndarray, dt: np.float32) -> np.ndarray:
    """``x + dt * v`` with ``x`` upcast to float32, cast back to the model output's dtype.

    torch multiplies the 0-d float32 ``dt`` by ``v`` in ``v``'s dtype (a 0-d tensor does not
    promote a dimensioned one), then adds in float32; for float32 models this is plain float32.
    """
    step = np.asarray(dt).astype(model_output.dtype) * model_output
    prev = sample.astype(np.float32, copy=False) + step
    return prev.astype(model_output.dtype, copy=False)


def euler_step_into(
    sample: np.ndarray, model_output: np.ndarray, dt: np.float32, scratch: np.ndarray
) -> np.ndarray:
    """``euler_step`` for float32 written into ``sample`` (returned), using ``scratch`` (same
    shape, float32) for ``dt * v``: bitwise the same numbers, with no fresh multi-megabyte
    allocations per step (each would page-fault its memory in again)."""
    if sample.dtype != np.float32 or model_output.dtype != np.float32:
        return euler_step(sample, model_output, dt)
    np.multiply(model_output, np.float32(dt), out=scratch)
    return np.add(sample, scratch, out=sample)


__all__ = [
    "FlowMatchConfig",
    "FlowMatchSchedule",
    "calculate_shift",
    "time_shift",
    "flux_schedule",
    "flow_match_schedule",
    "euler_step",
    "euler_step_into",
]
