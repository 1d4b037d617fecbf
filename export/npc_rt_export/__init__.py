"""npc_rt_export: diffusers pipeline folder -> npc_rt engine directory (ONNX + manifest).

The export side of npc_rt; it needs torch, diffusers and transformers, which the runtime never
imports. The engine directory it writes is specified in docs/engine-format.md.
"""

from __future__ import annotations

from npc_rt_export.contracts import ComponentContract, DimRange, TensorSpec
from npc_rt_export.exporter import ExportResult, export_pipeline
from npc_rt_export.manifest import FORMAT_NAME, FORMAT_VERSION
from npc_rt_export.options import ExportOptions, parse_size

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "ComponentContract",
    "DimRange",
    "TensorSpec",
    "ExportOptions",
    "ExportResult",
    "export_pipeline",
    "parse_size",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]
