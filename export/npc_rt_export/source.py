"""Reading a diffusers pipeline folder (``save_pretrained`` layout): what it is, its weight files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from npc_rt.errors import InvalidInputError

from npc_rt_export.hashing import FileDigest, combined_sha256, digest_file

FAMILY_BY_PIPELINE_CLASS = {
    "FluxPipeline": "flux",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
}
"""Pipeline classes this exporter knows, by ``model_index.json`` ``_class_name``."""


@dataclass(frozen=True)
class PipelineSource:
    """A validated diffusers pipeline folder."""

    root: Path
    class_name: str
    family: str
    diffusers_version: str | None
    components: dict[str, tuple[str, str]]
    """Component name -> (library, class name), from ``model_index.json``."""

    def folder(self, component: str) -> Path:
        return self.root / component

    def read_config(self, component: str, filename: str = "config.json") -> dict:
        path = self.root / component / filename
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError(f"{self.root}: missing {component}/{filename}") from None
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}: not valid JSON ({exc})") from None


def open_source(root: Path) -> PipelineSource:
    """Validate ``root`` as a diffusers pipeline folder of a supported family."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a directory (expected a diffusers pipeline folder)")
    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise InvalidInputError(
            f"{root}: no model_index.json, so not a diffusers pipeline folder "
            "(save one with pipeline.save_pretrained(DIR))"
        )
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{index_path}: not valid JSON ({exc})") from None
    if not isinstance(index, dict):
        raise InvalidInputError(f"{index_path}: expected a JSON object")
    class_name = index.get("_class_name")
    family = FAMILY_BY_PIPELINE_CLASS.get(class_name)
    if family is None:
        known = ", ".join(sorted(FAMILY_BY_PIPELINE_CLASS))
        raise InvalidInputError(
            f"{root}: pipeline class {class_name!r} is not supported for export (supported: {known})"
        )
    components = {
        name: (value[0], value[1])
        for name, value in index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and value[0] is not None
    }
    return PipelineSource(
        root=root,
        class_name=class_name,
        family=family,
        diffusers_version=index.get("_diffusers_version"),
        components=components,
    )


def require_components(source: PipelineSource, names: tuple[str, ...]) -> None:
    """Fail clearly when a component the family needs is absent from the index or from disk."""
    for name in names:
        if name not in source.components:
            raise InvalidInputError(
                f"{source.root}: model_index.json has no {name!r} component, "
                f"which a {source.class_name} export needs"
            )
        if not source.folder(name).is_dir():
            raise InvalidInputError(f"{source.root}: component folder {name}/ is missing")


def weight_files(root: Path) -> list[Path]:
    """Every ``*.safetensors`` file under ``root``; ``*.bin`` only in folders without safetensors."""
    files = sorted(p for p in root.rglob("*.safetensors") if p.is_file())
    folders_with_safetensors = {p.parent for p in files}
    files += [
        p for p in root.rglob("*.bin") if p.is_file() and p.parent not in folders_with_safetensors
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def hash_weights(root: Path) -> tuple[str, list[FileDigest]]:
    """``(weights_sha256, per-file digests)`` as docs/engine-format.md defines them."""
    files = weight_files(root)
    if not files:
        raise InvalidInputError(f"{root}: no weight files (*.safetensors or *.bin) found")
    digests = [digest_file(p, root) for p in files]
    return combined_sha256(digests), digests
