"""Export tiny random-weight SDXL and SD3 engines into OUT/sdxl and OUT/sd3 for the GPU checks.

Exits 1 (and run.sh checks the demo engine only) when torch/diffusers are not installed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main() -> int:
    out = Path(sys.argv[1])
    try:
        from npc_rt_export import ExportOptions, export_pipeline
        from npc_rt_export.tiny.sd3 import TINY_SD3_EXPORT, build_tiny_sd3_pipeline
        from npc_rt_export.tiny.sdxl import TINY_SDXL_EXPORT, build_tiny_sdxl_pipeline
    except ImportError as exc:
        print(f"export_tiny: skipping SDXL/SD3 ({exc})")
        return 1
    builders = {
        "sdxl": (build_tiny_sdxl_pipeline, TINY_SDXL_EXPORT),
        "sd3": (build_tiny_sd3_pipeline, TINY_SD3_EXPORT),
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name, (build, options) in builders.items():
            pipeline = build(Path(scratch) / name)
            export_pipeline(pipeline, out / name, ExportOptions(**{**options, "overwrite": True}))
            print(f"export_tiny: {name} -> {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
