"""The engine manifest: format identity, versions, and writing it atomically."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from npc_rt.records import atomic_write_bytes

FORMAT_NAME = "npc-rt-engine"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"

_VERSIONED_PACKAGES = (
    "npc-rt-export",
    "npc-rt",
    "torch",
    "diffusers",
    "transformers",
    "onnx",
    "onnxscript",
)


def exporter_versions(opset: int) -> dict:
    """Versions of everything that shaped the exported files (``null`` when not installed)."""
    versions: dict[str, object] = {}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package.replace("-", "_")] = None
    if versions["npc_rt_export"] is None:  # imported from a checkout without pip install
        from npc_rt_export import __version__

        versions["npc_rt_export"] = __version__
    versions["opset"] = opset
    versions["exporter"] = "torch.onnx.export(dynamo=True)"
    return versions


def write_manifest(engine_dir: Path, manifest: dict) -> Path:
    """Write ``manifest.json`` via a temporary file and ``os.replace``.

    A reader therefore sees either no manifest or a complete one, never a partial file.
    """
    path = Path(engine_dir) / MANIFEST_FILE
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))
