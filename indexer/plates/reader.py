"""Reading plates in one frame: detect text boxes, keep plate-shaped ones, recognise crops.

1. **Detect.** rapidocr's PP-OCRv4 text detector (DBNet) runs on the frame scaled so
   its longer side is at most ``det_max_side``: never the full frame at full size. Given
   the camera's previous read frame, it runs only on the regions that changed since
   (``changed_regions``: a grid of ``region_cell``-pixel cells, each changed where a
   channel's mean moved by more than ``region_threshold``, grown by ``region_pad`` and
   joined); with no previous frame, or when the changes cover more than
   ``region_max_share`` of the frame, on the whole frame.
2. **Merge and shape-check.** Boxes on one line with small gaps are merged (a detector
   may split "AE 1234 KX" in three); only boxes with a plate's aspect ratio and at
   least ``min_height_px`` tall are kept.
3. **Crop and upscale.** Each candidate is cut with a margin and upscaled (Lanczos)
   until it is ``rec_height`` pixels tall, then recognised by PP-OCRv4's recogniser (at
   least ``rec_min_width`` wide; rapidocr pads each crop to that width).
4. **Grammar.** A read counts only if it fits ``indexer.plates.grammar``.

onnxruntime's threads sleep between operators (``spinning`` off): on 2 shared cores a
spinning pool burns CPU that other readers and ingest need. onnxruntime and rapidocr
are imported only when a ``PlateReader`` is built, so the light commands never load them.
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
from storage.blobstore import sha256_file
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
    spinning: bool = False  # onnxruntime's intra-op threads busy-wait between operators
    rec_min_width: int = 320  # the recogniser's input is at least this wide (narrower
    # inputs, 160 or 240, cost 20 % less but lost a plate in the benchmark)
    regions: bool = True  # detect only where the frame changed since the previous read
    region_cell: int = 8  # px of the stored copy per motion cell
    region_threshold: float = 0.06  # a cell's largest channel change (0..1) that counts
    region_pad: int = 16  # px added around each changed area
    region_max_share: float = 0.6  # changes over more of the frame: detect on all of it

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
    region_frames: int = 0  # frames detected only where they changed
    region_share: float = 0.0  # summed share of those frames the detector saw


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


_file_sha256 = cache(sha256_file)  # the shipped model files do not change while we run


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


Box = tuple[int, int, int, int]  # x, y, w, h in the stored copy's pixels
DET_ALIGN = 32  # the detector's input sides are multiples of this


def _signature(image: Image.Image, cell: int) -> np.ndarray:
    grid = (max(1, image.width // cell), max(1, image.height // cell))
    small = image.convert("RGB").resize(grid, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _aligned(start: int, end: int, limit: int) -> tuple[int, int]:
    """[start, end) grown to a multiple of ``DET_ALIGN`` (at least 2 of them) inside
    [0, limit), so the detector sees the region at its own scale."""
    want = max(2 * DET_ALIGN, -(-(end - start) // DET_ALIGN) * DET_ALIGN)
    if want >= limit:
        return 0, limit
    grow = want - (end - start)
    start = max(0, start - grow // 2)
    end = start + want
    if end > limit:
        start, end = limit - want, limit
    return start, end


def _join(boxes: list[list[int]]) -> list[list[int]]:
    """Overlapping boxes [x0, y0, x1, y1] joined until none overlap."""
    joined = True
    while joined:
        joined = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]),
                                max(a[3], b[3])]
                    del boxes[j]
                    joined = True
                    break
            if joined:
                break
    return boxes


def changed_regions(image: Image.Image, previous: Image.Image | None,
                    config: ReaderConfig) -> list[Box] | None:
    """The regions of ``image`` that changed since ``previous`` (the camera's last read
    frame), aligned for the detector; ``[]`` when nothing changed, None when the whole
    frame must be read (no previous frame, another size, regions off, or changes over
    more than ``region_max_share`` of it)."""
    if not config.regions or previous is None or previous.size != image.size:
        return None
    from scipy import ndimage  # type: ignore[import-untyped]

    cell = config.region_cell
    diff = np.abs(_signature(image, cell) - _signature(previous, cell)).max(axis=2)
    labels, count = ndimage.label(diff > config.region_threshold)
    boxes: list[list[int]] = []
    for rows, cols in ndimage.find_objects(labels)[:count]:
        x0 = max(0, cols.start * cell - config.region_pad)
        y0 = max(0, rows.start * cell - config.region_pad)
        x1 = min(image.width, cols.stop * cell + config.region_pad)
        y1 = min(image.height, rows.stop * cell + config.region_pad)
        (x0, x1), (y0, y1) = _aligned(x0, x1, image.width), _aligned(y0, y1, image.height)
        boxes.append([x0, y0, x1, y1])
    boxes = _join(boxes)
    if sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) > (
            config.region_max_share * image.width * image.height):
        return None
    return [(b[0], b[1], b[2] - b[0], b[3] - b[1]) for b in boxes]


def outside(box: Box, regions: list[Box]) -> bool:
    """True when ``box`` touches none of ``regions`` (its pixels did not change)."""
    x, y, w, h = box
    return all(x + w <= rx or rx + rw <= x or y + h <= ry or ry + rh <= y
               for rx, ry, rw, rh in regions)


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


def _sleeping_session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session like rapidocr's whose pool threads sleep when idle."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options,
                                providers=["CPUExecutionProvider"])


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
        width = self.config.rec_min_width
        self._det = TextDetector({
            **threads, "model_path": str(root / DET_MODEL),
            "limit_side_len": self.config.det_max_side, "limit_type": "max",
            "std": [0.5, 0.5, 0.5], "mean": [0.5, 0.5, 0.5], "thresh": 0.3,
            "box_thresh": 0.5, "max_candidates": 100, "unclip_ratio": 1.6,
            "use_dilation": True, "score_mode": "fast"})
        self._rec = TextRecognizer({
            **threads, "model_path": str(root / REC_MODEL),
            "rec_img_shape": [3, REC_INPUT_HEIGHT, width], "rec_batch_num": 6})
        if not self.config.spinning:
            self._det.infer.session = _sleeping_session(root / DET_MODEL, self.config.threads)
            self._rec.session.session = _sleeping_session(root / REC_MODEL, self.config.threads)
        self._lock = threading.Lock()
        self.identity = model_identity()
        self.key = reader_key(self.config)

    def changed_regions(self, image: Image.Image,
                        previous: Image.Image | None) -> list[Box] | None:
        """``changed_regions`` with this reader's parameters."""
        return changed_regions(image, previous, self.config)

    def _detect(self, bgr: np.ndarray) -> list[tuple[float, float, float, float]]:
        scale = 1.0
        side = max(bgr.shape[0], bgr.shape[1])
        if side > self.config.det_max_side:  # rapidocr's "max" limit never shrinks < 960
            import cv2

            scale = self.config.det_max_side / side
            bgr = np.asarray(cv2.resize(bgr, (max(1, round(bgr.shape[1] * scale)),
                                              max(1, round(bgr.shape[0] * scale))),
                                        interpolation=cv2.INTER_AREA), dtype=np.uint8)
        with self._lock:
            found, _elapsed = self._det(bgr)
        if found is None or len(found) == 0:
            return []
        return [(float(q[:, 0].min()) / scale, float(q[:, 1].min()) / scale,
                 float(q[:, 0].max()) / scale, float(q[:, 1].max()) / scale) for q in found]

    def candidates(self, image: Image.Image,
                   regions: list[Box] | None = None) -> list[Box]:
        """Plate-shaped text boxes (x, y, w, h) in ``image``, best-shaped first; with
        ``regions``, the detector runs only on those parts of it."""
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        if regions is None:
            boxes = self._detect(bgr)
        else:
            boxes = []
            for rx, ry, rw, rh in regions:
                boxes += [(x0 + rx, y0 + ry, x1 + rx, y1 + ry) for x0, y0, x1, y1 in
                          self._detect(np.ascontiguousarray(bgr[ry:ry + rh, rx:rx + rw]))]
        out: list[Box] = []
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
             regions: list[Box] | None = None) -> list[PlateRead]:
        """Every grammar-fitting plate read in ``image`` (at most one per box).

        The detector runs on ``image`` (the stored copy), only on ``regions`` when given
        (``changed_regions``); with ``source`` (the same frame at full resolution, or a
        function decoding it, called only when there are candidates) the crops are cut
        from it, so small plates keep their pixels. ``box`` stays in ``image`` pixels.
        """
        stats = stats if stats is not None else ReadStats()
        stats.frames += 1
        if regions is not None:
            stats.region_frames += 1
            stats.region_share += sum(w * h for _x, _y, w, h in regions) / (
                image.width * image.height)
        boxes = self.candidates(image, regions)
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
    "Box",
    "PlateRead",
    "PlateReader",
    "ReadStats",
    "ReaderConfig",
    "changed_regions",
    "model_identity",
    "models_dir",
    "outside",
    "reader_key",
]
