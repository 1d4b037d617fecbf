"""Run records on disk: atomic JSON, PNGs carrying their parameters, contact sheets.

Every file is written to a temporary name in the same directory, flushed, fsynced and renamed over
the target, so a reader (or a crash) sees either the previous complete file or the new one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npc_rt.errors import InvalidInputError, NpcIOError

RUN_JSON = "run.json"
CONTACT_SHEET = "contact_sheet.png"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            # mkstemp creates 0600; give the file the mode a plain open() would (0666 & ~umask).
            os.chmod(tmp, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
    except OSError as exc:
        raise NpcIOError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from dataclasses, mappings, tuples, numpy scalars/arrays, paths.
    Non-finite floats become ``None`` (JSON has no NaN)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise NpcIOError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise NpcIOError(f"{path} is not valid JSON: {exc}") from exc


def png_bytes(pixels: np.ndarray, text: Mapping[str, str] | None = None) -> bytes:
    """PNG of a ``uint8 [H, W, 3]`` RGB image with ``text`` as iTXt chunks (UTF-8)."""
    from PIL import Image, PngImagePlugin

    array = _check_rgb(pixels)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        if not isinstance(key, str) or not 1 <= len(key) <= 79:
            raise InvalidInputError(f"PNG text keys must be 1-79 characters, got {key!r}")
        info.add_itxt(key, str(value))
    buffer = io.BytesIO()
    Image.fromarray(array, "RGB").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_png(
    path: str | os.PathLike[str], pixels: np.ndarray, text: Mapping[str, str] | None = None
) -> Path:
    return atomic_write_bytes(path, png_bytes(pixels, text))


def read_png_text(path: str | os.PathLike[str]) -> dict[str, str]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}
    except OSError as exc:
        raise NpcIOError(f"cannot read PNG {path}: {exc}") from exc


@dataclass(frozen=True)
class SheetTile:
    """One image of a contact sheet and the lines drawn under it."""

    pixels: np.ndarray
    lines: tuple[str, ...]


def contact_sheet(
    tiles: Sequence[SheetTile], *, tile_size: int = 256, columns: int = 4
) -> np.ndarray:
    """A grid of thumbnails, each with its caption lines drawn underneath (Pillow only)."""
    from PIL import Image, ImageDraw, ImageFont

    if not tiles:
        raise InvalidInputError("a contact sheet needs at least one image")
    if tile_size < 32 or columns < 1:
        raise InvalidInputError("contact sheet tile_size must be >= 32 and columns >= 1")
    font = ImageFont.load_default()
    line_height = 12
    wrap_chars = max(8, tile_size // 6)
    wrapped = [
        [part for line in tile.lines for part in (textwrap.wrap(line, wrap_chars) or [""])][:8]
        for tile in tiles
    ]
    text_rows = max(len(lines) for lines in wrapped)
    pad = 8
    cell_w = tile_size + 2 * pad
    cell_h = tile_size + 2 * pad + text_rows * line_height
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for index, (tile, lines) in enumerate(zip(tiles, wrapped, strict=True)):
        x0 = (index % cols) * cell_w + pad
        y0 = (index // cols) * cell_h + pad
        thumb = _fit(Image.fromarray(_check_rgb(tile.pixels), "RGB"), tile_size)
        sheet.paste(thumb, (x0 + (tile_size - thumb.width) // 2, y0))
        for row, line in enumerate(lines):
            draw.text((x0, y0 + tile_size + 2 + row * line_height), line, fill=(0, 0, 0), font=font)
    return np.asarray(sheet, dtype=np.uint8)


def _fit(image: Any, size: int) -> Any:
    """Scaled so its longer side is ``size``: small test images are enlarged (nearest, so pixels
    stay visible), large ones reduced smoothly."""
    from PIL import Image

    scale = size / max(image.width, image.height)
    new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    return image.resize(new_size, resample)


def _check_rgb(pixels: np.ndarray) -> np.ndarray:
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InvalidInputError(
            f"images must be uint8 [H, W, 3] RGB, got {array.dtype} {list(array.shape)}"
        )
    return np.ascontiguousarray(array)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
