"""Component contracts: the IO names, dtypes, dynamic dimensions and shape profiles of one model.

A contract is written once per component and drives everything that needs shapes: the
``dynamic_shapes`` given to ``torch.onnx.export``, the manifest entry the runtime validates inputs
against, and (later) TensorRT optimization profiles. It holds no torch objects so it can be
serialized and reasoned about anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from npc_rt.errors import InvalidInputError

PROFILE_NAMES = ("min", "opt", "max")

DimSize = int | str
"""One axis of a tensor: a fixed size, a dynamic dimension's name, or ``"k*name"`` (outputs only)."""

_SCALED_DIM = re.compile(r"^(\d+)\*([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class DimRange:
    """The inclusive size range of one dynamic dimension and the size to optimize for."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise InvalidInputError(
                f"dimension range needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}"
            )

    def size(self, profile: str) -> int:
        return {"min": self.min, "opt": self.opt, "max": self.max}[profile]

    def contains(self, size: int) -> bool:
        return self.min <= size <= self.max


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: its ONNX name, numpy dtype name and shape."""

    name: str
    dtype: str
    shape: tuple[DimSize, ...]

    def dim_names(self) -> tuple[str, ...]:
        """Names of the dynamic dimensions this tensor uses directly, in axis order."""
        return tuple(d for d in self.shape if isinstance(d, str) and not _SCALED_DIM.match(d))


@dataclass(frozen=True)
class ComponentContract:
    """Everything shape-related about one exported component.

    ``trace_sizes`` are the dynamic sizes of the example the exporter traces with; ``check_sizes``
    those of the parity check, chosen different so a graph that silently specialized on the traced
    shape fails the check. Neither is serialized.
    """

    name: str
    kind: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: Mapping[str, DimRange]
    trace_sizes: Mapping[str, int] = field(default_factory=dict)
    check_sizes: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.inputs:
            for axis in spec.shape:
                if isinstance(axis, str) and axis not in self.dims:
                    raise InvalidInputError(
                        f"{self.name}: input {spec.name!r} uses undeclared dimension {axis!r}"
                    )
        for spec in self.outputs:
            for axis in spec.shape:
                if isinstance(axis, str) and _base_dim(axis) not in self.dims:
                    raise InvalidInputError(
                        f"{self.name}: output {spec.name!r} uses undeclared dimension {axis!r}"
                    )
        for label, sizes in (("trace", self.trace_sizes), ("check", self.check_sizes)):
            for dim, size in sizes.items():
                if dim not in self.dims or not self.dims[dim].contains(size):
                    raise InvalidInputError(
                        f"{self.name}: {label} size {dim}={size} is outside its declared range"
                    )

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    def profile(self, which: str) -> dict[str, list[int]]:
        """Concrete input shapes at the ``min``, ``opt`` or ``max`` end of every dimension."""
        if which not in PROFILE_NAMES:
            raise InvalidInputError(f"profile must be one of {PROFILE_NAMES}, got {which!r}")
        sizes = {name: dim.size(which) for name, dim in self.dims.items()}
        return {spec.name: resolve_shape(spec.shape, sizes) for spec in self.inputs}

    def to_manifest(self) -> dict:
        """The manifest's IO, ``dims`` and ``profiles`` fields (docs/engine-format.md)."""
        return {
            "kind": self.kind,
            "inputs": [_spec_json(s) for s in self.inputs],
            "outputs": [_spec_json(s) for s in self.outputs],
            "dims": {
                name: {"min": d.min, "opt": d.opt, "max": d.max} for name, d in self.dims.items()
            },
            "profiles": {which: self.profile(which) for which in PROFILE_NAMES},
        }


def resolve_shape(shape: tuple[DimSize, ...], sizes: Mapping[str, int]) -> list[int]:
    """Replace dimension names (and ``k*name``) in ``shape`` by their sizes."""
    out = []
    for axis in shape:
        if isinstance(axis, int):
            out.append(axis)
            continue
        scaled = _SCALED_DIM.match(axis)
        out.append(int(scaled.group(1)) * sizes[scaled.group(2)] if scaled else sizes[axis])
    return out


def _base_dim(axis: str) -> str:
    scaled = _SCALED_DIM.match(axis)
    return scaled.group(2) if scaled else axis


def _spec_json(spec: TensorSpec) -> dict:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}
