"""Prompt specifications: what an image must show, read from GenEval-format files or plain text.

Three inputs are accepted:

* GenEval's ``evaluation_metadata.jsonl``: one JSON object a line with ``prompt``, ``tag`` and
  ``include: [{"class", "count", "color"?, "position"?: [relation, index]}]``, and for some lines
  ``exclude: [{"class", "count"}]``.
* The GenEval++-style shape: the same ``include``/``exclude`` lists, where an entry may also carry
  ``region`` (where its centre lies in the image: "left", "top right", "center", ...) and ``size``
  (``[relation, index]`` with relation "larger than" / "smaller than", or the single word "large" /
  "small" meaning larger / smaller than every other included object). ``exclude`` entries may
  omit ``count`` (default 1) and may carry ``color``.
* A plain text file of prompts, one a line (blank lines skipped): specs with no expectations, for
  judges that need no metadata.

Meaning, as GenEval defines it: an ``include`` entry with ``count`` n asks for *at least* n objects
of the class; an ``exclude`` entry with ``count`` n forbids n or more (so an exact count is an
include of n plus an exclude of n + 1). ``position: [relation, index]`` places the entry's objects
relative to those of ``include[index]``: "left of", "right of", "above", "below".

Everything is validated on reading; a bad line raises ``InvalidInputError`` naming the file, the
line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npc_rt.errors import InvalidInputError, NpcIOError

COLORS: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
    "gray",
)
POSITION_RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
SIZE_RELATIONS: tuple[str, ...] = ("larger than", "smaller than")
REGIONS: tuple[str, ...] = (
    "left",
    "right",
    "top",
    "bottom",
    "center",
    "top left",
    "top right",
    "bottom left",
    "bottom right",
)

# Spellings folded onto the canonical names above before validation.
_COLOR_ALIASES = {"grey": "gray", "violet": "purple"}
_REGION_ALIASES = {
    "upper": "top",
    "lower": "bottom",
    "centre": "center",
    "middle": "center",
    "left side": "left",
    "right side": "right",
}
_SIZE_WORDS = {"large": "larger than", "big": "larger than", "small": "smaller than"}


@dataclass(frozen=True)
class Relation:
    """``relation`` towards ``include[target]``; ``target`` None means every other included object."""

    relation: str
    target: int | None


@dataclass(frozen=True)
class ObjectSpec:
    """One ``include`` entry: at least ``count`` objects of ``name``, with optional attributes."""

    name: str
    count: int = 1
    color: str | None = None
    position: Relation | None = None
    region: str | None = None
    size: Relation | None = None


@dataclass(frozen=True)
class ExcludeSpec:
    """One ``exclude`` entry: fewer than ``count`` objects of ``name`` (of ``color`` if given)."""

    name: str
    count: int = 1
    color: str | None = None


@dataclass(frozen=True)
class PromptSpec:
    prompt: str
    tag: str = ""
    include: tuple[ObjectSpec, ...] = ()
    exclude: tuple[ExcludeSpec, ...] = ()
    source: str = ""  # "file:line" it came from, for messages

    @property
    def has_expectations(self) -> bool:
        return bool(self.include or self.exclude)

    def to_mapping(self) -> dict[str, Any]:
        """The GenEval(++) JSON shape; ``parse_prompt_spec(spec.to_mapping())`` gives ``spec`` back
        (``source`` aside)."""
        out: dict[str, Any] = {"tag": self.tag, "prompt": self.prompt}
        out["include"] = [_object_mapping(obj) for obj in self.include]
        if self.exclude:
            out["exclude"] = [_exclude_mapping(ex) for ex in self.exclude]
        return out


def load_prompt_specs(path: str | Path) -> tuple[PromptSpec, ...]:
    """Read a GenEval(++) ``.jsonl`` file (by its suffix) or a plain text file of prompts."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NpcIOError(f"prompt file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise NpcIOError(f"cannot read prompt file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".jsonl":
        specs = parse_jsonl(text.splitlines(), name=str(path))
    else:
        specs = parse_prompt_lines(text.splitlines(), name=str(path))
    if not specs:
        raise InvalidInputError(f"{path}: no prompts in the file")
    return specs


def parse_jsonl(lines: Iterable[str], *, name: str = "<metadata>") -> tuple[PromptSpec, ...]:
    specs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{where}: not valid JSON ({exc.msg})") from None
        specs.append(parse_prompt_spec(value, source=where))
    return tuple(specs)


def parse_prompt_lines(lines: Iterable[str], *, name: str = "<prompts>") -> tuple[PromptSpec, ...]:
    return tuple(
        PromptSpec(prompt=" ".join(line.split()), source=f"{name}:{number}")
        for number, line in enumerate(lines, start=1)
        if line.strip()
    )


def parse_prompt_spec(value: Any, *, source: str = "<metadata>") -> PromptSpec:
    """Validate one GenEval(++) object (a mapping) into a ``PromptSpec``."""
    if isinstance(value, PromptSpec):
        return value
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{source}: expected a JSON object, got {type(value).__name__}")
    prompt = value.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError(f"{source}: 'prompt' must be a non-empty string")
    tag = value.get("tag", "")
    if not isinstance(tag, str):
        raise InvalidInputError(f"{source}: 'tag' must be a string, got {tag!r}")
    raw_include = _list_field(value, "include", source)
    raw_exclude = _list_field(value, "exclude", source)
    include = tuple(
        _parse_object(entry, index, len(raw_include), f"{source}: include[{index}]")
        for index, entry in enumerate(raw_include)
    )
    exclude = tuple(
        _parse_exclude(entry, f"{source}: exclude[{index}]")
        for index, entry in enumerate(raw_exclude)
    )
    return PromptSpec(
        prompt=" ".join(prompt.split()),
        tag=tag,
        include=include,
        exclude=exclude,
        source=source,
    )


def _list_field(value: Mapping[str, Any], key: str, source: str) -> Sequence[Any]:
    entries = value.get(key, [])
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InvalidInputError(f"{source}: '{key}' must be a list, got {type(entries).__name__}")
    return entries


def _parse_object(entry: Any, index: int, total: int, where: str) -> ObjectSpec:
    if not isinstance(entry, Mapping):
        raise InvalidInputError(f"{where} must be an object, got {type(entry).__name__}")
    _reject_unknown(entry, {"class", "count", "color", "position", "region", "size"}, where)
    return ObjectSpec(
        name=_class_name(entry, where),
        count=_count(entry, where),
        color=_color(entry, where),
        position=_relation(entry, "position", POSITION_RELATIONS, index, total, where),
        region=_region(entry, where),
        size=_size(entry, index, total, where),
    )


def _parse_exclude(entry: Any, where: str) -> ExcludeSpec:
    if not isinstance(entry, Mapping):
        raise InvalidInputError(f"{where} must be an object, got {type(entry).__name__}")
    _reject_unknown(entry, {"class", "count", "color"}, where)
    return ExcludeSpec(
        name=_class_name(entry, where), count=_count(entry, where), color=_color(entry, where)
    )


def _reject_unknown(entry: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )


def _class_name(entry: Mapping[str, Any], where: str) -> str:
    name = entry.get("class")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"{where}.class must be a non-empty string, got {name!r}")
    return " ".join(name.lower().split())


