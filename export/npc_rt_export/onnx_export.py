"""Export one wrapped torch module to an ONNX file as its contract describes.

Uses ``torch.onnx.export(dynamo=True)``: the legacy TorchScript exporter cannot export FLUX
(``aten::rms_norm`` has no opset-18 symbolic). The contract's dynamic dimensions become
``torch.export.Dim`` objects, shared by name across inputs, so the graph is generic over batch,
resolution and text length; the graph's IO then gets the contract's names and dimension names.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from npc_rt.errors import EngineError

from npc_rt_export.contracts import ComponentContract
from npc_rt_export.hashing import FileDigest, digest_file


@dataclass(frozen=True)
class ExportedFile:
    """An ONNX file written for a component, with its external-data side file if any."""

    onnx: FileDigest
    external_data: tuple[FileDigest, ...]


def torch_dynamic_shapes(contract: ComponentContract) -> tuple[dict[int, torch.export.Dim], ...]:
    """The contract's dynamic axes as ``torch.export`` wants them: one dict per positional input.

    A dimension whose range is a single size (``min == max``, e.g. ``--max-batch 1`` or equal
    min/max resolutions) is left static: ``torch.export.Dim`` refuses such a range, and a fixed
    size is what it means anyway.
    """
    dims = {
        name: torch.export.Dim(name, min=rng.min, max=rng.max)
        for name, rng in contract.dims.items()
        if rng.min < rng.max
    }
    return tuple(
        {
            axis: dims[size]
            for axis, size in enumerate(spec.shape)
            if isinstance(size, str) and size in dims
        }
        for spec in contract.inputs
    )


def initializer_bytes(program: torch.onnx.ONNXProgram) -> int:
    total = 0
    for value in program.model.graph.initializers.values():
        if value.const_value is not None:
            total += value.const_value.nbytes
    return total


def export_onnx(
    module: torch.nn.Module,
    contract: ComponentContract,
    example_args: tuple[torch.Tensor, ...],
    out_dir: Path,
    *,
    opset: int,
    external_data_threshold: int,
) -> ExportedFile:
    """Write ``out_dir/<contract.name>.onnx`` (plus ``.onnx.data`` above the threshold)."""
    path = Path(out_dir) / f"{contract.name}.onnx"
    data_path = path.with_name(path.name + ".data")
    for stale in (path, data_path):
        stale.unlink(missing_ok=True)
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example_args,
                dynamo=True,
                opset_version=opset,
                input_names=list(contract.input_names),
                output_names=list(contract.output_names),
                dynamic_shapes=torch_dynamic_shapes(contract),
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types; keep its message
        raise EngineError(f"{contract.name}: ONNX export failed: {exc}") from exc
    _name_symbolic_dims(program, contract)
    _drop_stack_traces(program)
    external = initializer_bytes(program) > external_data_threshold
    program.save(os.fspath(path), external_data=external)
    side = (digest_file(data_path, path.parent),) if external and data_path.exists() else ()
    if external and not side:
        raise EngineError(f"{contract.name}: exporter did not write the expected {data_path.name}")
    return ExportedFile(onnx=digest_file(path, path.parent), external_data=side)


STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


def _drop_stack_traces(program: torch.onnx.ONNXProgram) -> None:
    """Remove the exporter's per-node Python stack traces: they hold absolute paths of the
    exporting machine (checkout, virtualenv), which must not ship in an engine and would make two
    exports of the same weights differ by where they ran. Module scopes and class names stay."""
    from onnx_ir.traversal import RecursiveGraphIterator

    model = program.model
    for graph in (model.graph, *model.functions.values()):
        for node in RecursiveGraphIterator(graph):
            node.metadata_props.pop(STACK_TRACE_KEY, None)


def _name_symbolic_dims(program: torch.onnx.ONNXProgram, contract: ComponentContract) -> None:
    """Give graph IO the contract's dimension names instead of the exporter's ``s0``-style ones."""
    import onnx_ir as ir

    graph = program.model.graph
    for values, specs in ((graph.inputs, contract.inputs), (graph.outputs, contract.outputs)):
        by_name = {v.name: v for v in values}
        for spec in specs:
            value = by_name.get(spec.name)
            if value is None:
                raise EngineError(f"{contract.name}: exported graph has no IO named {spec.name!r}")
            if value.shape is not None and len(value.shape) != len(spec.shape):
                raise EngineError(
                    f"{contract.name}: {spec.name} has rank {len(value.shape)} in the graph, "
                    f"{len(spec.shape)} in the contract"
                )
            value.shape = ir.Shape(_graph_dims(spec.shape, contract))


def _graph_dims(shape: tuple, contract: ComponentContract) -> list[int | str]:
    """Axis labels for the graph: dimension names, or the size of a single-size dimension (the
    traced graph is static there). Scaled output dims (``8*h``) resolve the same way."""
    fixed = {name: rng.min for name, rng in contract.dims.items() if rng.min == rng.max}
    out: list[int | str] = []
    for axis in shape:
        if isinstance(axis, str):
            factor, _, base = axis.rpartition("*")
            if base in fixed:
                out.append(fixed[base] * (int(factor) if factor else 1))
                continue
        out.append(axis)
    return out
