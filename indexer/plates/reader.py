"""Reading plates in one frame: detect text boxes, keep plate-shaped ones, recognise crops.

1. **Detect.** rapidocr's PP-OCRv4 text detector (DBNet) runs on the frame scaled so
   its longer side is at most ``det_max_side``: never the full frame at full size.
2. **Merge and shape-check.** Boxes on one line with small gaps are merged (a detector
   may split "AE 1234 KX" in three); only boxes with a plate's aspect ratio and at
   least ``min_height_px`` tall are kept.
3. **Crop and upscale.** Each candidate is cut with a margin and upscaled (Lanczos)
   until it is ``rec_height`` pixels tall, then recognised by PP-OCRv4's recogniser.
4. **Grammar.** A read counts only if it fits ``indexer.plates.grammar``.

onnxruntime and rapidocr are imported only when a ``PlateReader`` is built, so the
light commands never load them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.plates.grammar import fit
from storage.errors import ConfigurationError

PACKAGE = "rapidocr-onnxruntime"
REC_INPUT_HEIGHT = 48  # the recogniser's input height (rec_img_shape)
DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"


@dataclass(frozen=True)
class ReaderConfig:
    """Reader parameters; recorded in every crop's provenance."""

    det_max_side: int = 480
    min_aspect: float = 2.2
    max_aspect: float = 12.0
    min_height_px: int = 6
    margin: float = 0.18  # of the box height, above and below
    side_margin: float = 0.45  # of the box height, left and right
    rec_height: int = 0  # upscale crops to this height first (0: the recogniser's own resize)
    min_confidence: float = 0.6
    stretch: float = 1.2  # widen each crop by this before recognition: thin glyphs (I) stay
    max_candidates: int = 8
    threads: int = 2

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class PlateRead:
    """One grammar-fitting read in one frame; ``box`` is (x, y, w, h) in frame pixels."""

    text: str
    raw: str
    format: str
    confidence: float
    box: tuple[int, int, int, int]
    crop: Image.Image = field(compare=False, repr=False)


@dataclass
class ReadStats:
    """What reading did, for reports and the benchmark."""

    frames: int = 0
    candidates: int = 0
    recognised: int = 0
    rejected_by_grammar: int = 0
    full_resolution: int = 0  # frames whose crops were cut from the original


def models_dir() -> Path:
    """Where the installed rapidocr package keeps its ONNX weights.

    Raises ``ConfigurationError`` when the package is not installed.
    """
    spec = find_spec("rapidocr_onnxruntime")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "models"
        if (candidate / REC_MODEL).is_file():
            return candidate
    raise ConfigurationError(f"Plate reading needs the {PACKAGE} package (it ships the "
                             "PP-OCRv4 weights); install Oko's requirements.lock.")


@cache
def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_identity() -> dict[str, dict[str, str]]:
    """Name and SHA-256 of each model file reading uses (no import of rapidocr)."""
    root = models_dir()
    return {role: {"file": name, "sha256": _file_sha256(root / name)}
            for role, name in (("detector", DET_MODEL), ("recogniser", REC_MODEL))}


