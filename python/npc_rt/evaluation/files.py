"""Crash-safe file writes for the eval directory.

Every file the harness writes goes to a temporary name in the same directory, is flushed to disk,
and is then renamed over its final name, so a process killed at any instant leaves either the old
file or the new one, never a torn one. A sample's record is written last: it is the commit point
that marks the sample as finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from npc_rt.errors import NpcIOError

TEMP_PREFIX = ".tmp-"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise NpcIOError(f"cannot write {path}: {exc}") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def write_json_atomic(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def write_png_atomic(path: Path, pixels: np.ndarray) -> None:
    import io

    from PIL import Image

    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise NpcIOError(
            f"cannot write {path}: expected uint8 [H, W, 3] pixels, got {pixels.dtype} {pixels.shape}"
        )
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NpcIOError(f"cannot read {path}: {exc}") from exc


def remove_temporaries(directory: Path) -> int:
    """Delete temporaries a killed run left behind; returns how many."""
    removed = 0
    if not directory.is_dir():
        return 0
    for leftover in directory.rglob(f"{TEMP_PREFIX}*"):
        if leftover.is_file():
            _remove_quietly(str(leftover))
            removed += 1
    return removed


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
