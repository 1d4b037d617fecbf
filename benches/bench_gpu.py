"""GPU latency: TensorRT vs ONNX Runtime CUDA vs diffusers eager bf16, per step and end to end.

    python benches/bench_gpu.py --engine DIR --source PIPELINE_DIR [--steps 28] [--size 1024x1024]

DIR is an engine exported from PIPELINE_DIR (``npc-rt export``) with TensorRT plans built for this
GPU (``npc-rt build DIR --precision bf16``; ``--precision`` here must match). The backbone step
is timed on the engine's own inputs at batch 1 and 2 (prompt + negative); end to end is one
``generate`` with no negative and with one negative on every step. diffusers runs the same weights
in bfloat16 on the same GPU in the same process. Ratios are diffusers time / ours (above 1: ours
is faster). Needs a CUDA GPU with tensorrt, cuda-python, onnxruntime-gpu, torch and diffusers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def timed_ms(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def ours(
    engine_dir: Path, backend: str, precision: str, params, repeats: int, resident: bool | None
) -> dict[str, float]:
    from npc_rt.pipeline import load_engine

    options = (
        {"backend": "trt", "precision": precision}
        if backend == "trt"
        else {
            "backend": "ort",
            "providers": ["cuda"],
        }
    )
    pipe = load_engine(engine_dir, resident=resident, **options)
    prompt = "a photo of two cats on a red sofa"
    result = {
        "generate": timed_ms(lambda: pipe.generate(prompt, seed=0, params=params), repeats),
        "generate+negative": timed_ms(
            lambda: pipe.generate(prompt, seed=0, negatives=("dogs",), params=params), repeats
        ),
    }
    images = pipe.generate(prompt, seed=0, params=params)
    result["per_step"] = images[0].timings["denoise"] * 1e3 / params.steps
    return result


def diffusers_bf16(source: Path, params, repeats: int) -> dict[str, float]:
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(source, torch_dtype=torch.bfloat16).to("cuda")
    sync = torch.cuda.synchronize
    common = dict(
        num_inference_steps=params.steps,
        height=params.height,
        width=params.width,
        output_type="np",
        generator=None,
    )
    prompt = "a photo of two cats on a red sofa"
    result = {"generate": timed_ms(lambda: pipe(prompt, **common), repeats, sync)}
    extra = (
        {"true_cfg_scale": params.true_cfg}
        if "true_cfg_scale" in pipe.__call__.__code__.co_varnames
        else {}
    )
    result["generate+negative"] = timed_ms(
        lambda: pipe(prompt, negative_prompt="dogs", **common, **extra), repeats, sync
    )
    stamps: list[float] = []

    def on_step(_pipe, _i, _t, kwargs):
        sync()
        stamps.append(time.perf_counter())
        return kwargs

    pipe(prompt, callback_on_step_end=on_step, **common)
    gaps = [(b - a) * 1e3 for a, b in zip(stamps, stamps[1:], strict=False)]
    result["per_step"] = statistics.median(gaps) if gaps else float("nan")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--precision", default="bf16", help="TensorRT plan precision")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--size", help="HxW (default: the engine's)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        import onnxruntime as ort
    except ImportError:
        print("bench_gpu: onnxruntime-gpu is not installed", file=sys.stderr)
        return 2
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(
            "bench_gpu: no CUDA execution provider (needs onnxruntime-gpu and a GPU)",
            file=sys.stderr,
        )
        return 2

    from dataclasses import replace

    from npc_rt.pipeline import load_engine

    params = load_engine(args.engine, providers=["cpu"]).default_params
    if args.steps:
        params = replace(params, steps=args.steps)
    if args.size:
        height, width = (int(v) for v in args.size.lower().split("x"))
        params = replace(params, height=height, width=width)
    # latents on the device (the default on a GPU) and, for the comparison, on the host
    results = {
        "tensorrt": ours(args.engine, "trt", args.precision, params, args.repeats, None),
        "trt-host-latents": ours(args.engine, "trt", args.precision, params, args.repeats, False),
        "ort-cuda": ours(args.engine, "ort", args.precision, params, args.repeats, None),
        "diffusers-bf16": diffusers_bf16(args.source, params, args.repeats),
    }
    print(f"{params.height}x{params.width}, {params.steps} steps, median of {args.repeats} (ms)")
    print(
        f"{'':18s}"
        + "".join(f"{k:>18s}" for k in results)
        + f"{'diffusers/trt':>15s}{'diffusers/ort':>15s}{'host/device':>13s}"
    )
    for metric in ("per_step", "generate", "generate+negative"):
        row = {k: results[k][metric] for k in results}
        peer = row["diffusers-bf16"]
        print(
            f"{metric:18s}"
            + "".join(f"{v:18.2f}" for v in row.values())
            + f"{peer / row['tensorrt']:14.2f}x{peer / row['ort-cuda']:14.2f}x"
            + f"{row['trt-host-latents'] / row['tensorrt']:12.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
