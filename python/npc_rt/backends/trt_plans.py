"""TensorRT engine ("plan") cache of an engine directory: keys, optimization profiles, lookup.

Pure Python, no TensorRT import: the builder (``npc_rt_export.trt_build``) and the runtime backend
(``npc_rt.backends.trt``) share it, and its logic is tested on machines without a GPU.

A plan is only valid for the exact ONNX file, TensorRT version, GPU model and compute capability,
precision and shape profile it was built for, so all of these go into its cache key. Plans live in
``DIR/trt/``; ``DIR/trt/index.json`` maps each component to the key, file and SHA-256 of the plan
built for it, one plan per (component, static or not, precision): fp16 and fp32 plans of one component
live side by side. A lookup with another GPU or TensorRT version misses (the caller rebuilds) instead of
handing TensorRT a plan it would reject or crash on; a plan whose bytes do not match the index is
reported as corrupt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from npc_rt.errors import EngineError, InvalidInputError, ShapeError
from npc_rt.records import atomic_write_bytes

PLAN_DIR = "trt"
INDEX_NAME = "index.json"
INDEX_VERSION = 2  # 1 held one plan per component whatever its precision: read as empty
PRECISIONS = ("fp32", "fp16", "bf16", "fp8")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TrtTarget:
    """What a plan is bound to besides its inputs: the TensorRT build and the GPU."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0" for an H100/H200


