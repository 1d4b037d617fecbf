"""Device-resident denoising: the latents stay on the backend's device for a whole generation.

The host loop (``Pipeline.denoise``, ``CfgPipeline.denoise``) copies every backbone output to the
host, combines guidance and takes the Euler step in numpy, and uploads the next input. On a GPU
those two copies per step cost more than the arithmetic. Here the engine's ``sampler_step``
component (exported with the backbone, ``npc_rt_export.sampler_step``) does the combine, the step
and the next input's row gather and scaling on the device; per step only the timestep and three
scalars go up, and the latents come down once at the end.

Rows follow the host loop exactly (``StepRows``), and the step graph rounds in the host loop's
operation order, so both paths give the same images to float32 rounding (tested on ONNX Runtime's
CPU provider, which runs the same graph the GPU runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from npc_rt.backends.base import Backend, ResidentBackend
from npc_rt.engine import Engine
from npc_rt.errors import EngineError, InvalidInputError
from npc_rt.guidance import GuidanceLayout

STEP_COMPONENT = "sampler_step"
STEP_KIND_OF_PREDICTION = {
    "flow": "flow_euler_step",
    "epsilon": "eps_euler_step",
    "v_prediction": "v_euler_step",
}
_ONE = np.ones(1, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class StepRows:
    """One guidance phase's batch layout.

    ``model_rows[r]``: the candidate whose latents backbone row ``r`` reads. ``guided_rows[k]``
    and ``base_rows[k]``: candidate k's prediction is ``base + s * (guided - base)`` over those
    output rows; equal rows mean no guidance for k (the result is the guided row itself).
    ``skipped_rows`` and ``skip_scale``: skip-layer guidance adds ``(guided - skipped) *
    skip_scale`` (by default the guided rows and 0: adds exactly nothing).
    """

    model_rows: np.ndarray
    guided_rows: np.ndarray
    base_rows: np.ndarray
    skipped_rows: np.ndarray | None = None
    skip_scale: float = 0.0

    @property
    def skipped(self) -> np.ndarray:
        return self.guided_rows if self.skipped_rows is None else self.skipped_rows


def flux_rows(layout: GuidanceLayout, with_negatives: bool) -> StepRows:
    """FLUX's layout (``guidance.GuidanceLayout``): K cond rows, then one neg row per candidate
    that has a negative while negatives apply."""
    k = layout.num_candidates
    cond = np.arange(k, dtype=np.int64)
    base = cond.copy()
    if with_negatives:
        for j, candidate in enumerate(layout.negative_candidates):
            base[candidate] = k + j
    return StepRows(layout.row_candidates(with_negatives), cond, base)


def cfg_rows(k: int, do_cfg: bool, skip_scale: float | None = None) -> StepRows:
    """Real CFG's layout: ``[uncond_0 .. uncond_{K-1}, cond_0 .. cond_{K-1}]``, or K cond rows
    when CFG is off; with skip-layer guidance (``skip_scale``) K more cond rows run with layers
    skipped: ``[uncond x K, cond x K, skipped x K]``."""
    cand = np.arange(k, dtype=np.int64)
    if not do_cfg:
        return StepRows(cand, cand, cand)
    if skip_scale is None:
        return StepRows(np.concatenate([cand, cand]), cand + k, cand)
    return StepRows(np.concatenate([cand, cand, cand]), cand + k, cand, cand + 2 * k, skip_scale)


def resident_backend(backend: Backend, engine: Engine, prediction: str, want: bool | None) -> bool:
    """Whether a loop over ``engine`` on ``backend`` keeps its latents on the device.

    ``want``: None = when the backend prefers it and the engine has a matching step component;
    True = required (``EngineError`` naming what is missing); False = never.
    """
    if want is False:
        return False
    capable = isinstance(backend, ResidentBackend)
    if want is None and not (capable and backend.prefers_resident):
        return False
    if not capable:
        raise EngineError(f"backend {backend.name} cannot keep tensors on its device")
    expected = STEP_KIND_OF_PREDICTION.get(prediction)
    if expected is None:
        raise InvalidInputError(f"no sampler step for prediction type {prediction!r}")
    if STEP_COMPONENT not in engine.components:
        if want is None:
            return False  # an engine exported before the step component: the host loop
        raise EngineError(
            f"engine {engine.root} has no {STEP_COMPONENT} component (exported by an older "
            "npc_rt_export); re-export it to keep latents on the device"
        )
    kind = engine.component(STEP_COMPONENT).kind
    if kind != expected:
        raise EngineError(
            f"engine {engine.root}: {STEP_COMPONENT} is a {kind!r}, but the scheduler's "
            f"prediction type {prediction!r} needs a {expected!r}"
        )
    return True


@dataclass(frozen=True)
class ResidentLoop:
    """What one resident denoising loop runs.

    ``sigmas`` ``[steps + 1]`` float32 (the schedule's, terminal value last); ``input_divisors``
    ``[steps]``: the backbone's latent input at step i is ``latents[rows] / input_divisors[i]``.
    ``phase_of(i)`` picks the entry of ``phases`` (and of ``texts``, the per-phase constant backbone
    inputs, already ``place``d) step i uses; ``step_inputs(i, rows)`` the per-step ones (timestep).
    """

    backbone: str
    latent_input: str
    output: str
    guidance: float
    sigmas: np.ndarray
    input_divisors: np.ndarray
    phases: Sequence[StepRows]
    texts: Sequence[Mapping[str, object]]
    phase_of: Callable[[int], int]
    step_inputs: Callable[[int, int], Mapping[str, object]]

    @property
    def steps(self) -> int:
        return int(self.input_divisors.shape[0])


def denoise_resident(
    backend: ResidentBackend, loop: ResidentLoop, latents: np.ndarray
) -> np.ndarray:
    """Run ``loop`` from host ``latents [K, ...]`` (float32); return the final latents on the host."""
    place = backend.place
    # index arrays and the skip scale are constant per phase: upload each phase's once, when the
    # loop first reaches it
    placed: dict[int, dict[str, object]] = {}

    def phase_inputs(phase: int) -> dict[str, object]:
        if phase not in placed:
            rows = loop.phases[phase]
            placed[phase] = {
                "model_rows": place(rows.model_rows),
                "guided_rows": place(rows.guided_rows),
                "base_rows": place(rows.base_rows),
                "skipped_rows": place(rows.skipped),
                "skip_scale": place(np.full(1, rows.skip_scale, dtype=np.float32)),
            }
        return placed[phase]

    guidance = place(np.full(1, loop.guidance, dtype=np.float32))
    sigmas = np.ascontiguousarray(loop.sigmas, dtype=np.float32)
    divisors = np.ascontiguousarray(loop.input_divisors, dtype=np.float32)
    first = loop.phases[loop.phase_of(0)].model_rows
    model_input: object = latents[first] / divisors[0]
    state: object = latents
    for i in range(loop.steps):
        phase = loop.phase_of(i)
        rows = loop.phases[phase]
        inputs = {
            loop.latent_input: model_input,
            **loop.step_inputs(i, rows.model_rows.shape[0]),
            **loop.texts[phase],
        }
        out = backend.run_resident(loop.backbone, inputs)[loop.output]
        last = i + 1 == loop.steps
        # after the last step the next input is unused: keep this phase's rows (same shapes, so a
        # static plan or captured CUDA graph still applies) and divide by 1
        following = phase if last else loop.phase_of(i + 1)
        current = phase_inputs(phase)
        result = backend.run_resident(
            STEP_COMPONENT,
            {
                "latents": state,
                "model_output": out,
                "guided_rows": current["guided_rows"],
                "base_rows": current["base_rows"],
                "guidance": guidance,
                "skipped_rows": current["skipped_rows"],
                "skip_scale": current["skip_scale"],
                "sigma": sigmas[i : i + 1],
                "sigma_next": sigmas[i + 1 : i + 2],
                "next_rows": phase_inputs(following)["model_rows"],
                "input_divisor": _ONE if last else divisors[i + 1 : i + 2],
            },
        )
        state, model_input = result["latents_next"], result["model_input_next"]
    return backend.to_host(state)


__all__ = [
    "STEP_COMPONENT",
    "STEP_KIND_OF_PREDICTION",
    "ResidentLoop",
    "StepRows",
    "cfg_rows",
    "denoise_resident",
    "flux_rows",
    "resident_backend",
]
