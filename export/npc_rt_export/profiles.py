"""Resolution profiles shared by every family's contracts: the min/opt/max image sizes an export
covers (from the options and the pipeline's default size), the parity check's size, and the
latent ranges they imply."""

from __future__ import annotations

from dataclasses import dataclass

from npc_rt.errors import InvalidInputError

from npc_rt_export.contracts import DimRange
from npc_rt_export.options import ExportOptions, Size


@dataclass(frozen=True)
class ImageProfile:
    """Resolved sizes: resolution range and batch (text length where the family has one)."""

    min_size: Size
    opt_size: Size
    max_size: Size
    max_batch: int
    max_sequence_length: int = 0


def resolve_image_profile(
    family: str, default: Size, multiple: int, options: ExportOptions
) -> ImageProfile:
    """min/opt/max resolution from the options and the pipeline's default size."""
    floor = options.opt_size or options.min_size  # a default max never undercuts a given opt
    max_size = options.max_size or tuple(
        max(d, m, f) for d, m, f in zip(default, options.min_size, floor, strict=True)
    )
    opt_size = options.opt_size or tuple(
        min(max(d, lo), hi) for d, lo, hi in zip(default, options.min_size, max_size, strict=True)
    )
    for label, size in (
        ("min_size", options.min_size),
        ("opt_size", opt_size),
        ("max_size", max_size),
    ):
        if size[0] % multiple or size[1] % multiple:
            raise InvalidInputError(
                f"{label} {size[0]}x{size[1]}: {family} heights and widths must be multiples of "
                f"{multiple} for this model"
            )
    for axis, name in enumerate(("height", "width")):
        if not options.min_size[axis] <= opt_size[axis] <= max_size[axis]:
            raise InvalidInputError(
                f"{name}: need min <= opt <= max, got {options.min_size[axis]} / "
                f"{opt_size[axis]} / {max_size[axis]}"
            )
    return ImageProfile(
        min_size=tuple(options.min_size),
        opt_size=tuple(opt_size),
        max_size=tuple(max_size),
        max_batch=options.max_batch,
    )


def check_size(profile: ImageProfile, multiple: int) -> Size:
    """A resolution for the parity check: non-square where possible, unlike the traced one."""
    lo, hi = profile.min_size, profile.max_size
    candidate = (lo[0], min(lo[1] + multiple, hi[1]))
    return candidate if candidate != profile.opt_size else hi


def latent_dims(profile: ImageProfile, vsf: int) -> tuple[DimRange, DimRange]:
    sizes = (profile.min_size, profile.opt_size, profile.max_size)
    return DimRange(*(s[0] // vsf for s in sizes)), DimRange(*(s[1] // vsf for s in sizes))
