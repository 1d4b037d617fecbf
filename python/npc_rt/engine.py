"""Engine directories (docs/engine-format.md): read and validate ``manifest.json``, describe it.

Everything here is checked before any model is loaded or run: a missing or corrupt directory, a
manifest of another format version, an unknown family, missing files or files of the wrong size
each raise an ``EngineError`` (``ManifestVersionError`` for the version) naming what is wrong.
Input shapes are checked against the exported ranges by ``ComponentSpec.check_inputs`` (a
``ShapeError``) before a backend sees them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from npc_rt.errors import EngineError, ManifestVersionError, ShapeError

ENGINE_FORMAT = "npc-rt-engine"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
KNOWN_FAMILIES = ("flux", "sdxl", "sd3")
_SCALED_DIM = re.compile(r"^\d+\*")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: ONNX name, numpy dtype name, shape of ints and dim names."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class DimRange:
    min: int
    opt: int
    max: int


@dataclass(frozen=True)
class FileRef:
    path: Path
    sha256: str
    bytes: int


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    kind: str
    file: FileRef
    external_data: tuple[FileRef, ...]
    precision: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: Mapping[str, DimRange]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def check_inputs(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
        """Raise ``ShapeError`` unless ``shapes`` fit this component's IO contract; return the
        resolved size of every dynamic dimension."""
        missing = [t.name for t in self.inputs if t.name not in shapes]
        if missing:
            raise ShapeError(f"{self.name}: missing inputs {missing}")
        extra = sorted(set(shapes) - set(self.input_names))
        if extra:
            raise ShapeError(
                f"{self.name}: unknown inputs {extra} (expects {list(self.input_names)})"
            )
        sizes: dict[str, int] = {}
        for spec in self.inputs:
            shape = tuple(shapes[spec.name])
            if len(shape) != len(spec.shape):
                raise ShapeError(
                    f"{self.name}.{spec.name}: rank {len(shape)} {shape}, expected {len(spec.shape)} {spec.shape}"
                )
            for axis, (size, want) in enumerate(zip(shape, spec.shape, strict=True)):
                if isinstance(want, int):
                    if size != want:
                        raise ShapeError(
                            f"{self.name}.{spec.name}: axis {axis} is {size}, the engine has {want}"
                        )
                    continue
                if want in sizes and sizes[want] != size:
                    raise ShapeError(
                        f"{self.name}.{spec.name}: dim {want!r} is {size} here but {sizes[want]} elsewhere"
                    )
                sizes[want] = size
                bounds = self.dims.get(want)
                if bounds is not None and not bounds.min <= size <= bounds.max:
                    raise ShapeError(
                        f"{self.name}.{spec.name}: dim {want!r} = {size} is outside the exported "
                        f"range [{bounds.min}, {bounds.max}]"
                    )
        return sizes


@dataclass(frozen=True)
class TokenizerSpec:
    name: str
    file: Path
    preset: str
    encoder: str
    max_length: int
    pad_id: int | None
    bos_id: int | None
    eos_id: int | None


@dataclass(frozen=True)
class Engine:
    """A validated engine directory. ``manifest`` is the parsed JSON (read-only views)."""

    root: Path
    manifest: Mapping[str, Any]
    manifest_hash: str
    family: str
    precision: str
    components: Mapping[str, ComponentSpec]
    tokenizers: Mapping[str, TokenizerSpec]
    scheduler_config: Mapping[str, Any]
    pipeline: Mapping[str, Any]
    scoring_encoder: Mapping[str, Any]

    def component(self, name: str) -> ComponentSpec:
        try:
            return self.components[name]
        except KeyError:
            raise EngineError(
                f"engine {self.root} has no component {name!r} (has {sorted(self.components)})"
            ) from None

    def tokenizer(self, name: str) -> TokenizerSpec:
        try:
            return self.tokenizers[name]
        except KeyError:
            raise EngineError(
                f"engine {self.root} has no tokenizer {name!r} (has {sorted(self.tokenizers)})"
            ) from None

    def verify_hashes(self) -> None:
        """Recompute every file's SHA-256 (slow for large models) and compare with the manifest."""
        refs = [c.file for c in self.components.values()]
        refs += [r for c in self.components.values() for r in c.external_data]
        for ref in refs:
            digest = _sha256_file(ref.path)
            if digest != ref.sha256:
                raise EngineError(
                    f"{ref.path} is corrupt: sha256 {digest} != manifest {ref.sha256}"
                )

    def describe(self) -> str:
        """A human-readable summary: family, precision, components with IO and ranges."""
        lines = [
            f"engine {self.root}",
            f"  family {self.family}, precision {self.precision}, manifest sha256 {self.manifest_hash[:16]}",
        ]
        for comp in self.components.values():
            size = comp.file.bytes + sum(r.bytes for r in comp.external_data)
            lines.append(f"  {comp.name} ({comp.kind}, {comp.precision}, {size / 2**20:.1f} MiB)")
            for t in comp.inputs:
                lines.append(f"    in  {t.name} {t.dtype} {list(t.shape)}")
            for t in comp.outputs:
                lines.append(f"    out {t.name} {t.dtype} {list(t.shape)}")
            for dim, r in comp.dims.items():
                lines.append(f"    dim {dim}: {r.min}..{r.max} (opt {r.opt})")
        return "\n".join(lines)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _need(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise EngineError(f"manifest: {where} lacks {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EngineError(f"manifest: {where}.{key} has the wrong type ({type(value).__name__})")
    return value


def _file_ref(root: Path, entry: Mapping[str, Any], key: str, where: str) -> FileRef:
    rel = _need(entry, key, str, where)
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise EngineError(f"manifest: {where}.{key} = {rel!r} must be a path inside the directory")
    path = root / rel
    if not path.is_file():
        raise EngineError(f"engine file {path} is missing ({where})")
    size = entry.get("bytes")
    if isinstance(size, int) and path.stat().st_size != size:
        raise EngineError(
            f"engine file {path} has {path.stat().st_size} bytes, the manifest says {size} (truncated or replaced)"
        )
    return FileRef(path=path, sha256=str(entry.get("sha256", "")), bytes=int(size or 0))


def _tensor_specs(entries: Any, dims: Mapping[str, DimRange], where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(entries, list) or not entries:
        raise EngineError(f"manifest: {where} must be a non-empty list")
    specs = []
    for i, entry in enumerate(entries):
        name = _need(entry, "name", str, f"{where}[{i}]")
        shape = _need(entry, "shape", list, f"{where}[{i}]")
        for axis in shape:
            # outputs may name a multiple of a dim ("8*latent_height", the VAE's upsampling)
            if isinstance(axis, str) and _SCALED_DIM.sub("", axis) not in dims:
                raise EngineError(f"manifest: {where}[{i}] ({name}) uses undeclared dim {axis!r}")
            if not isinstance(axis, (str, int)) or isinstance(axis, bool):
                raise EngineError(f"manifest: {where}[{i}] ({name}) has a bad axis {axis!r}")
        specs.append(TensorSpec(name, _need(entry, "dtype", str, f"{where}[{i}]"), tuple(shape)))
    return tuple(specs)


def _component(root: Path, name: str, entry: Any) -> ComponentSpec:
    where = f"components.{name}"
    raw_dims = _need(entry, "dims", dict, where)
    dims: dict[str, DimRange] = {}
    for dim, r in raw_dims.items():
        lo, opt, hi = (_need(r, k, int, f"{where}.dims.{dim}") for k in ("min", "opt", "max"))
        if not 1 <= lo <= opt <= hi:
            raise EngineError(f"manifest: {where}.dims.{dim} is not 1 <= min <= opt <= max")
        dims[dim] = DimRange(lo, opt, hi)
    external = _need(entry, "external_data", list, where) if "external_data" in entry else []
    return ComponentSpec(
        name=name,
        kind=_need(entry, "kind", str, where),
        file=_file_ref(root, entry, "file", where),
        external_data=tuple(
            _file_ref(root, e, "file", f"{where}.external_data[{i}]")
            for i, e in enumerate(external)
        ),
        precision=_need(entry, "precision", str, where),
        inputs=_tensor_specs(entry.get("inputs"), dims, f"{where}.inputs"),
        outputs=_tensor_specs(entry.get("outputs"), dims, f"{where}.outputs"),
        dims=MappingProxyType(dims),
    )


def _tokenizer(root: Path, name: str, entry: Any) -> TokenizerSpec:
    where = f"tokenizers.{name}"
    ref = _file_ref(root, entry, "file", where)

    def optional_id(key: str) -> int | None:
        value = entry.get(key)
        return int(value) if value is not None else None

    return TokenizerSpec(
        name=name,
        file=ref.path,
        preset=_need(entry, "preset", str, where),
        encoder=_need(entry, "encoder", str, where),
        max_length=_need(entry, "max_length", int, where),
        pad_id=optional_id("pad_id"),
        bos_id=optional_id("bos_id"),
        eos_id=optional_id("eos_id"),
    )


def read_manifest(root: str | Path) -> tuple[dict[str, Any], str]:
    """Parse ``root/manifest.json``; return it and the SHA-256 of its bytes."""
    root = Path(root)
    if not root.exists():
        raise EngineError(f"engine directory {root} does not exist")
    if not root.is_dir():
        raise EngineError(f"engine path {root} is not a directory")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise EngineError(
            f"{root} is not an engine directory: no {MANIFEST_NAME} (an interrupted export leaves none)"
        )
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise EngineError(f"{path} must hold a JSON object")
    return manifest, hashlib.sha256(raw).hexdigest()


def open_engine(root: str | Path, *, verify_hashes: bool = False) -> Engine:
    """Load and validate an engine directory. Sizes are always checked; hashes when asked."""
    root = Path(root).resolve()
    manifest, digest = read_manifest(root)
    if manifest.get("format") != ENGINE_FORMAT:
        raise EngineError(
            f"{root / MANIFEST_NAME}: format is {manifest.get('format')!r}, expected {ENGINE_FORMAT!r}"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ManifestVersionError(
            f"{root / MANIFEST_NAME}: format_version {version!r}; this npc_rt reads version "
            f"{FORMAT_VERSION} only (re-export the engine with a matching npc-rt)"
        )
    family = _need(manifest, "family", str, "manifest")
    if family not in KNOWN_FAMILIES:
        raise EngineError(f"engine family {family!r} is unknown (known: {list(KNOWN_FAMILIES)})")
    raw_components = _need(manifest, "components", dict, "manifest")
    components = {name: _component(root, name, e) for name, e in raw_components.items()}
    raw_tokenizers = _need(manifest, "tokenizers", dict, "manifest")
    tokenizers = {name: _tokenizer(root, name, e) for name, e in raw_tokenizers.items()}
    scheduler = _need(manifest, "scheduler", dict, "manifest")
    scheduler_ref = _file_ref(root, scheduler, "config_file", "scheduler")
    try:
        scheduler_config = json.loads(scheduler_ref.path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"{scheduler_ref.path} is not valid JSON: {exc}") from exc
    if not isinstance(scheduler_config, dict):
        raise EngineError(f"{scheduler_ref.path} must hold a JSON object")
    engine = Engine(
        root=root,
        manifest=MappingProxyType(manifest),
        manifest_hash=digest,
        family=family,
        precision=_need(manifest, "precision", str, "manifest"),
        components=MappingProxyType(components),
        tokenizers=MappingProxyType(tokenizers),
        scheduler_config=MappingProxyType(scheduler_config),
        pipeline=MappingProxyType(_need(manifest, "pipeline", dict, "manifest")),
        scoring_encoder=MappingProxyType(dict(manifest.get("scoring_encoder") or {})),
    )
    if verify_hashes:
        engine.verify_hashes()
    return engine


__all__ = [
    "ENGINE_FORMAT",
    "FORMAT_VERSION",
    "KNOWN_FAMILIES",
    "TensorSpec",
    "DimRange",
    "FileRef",
    "ComponentSpec",
    "TokenizerSpec",
    "Engine",
    "read_manifest",
    "open_engine",
]
