"""Crash-safe file writes for the eval directory, over ``npc_rt.records``' atomic writer.

Every file goes to a temporary name in its directory, is fsynced and renamed over its final name,
so a process killed at any instant leaves either the old file or the new one, never a torn one.
A sample's record is written last: it is the commit point that marks the sample as finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from npc_rt.records import atomic_write_bytes, atomic_write_json, read_json, to_jsonable, write_png

# records.atomic_write_bytes names its temporaries ".<target name>.<random>.tmp".
_TEMPORARY_GLOB = ".*.tmp"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def write_json_atomic(path: Path, value: Any) -> None:
    atomic_write_json(path, value)


def write_png_atomic(path: Path, pixels: np.ndarray, text: Mapping[str, str] | None = None) -> None:
    write_png(path, pixels, text)


def remove_temporaries(directory: Path) -> int:
    """Delete the temporaries a killed run left behind; returns how many."""
    removed = 0
    if not directory.is_dir():
        return 0
    for leftover in directory.rglob(_TEMPORARY_GLOB):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


__all__ = [
    "read_json",
    "remove_temporaries",
    "to_jsonable",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_png_atomic",
]
