"""The demo engine shipped inside the npc_rt package (``npc_rt/demo_engine/``).

A tiny random-weight FLUX pipeline (fixed seed and config) exported by this package's own exporter,
so ``npc-rt demo`` runs the whole NPC loop on a fresh machine without torch. Its images come from
random weights: they show the machinery, not a model's quality.

Rebuild it with ``python -m npc_rt_export.demo python/npc_rt/demo_engine``; a test re-exports it
and checks the result equals what is shipped (``demo_engine_digest``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from npc_rt_export.exporter import export_pipeline
from npc_rt_export.options import ExportOptions
from npc_rt_export.tiny.flux import TINY_FLUX, build_tiny_flux_pipeline

DEMO_SEED = 20260
DEMO_SIZES = replace(TINY_FLUX, clip_width=8)
"""CLIP's 49408 x width embedding table is most of the bytes; width 8 keeps the engine a few MB."""

DEMO_EXPORT = ExportOptions(
    precision="fp32",
    max_batch=12,
    min_size=(64, 64),
    opt_size=(128, 128),
    max_size=(256, 256),
    max_sequence_length=64,
    overwrite=True,
)

_VOLATILE_MANIFEST_KEYS = ("created_utc", "exporter", "check")
"""Manifest keys that say when and with which tool versions, not what was exported."""


def build_demo_engine(out_dir: Path, log=None) -> Path:
    """Build the demo pipeline in a scratch folder and export it into ``out_dir``."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="npc-demo-") as scratch:
        pipeline_dir = build_tiny_flux_pipeline(
            Path(scratch) / "pipeline", seed=DEMO_SEED, sizes=DEMO_SIZES
        )
        export_pipeline(pipeline_dir, out_dir, DEMO_EXPORT, log=log)
    return out_dir


def demo_engine_digest(engine_dir: Path) -> dict[str, str]:
    """What must not change between two exports of the demo: every file's SHA-256 except the
    manifest, whose digest leaves out the volatile keys and the ONNX files' own hashes (which are
    listed as files here). ONNX files are compared by their graph and weights, ignoring the
    producer version string."""
    import onnx

    engine_dir = Path(engine_dir)
    digest: dict[str, str] = {}
    for path in sorted(p for p in engine_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(engine_dir).as_posix()
        if rel == "manifest.json":
            manifest = json.loads(path.read_text())
            for key in _VOLATILE_MANIFEST_KEYS:
                manifest.pop(key, None)
            for component in manifest.get("components", {}).values():
                component.pop("sha256", None)
                component.pop("bytes", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        elif path.suffix == ".onnx":
            model = onnx.load(str(path), load_external_data=False)
            model.producer_version = ""
            data = model.SerializeToString(deterministic=True)
        else:
            data = path.read_bytes()
        digest[rel] = hashlib.sha256(data).hexdigest()
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build npc_rt's shipped demo engine")
    parser.add_argument("out", type=Path, help="engine directory to (re)write")
    args = parser.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    build_demo_engine(args.out, log=print)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"demo engine written to {args.out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
