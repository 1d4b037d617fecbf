"""GPU parity and timing: TensorRT (fp32, fp16) and ORT-CUDA against ORT-CPU, per component at
the profile's opt shapes, and one backbone step at batch 1, 2, 2K, for the shipped FLUX demo
engine and for any ``--engine DIR`` given (run.sh exports tiny SDXL and SD3 engines when the
export tooling is installed).

Run through tests/gpu/run.sh. Prints one line per check and writes a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from npc_rt.backends.ort import OrtBackend
from npc_rt.demo import demo_engine_dir
from npc_rt.engine import open_engine

# fp32 TensorRT may use TF32 tensor cores (10-bit mantissa) on the transformer's matmuls.
TOLERANCE = {"fp32": 1e-2, "fp16": 5e-2, "ort-cuda": 1e-3}


def opt_inputs(engine, component: str, batch: int | None = None) -> dict[str, np.ndarray]:
    raw = engine.manifest["components"][component]
    spec = engine.component(component)
    rng = np.random.default_rng(0)
    feeds = {}
    for tensor in spec.inputs:
        shape = list(raw["profiles"]["opt"][tensor.name])
        if batch is not None and tensor.shape and tensor.shape[0] == "batch":
            shape[0] = batch
        if tensor.dtype == "int64":
            feeds[tensor.name] = rng.integers(0, 100, size=shape).astype(np.int64)
        else:
            feeds[tensor.name] = rng.standard_normal(shape).astype(tensor.dtype)
    if component == STEP:  # row indices must address real rows; noise levels are positive
        profile = raw["profiles"]["opt"]
        rows, candidates = profile["model_output"][0], profile["latents"][0]
        for name in ("guided_rows", "base_rows", "skipped_rows"):
            feeds[name] = rng.integers(0, rows, size=feeds[name].shape).astype(np.int64)
        feeds["next_rows"] = rng.integers(0, candidates, size=feeds["next_rows"].shape)
        feeds["sigma"] = np.array([0.8], np.float32)
        feeds["sigma_next"] = np.array([0.6], np.float32)
        feeds["input_divisor"] = np.array([1.25], np.float32)
    return feeds


def median_ms(fn, repeats: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


BACKBONE = {"flux": "transformer", "sd3": "transformer", "sdxl": "unet"}
STEP = "sampler_step"
IMAGE_TOLERANCE = {"ort-cuda": 1e-3, "fp32": 2e-2, "fp16": 1e-1}


LABELS = ("ort-cuda", "fp32", "fp16")


def generations(
    root: Path, engine, labels: tuple[str, ...], summary: dict, failures: list[str]
) -> None:
    """Whole generations with the latents on the device (the sampler step on the GPU) and on the
    host, per GPU backend, against ORT-CPU's host loop: image error and ms per generation."""
    from dataclasses import replace

    from npc_rt.pipeline import load_engine

    reference = load_engine(root, providers=["cpu"], resident=False)
    params = replace(reference.default_params, steps=8, negative_steps=None)
    negatives = (None, "blurry", "two dogs")
    prompt = "a photo of two cats on a red sofa"
    want = reference.sample(prompt, seed=1, negatives=negatives, params=params).images
    options = {
        "ort-cuda": {"providers": ["cuda"]},
        "fp32": {"backend": "trt", "precision": "fp32"},
        "fp16": {"backend": "trt", "precision": "fp16"},
    }
    for label in labels:
        opts = options[label]
        for resident in (True, False):
            pipe = load_engine(root, resident=resident, **opts)
            got = pipe.sample(prompt, seed=1, negatives=negatives, params=params).images
            err = float(np.max(np.abs(got - want)))
            where = "device" if resident else "host"
            ok = err <= IMAGE_TOLERANCE[label]
            failures += [] if ok else [f"{engine.family}:generate/{label}/{where}"]
            ms = median_ms(
                lambda p=pipe: p.sample(prompt, seed=1, negatives=negatives, params=params),
                repeats=5,
            )
            summary["generate"][f"{label}/{where}"] = {"max_abs_err": err, "ms": round(ms, 3)}
            print(
                f"{engine.family:5s} generate K=3 {params.steps} steps {label:9s} latents on "
                f"{where:6s} {ms:8.2f} ms  max abs err {err:.2e} {'ok' if ok else 'FAIL'}"
            )


def check_engine(source: Path, work: Path, labels: tuple[str, ...] = LABELS) -> dict:
    from npc_rt.backends.trt import TrtBackend
    from npc_rt_export.trt_build import build_trt_engines

    root = Path(shutil.copytree(source, work / source.name))
    engine = open_engine(root)
    summary: dict = {
        "family": engine.family,
        "build_s": {},
        "max_abs_err": {},
        "step_ms": {},
        "generate": {},
    }
    for precision in ("fp32", "fp16"):
        start = time.perf_counter()
        build_trt_engines(root, precision=precision, log=print)
        summary["build_s"][precision] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        again = build_trt_engines(root, precision=precision)
        assert not any(o.built for o in again), "second build was not a cache hit"
        summary["build_s"][f"{precision}_cached"] = round(time.perf_counter() - start, 3)

    cpu = OrtBackend(engine, ["CPUExecutionProvider"])
    makers = {
        "ort-cuda": lambda: OrtBackend(engine, ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        "fp32": lambda: TrtBackend(engine, precision="fp32"),
        "fp16": lambda: TrtBackend(engine, precision="fp16"),
    }
    backends = {label: makers[label]() for label in labels}
    failures: list[str] = []
    for component in engine.components:
        feeds = opt_inputs(engine, component)
        want = cpu.run(component, feeds)
        for label, backend in backends.items():
            got = backend.run(component, feeds)
            err = max(float(np.max(np.abs(got[k] - want[k]))) for k in want)
            summary["max_abs_err"][f"{component}/{label}"] = err
            ok = err <= TOLERANCE[label]
            failures += [] if ok else [f"{engine.family}:{component}/{label}"]
            print(
                f"{engine.family:5s} {component:16s} {label:9s} max abs err {err:.2e} {'ok' if ok else 'FAIL'}"
            )

    backbone = BACKBONE[engine.family]
    max_batch = engine.component(backbone).dims["batch"].max
    for batch in (1, 2, max_batch):
        feeds = opt_inputs(engine, backbone, batch)
        for label, backend in {"ort-cpu": cpu, **backends}.items():
            ms = median_ms(lambda b=backend, f=feeds: b.run(backbone, f))
            summary["step_ms"][f"b{batch}/{label}"] = round(ms, 3)
            print(f"{engine.family:5s} {backbone} step batch {batch:2d} {label:9s} {ms:8.3f} ms")
    if STEP in engine.components:
        generations(root, engine, labels, summary, failures)
    summary["failures"] = failures
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engine", type=Path, action="append", default=[], help="more engines")
    parser.add_argument(
        "--backends", default=",".join(LABELS), help=f"comma list of {', '.join(LABELS)}"
    )
    args = parser.parse_args(argv)
    labels = tuple(b for b in args.backends.split(",") if b)
    work = Path(tempfile.mkdtemp(prefix="npc-gpu-"))
    results = {}
    for index, source in enumerate([demo_engine_dir(), *args.engine]):
        results[f"{index}:{source.name}"] = check_engine(source, work / str(index), labels)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))
    return 1 if any(r["failures"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
