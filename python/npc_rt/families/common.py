"""Checks every family's config makes of its engine and of a requested image size."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from npc_rt.engine import Engine
from npc_rt.errors import EngineError, ShapeError


def check_engine_layout(
    engine: Engine, family: str, kinds: Mapping[str, str], tokenizers: Iterable[str]
) -> None:
    """``EngineError`` unless ``engine`` is of ``family``, has each component with its kind, and
    each tokenizer."""
    if engine.family != family:
        raise EngineError(f"engine {engine.root} is family {engine.family!r}, not {family!r}")
    for name, kind in kinds.items():
        comp = engine.component(name)
        if comp.kind != kind:
            raise EngineError(f"engine component {name} is a {comp.kind!r}, expected {kind!r}")
    for name in tokenizers:
        engine.tokenizer(name)


def check_image_size(
    height: int,
    width: int,
    multiple: int,
    min_size: tuple[int, int],
    max_size: tuple[int, int],
) -> None:
    """``ShapeError`` unless both sides are integers, multiples of ``multiple`` and within the
    engine's exported range."""
    for axis, value, lo, hi in (
        ("height", height, min_size[0], max_size[0]),
        ("width", width, min_size[1], max_size[1]),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ShapeError(f"{axis} must be an integer, got {value!r}")
        if value % multiple:
            raise ShapeError(f"{axis} {value} is not a multiple of {multiple}")
        if not lo <= value <= hi:
            raise ShapeError(f"{axis} {value} is outside the engine's exported range [{lo}, {hi}]")


def default_image_size(
    default: tuple[int, int],
    min_size: tuple[int, int],
    max_size: tuple[int, int],
    opt_size: tuple[int, int],
) -> tuple[int, int]:
    """The pipeline's default ``(height, width)`` when the engine was exported for it, else the
    engine's optimized size (a small test engine cannot make FLUX's 1024x1024)."""
    height, width = default
    if min_size[0] <= height <= max_size[0] and min_size[1] <= width <= max_size[1]:
        return height, width
    return int(opt_size[0]), int(opt_size[1])
