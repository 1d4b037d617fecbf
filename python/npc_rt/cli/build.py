"""``npc-rt build DIR``: TensorRT plans for an exported engine directory (needs a GPU)."""

from __future__ import annotations

import argparse
from pathlib import Path

from npc_rt.errors import NpcError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build TensorRT engines for an engine directory (cached per GPU/TensorRT version)",
    )
    parser.add_argument("engine", type=Path, help="engine directory written by npc-rt export")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16", "fp8"), default="fp16")
    parser.add_argument("--component", action="append", help="only these components")
    parser.add_argument(
        "--static",
        metavar="DIM=SIZE,...",
        help="also build static-shape plans for CUDA graphs, e.g. batch=2,image_seq=4096",
    )
    parser.add_argument("--device", type=int, default=0)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        from npc_rt_export.trt_build import build_trt_engines, parse_static_sizes
    except ImportError as exc:
        raise NpcError(
            "npc-rt build needs the export tooling: pip install ./export (and tensorrt, "
            f"cuda-python on a GPU machine) ({exc})"
        ) from exc
    common = dict(precision=args.precision, components=args.component, device=args.device)
    build_trt_engines(args.engine, log=print, **common)
    if args.static:
        build_trt_engines(
            args.engine, static_sizes=parse_static_sizes(args.static), log=print, **common
        )
    return 0
