"""``npc-rt generate``: one image from an engine directory, with an optional negative prompt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate one image from an exported engine (no torch needed)",
        description=(
            "Sample one image through ONNX Runtime. Without --negative the model's distilled "
            "guidance alone steers it; with --negative, true CFG at --true-cfg applies for the "
            "first --negative-steps steps. Writes a PNG with the parameters in its text chunks "
            "and prints the encode/denoise/decode timings."
        ),
    )
    parser.add_argument("--engine", type=Path, required=True, help="exported engine directory")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--negative", default=None, help="negative prompt (default: none)")
    parser.add_argument("--negative-steps", type=int, default=None, help="default: family's (3)")
    parser.add_argument("--true-cfg", type=float, default=None, help="default: 1.8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default: the engine's")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=None, help="distilled guidance scale")
    parser.add_argument(
        "--backend",
        choices=("ort", "trt"),
        default="ort",
        help="ONNX Runtime (default) or native TensorRT plans built by `npc-rt build`",
    )
    parser.add_argument(
        "--precision", default="fp16", help="TensorRT plan precision (--backend trt)"
    )
    parser.add_argument(
        "--provider",
        action="append",
        default=None,
        help="ONNX Runtime provider (cpu, cuda, tensorrt); repeat for a priority list",
    )
    parser.add_argument(
        "--latents",
        choices=("auto", "device", "host"),
        default="auto",
        help="where the latents live between steps: device (the engine's sampler step runs "
        "there), host (numpy), auto (device on a GPU backend when the engine has the step)",
    )
    sizes = parser.add_argument_group(
        "SDXL size conditioning", "diffusers' micro-conditioning arguments; HxW or TOPxLEFT"
    )
    for flag in SIZE_FLAGS:
        sizes.add_argument(f"--{flag.replace('_', '-')}", default=None, metavar="AxB")
    slg = parser.add_argument_group(
        "SD3 skip-layer guidance", "diffusers' skip_guidance_layers and its scale/start/stop"
    )
    slg.add_argument("--skip-layers", default=None, metavar="I,J,...", help="blocks to skip")
    slg.add_argument("--skip-layer-scale", type=float, default=2.8)
    slg.add_argument("--skip-layer-start", type=float, default=0.01)
    slg.add_argument("--skip-layer-stop", type=float, default=0.2)
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.set_defaults(func=_run)


SIZE_FLAGS = (
    "original_size",
    "crops_coords_top_left",
    "target_size",
    "negative_original_size",
    "negative_crops_coords_top_left",
    "negative_target_size",
)


def _skip_layer_guidance(args: argparse.Namespace):
    from npc_rt.errors import InvalidInputError
    from npc_rt.generator import SkipLayerGuidance

    if args.skip_layers is None:
        return None
    parts = [p.strip() for p in args.skip_layers.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise InvalidInputError(
            f"--skip-layers wants block indices I,J,..., got {args.skip_layers!r}"
        )
    return SkipLayerGuidance(
        tuple(int(p) for p in parts),
        scale=args.skip_layer_scale,
        start=args.skip_layer_start,
        stop=args.skip_layer_stop,
    )


def _size_conditioning(args: argparse.Namespace):
    from npc_rt.errors import InvalidInputError
    from npc_rt.generator import SizeConditioning

    given = {name: getattr(args, name) for name in SIZE_FLAGS if getattr(args, name) is not None}
    if not given:
        return None
    pairs = {}
    for name, text in given.items():
        parts = text.lower().replace(",", "x").split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise InvalidInputError(f"--{name.replace('_', '-')} wants AxB, got {text!r}")
        pairs[name] = (int(parts[0]), int(parts[1]))
    return SizeConditioning(**pairs)


def _run(args: argparse.Namespace) -> int:
    import time
    from dataclasses import replace

    from npc_rt.images import save_png
    from npc_rt.pipeline import load_engine

    t0 = time.perf_counter()
    pipeline = load_engine(
        args.engine,
        backend=args.backend,
        providers=args.provider,
        precision=args.precision,
        resident={"auto": None, "device": True, "host": False}[args.latents],
    )
    load_s = time.perf_counter() - t0
    defaults = pipeline.default_params
    overrides = {
        "steps": args.steps,
        "height": args.height,
        "width": args.width,
        "guidance": args.guidance,
        "true_cfg": args.true_cfg,
        "negative_steps": args.negative_steps,
    }
    params = replace(defaults, **{k: v for k, v in overrides.items() if v is not None})
    params = replace(
        params,
        size_conditioning=_size_conditioning(args),
        skip_layer_guidance=_skip_layer_guidance(args),
    )
    if args.negative_steps is None:
        params = replace(params, negative_steps=None)  # family default, capped at steps
    (image,) = pipeline.generate(
        args.prompt, seed=args.seed, negatives=(args.negative,), params=params
    )
    path = save_png(args.out, image, {"engine_manifest_sha256": pipeline.manifest_hash})
    t = image.timings
    print(
        f"load {load_s:.3f}s  encode {t['encode']:.3f}s  denoise {t['denoise']:.3f}s "
        f"({t['denoise'] / image.params.steps * 1000:.1f} ms/step, latents on the "
        f"{'device' if pipeline.resident else 'host'})  decode {t['decode']:.3f}s  "
        f"-> {path}",
        file=sys.stdout,
    )
    return 0
