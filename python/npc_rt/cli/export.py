"""``npc-rt export``: a diffusers pipeline folder -> an engine directory (docs/engine-format.md).

The work happens in the separate ``npc_rt_export`` package (it needs torch, diffusers and
transformers, which the runtime never imports); this module only parses arguments and imports it
when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from npc_rt.errors import NpcError

INSTALL_HINT = (
    "npc-rt export needs the export package (torch, diffusers, transformers, onnx): "
    "pip install ./export  (from a checkout), or pip install 'npc-rt[export]' plus ./export"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a diffusers pipeline folder to an engine directory (needs torch)",
        description=(
            "Export each model component of a diffusers pipeline folder (save_pretrained layout) "
            "to ONNX with dynamic batch, resolution and text length, convert its tokenizers, copy "
            "its scheduler config, check every ONNX file against torch in ONNX Runtime, and write "
            "manifest.json last. Sizes are H or HxW in pixels (multiples of 16 for FLUX)."
        ),
    )
    parser.add_argument("src", type=Path, help="diffusers pipeline folder (has model_index.json)")
    parser.add_argument("--out", type=Path, required=True, help="engine directory to write")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    parser.add_argument(
        "--clip-skip",
        type=int,
        default=None,
        help="SDXL/SD3: CLIP layers to skip before the penultimate (diffusers' clip_skip); "
        "fixed in the exported text encoders",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=16,
        help="largest batch any component accepts (2K rows for K candidates; default 16)",
    )
    parser.add_argument("--min-size", default="256", help="smallest HxW the engine accepts")
    parser.add_argument(
        "--opt-size", default=None, help="HxW to optimize for (default: pipeline's)"
    )
    parser.add_argument("--max-size", default=None, help="largest HxW (default: pipeline's)")
    parser.add_argument(
        "--max-sequence-length",
        type=int,
        default=None,
        help="T5 padded length (FLUX default 512)",
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip the ONNX Runtime vs torch parity check"
    )
    parser.add_argument(
        "--check-tolerance",
        type=float,
        default=None,
        help="max abs error allowed, relative to max(1, max |torch output|) "
        "(default: 1e-3 fp32, 2e-2 fp16, 1e-1 bf16)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the contents of a non-empty --out"
    )
    parser.add_argument(
        "--external-data-threshold",
        type=int,
        default=None,
        help="weights bytes above which a component's weights go to <file>.onnx.data",
    )
    parser.set_defaults(func=_run)


def load_exporter():
    """Import ``npc_rt_export`` or explain how to install it."""
    try:
        import npc_rt_export
    except ModuleNotFoundError as exc:
        missing = exc.name or "npc_rt_export"
        raise NpcError(f"{INSTALL_HINT} (missing module: {missing})") from None
    return npc_rt_export


def _run(args: argparse.Namespace) -> int:
    exporter = load_exporter()
    options = {
        "precision": args.precision,
        "max_batch": args.max_batch,
        "min_size": exporter.parse_size(args.min_size),
        "opt_size": exporter.parse_size(args.opt_size) if args.opt_size else None,
        "max_size": exporter.parse_size(args.max_size) if args.max_size else None,
        "max_sequence_length": args.max_sequence_length,
        "check": not args.no_check,
        "check_tolerance": args.check_tolerance,
        "overwrite": args.overwrite,
        "clip_skip": args.clip_skip,
    }
    if args.external_data_threshold is not None:
        options["external_data_threshold"] = args.external_data_threshold
    result = exporter.export_pipeline(
        args.src,
        args.out,
        exporter.ExportOptions(**options),
        log=lambda line: print(line, file=sys.stderr),
    )
    total = sum(result.seconds.values())
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    print(f"wrote {result.engine_dir} ({result.manifest['family']}, {args.precision})")
    print(f"timings: {stages}; total {total:.1f}s")
    return 0