def _count(entry: Mapping[str, Any], where: str) -> int:
    count = entry.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInputError(f"{where}.count must be a positive integer, got {count!r}")
    return count


def _color(entry: Mapping[str, Any], where: str) -> str | None:
    color = entry.get("color")
    if color is None:
        return None
    folded = _COLOR_ALIASES.get(str(color).strip().lower(), str(color).strip().lower())
    if not isinstance(color, str) or folded not in COLORS:
        raise InvalidInputError(f"{where}.color must be one of {', '.join(COLORS)}; got {color!r}")
    return folded


def _region(entry: Mapping[str, Any], where: str) -> str | None:
    region = entry.get("region")
    if region is None:
        return None
    if not isinstance(region, str):
        raise InvalidInputError(f"{where}.region must be a string, got {region!r}")
    folded = normalize_region(region)
    if folded is None:
        raise InvalidInputError(
            f"{where}.region must be one of {', '.join(REGIONS)}; got {region!r}"
        )
    return folded


def normalize_region(text: str) -> str | None:
    """Canonical region name for ``text`` ("upper left" -> "top left"), or None if it is not one."""
    words = " ".join(text.lower().replace("-", " ").split())
    words = _REGION_ALIASES.get(words, words)
    parts = [_REGION_ALIASES.get(word, word) for word in words.split()]
    if len(parts) == 2 and parts[0] in ("left", "right") and parts[1] in ("top", "bottom"):
        parts.reverse()  # "left top" reads as "top left"
    folded = " ".join(parts)
    return folded if folded in REGIONS else None


def _relation(
    entry: Mapping[str, Any],
    key: str,
    allowed: tuple[str, ...],
    index: int,
    total: int,
    where: str,
) -> Relation | None:
    value = entry.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not isinstance(value[0], str)
        or isinstance(value[1], bool)
        or not isinstance(value[1], int)
    ):
        raise InvalidInputError(f"{where}.{key} must be [relation, index], got {value!r}")
    relation = " ".join(value[0].lower().split())
    if relation not in allowed:
        raise InvalidInputError(
            f"{where}.{key} relation must be one of {', '.join(allowed)}; got {value[0]!r}"
        )
    target = value[1]
    if not 0 <= target < total or target == index:
        raise InvalidInputError(
            f"{where}.{key} index {target} must name another include entry (0..{total - 1})"
        )
    return Relation(relation, target)


def _size(entry: Mapping[str, Any], index: int, total: int, where: str) -> Relation | None:
    value = entry.get("size")
    if isinstance(value, str):
        relation = _SIZE_WORDS.get(value.strip().lower())
        if relation is None:
            raise InvalidInputError(
                f"{where}.size must be 'large', 'small' or [relation, index]; got {value!r}"
            )
        if total < 2:
            raise InvalidInputError(f"{where}.size {value!r} needs another include entry")
        return Relation(relation, None)
    return _relation(entry, "size", SIZE_RELATIONS, index, total, where)


def _object_mapping(obj: ObjectSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"class": obj.name, "count": obj.count}
    if obj.color is not None:
        out["color"] = obj.color
    if obj.position is not None:
        out["position"] = [obj.position.relation, obj.position.target]
    if obj.region is not None:
        out["region"] = obj.region
    if obj.size is not None:
        if obj.size.target is None:
            out["size"] = "large" if obj.size.relation == "larger than" else "small"
        else:
            out["size"] = [obj.size.relation, obj.size.target]
    return out


def _exclude_mapping(ex: ExcludeSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"class": ex.name, "count": ex.count}
    if ex.color is not None:
        out["color"] = ex.color
    return out


__all__ = [
    "COLORS",
    "POSITION_RELATIONS",
    "REGIONS",
    "SIZE_RELATIONS",
    "ExcludeSpec",
    "ObjectSpec",
    "PromptSpec",
    "Relation",
    "load_prompt_specs",
    "normalize_region",
    "parse_jsonl",
    "parse_prompt_lines",
    "parse_prompt_spec",
]
