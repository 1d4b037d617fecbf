"""Shared pytest setup. Fixture builders live in tests/fixtures/ (importable as ``fixtures``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "export"))
from fixtures.llama_server import llama_server  # noqa: E402, F401
from fixtures.tiny_engines import tiny_engine_dirs  # noqa: E402, F401
from fixtures.tiny_flux import tiny_flux_engine_dir, tiny_flux_pipeline_dir  # noqa: E402, F401
from fixtures.tiny_sd3 import tiny_sd3_engine_dir, tiny_sd3_pipeline_dir  # noqa: E402, F401
from fixtures.tiny_sdxl import tiny_sdxl_engine_dir, tiny_sdxl_pipeline_dir  # noqa: E402, F401
