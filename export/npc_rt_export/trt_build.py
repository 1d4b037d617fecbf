"""Build TensorRT engines ("plans") for an engine directory with the TensorRT Python API.

One plan per component, from its ONNX file and the optimization profile that the manifest's
component contract gives (the same contract that drove the ONNX export), or a static-shape plan
for CUDA graphs. Plans are cached in the engine directory (``npc_rt.backends.trt_plans``): a
second build with the same key (ONNX hash, TensorRT version, GPU and compute capability, precision,
profile) does nothing; any change rebuilds. A timing cache in ``DIR/trt/timing.cache`` is loaded
and saved across builds to shorten them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from npc_rt.backends.trt_plans import (
    InputProfile,
    PlanCache,
    PlanEntry,
    TrtTarget,
    optimization_profile,
    plan_cache_key,
    plan_file_name,
    sha256_bytes,
    static_profile,
)
from npc_rt.engine import open_engine
from npc_rt.errors import EngineError, InvalidInputError
from npc_rt.resident import STEP_KIND_OF_PREDICTION

WORKSPACE_BYTES = 8 << 30
SAMPLER_STEP_KINDS = frozenset(STEP_KIND_OF_PREDICTION.values())


@dataclass(frozen=True)
class BuildOutcome:
    component: str
    plan: Path
    built: bool  # False: the cache already had this exact plan
    seconds: float


def requires_qdq(onnx_path: Path) -> bool:
    """True when the ONNX graph carries Q/DQ nodes, which TensorRT needs for FP8."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def build_trt_engines(
    engine_dir: str | Path,
    *,
    precision: str = "fp16",
    components: Sequence[str] | None = None,
    static_sizes: Mapping[str, int] | None = None,
    device: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[BuildOutcome]:
    """Build (or find cached) plans for ``components`` (default: all) of ``engine_dir``."""
    from npc_rt.backends.trt import _modules, current_target

    say = log or (lambda _msg: None)
    engine = open_engine(engine_dir)
    trt, _ = _modules()
    target = current_target(device)
    cache = PlanCache(engine.root)
    names = list(components) if components is not None else list(engine.components)
    outcomes = []
    for name in names:
        spec = engine.component(name)
        raw = engine.manifest["components"][name]
        static = static_sizes is not None
        if static:
            own = {d: v for d, v in static_sizes.items() if d in raw.get("dims", {})}
            profile = static_profile(raw, own)
        else:
            profile = optimization_profile(raw)
        key = plan_cache_key(spec.file.sha256, target, precision, profile)
        start = time.perf_counter()
        cached = cache.lookup(name, key, static=static)
        if cached is not None:
            say(f"{name}: cached plan {cached.name}")
            outcomes.append(BuildOutcome(name, cached, False, time.perf_counter() - start))
            continue
        if precision == "fp8" and not requires_qdq(spec.file.path):
            raise InvalidInputError(
                f"fp8 needs an FP8-quantized ONNX (QuantizeLinear/DequantizeLinear nodes) and "
                f"{spec.file.path.name} has none; quantize it first (e.g. NVIDIA ModelOpt)"
            )
        # the sampler step updates the float32 latents: reduced precision there would round
        # them every step, so its plan computes in float32 whatever the backbone's precision
        flags = "fp32" if spec.kind in SAMPLER_STEP_KINDS else precision
        plan = _build_plan(trt, spec.file.path, profile, flags, cache.timing_cache_path)
        entry = PlanEntry(
            component=name,
            key=key,
            file=plan_file_name(name, key, static),
            sha256=sha256_bytes(plan),
            bytes=len(plan),
            precision=precision,
            static=static,
            target=target,
        )
        path = cache.store(entry, plan)
        seconds = time.perf_counter() - start
        say(f"{name}: built {path.name} ({len(plan) / 2**20:.1f} MiB) in {seconds:.1f} s")
        outcomes.append(BuildOutcome(name, path, True, seconds))
    return outcomes


def _build_plan(
    trt, onnx_path: Path, profile: tuple[InputProfile, ...], precision: str, timing_path: Path
) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    flag = {"fp16": "FP16", "bf16": "BF16", "fp8": "FP8"}.get(precision)
    if flag is not None:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    optimization = builder.create_optimization_profile()
    for row in profile:
        optimization.set_shape(row.name, row.min, row.opt, row.max)
    config.add_optimization_profile(optimization)
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build {onnx_path.name} ({precision})")
    timing_path.parent.mkdir(parents=True, exist_ok=True)
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def parse_static_sizes(text: str) -> dict[str, int]:
    """``"batch=2,image_seq=4096,text_length=512"`` -> dict, for ``npc-rt build --static``."""
    sizes: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        dim, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise InvalidInputError(f"--static wants DIM=SIZE[,DIM=SIZE...], got {part!r}")
        sizes[dim.strip()] = int(value)
    if not sizes:
        raise InvalidInputError("--static needs at least one DIM=SIZE")
    return sizes


__all__ = ["BuildOutcome", "TrtTarget", "build_trt_engines", "parse_static_sizes", "requires_qdq"]