def reader_key(config: ReaderConfig) -> str:
    """A short id of the models and parameters: frames read with another key are pending."""
    ident = model_identity()
    text = "|".join([ident["detector"]["sha256"], ident["recogniser"]["sha256"],
                     repr(sorted(config.as_dict().items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _merge_boxes(boxes: list[tuple[float, float, float, float]]
                 ) -> list[tuple[float, float, float, float]]:
    """Join boxes (x0, y0, x1, y1) that sit on one line with a small gap between them."""
    pending = sorted(boxes)
    merged: list[tuple[float, float, float, float]] = []
    for box in pending:
        for i, other in enumerate(merged):
            height = max(box[3] - box[1], other[3] - other[1], 1.0)
            overlap = min(box[3], other[3]) - max(box[1], other[1])
            gap = box[0] - other[2]
            if overlap > 0.5 * height and -height < gap < 1.2 * height:
                merged[i] = (min(box[0], other[0]), min(box[1], other[1]),
                             max(box[2], other[2]), max(box[3], other[3]))
                break
        else:
            merged.append(box)
    return merged


class PlateReader:
    """PP-OCRv4 detection and recognition with Oko's plate rules; thread-safe calls."""

    def __init__(self, config: ReaderConfig | None = None) -> None:
        self.config = config or ReaderConfig()
        root = models_dir()
        # rapidocr and onnxruntime (tens of MB) load only here
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector  # type: ignore[import-untyped]
        from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer  # type: ignore[import-untyped]

        threads = {"intra_op_num_threads": self.config.threads, "inter_op_num_threads": 1,
                   "use_cuda": False, "use_dml": False}
        self._det = TextDetector({
            **threads, "model_path": str(root / DET_MODEL),
            "limit_side_len": self.config.det_max_side, "limit_type": "max",
            "std": [0.5, 0.5, 0.5], "mean": [0.5, 0.5, 0.5], "thresh": 0.3,
            "box_thresh": 0.5, "max_candidates": 100, "unclip_ratio": 1.6,
            "use_dilation": True, "score_mode": "fast"})
        self._rec = TextRecognizer({
            **threads, "model_path": str(root / REC_MODEL),
            "rec_img_shape": [3, 48, 320], "rec_batch_num": 6})
        self._lock = threading.Lock()
        self.identity = model_identity()
        self.key = reader_key(self.config)

    def candidates(self, image: Image.Image) -> list[tuple[int, int, int, int]]:
        """Plate-shaped text boxes (x, y, w, h) in ``image``, best-shaped first."""
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        with self._lock:
            found, _elapsed = self._det(bgr)
        if found is None or len(found) == 0:
            return []
        boxes = [(float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()),
                  float(q[:, 1].max())) for q in found]
        out: list[tuple[int, int, int, int]] = []
        for x0, y0, x1, y1 in _merge_boxes(boxes):
            w, h = x1 - x0, y1 - y0
            if h < self.config.min_height_px or not (
                    self.config.min_aspect <= w / max(h, 1.0) <= self.config.max_aspect):
                continue
            out.append((round(x0), round(y0), round(w), round(h)))
        return out[: self.config.max_candidates]

    def crop(self, image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
        """The box with a margin; with ``rec_height``, upscaled until it is that tall (the
        recogniser itself scales every crop to 48 px with linear interpolation, which
        read small plates better than a Lanczos upscale before it)."""
        x, y, w, h = box
        pad = max(2, round(h * self.config.margin))
        wide = max(3, round(h * self.config.side_margin))  # thin end glyphs (I, 1) survive
        region = image.convert("RGB").crop((max(0, x - wide), max(0, y - pad),
                                            min(image.width, x + w + wide),
                                            min(image.height, y + h + pad)))
        if self.config.rec_height and region.height < self.config.rec_height:
            scale = self.config.rec_height / max(region.height, 1)
            region = region.resize((max(1, round(region.width * scale)),
                                    self.config.rec_height), Image.Resampling.LANCZOS)
        return region

    def recognise(self, crops: list[Image.Image]) -> list[tuple[str, float]]:
        """Raw text and confidence of each crop."""
        if not crops:
            return []
        if self.config.stretch != 1.0:  # the stored crop stays as cut; only the input widens
            crops = [c.resize((max(1, round(c.width * self.config.stretch)), c.height),
                              Image.Resampling.BICUBIC) for c in crops]
        arrays = [np.ascontiguousarray(np.asarray(c)[:, :, ::-1]) for c in crops]
        with self._lock:
            results, _elapsed = self._rec(arrays)
        return [(str(text), float(score)) for text, score in results]

    def source_crop(self, image: Image.Image, source: Image.Image,
                    box: tuple[int, int, int, int]) -> Image.Image:
        """The box found in ``image`` cut from ``source``, the same frame at a higher
        resolution (the original), with the same margins in source pixels."""
        sx, sy = source.width / image.width, source.height / image.height
        x, y, w, h = box
        region = self.crop(source, (round(x * sx), round(y * sy), max(1, round(w * sx)),
                                    max(1, round(h * sy))))
        if region.height > REC_INPUT_HEIGHT:  # shrink with an area filter, not the
            scale = REC_INPUT_HEIGHT / region.height  # recogniser's aliasing linear resize
            region = region.resize((max(1, round(region.width * scale)), REC_INPUT_HEIGHT),
                                   Image.Resampling.BOX)
        return region

    def read(self, image: Image.Image, stats: ReadStats | None = None,
             source: Image.Image | Callable[[], Image.Image | None] | None = None,
             ) -> list[PlateRead]:
        """Every grammar-fitting plate read in ``image`` (at most one per box).

        The detector runs on ``image`` (the stored copy); with ``source`` (the same frame
        at full resolution, or a function decoding it, called only when there are
        candidates) the crops are cut from it, so small plates keep their pixels.
        ``box`` stays in ``image`` pixels.
        """
        stats = stats if stats is not None else ReadStats()
        stats.frames += 1
        boxes = self.candidates(image)
        stats.candidates += len(boxes)
        full = source() if callable(source) and boxes else source
        if isinstance(full, Image.Image) and full.width > image.width:
            stats.full_resolution += 1
            crops = [self.source_crop(image, full, box) for box in boxes]
        else:
            crops = [self.crop(image, box) for box in boxes]
        reads: list[PlateRead] = []
        for box, crop, (raw, score) in zip(boxes, crops, self.recognise(crops), strict=True):
            stats.recognised += 1
            fitted = fit(raw)
            if fitted is None or score < self.config.min_confidence:
                stats.rejected_by_grammar += fitted is None
                continue
            reads.append(PlateRead(text=fitted.text, raw=raw, format=fitted.format,
                                   confidence=round(score * (0.95 ** fitted.fixes), 4),
                                   box=box, crop=crop))
        return reads


__all__ = [
    "DET_MODEL",
    "PACKAGE",
    "REC_MODEL",
    "PlateRead",
    "PlateReader",
    "ReadStats",
    "ReaderConfig",
    "model_identity",
    "models_dir",
    "reader_key",
]
