"""GenEval-style checks of a prompt spec against detected objects: pure functions, no model.

For each ``include`` entry the checks are, in order: presence / count (at least ``count`` objects
of the class; exactly ``count`` when an ``exclude`` entry of the same class forbids ``count`` + 1,
GenEval's way of writing an exact count, which is then one check rather than two), colour (at
least ``count`` of them read as ``color``), relative position, region and relative size; for each
other ``exclude`` entry: fewer than ``count`` objects of the class (of its colour,
if given). An entry's objects are its class's detections, those of the asked colour first, then by
score, cut to ``count`` (GenEval compares the first ``count`` it finds).

Geometry (y grows downwards):
* relative position "A left of B": the offset between box centres, each axis shrunk towards 0 by
  ``position_margin`` times the two boxes' summed extent on that axis, must point the right way
  along the relation's axis and that component must be at least half the centre distance. Every
  pair of A's and B's objects must hold it.
* region: by each object's centre as a fraction of the image; "left" is x < 0.5 - margin, "right"
  x > 0.5 + margin, "top" / "bottom" likewise on y, two-word regions need both, "center" needs
  both coordinates within 1/6 of the middle. Every one of the entry's objects must be there.
* relative size: the largest box area of A must exceed ``size_ratio`` times the largest of B
  ("larger than"), or be under 1 / ``size_ratio`` of it ("smaller than"); with no target index,
  against every other include entry.

A check on an object that was not found fails too, saying so (its attribute could not be seen).
The score is the fraction of checks that passed; a spec with no checks has no score (the verifier
reports that as unknown). Detections of classes the spec does not name are listed as unrequested;
they fail no check (GenEval does not count them), but the proposer turns them into negatives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from npc_rt.judges.local.detector import Detection
from npc_rt.judges.local.vocabulary import count_phrase
from npc_rt.metadata import ObjectSpec, PromptSpec, Relation


@dataclass(frozen=True)
class ObservedObject:
    """A detection with the colour read from its pixels (``None`` when unreadable)."""

    detection: Detection
    color: str | None = None
    color_fractions: Mapping[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.detection.name


@dataclass(frozen=True)
class CheckConfig:
    position_margin: float = 0.1
    region_margin: float = 0.05
    size_ratio: float = 1.2


@dataclass(frozen=True)
class CheckResult:
    kind: str  # presence, count, color, position, region, size, exclude
    subject: str  # what was checked, e.g. "red dog"
    passed: bool
    message: str  # expected vs found, in words
    observed: str | None = None  # what was seen instead, as a short phrase ("three dogs")


@dataclass(frozen=True)
class CheckReport:
    checks: tuple[CheckResult, ...]
    unrequested: tuple[str, ...] = ()  # classes detected but not named by the spec

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if not check.passed)

    @property
    def score(self) -> float | None:
        if not self.checks:
            return None
        return sum(check.passed for check in self.checks) / len(self.checks)

    @property
    def all_passed(self) -> bool:
        return bool(self.checks) and not self.failed


def run_checks(
    spec: PromptSpec,
    objects: Sequence[ObservedObject],
    image_size: tuple[int, int],
    config: CheckConfig = CheckConfig(),
) -> CheckReport:
    """Every check of ``spec`` against ``objects`` in an image of ``(height, width)``."""
    groups = [select_group(entry, objects) for entry in spec.include]
    exact = exact_counts(spec)
    checks: list[CheckResult] = []
    for index, entry in enumerate(spec.include):
        group = groups[index]
        checks.append(check_count(entry, objects, exact=index in exact.values()))
        if entry.color is not None:
            checks.append(check_color(entry, objects))
        if entry.position is not None:
            target = spec.include[_target(entry.position)]
            checks.append(
                check_position(
                    entry, group, target, groups[_target(entry.position)], entry.position, config
                )
            )
        if entry.region is not None:
            checks.append(check_region(entry, group, entry.region, image_size, config))
        if entry.size is not None:
            checks.append(check_size(entry, index, groups, spec.include, entry.size, config))
    for ex_index, ex in enumerate(spec.exclude):
        if ex_index in exact:  # folded into its include entry's count check
            continue
        found = [
            obj
            for obj in objects
            if obj.name == ex.name and (ex.color is None or obj.color == ex.color)
        ]
        subject = f"{ex.color} {ex.name}" if ex.color else ex.name
        passed = len(found) < ex.count
        allowed = ex.count - 1
        message = (
            f"no {subject}" if allowed == 0 else f"at most {count_phrase(allowed, subject)}"
        ) + f" wanted, found {len(found)}"
        # An object that must not appear at all is named as it is; too many, by their count.
        observed = (
            None if passed else subject if ex.count == 1 else count_phrase(len(found), subject)
        )
        checks.append(CheckResult("exclude", subject, passed, message, observed))
    named = {entry.name for entry in spec.include} | {ex.name for ex in spec.exclude}
    unrequested = tuple(dict.fromkeys(obj.name for obj in objects if obj.name not in named))
    return CheckReport(checks=tuple(checks), unrequested=unrequested)


def select_group(
    entry: ObjectSpec, objects: Sequence[ObservedObject]
) -> tuple[ObservedObject, ...]:
    """The entry's objects: its class, those of its colour first, then by score, cut to count."""
    same = [obj for obj in objects if obj.name == entry.name]
    same.sort(
        key=lambda obj: (entry.color is not None and obj.color != entry.color, -obj.detection.score)
    )
    return tuple(same[: entry.count])


