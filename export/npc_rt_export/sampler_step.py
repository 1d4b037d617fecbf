"""The sampler step as an engine component: guidance combine + Euler update + next model input.

A GPU backend that keeps latents on the device between steps needs the per-step arithmetic on
the device too; exporting it as one more ONNX component lets every backend run it (ONNX Runtime on
any provider, a TensorRT plan) from the same contract, and lets the CPU tests run the exact graph
the GPU runs. Its contract is derived from the backbone's: the latent axes and their ranges are the
backbone's latent input's, so the two can never disagree.

Inputs (all float32 / int64, one graph per prediction type):

- ``latents [K, *axes]``: the current latents of K candidates;
- ``model_output [R, *axes]``: the backbone's output for its R rows;
- ``guided_rows [K]``, ``base_rows [K]``: per candidate, its conditional row and the row guidance
  pushes away from (negative / unconditional); equal rows turn guidance off for that candidate;
- ``guidance [1]``: the scale in ``base + s * (guided - base)``;
- ``skipped_rows [K]``, ``skip_scale [1]``: skip-layer guidance (SD3.5's), which then adds
  ``(guided - skipped) * skip_scale``; ``skipped_rows = guided_rows`` and scale 0 add exactly 0;
- ``sigma [1]``, ``sigma_next [1]``: this step's and the next step's noise levels;
- ``next_rows [R']``: which candidate each row of the next backbone call reads;
- ``input_divisor [1]``: the next model input is ``latents_next[next_rows] / input_divisor``
  (SDXL's ``scale_model_input``; 1 for flow matching).

Outputs: ``latents_next [K, *axes]`` and ``model_input_next [R', *axes]``.

Operation order follows the host loop's numpy (``npc_rt.guidance``, ``npc_rt.schedule``,
``npc_rt.schedules_euler``), which follows diffusers, so both paths round alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import torch
from npc_rt.errors import InvalidInputError
from npc_rt.resident import STEP_COMPONENT, STEP_KIND_OF_PREDICTION
from torch import nn

from npc_rt_export.contracts import ComponentContract, DimRange, TensorSpec
from npc_rt_export.plan import ExportPlan

# the runtime's names, so the component the exporter writes is the one the loop looks for
COMPONENT = STEP_COMPONENT
KIND_OF_PREDICTION = STEP_KIND_OF_PREDICTION


class EulerStep(nn.Module):
    """One guided Euler step for ``prediction`` ("flow", "epsilon" or "v_prediction")."""

    def __init__(self, prediction: str) -> None:
        super().__init__()
        if prediction not in KIND_OF_PREDICTION:
            raise InvalidInputError(
                f"prediction must be one of {sorted(KIND_OF_PREDICTION)}, got {prediction!r}"
            )
        self.prediction = prediction

    def forward(
        self,
        latents: torch.Tensor,
        model_output: torch.Tensor,
        guided_rows: torch.Tensor,
        base_rows: torch.Tensor,
        guidance: torch.Tensor,
        skipped_rows: torch.Tensor,
        skip_scale: torch.Tensor,
        sigma: torch.Tensor,
        sigma_next: torch.Tensor,
        next_rows: torch.Tensor,
        input_divisor: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        guided = model_output.index_select(0, guided_rows)
        base = model_output.index_select(0, base_rows)
        pred = base + guidance * (guided - base)
        skipped = model_output.index_select(0, skipped_rows)
        pred = pred + (guided - skipped) * skip_scale
        if self.prediction == "flow":
            latents_next = latents + pred * (sigma_next - sigma)
        else:
            if self.prediction == "epsilon":
                denoised = latents - sigma * pred
            else:
                one = torch.ones_like(sigma)
                c_out = -sigma / (sigma * sigma + one) ** 0.5
                denoised = pred * c_out + latents / (sigma * sigma + one)
            derivative = (latents - denoised) / sigma
            latents_next = latents + derivative * (sigma_next - sigma)
        model_input_next = latents_next.index_select(0, next_rows) / input_divisor
        return latents_next, model_input_next


def step_contract(
    backbone: ComponentContract, latent_input: str, prediction: str
) -> ComponentContract:
    """The sampler step's contract, from the backbone's contract and its latent input's name."""
    spec = next((s for s in backbone.inputs if s.name == latent_input), None)
    if spec is None or not spec.shape or spec.shape[0] != "batch":
        raise InvalidInputError(
            f"{backbone.name} has no batched latent input {latent_input!r} to derive a step from"
        )
    axes = spec.shape[1:]
    batch = backbone.dims["batch"]
    own_dims = {d: backbone.dims[d] for d in axes if isinstance(d, str)}
    dims: dict[str, DimRange] = {
        "candidates": batch,
        "batch": batch,
        "next_batch": batch,
        **own_dims,
    }

    def sizes(of: Mapping[str, int]) -> dict[str, int]:
        out = {d: of[d] for d in own_dims if d in of}
        b = of.get("batch", batch.opt)
        out.update(candidates=b, batch=b, next_batch=b)
        return out

    f32, i64 = "float32", "int64"
    return ComponentContract(
        name=COMPONENT,
        kind=KIND_OF_PREDICTION[prediction],
        inputs=(
            TensorSpec("latents", f32, ("candidates", *axes)),
            TensorSpec("model_output", f32, ("batch", *axes)),
            TensorSpec("guided_rows", i64, ("candidates",)),
            TensorSpec("base_rows", i64, ("candidates",)),
            TensorSpec("guidance", f32, (1,)),
            TensorSpec("skipped_rows", i64, ("candidates",)),
            TensorSpec("skip_scale", f32, (1,)),
            TensorSpec("sigma", f32, (1,)),
            TensorSpec("sigma_next", f32, (1,)),
            TensorSpec("next_rows", i64, ("next_batch",)),
            TensorSpec("input_divisor", f32, (1,)),
        ),
        outputs=(
            TensorSpec("latents_next", f32, ("candidates", *axes)),
            TensorSpec("model_input_next", f32, ("next_batch", *axes)),
        ),
        dims=dims,
        trace_sizes=sizes(backbone.trace_sizes),
        check_sizes=sizes(backbone.check_sizes),
    )


