"""Export options: precision, batch and resolution profiles, text length, check and file limits."""

from __future__ import annotations

from dataclasses import dataclass

from npc_rt.errors import InvalidInputError

PRECISIONS = ("fp32", "fp16", "bf16")

EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000
"""Weights above this go to a side file: protobuf refuses messages over 2 GiB, and the graph
structure needs room next to the weights."""

Size = tuple[int, int]
"""(height, width) in pixels."""


@dataclass(frozen=True)
class ExportOptions:
    """How to export a pipeline. Sizes are ``(height, width)`` in pixels.

    ``None`` for ``opt_size``/``max_size``/``max_sequence_length`` means "the pipeline's default"
    (FLUX: 1024x1024 and 512 tokens); the family module resolves them. ``check_tolerance`` ``None``
    means the precision's default (``check.TOLERANCE``).
    """

    precision: str = "fp32"
    max_batch: int = 16
    min_size: Size = (256, 256)
    opt_size: Size | None = None
    max_size: Size | None = None
    max_sequence_length: int | None = None
    check: bool = True
    check_tolerance: float | None = None
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD_BYTES
    opset: int = 18
    overwrite: bool = False
    clip_skip: int | None = None  # SDXL/SD3: CLIP layers skipped before the penultimate one

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InvalidInputError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.max_batch < 1:
            raise InvalidInputError(f"max_batch must be at least 1, got {self.max_batch}")
        for label, size in (
            ("min_size", self.min_size),
            ("opt_size", self.opt_size),
            ("max_size", self.max_size),
        ):
            if size is not None and (len(size) != 2 or min(size) < 1):
                raise InvalidInputError(f"{label} must be (height, width) > 0, got {size!r}")
        if self.max_sequence_length is not None and self.max_sequence_length < 1:
            raise InvalidInputError(
                f"max_sequence_length must be at least 1, got {self.max_sequence_length}"
            )
        if self.check_tolerance is not None and not self.check_tolerance >= 0:
            raise InvalidInputError(f"check_tolerance must be >= 0, got {self.check_tolerance!r}")
        if self.external_data_threshold < 0:
            raise InvalidInputError("external_data_threshold must be >= 0")
        if self.clip_skip is not None and (
            isinstance(self.clip_skip, bool)
            or not isinstance(self.clip_skip, int)
            or self.clip_skip < 1
        ):
            raise InvalidInputError(
                f"clip_skip must be an integer >= 1 (None: the penultimate layer), "
                f"got {self.clip_skip!r}"
            )


def parse_size(text: str) -> Size:
    """``"512"`` -> (512, 512); ``"512x768"`` -> (512, 768) (height x width)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InvalidInputError(f"size must be H or HxW in pixels, got {text!r}") from None
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) == 2:
        return (values[0], values[1])
    raise InvalidInputError(f"size must be H or HxW in pixels, got {text!r}")
