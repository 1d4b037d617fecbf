"""Export a diffusers pipeline folder to an engine directory (docs/engine-format.md).

Components are exported one at a time (load, export, check, free), so peak memory is one
component plus its ONNX graph, not the whole pipeline. The manifest is written last and atomically:
a directory whose export failed or was interrupted has no manifest and is not an engine.
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from npc_rt.errors import InvalidInputError

from npc_rt_export import flux, sd3, sdxl
from npc_rt_export.check import (
    ComponentCheck,
    compare_with_onnx,
    torch_reference,
    validate_onnx,
)
from npc_rt_export.hashing import sha256_file
from npc_rt_export.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    exporter_versions,
    write_manifest,
)
from npc_rt_export.onnx_export import export_onnx
from npc_rt_export.options import ExportOptions
from npc_rt_export.plan import ExportPlan
from npc_rt_export.source import PipelineSource, hash_weights, open_source

PLANNERS: dict[str, Callable[[PipelineSource, ExportOptions], ExportPlan]] = {
    "flux": flux.plan,
    "sdxl": sdxl.plan,
    "sd3": sd3.plan,
}
"""Family -> function building its export plan (SDXL and SD3 add theirs here)."""

CHECK_SEED = 1234
TRACE_SEED = 0


@dataclass(frozen=True)
class ExportResult:
    """What an export produced: where, the manifest written, and how long each stage took."""

    engine_dir: Path
    manifest: dict
    checks: dict[str, ComponentCheck] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def export_pipeline(
    src: Path,
    out: Path,
    options: ExportOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the diffusers pipeline folder ``src`` into the engine directory ``out``."""
    options = options or ExportOptions()
    say = log or (lambda _msg: None)
    source = open_source(Path(src))
    out = Path(out)
    plan = PLANNERS[source.family](source, options)
    _prepare_out_dir(out, options.overwrite)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    weights_sha256, weight_digests = hash_weights(source.root)
    seconds["hash_source"] = time.perf_counter() - start

    components: dict[str, dict] = {}
    checks: dict[str, ComponentCheck] = {}
    for name, contract in plan.contracts.items():
        start = time.perf_counter()
        module = plan.load[name]()
        precision = flux.PRECISION_OF_DTYPE.get(flux.module_dtype(module), options.precision)
        example = plan.sample_inputs(contract, contract.trace_sizes, _generator(TRACE_SEED))
        exported = export_onnx(
            module,
            contract,
            example,
            out,
            opset=options.opset,
            external_data_threshold=options.external_data_threshold,
        )
        validate_onnx(out / exported.onnx.path, name)
        seconds[f"export_{name}"] = time.perf_counter() - start
        say(f"exported {name} -> {exported.onnx.path} in {seconds[f'export_{name}']:.1f} s")
        sample, references, torch_seconds = (), [], 0.0
        if options.check:
            check_start = time.perf_counter()
            sample = plan.sample_inputs(contract, contract.check_sizes, _generator(CHECK_SEED))
            references = torch_reference(module, sample)
            torch_seconds = time.perf_counter() - check_start
        # Free the torch weights before ONNX Runtime loads its own copy: peak memory stays at
        # one copy of the largest component, not two.
        del module
        gc.collect()
        if options.check:
            result = compare_with_onnx(
                contract,
                out / exported.onnx.path,
                sample,
                references,
                options.precision,
                tolerance=options.check_tolerance,
                torch_seconds=torch_seconds,
            )
            checks[name] = result
            seconds[f"check_{name}"] = result.seconds
            say(_describe_check(result))
        components[name] = {
            "kind": contract.kind,
            "file": exported.onnx.path,
            "sha256": exported.onnx.sha256,
            "bytes": exported.onnx.bytes,
            "external_data": [
                {"file": d.path, "sha256": d.sha256, "bytes": d.bytes}
                for d in exported.external_data
            ],
            "precision": precision,
            **{k: v for k, v in contract.to_manifest().items() if k != "kind"},
        }

    start = time.perf_counter()
    tokenizers = {entry.name: entry.to_manifest() for entry in plan.write_tokenizers(out)}
    scheduler_file = out / "scheduler" / "scheduler_config.json"
    scheduler_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan.scheduler_config, scheduler_file)
    seconds["tokenizers_scheduler"] = time.perf_counter() - start

    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "family": plan.family,
        "precision": options.precision,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {
            "class_name": source.class_name,
            "diffusers_version": source.diffusers_version,
            "weights_sha256": weights_sha256,
            "weights": [d.to_manifest() for d in weight_digests],
        },
        "exporter": exporter_versions(options.opset),
        "components": components,
        "tokenizers": tokenizers,
        "scheduler": {
            "class_name": _scheduler_class(scheduler_file),
            "config_file": "scheduler/scheduler_config.json",
            "sha256": sha256_file(scheduler_file),
        },
        "pipeline": plan.pipeline,
        "scoring_encoder": plan.scoring_encoder,
        "check": (
            {
                "provider": "CPUExecutionProvider",
                "components": {name: c.to_manifest() for name, c in checks.items()},
            }
            if options.check
            else None
        ),
    }
    write_manifest(out, manifest)
    return ExportResult(engine_dir=out, manifest=manifest, checks=checks, seconds=seconds)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InvalidInputError(
                f"{out}: directory is not empty (pass overwrite / --overwrite to replace an engine)"
            )
        # Drop the manifest first: until the new one is written the directory is not an engine.
        (out / MANIFEST_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _scheduler_class(config_file: Path) -> str | None:
    import json

    return json.loads(config_file.read_text(encoding="utf-8")).get("_class_name")


def _describe_check(result: ComponentCheck) -> str:
    if result.status != "ok":
        return f"check {result.component}: skipped ({result.reason})"
    return (
        f"check {result.component}: max abs error {result.max_abs_error:.3g} "
        f"(max |ref| {result.max_abs_reference:.3g}, tolerance {result.tolerance:g}) "
        f"in {result.seconds:.1f} s"
    )
