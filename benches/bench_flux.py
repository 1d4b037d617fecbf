"""FLUX latency and memory: npc_rt (ONNX Runtime, no torch) vs diffusers (torch eager), same
weights, same machine, same run.

    python benches/bench_flux.py                 # tiny + small models, a few minutes on 2 cores
    python benches/bench_flux.py --models tiny   # seconds

For each model a random-weight FLUX pipeline is built and exported with ``npc_rt_export`` into a
temporary folder. Each runtime is then measured in its own subprocess (so peak RSS is that
runtime's alone and the npc_rt worker never imports torch): load time, per-stage latency (text
encode with an empty cache, denoise, VAE decode), end to end, and the same with one negative for
the first 3 steps (2 transformer rows). The run with the smallest total out of ``--repeats`` after one warm-up run (the machine
is shared: the fastest run is the least disturbed one).

``overhead`` measures the sampling loop's own Python/numpy cost per denoising step with a backend
that does no work (it returns preallocated zeros), at the tiny shape and at FLUX-dev's real shape
(1024x1024: 4096 image tokens x 64 channels, 512 text tokens x 4096), K = 1 and K = 4 candidates
with negatives. Target: under 1 ms per step.

Models:
- ``tiny``: the test fixture's model (``npc_rt_export.tiny.flux``), 64x64, text length 32.
- ``small``: a random FLUX sized like a small real DiT that fits 2 CPU cores: 2 double + 4
  single blocks of width 384 (6 heads x 64), T5 of width 512 (4 layers), CLIP of width 256, a VAE
  of width 32..128; 256x256 (256 image tokens), text length 128.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "export",):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

PROMPT = "a red cube on top of a blue sphere, studio photo"
NEGATIVE = "green cube"
SEED = 42
THREADS = int(os.environ.get("NPC_BENCH_THREADS", "0"))
"""Threads for both runtimes (0: each runtime's default, one per core); set by ``--threads``."""
MODELS = {
    "tiny": {"height": 64, "width": 64, "steps": 8, "text_length": 32},
    "small": {"height": 256, "width": 256, "steps": 6, "text_length": 128},
}


# --------------------------------------------------------------------------- building models


def prepare(model: str, work: Path) -> tuple[Path, Path, float, float]:
    """Build and export ``model``; return (pipeline dir, engine dir, build s, export s)."""
    from npc_rt_export import ExportOptions, export_pipeline

    cfg = MODELS[model]
    t0 = time.perf_counter()
    src = work / f"{model}-pipeline"
    engine = work / f"{model}-engine"
    if (src / "model_index.json").is_file() and (engine / "manifest.json").is_file():
        return src, engine, 0.0, 0.0  # reused from an earlier run with the same --work
    from npc_rt_export.tiny.flux import SMALL_DIT_FLUX, TINY_FLUX, build_tiny_flux_pipeline

    build_tiny_flux_pipeline(src, sizes=TINY_FLUX if model == "tiny" else SMALL_DIT_FLUX)
    t1 = time.perf_counter()
    size = (cfg["height"], cfg["width"])
    options = ExportOptions(
        precision="fp32",
        max_batch=8,
        min_size=(size[0] // 2, size[1] // 2),
        opt_size=size,
        max_size=size,
        max_sequence_length=cfg["text_length"],
        check=False,  # the parity tests cover correctness; here it would only cost time
    )
    export_pipeline(src, engine, options)
    return src, engine, t1 - t0, time.perf_counter() - t1


# --------------------------------------------------------------------------- workers


def _peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not getrusage: ru_maxrss survives exec, so a worker
    started from a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fastest(runs: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Per label, the stages of the run with the smallest total (the least disturbed one on a
    shared machine; its stages add up to its total)."""
    out = {}
    for label, entries in runs.items():
        best = min(entries, key=lambda r: r["total"])
        out.update({f"{label}.{k}": v for k, v in best.items()})
    return out


def worker_ours(engine_dir: str, model: str, repeats: int) -> dict:
    from npc_rt.generator import GenerationParams
    from npc_rt.pipeline import load_engine

    cfg = MODELS[model]
    base_rss = _peak_rss_mib()
    t0 = time.perf_counter()
    pipe = load_engine(engine_dir, providers=["cpu"], intra_op_threads=THREADS)
    load_s = time.perf_counter() - t0
    params = GenerationParams(
        steps=cfg["steps"],
        height=cfg["height"],
        width=cfg["width"],
        guidance=3.5,
        true_cfg=1.8,
        negative_steps=3,
    )
    runs: dict[str, list[dict[str, float]]] = {}
    for label, negatives in (("plain", (None,)), ("negative", (NEGATIVE,))):
        for i in range(repeats + 1):
            pipe.clear_text_cache()  # measure encoding, not the cache
            t = time.perf_counter()
            samples = pipe.sample(PROMPT, seed=SEED, negatives=negatives, params=params)
            total = time.perf_counter() - t
            if i == 0:
                continue  # warm-up
            runs.setdefault(label, []).append({**samples.timings, "total": total})
    import sys as _sys

    return {
        "load": load_s,
        **_fastest(runs),
        "peak_rss_mib": _peak_rss_mib(),
        "rss_before_load_mib": base_rss,
        "torch_imported": "torch" in _sys.modules,
    }


def worker_diffusers(pipeline_dir: str, model: str, repeats: int) -> dict:
    import torch
    from diffusers import FluxPipeline

    if THREADS:
        torch.set_num_threads(THREADS)
    cfg = MODELS[model]
    base_rss = _peak_rss_mib()
    t0 = time.perf_counter()
    pipe = FluxPipeline.from_pretrained(pipeline_dir, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - t0
    common = {
        "num_inference_steps": cfg["steps"],
        "height": cfg["height"],
        "width": cfg["width"],
        "guidance_scale": 3.5,
        "max_sequence_length": cfg["text_length"],
    }
    runs: dict[str, list[dict[str, float]]] = {}
    # stage times inside one end-to-end call: wrap the pipeline's own encode and decode calls;
    # denoise is the rest (the transformer loop, scheduler and packing)
    spent = {"encode": 0.0, "decode": 0.0}

    def timed(fn, key: str):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t

        return wrapper

    pipe.encode_prompt = timed(pipe.encode_prompt, "encode")
    pipe.vae.decode = timed(pipe.vae.decode, "decode")

    @torch.no_grad()
    def one(label: str, negative: str | None) -> None:
        extra = {"negative_prompt": negative, "true_cfg_scale": 1.8} if negative else {}
        spent.update(encode=0.0, decode=0.0)
        t = time.perf_counter()
        pipe(
            PROMPT,
            generator=torch.Generator("cpu").manual_seed(SEED),
            output_type="np",
            **common,
            **extra,
        )
        total = time.perf_counter() - t
        stages = {
            "encode": spent["encode"],
            "denoise": total - spent["encode"] - spent["decode"],
            "decode": spent["decode"],
            "total": total,
        }
        runs.setdefault(label, []).append(stages)

    for label, negative in (("plain", None), ("negative", NEGATIVE)):
        one(label, negative)  # warm-up
        runs.pop(label)
        for _ in range(repeats):
            one(label, negative)
    return {
        "load": load_s,
        **_fastest(runs),
        "peak_rss_mib": _peak_rss_mib(),
        "rss_before_load_mib": base_rss,
        "torch_threads": torch.get_num_threads(),
    }


def _best_denoise(pipe, text, layout, size: tuple[int, int], steps: int, repeats: int) -> float:
    from npc_rt.generator import GenerationParams

    params = GenerationParams(
        steps=steps, height=size[0], width=size[1], guidance=3.5, true_cfg=1.8, negative_steps=3
    )
    negs = [text] * len(layout.negative_candidates)
    times = []
    for _ in range(repeats + 2):
        t = time.perf_counter()
        pipe.denoise(text, negs, layout, SEED, params)
        times.append(time.perf_counter() - t)
    return min(times)


def worker_overhead(engine_dir: str, model: str, repeats: int) -> dict:
    """Per-step cost of the loop with a backend that returns preallocated zeros."""
    import numpy as np
    from npc_rt.engine import open_engine
    from npc_rt.guidance import GuidanceLayout
    from npc_rt.pipeline import Pipeline, TextEmbedding

    class NullBackend:
        name = "null"

        def __init__(self) -> None:
            self._zeros: dict[tuple, np.ndarray] = {}

        def run(self, component, inputs):
            shape = np.shape(inputs["hidden_states"])
            out = self._zeros.get(shape)
            if out is None:
                out = self._zeros[shape] = np.zeros(shape, np.float32)
            return {"noise_pred": out}

        def place(self, array):
            return array

        def close(self) -> None:
            pass

    engine = open_engine(engine_dir)
    pipe = Pipeline(engine, NullBackend())
    shapes = {
        "tiny": (MODELS[model]["height"], MODELS[model]["width"], MODELS[model]["text_length"], 32),
        "flux-dev-1024": (1024, 1024, 512, 4096),
    }
    out = {}
    for shape_name, (h, w, length, dim) in shapes.items():
        text = TextEmbedding(np.zeros((length, dim), np.float32), np.zeros(768, np.float32))
        for k, negs in ((1, (None,)), (4, ("a", "b", "c", "d"))):
            layout = GuidanceLayout.for_negatives(negs, 1.8)

            # the slope between 10 and 50 steps is the per-step cost; the rest is per-call setup
            # (noise, schedule, stacking the text rows)
            t10 = _best_denoise(pipe, text, layout, (h, w), 10, repeats)
            t50 = _best_denoise(pipe, text, layout, (h, w), 50, repeats)
            per_step = (t50 - t10) / 40
            out[f"{shape_name}.K{k}.ms_per_step"] = per_step * 1000
            out[f"{shape_name}.K{k}.ms_setup"] = (t10 - 10 * per_step) * 1000
    return out


WORKERS = {"ours": worker_ours, "diffusers": worker_diffusers, "overhead": worker_overhead}


def run_worker(kind: str, path: Path, model: str, repeats: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--path",
        str(path),
        "--models",
        model,
        "--repeats",
        str(repeats),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def report(
    model: str, ours: dict, ref: dict, overhead: dict | None, build_s: float, export_s: float
) -> None:
    cfg = MODELS[model]
    print(
        f"\n== {model}: {cfg['height']}x{cfg['width']}, {cfg['steps']} steps, text length {cfg['text_length']} "
        f"(build {build_s:.1f}s, export {export_s:.1f}s) =="
    )
    print(f"{'stage':<22}{'npc_rt (ORT)':>14}{'diffusers':>14}{'speed-up':>11}")
    for label in ("plain", "negative"):
        for stage in ("encode", "denoise", "decode", "total"):
            key = f"{label}.{stage}"
            a, b = ours[key], ref[key]
            print(f"{key:<22}{a * 1000:>12.1f}ms{b * 1000:>12.1f}ms{b / a:>10.2f}x")
    print(f"{'load':<22}{ours['load']:>13.2f}s{ref['load']:>13.2f}s")
    print(
        f"{'peak RSS':<22}{ours['peak_rss_mib']:>11.0f}MiB{ref['peak_rss_mib']:>11.0f}MiB"
        f"{ref['peak_rss_mib'] / ours['peak_rss_mib']:>10.2f}x"
    )
    print(
        f"npc_rt worker imported torch: {ours['torch_imported']}; torch threads {ref['torch_threads']}"
    )
    if overhead:
        print("sampling loop with a no-op backend (negatives on the first 3 steps):")
        for key, value in overhead.items():
            print(f"  {key:<32}{value:8.3f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,small")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=0, help="threads for both runtimes (0: one per core)"
    )
    parser.add_argument("--work", type=Path, default=None, help="keep built models here")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["NPC_BENCH_THREADS"] = str(args.threads)  # the workers read it
    if args.worker:
        print(json.dumps(WORKERS[args.worker](str(args.path), args.models, args.repeats)))
        return 0
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"python {sys.version.split()[0]}; threads per runtime: {args.threads or 'default'}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-flux-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for model in args.models.split(","):
            src, engine, build_s, export_s = prepare(model, work)
            ours = run_worker("ours", engine, model, args.repeats)
            ref = run_worker("diffusers", src, model, args.repeats)
            overhead = (
                run_worker("overhead", engine, model, args.repeats) if model == "tiny" else None
            )
            report(model, ours, ref, overhead, build_s, export_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
