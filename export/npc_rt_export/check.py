"""Post-export parity check: each ONNX file against its torch module on the same sample input.

The sample uses the contract's ``check_sizes`` (another batch, resolution and text length than the
traced example), so a graph that silently froze a traced size fails here rather than at run time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from npc_rt.errors import EngineError

from npc_rt_export.contracts import ComponentContract

TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 1e-1}
"""Default allowed max abs error relative to ``max(1, max |reference|)``; ``--check-tolerance``
overrides it. fp32: ORT and torch run the same math in different kernel and summation orders;
measured 1e-6..4e-6 on the tiny model and up to 2.8e-5 on a 200 MB random "small DiT" (the VAE),
growing with width and depth, so real 20-60-block models get a 1e-3 bound; a wrong graph (an input
mis-wired, a mask ignored, a shape frozen) is off by O(0.1-1) and still fails. fp16/bf16: one
half-precision rounding is ~5e-4 / 4e-3 relative and differing op fusion rounds at different
places; the bounds leave room for depth."""


@dataclass(frozen=True)
class ComponentCheck:
    """The parity check's outcome for one component."""

    component: str
    status: str  # "ok" or "skipped"
    max_abs_error: float | None
    max_abs_reference: float | None
    tolerance: float
    shapes: dict[str, list[int]]
    seconds: float
    reason: str | None = None

    def to_manifest(self) -> dict:
        out = {
            "status": self.status,
            "max_abs_error": self.max_abs_error,
            "max_abs_reference": self.max_abs_reference,
            "tolerance": self.tolerance,
            "shapes": self.shapes,
            "seconds": round(self.seconds, 3),
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def validate_onnx(onnx_path: Path, component: str) -> None:
    """ONNX's own checker with full shape/type inference: catches graphs no runtime accepts
    (e.g. an op given a dtype its schema lacks) independently of which kernels ORT has."""
    import onnx

    try:
        onnx.checker.check_model(str(onnx_path), full_check=True)
    except Exception as exc:  # checker raises ValidationError / InferenceError
        raise EngineError(f"{component}: exported ONNX file is invalid: {exc}") from exc


def torch_reference(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """The module's outputs on ``inputs`` as float32 arrays (several for a multi-output module)."""
    with torch.no_grad():
        produced = module(*inputs)
    # a module with several outputs (SDXL/SD3 CLIP: hidden states and pooled) returns a tuple
    produced = produced if isinstance(produced, (tuple, list)) else (produced,)
    return [t.detach().float().numpy() for t in produced]


def check_component(
    module: torch.nn.Module,
    contract: ComponentContract,
    onnx_path: Path,
    inputs: tuple[torch.Tensor, ...],
    precision: str,
    providers: list[str] | None = None,
    tolerance: float | None = None,
) -> ComponentCheck:
    """Run ``module`` in torch and ``onnx_path`` in ONNX Runtime on ``inputs``; compare.

    See ``compare_with_onnx``; the exporter calls the two halves itself so the torch module can
    be freed before ONNX Runtime loads a second copy of the weights.
    """
    start = time.perf_counter()
    references = torch_reference(module, inputs)
    return compare_with_onnx(
        contract,
        onnx_path,
        inputs,
        references,
        precision,
        providers=providers,
        tolerance=tolerance,
        torch_seconds=time.perf_counter() - start,
    )


def compare_with_onnx(
    contract: ComponentContract,
    onnx_path: Path,
    inputs: tuple[torch.Tensor, ...],
    references: list[np.ndarray],
    precision: str,
    providers: list[str] | None = None,
    tolerance: float | None = None,
    torch_seconds: float = 0.0,
) -> ComponentCheck:
    """Run ``onnx_path`` in ONNX Runtime on ``inputs`` and compare with torch's ``references``.

    Raises ``EngineError`` when the error is over tolerance (run ``validate_onnx`` first). A
    half-precision session ONNX Runtime cannot create for lack of a kernel (``NOT_IMPLEMENTED``:
    bf16 on the CPU provider) is reported as ``skipped`` with ORT's reason rather than failing the
    export: the file is valid and runs on a provider that has the kernels.
    """
    import onnxruntime as ort

    start = time.perf_counter() - torch_seconds
    tol = TOLERANCE[precision] if tolerance is None else tolerance
    shapes = {spec.name: list(x.shape) for spec, x in zip(contract.inputs, inputs, strict=True)}
    feed = {spec.name: x.numpy() for spec, x in zip(contract.inputs, inputs, strict=True)}
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(
            str(onnx_path), options, providers=providers or ["CPUExecutionProvider"]
        )
        actuals = session.run(list(contract.output_names), feed)
    except Exception as exc:  # ORT raises its own exception types per failure kind
        if precision == "fp32" or "NOT_IMPLEMENTED" not in str(exc):
            raise EngineError(
                f"{contract.name}: ONNX Runtime could not run the export: {exc}"
            ) from exc
        return ComponentCheck(
            contract.name,
            "skipped",
            None,
            None,
            tol,
            shapes,
            time.perf_counter() - start,
            reason=f"ONNX Runtime cannot run {precision} here: {str(exc).splitlines()[0][:300]}",
        )
    del session  # release ORT's copy of the weights before comparing
    error, ref_scale = 0.0, 0.0
    for name, actual, reference in zip(contract.output_names, actuals, references, strict=True):
        if actual.shape != reference.shape:
            raise EngineError(
                f"{contract.name}: ONNX output {name} shape {list(actual.shape)} != torch "
                f"{list(reference.shape)}"
            )
        if reference.size:
            ref_scale = max(ref_scale, float(np.abs(reference).max()))
            diff = np.abs(actual.astype(np.float64) - reference.astype(np.float64)).max()
            error = max(error, float(diff)) if np.isfinite(diff) else float("nan")
    if not np.isfinite(error) or error > tol * max(1.0, ref_scale):
        raise EngineError(
            f"{contract.name}: ONNX Runtime output differs from torch by {error:.3g} "
            f"(tolerance {tol:g} x max(1, {ref_scale:.3g})) at input shapes {shapes}"
        )
    return ComponentCheck(
        contract.name, "ok", error, ref_scale, tol, shapes, time.perf_counter() - start
    )
