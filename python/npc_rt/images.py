"""Image conversion and PNG output for generated images (parameters in PNG text chunks)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np

from npc_rt.errors import ShapeError
from npc_rt.generator import GeneratedImage


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> uint8, rounding as diffusers' ``numpy_to_pil`` does
    (``round(x * 255)``, half to even)."""
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise ShapeError(f"images must be [..., H, W, 3], got {images.shape}")
    return np.clip(np.round(images * 255), 0, 255).astype(np.uint8)


def png_text(image: GeneratedImage, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The text chunks stored with an image: prompt, negative, seed, each parameter, and a JSON
    record of all of them (``npc_rt``)."""
    params = asdict(image.params)
    record = {"prompt": image.prompt, "negative": image.negative, "seed": image.seed, **params}
    text = {k: "" if v is None else str(v) for k, v in record.items()}
    text["npc_rt"] = json.dumps(record, sort_keys=True)
    text.update(extra or {})
    return text


def save_png(
    path: str | os.PathLike[str], image: GeneratedImage, extra: Mapping[str, str] | None = None
) -> Path:
    """Write ``image`` as a PNG (atomically) with its parameters in text chunks."""
    from npc_rt.records import write_png

    return write_png(path, image.pixels, png_text(image, extra))


__all__ = ["to_uint8", "png_text", "save_png"]