@dataclass(frozen=True)
class InputProfile:
    """One input's min/opt/max shapes (equal for a static-shape plan)."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    @property
    def static(self) -> bool:
        return self.min == self.opt == self.max


def optimization_profile(component: Mapping[str, Any]) -> tuple[InputProfile, ...]:
    """The manifest component's contract as TensorRT's optimization profile, one entry per input
    in graph order. The manifest's ``profiles`` come from the same contract that drove the ONNX
    export, so the engine accepts exactly what the ONNX model was exported for."""
    try:
        profiles = component["profiles"]
        inputs = [spec["name"] for spec in component["inputs"]]
        rows = []
        for name in inputs:
            lo, opt, hi = (tuple(int(v) for v in profiles[k][name]) for k in ("min", "opt", "max"))
            rows.append(InputProfile(name, lo, opt, hi))
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineError(f"manifest component has no usable shape profiles: {exc!r}") from exc
    for row in rows:
        if not (len(row.min) == len(row.opt) == len(row.max)) or any(
            not a <= b <= c for a, b, c in zip(row.min, row.opt, row.max, strict=True)
        ):
            raise EngineError(f"profile of input {row.name!r} is not min <= opt <= max: {row}")
    return tuple(rows)


def static_profile(
    component: Mapping[str, Any], sizes: Mapping[str, int]
) -> tuple[InputProfile, ...]:
    """A single-shape profile (for CUDA graph capture) with every dynamic dim fixed by ``sizes``
    (e.g. ``{"batch": 2, "image_seq": 4096, "text_length": 512}``), checked against the exported
    ranges."""
    dims = component.get("dims", {})
    for dim, size in sizes.items():
        bounds = dims.get(dim)
        if bounds is None:
            raise InvalidInputError(f"unknown dynamic dimension {dim!r}; known: {sorted(dims)}")
        if not bounds["min"] <= int(size) <= bounds["max"]:
            raise ShapeError(
                f"static size {dim}={size} is outside the exported range "
                f"[{bounds['min']}, {bounds['max']}]"
            )
    rows = []
    for spec in component["inputs"]:
        shape = []
        for axis in spec["shape"]:
            if isinstance(axis, int):
                shape.append(axis)
            elif axis in sizes:
                shape.append(int(sizes[axis]))
            else:
                raise InvalidInputError(
                    f"input {spec['name']!r} needs a size for dimension {axis!r} in a static profile"
                )
        rows.append(InputProfile(spec["name"], tuple(shape), tuple(shape), tuple(shape)))
    return tuple(rows)


def plan_cache_key(
    onnx_sha256: str, target: TrtTarget, precision: str, profile: tuple[InputProfile, ...]
) -> str:
    """SHA-256 over everything a plan depends on, as canonical JSON."""
    if precision not in PRECISIONS:
        raise InvalidInputError(
            f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    payload = {
        "onnx_sha256": onnx_sha256,
        "target": asdict(target),
        "precision": precision,
        "profile": [asdict(row) for row in profile],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def plan_file_name(component: str, key: str, static: bool) -> str:
    return f"{component}{'.static' if static else ''}.{key[:16]}.plan"


@dataclass(frozen=True)
class PlanEntry:
    component: str
    key: str
    file: str  # relative to DIR/trt/
    sha256: str
    bytes: int
    precision: str
    static: bool
    target: TrtTarget


class PlanCache:
    """``DIR/trt/index.json``: one entry per (component, static, precision) variant."""

    def __init__(self, engine_dir: str | Path) -> None:
        self.root = Path(engine_dir) / PLAN_DIR
        self.index_path = self.root / INDEX_NAME

    def _read(self) -> dict[str, Any]:
        if not self.index_path.is_file():
            return {"version": INDEX_VERSION, "plans": {}}
        try:
            index = json.loads(self.index_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EngineError(
                f"TensorRT plan index {self.index_path} is unreadable: {exc}"
            ) from exc
        if index.get("version") == 1:  # the previous layout: its plans are rebuilt
            return {"version": INDEX_VERSION, "plans": {}}
        if index.get("version") != INDEX_VERSION or not isinstance(index.get("plans"), dict):
            raise EngineError(f"TensorRT plan index {self.index_path} has an unknown layout")
        return index

    @staticmethod
    def _slot(component: str, static: bool, precision: str) -> str:
        return f"{component}{'.static' if static else ''}@{precision}"

    def lookup(self, component: str, key: str, *, static: bool = False) -> Path | None:
        """The plan built for exactly ``key``, or None (never built, or built for another GPU,
        TensorRT version, precision or profile: the caller rebuilds). Raises ``EngineError`` if
        the recorded plan file is missing or its bytes changed (corrupt)."""
        for entry in self._read()["plans"].values():
            if (
                entry.get("component") == component
                and bool(entry.get("static")) == static
                and entry.get("key") == key
            ):
                path = self.root / entry["file"]
                self.verify(path, entry)
                return path
        return None

    def entry(self, component: str, precision: str, *, static: bool = False) -> PlanEntry | None:
        raw = self._read()["plans"].get(self._slot(component, static, precision))
        if raw is None:
            return None
        return PlanEntry(**{**raw, "target": TrtTarget(**raw["target"])})

    @staticmethod
    def verify(path: Path, entry: Mapping[str, Any]) -> None:
        if not path.is_file():
            raise EngineError(f"TensorRT plan {path} is listed in the index but missing")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise EngineError(
                f"TensorRT plan {path} is corrupt: {size} bytes, the index says {entry['bytes']}"
            )
        digest = _sha256(path)
        if digest != entry["sha256"]:
            raise EngineError(
                f"TensorRT plan {path} is corrupt: its SHA-256 does not match the index"
            )

    def store(self, entry: PlanEntry, plan_bytes: bytes) -> Path:
        """Write the plan and then its index entry, each atomically; an old plan of the same
        slot (component, static, precision) is removed once the index no longer points to it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / entry.file
        atomic_write_bytes(path, plan_bytes)
        index = self._read()
        slot = self._slot(entry.component, entry.static, entry.precision)
        old = index["plans"].get(slot)
        index["plans"][slot] = asdict(entry)
        atomic_write_bytes(self.index_path, json.dumps(index, indent=2, sort_keys=True).encode())
        if old and old["file"] != entry.file:
            (self.root / old["file"]).unlink(missing_ok=True)
        return path

    @property
    def timing_cache_path(self) -> Path:
        return self.root / "timing.cache"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
