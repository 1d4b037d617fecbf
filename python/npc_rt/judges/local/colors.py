"""The colour of a detected object, from the pixels of its box, as one of GenEval's colour names
(plus gray).

There is no segmentation mask, so the box's central part stands for the object: the inner
``CORE`` fraction of its width and height (the corners of a box are mostly background). Each pixel
there is named by fixed HSV rules, and the object's colour is the most frequent name. The rules
(ours, tuned on the canonical RGB values of each name), the first that applies winning:

* value < 0.22 is black;
* saturation < 0.2 is white (value >= 0.75), black (value < 0.3) or gray (between);
* a hue from 10 to 45 degrees that is dark (value < 0.65) is brown;
* a pale (saturation < 0.5, value >= 0.7) hue below 15 or from 255 degrees is pink;
* otherwise by hue: red below 15 or from 340, orange 15-40, yellow 40-70, green 70-165,
  blue 165-255, purple 255-310, pink 310-340.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from npc_rt.metadata import COLORS

CORE = 0.6

_HUE_BINS: tuple[tuple[float, str], ...] = (
    (15.0, "red"),
    (40.0, "orange"),
    (70.0, "yellow"),
    (165.0, "green"),
    (255.0, "blue"),
    (310.0, "purple"),
    (340.0, "pink"),
    (360.0, "red"),
)


@dataclass(frozen=True)
class ColorReading:
    """The dominant colour name and the share of core pixels each name got (largest first)."""

    name: str
    fractions: Mapping[str, float]


def rgb_to_hsv(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees [0, 360), saturation and value in [0, 1], for uint8 RGB ``[..., 3]``."""
    rgb = pixels.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    chroma = value - rgb.min(axis=-1)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-12), 0.0)
    safe = np.maximum(chroma, 1e-12)
    hue = np.where(
        value == r,
        ((g - b) / safe) % 6.0,
        np.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = np.where(chroma > 0, hue * 60.0, 0.0) % 360.0
    return hue, saturation, value


def name_pixels(pixels: np.ndarray) -> np.ndarray:
    """Index into ``COLORS`` for every pixel of a uint8 RGB ``[..., 3]`` array."""
    hue, sat, val = rgb_to_hsv(pixels)
    index = {name: i for i, name in enumerate(COLORS)}
    names = np.full(hue.shape, index["gray"], dtype=np.int64)
    bounds = np.array([upper for upper, _ in _HUE_BINS])
    bin_names = np.array([index[name] for _, name in _HUE_BINS])
    names[:] = bin_names[np.searchsorted(bounds, hue, side="right").clip(0, len(bounds) - 1)]

    names[(hue >= 10.0) & (hue < 45.0) & (val < 0.65)] = index["brown"]
    pale = (sat < 0.5) & (val >= 0.7)
    names[pale & ((hue < 15.0) | (hue >= 255.0))] = index["pink"]

    achromatic = sat < 0.2
    names[achromatic] = index["gray"]
    names[achromatic & (val >= 0.75)] = index["white"]
    names[achromatic & (val < 0.3)] = index["black"]
    names[val < 0.22] = index["black"]
    return names


def core_pixels(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The central ``CORE`` part of ``box`` (x1, y1, x2, y2), as ``[N, 3]`` pixels (maybe empty)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    half_w, half_h = (x2 - x1) * CORE / 2.0, (y2 - y1) * CORE / 2.0
    left, right = int(max(0, np.floor(cx - half_w))), int(min(width, np.ceil(cx + half_w)))
    top, bottom = int(max(0, np.floor(cy - half_h))), int(min(height, np.ceil(cy + half_h)))
    return image[top:bottom, left:right].reshape(-1, 3)


def read_color(image: np.ndarray, box: tuple[float, float, float, float]) -> ColorReading | None:
    """The dominant colour in the box's core; ``None`` for a box with no pixels."""
    pixels = core_pixels(image, box)
    if pixels.size == 0:
        return None
    counts = np.bincount(name_pixels(pixels), minlength=len(COLORS))
    shares = counts / counts.sum()
    order = np.argsort(-shares, kind="stable")
    fractions = {COLORS[i]: round(float(shares[i]), 4) for i in order if shares[i] > 0}
    return ColorReading(name=COLORS[int(order[0])], fractions=fractions)