def sample_inputs(
    contract: ComponentContract, sizes: Mapping[str, int], generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """Well-formed random step inputs: indices in range, 0 < sigma_next < sigma."""
    by_name = {s.name: s for s in contract.inputs}
    latent_shape = [sizes[d] if isinstance(d, str) else d for d in by_name["latents"].shape[1:]]
    k, rows, next_rows = sizes["candidates"], sizes["batch"], sizes["next_batch"]
    sigma = torch.rand(1, generator=generator) * 0.8 + 0.2
    return (
        torch.randn(k, *latent_shape, generator=generator),
        torch.randn(rows, *latent_shape, generator=generator),
        torch.randint(0, rows, (k,), generator=generator),
        torch.randint(0, rows, (k,), generator=generator),
        torch.tensor([1.8]),
        torch.randint(0, rows, (k,), generator=generator),
        torch.tensor([2.8]),
        sigma,
        sigma * 0.7,
        torch.randint(0, k, (next_rows,), generator=generator),
        torch.tensor([1.25]),
    )


def with_sampler_step(
    plan: ExportPlan, backbone: str, latent_input: str, prediction: str
) -> ExportPlan:
    """``plan`` with the sampler step appended as its last component."""
    contract = step_contract(plan.contracts[backbone], latent_input, prediction)
    family_inputs = plan.sample_inputs

    def inputs(
        c: ComponentContract, sizes: Mapping[str, int], gen: torch.Generator
    ) -> tuple[torch.Tensor, ...]:
        if c.name == COMPONENT:
            return sample_inputs(c, sizes, gen)
        return family_inputs(c, sizes, gen)

    load: dict[str, Callable[[], nn.Module]] = {
        **plan.load,
        COMPONENT: lambda: EulerStep(prediction),
    }
    return replace(
        plan,
        contracts={**plan.contracts, COMPONENT: contract},
        load=load,
        sample_inputs=inputs,
    )


__all__ = [
    "COMPONENT",
    "KIND_OF_PREDICTION",
    "EulerStep",
    "sample_inputs",
    "step_contract",
    "with_sampler_step",
]
