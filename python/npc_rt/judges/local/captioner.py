"""``LocalCaptioner``: a structured, falsifiable description of what the detector found.

The text lists each detected class with its count, then each object's colour and region, then the
relative positions of objects of different classes ("the cat is left of the cup"). It is short and
literal: it says only what the detector measured. ``Caption.details`` carries the same facts as
data (``objects``, ``counts``, ``relations``) for the local proposer and for run records.
"""

from __future__ import annotations

import time
from collections import Counter
from itertools import combinations

import numpy as np

from npc_rt.errors import InvalidInputError
from npc_rt.judges.base import Caption
from npc_rt.judges.local.checks import ObservedObject, relative_position
from npc_rt.judges.local.detector import check_image
from npc_rt.judges.local.scene import LocalScene
from npc_rt.judges.local.vocabulary import count_phrase

# Relations are listed between the few highest-scoring objects only: all pairs would be noise.
MAX_RELATION_OBJECTS = 4


class LocalCaptioner:
    def __init__(self, scene: LocalScene | None = None, *, name: str = "local") -> None:
        self.scene = scene or LocalScene()
        self.name = name

    def __repr__(self) -> str:
        return f"LocalCaptioner({self.name!r})"

    def caption(self, image: np.ndarray, prompt: str) -> Caption:
        if not isinstance(prompt, str):
            raise InvalidInputError("prompt must be a string")
        image = check_image(image)
        start = time.perf_counter()
        objects = self.scene.observe(image)
        size = (image.shape[0], image.shape[1])
        rows = self.scene.describe(objects, size)
        counts = dict(Counter(obj.name for obj in objects))
        relations = object_relations(objects, self.scene.check_config.position_margin)
        details = {
            "objects": rows,
            "counts": counts,
            "relations": [list(r) for r in relations],
            "seconds": round(time.perf_counter() - start, 4),
        }
        return Caption(text=caption_text(rows, counts, relations), judge=self.name, details=details)


def object_relations(
    objects: tuple[ObservedObject, ...], margin: float
) -> list[tuple[str, str, str]]:
    """(a, relation, b) for pairs of differently named objects among the best few."""
    top = sorted(objects, key=lambda o: -o.detection.score)[:MAX_RELATION_OBJECTS]
    out = []
    for a, b in combinations(top, 2):
        if a.name == b.name:
            continue
        for relation in sorted(relative_position(a.detection, b.detection, margin)):
            out.append((a.name, relation, b.name))
    return out


def caption_text(
    rows: list[dict], counts: dict[str, int], relations: list[tuple[str, str, str]]
) -> str:
    if not rows:
        return "The detector found no objects it knows in this image."
    listed = ", ".join(count_phrase(n, name) for name, n in counts.items())
    sentences = [f"Detected objects: {listed}."]
    for row in rows:
        color = f"{row['color']} " if row["color"] else ""
        sentences.append(
            f"A {color}{row['class']} in the {row['region']} of the image "
            f"(confidence {row['score']:.2f})."
        )
    sentences.extend(f"The {a} is {relation} the {b}." for a, relation, b in relations)
    return " ".join(sentences)