def exact_counts(spec: PromptSpec) -> dict[int, int]:
    """``{exclude index: include index}`` for exact counts: an include of n and an exclude of
    n + 1 of the same class, neither with a colour (GenEval's way of writing "exactly n")."""
    pairs: dict[int, int] = {}
    for ex_index, ex in enumerate(spec.exclude):
        for index, entry in enumerate(spec.include):
            if (
                entry.name == ex.name
                and ex.color is None
                and ex.count == entry.count + 1
                and sum(e.name == entry.name for e in spec.include) == 1
                and index not in pairs.values()
            ):
                pairs[ex_index] = index
                break
    return pairs


def check_count(
    entry: ObjectSpec, objects: Sequence[ObservedObject], *, exact: bool = False
) -> CheckResult:
    """At least ``entry.count`` objects of the class; exactly that many when ``exact``."""
    found = sum(obj.name == entry.name for obj in objects)
    kind = "presence" if entry.count == 1 and not exact else "count"
    if found == entry.count or (found > entry.count and not exact):
        return CheckResult(kind, entry.name, True, f"found {found} {entry.name}")
    if found > entry.count:
        return CheckResult(
            kind,
            entry.name,
            False,
            f"expected exactly {count_phrase(entry.count, entry.name)}, found {found}",
            count_phrase(found, entry.name),
        )
    if found == 0:
        message = f"missing {entry.name}" + (
            f" (expected {entry.count})" if entry.count > 1 else ""
        )
    else:
        quantity = "exactly" if exact else "at least"
        message = f"expected {quantity} {count_phrase(entry.count, entry.name)}, found {found}"
    observed = count_phrase(found, entry.name) if found else None
    return CheckResult(kind, entry.name, False, message, observed)


def check_color(entry: ObjectSpec, objects: Sequence[ObservedObject]) -> CheckResult:
    subject = f"{entry.color} {entry.name}"
    same = [obj for obj in objects if obj.name == entry.name]
    if not same:
        return CheckResult("color", subject, False, f"{subject}: no {entry.name} to check")
    matching = sum(obj.color == entry.color for obj in same)
    if matching >= entry.count:
        return CheckResult("color", subject, True, f"{subject}: found {matching}")
    seen = [obj.color for obj in same if obj.color is not None and obj.color != entry.color]
    named = sorted(set(seen)) or ["no readable colour"]
    return CheckResult(
        "color",
        subject,
        False,
        f"{entry.name} should be {entry.color}, detected {', '.join(named)}",
        f"{max(set(seen), key=seen.count)} {entry.name}" if seen else None,
    )


def relative_position(a: Detection, b: Detection, margin: float) -> frozenset[str]:
    """The relations ("left of", "right of", "above", "below") that hold for A relative to B."""
    (ax, ay), (bx, by) = a.center, b.center
    dx, dy = ax - bx, ay - by
    distance = math.hypot(dx, dy)
    if distance == 0.0:
        return frozenset()
    shrunk_x = math.copysign(max(abs(dx) - margin * (a.width + b.width), 0.0), dx)
    shrunk_y = math.copysign(max(abs(dy) - margin * (a.height + b.height), 0.0), dy)
    relations = set()
    if shrunk_x <= -0.5 * distance:
        relations.add("left of")
    if shrunk_x >= 0.5 * distance:
        relations.add("right of")
    if shrunk_y <= -0.5 * distance:
        relations.add("above")
    if shrunk_y >= 0.5 * distance:
        relations.add("below")
    return frozenset(relations)


