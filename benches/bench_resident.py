"""Latents on the device vs on the host: the same generation through the sampler step component
(``npc_rt.resident``) and through the numpy host loop, same backend, same run.

    python benches/bench_resident.py                                  # demo engine, ORT CPU
    python benches/bench_resident.py --engine DIR --providers cuda    # ORT CUDA
    python benches/bench_resident.py --engine DIR --backend trt       # TensorRT plans

Each configuration generates K candidates (one prompt, K-1 negatives on every step) at the
engine's default size; the encoders are warm (cached texts), so the time is denoising + decode.
Reported: median of ``--repeats`` after a warm-up, ms per generation and per step, and the ratio
host / device (above 1: keeping latents on the device is faster). Images of both paths are
compared too (max abs difference), so a fast wrong path shows.

On the CPU the host loop is expected to win slightly: there is no copy to save, and the step
graph's session call costs more than the numpy update; that is why ``resident=None`` picks the host
loop on a CPU backend. On a GPU the device path saves two copies of the batch per step.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``benches._timing`` importable
    sys.path.insert(0, str(REPO))

from benches._timing import measure  # noqa: E402

PROMPT = "a photo of two cats on a red sofa"


def main(argv: list[str] | None = None) -> int:
    from npc_rt.demo import demo_engine_dir
    from npc_rt.pipeline import load_engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=Path, default=None, help="default: the demo engine")
    parser.add_argument("--backend", choices=("ort", "trt"), default="ort")
    parser.add_argument("--providers", default="cpu", help="ORT providers, comma list")
    parser.add_argument("--precision", default="fp16", help="TensorRT plan precision")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--k", type=int, default=4, help="candidates per generation")
    parser.add_argument("--size", type=int, default=None, help="square side (default: engine's)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    engine = args.engine or demo_engine_dir()
    options = {"backend": args.backend}
    if args.backend == "trt":
        options["precision"] = args.precision
    else:
        options["providers"] = args.providers.split(",")
    negatives = (None, *(f"negative {i}" for i in range(1, args.k)))
    results = {}
    images = {}
    for where, resident in (("host", False), ("device", True)):
        pipe = load_engine(engine, resident=resident, **options)
        params = replace(pipe.default_params, steps=args.steps, negative_steps=None)
        if args.size:
            params = replace(params, height=args.size, width=args.size)

        def generate(p=pipe, params=params):
            return p.sample(PROMPT, seed=0, negatives=negatives, params=params)

        images[where] = generate().images
        results[where] = measure(generate, warmup=1, repeats=args.repeats).median_s
    diff = float(abs(images["host"] - images["device"]).max())
    label = args.backend if args.backend == "trt" else f"ort[{args.providers}]"
    print(
        f"{engine.name}: {label}, K={args.k}, {args.steps} steps, {params.height}x{params.width}, "
        f"median of {args.repeats}"
    )
    for where, seconds in results.items():
        print(
            f"  latents on the {where:6s} {seconds * 1e3:9.2f} ms/generation "
            f"{seconds * 1e3 / args.steps:8.3f} ms/step"
        )
    print(f"  host / device: {results['host'] / results['device']:.2f}x; max image diff {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
