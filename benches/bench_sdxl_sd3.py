"""SDXL and SD3 latency: npc_rt (ONNX Runtime, no torch in its loop) vs diffusers (torch eager),
same weights, same machine, same run.

    python benches/bench_sdxl_sd3.py                          # tiny models, about a minute
    python benches/bench_sdxl_sd3.py --sizes tiny,large       # plus the larger random configs

For each family and size a random-weight pipeline is built (``npc_rt_export.tiny.sdxl`` /
``.sd3``) and exported (without the parity check, which the tests cover) into a temporary folder.
Both runtimes then generate the same image (prompt, negative on every step, seed, steps, size):
``end_to_end`` is one call with an empty text cache; ``per_step`` is the denoising loop's time per
step (ours: the pipeline's denoise stage / steps; diffusers: the median gap between its
``callback_on_step_end`` calls, i.e. one CFG backbone call + scheduler step). The fastest of
``--repeats`` runs after one warm-up is reported (the machine is shared). Ratios are
diffusers / npc_rt (above 1: npc_rt is faster).

Sizes: ``tiny`` is the tests' model at 64x64; ``large`` is a random config that fits 2 CPU cores:
SDXL UNet with blocks 160/320/640 (2 layers, 1/2/4 transformer layers), SD3 MMDiT with 8 layers of
width 384, CLIP widths 256/384 (SDXL) and 128 (SD3), T5 of width 384, at 256x256.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "export") not in sys.path:
    sys.path.insert(0, str(REPO / "export"))

PROMPT = "a red cube on top of a blue sphere, studio photo"
NEGATIVE = "green cube"
SEED = 42
SETTINGS = {
    "tiny": {"size": 64, "steps": 8},
    "large": {"size": 256, "steps": 6},
}


def build(family: str, size: str, work: Path) -> tuple[Path, Path]:
    from npc_rt_export import ExportOptions, export_pipeline

    side = SETTINGS[size]["size"]
    src = work / f"{family}-{size}" / "pipeline"
    if family == "sdxl":
        from npc_rt_export.tiny.sdxl import build_tiny_sdxl_pipeline as builder

        extra = {}
    else:
        from npc_rt_export.tiny.sd3 import build_tiny_sd3_pipeline as builder

        extra = {"max_sequence_length": 32 if size == "tiny" else 128}
    builder(src, seed=0, size=size)
    engine = work / f"{family}-{size}" / "engine"
    options = ExportOptions(
        min_size=(32, 32), opt_size=(side, side), max_size=(side, side), max_batch=4,
        check=False, **extra,
    )  # fmt: skip
    export_pipeline(src, engine, options)
    return src, engine


def time_ours(engine_dir: Path, family: str, size: str, repeats: int) -> dict[str, float]:
    from npc_rt.engine import open_engine
    from npc_rt.generator import GenerationParams
    from npc_rt.pipelines_cfg import load_cfg_engine

    s = SETTINGS[size]
    loaded = load_cfg_engine(open_engine(engine_dir))
    guidance = 5.0 if family == "sdxl" else 7.0
    params = GenerationParams(s["steps"], s["size"], s["size"], guidance, 1.0, None)
    best: dict[str, float] | None = None
    for _ in range(repeats + 1):
        loaded.clear_text_cache()  # every run encodes its texts
        start = time.perf_counter()
        out = loaded.sample(PROMPT, seed=SEED, negatives=(NEGATIVE,), params=params)
        total = time.perf_counter() - start
        run = {"end_to_end": total, "per_step": out.timings["denoise"] / s["steps"]}
        run.update({f"stage_{k}": v for k, v in out.timings.items()})
        if best is None or run["end_to_end"] < best["end_to_end"]:
            best = run
    return best  # type: ignore[return-value]


def time_diffusers(src: Path, family: str, size: str, repeats: int) -> dict[str, float]:
    import numpy as np
    import torch

    if family == "sdxl":
        from diffusers import StableDiffusionXLPipeline as cls

        extra = {"guidance_scale": 5.0}
    else:
        from diffusers import StableDiffusion3Pipeline as cls

        extra = {"guidance_scale": 7.0, "max_sequence_length": 32 if size == "tiny" else 128}
    pipe = cls.from_pretrained(src)
    pipe.set_progress_bar_config(disable=True)
    s = SETTINGS[size]
    best: dict[str, float] | None = None
    for _ in range(repeats + 1):
        stamps: list[float] = []

        def on_step(_pipe, _i, _t, kwargs, stamps=stamps):
            stamps.append(time.perf_counter())
            return kwargs

        start = time.perf_counter()
        with torch.no_grad():
            pipe(
                PROMPT,
                negative_prompt=NEGATIVE,
                num_inference_steps=s["steps"],
                height=s["size"],
                width=s["size"],
                generator=torch.Generator().manual_seed(SEED),
                output_type="np",
                callback_on_step_end=on_step,
                **extra,
            )
        total = time.perf_counter() - start
        gaps = np.diff(stamps) if len(stamps) > 1 else np.array([total / s["steps"]])
        run = {"end_to_end": total, "per_step": float(np.median(gaps))}
        if best is None or run["end_to_end"] < best["end_to_end"]:
            best = run
    return best  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--families", default="sdxl,sd3")
    parser.add_argument("--sizes", default="tiny")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="keep built models here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sdxl-sd3-") as tmp:
        work = args.work or Path(tmp)
        print(f"{'model':<12} {'metric':<11} {'npc_rt':>10} {'diffusers':>10} {'ratio':>7}")
        for size in args.sizes.split(","):
            for family in args.families.split(","):
                src, engine = build(family, size, work)
                ours = time_ours(engine, family, size, args.repeats)
                theirs = time_diffusers(src, family, size, args.repeats)
                for metric in ("per_step", "end_to_end"):
                    a, b = ours[metric], theirs[metric]
                    print(
                        f"{family + '-' + size:<12} {metric:<11} {a * 1e3:>8.1f}ms "
                        f"{b * 1e3:>8.1f}ms {b / a:>6.2f}x",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