def check_position(
    entry: ObjectSpec,
    group: Sequence[ObservedObject],
    target: ObjectSpec,
    target_group: Sequence[ObservedObject],
    relation: Relation,
    config: CheckConfig,
) -> CheckResult:
    subject = f"{entry.name} {relation.relation} {target.name}"
    missing = [name for name, g in ((entry.name, group), (target.name, target_group)) if not g]
    if missing:
        return CheckResult(
            "position", subject, False, f"{subject}: not checked, no {' or '.join(missing)} found"
        )
    for obj in group:
        for other in target_group:
            found = relative_position(obj.detection, other.detection, config.position_margin)
            if relation.relation not in found:
                seen = " and ".join(sorted(found))
                observed = f"{entry.name} {seen} {target.name}" if found else None
                return CheckResult(
                    "position",
                    subject,
                    False,
                    f"{entry.name} should be {relation.relation} {target.name}, detected "
                    + (observed or "too close to tell"),
                    observed,
                )
    return CheckResult("position", subject, True, f"{subject}: holds")


def region_of_point(
    x: float, y: float, image_size: tuple[int, int], margin: float
) -> frozenset[str]:
    """Every region name (see the module docstring) that contains the point."""
    height, width = image_size
    fx, fy = x / width, y / height
    horizontal = {"left"} if fx < 0.5 - margin else {"right"} if fx > 0.5 + margin else set()
    vertical = {"top"} if fy < 0.5 - margin else {"bottom"} if fy > 0.5 + margin else set()
    regions = set(horizontal) | set(vertical)
    regions |= {f"{v} {h}" for v in vertical for h in horizontal}
    if abs(fx - 0.5) <= 1.0 / 6.0 and abs(fy - 0.5) <= 1.0 / 6.0:
        regions.add("center")
    return frozenset(regions)


def describe_region(x: float, y: float, image_size: tuple[int, int], margin: float) -> str:
    """The most specific region name for a point, for messages and captions."""
    regions = region_of_point(x, y, image_size, margin)
    two_word = sorted(r for r in regions if " " in r)
    if two_word:
        return two_word[0]
    one_word = sorted(r for r in regions if r != "center")
    if "center" in regions:
        return "center"
    return one_word[0] if one_word else "middle"


def check_region(
    entry: ObjectSpec,
    group: Sequence[ObservedObject],
    region: str,
    image_size: tuple[int, int],
    config: CheckConfig,
) -> CheckResult:
    subject = f"{entry.name} in the {region}"
    if not group:
        return CheckResult(
            "region", subject, False, f"{subject}: not checked, no {entry.name} found"
        )
    for obj in group:
        x, y = obj.detection.center
        if region not in region_of_point(x, y, image_size, config.region_margin):
            seen = describe_region(x, y, image_size, config.region_margin)
            return CheckResult(
                "region",
                subject,
                False,
                f"{entry.name} should be in the {region}, detected in the {seen}",
                f"{entry.name} in the {seen}",
            )
    return CheckResult("region", subject, True, f"{subject}: holds")


def check_size(
    entry: ObjectSpec,
    index: int,
    groups: Sequence[Sequence[ObservedObject]],
    include: Sequence[ObjectSpec],
    relation: Relation,
    config: CheckConfig,
) -> CheckResult:
    targets = (
        [relation.target]
        if relation.target is not None
        else [i for i in range(len(include)) if i != index]
    )
    names = " and ".join(include[i].name for i in targets)
    subject = f"{entry.name} {relation.relation} {names}"
    missing = [include[i].name for i in [index, *targets] if not groups[i]]
    if missing:
        return CheckResult(
            "size", subject, False, f"{subject}: not checked, no {' or '.join(missing)} found"
        )
    area = max(obj.detection.area for obj in groups[index])
    for i in targets:
        other = max(obj.detection.area for obj in groups[i])
        if relation.relation == "larger than":
            holds = area > config.size_ratio * other
        else:
            holds = area * config.size_ratio < other
        if not holds:
            ratio = area / other if other > 0 else math.inf
            return CheckResult(
                "size",
                subject,
                False,
                f"{entry.name} should be {relation.relation} {include[i].name}, "
                f"detected {ratio:.2f} times its area",
                f"{'small' if relation.relation == 'larger than' else 'large'} {entry.name}",
            )
    return CheckResult("size", subject, True, f"{subject}: holds")


def _target(relation: Relation) -> int:
    assert relation.target is not None  # positions always name a target (metadata validates)
    return relation.target
