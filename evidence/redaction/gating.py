"""Change-gated detection: on a fixed camera, look again only where the picture changed.

A face (or plate) cannot appear, move or vanish without the pixels around it changing.
So, per scanned frame, for each detector:

1. The frame's luma is averaged over ``BLOCK`` x ``BLOCK`` pixel blocks and compared
   with the *reference*: each block's luma when the detector last looked at it (not the
   previous frame, so a slow drift below the threshold cannot add up unseen). A block
   changed when its mean moved by more than ``THRESHOLD`` grey levels (sensor grain and
   compression noise move a 4x4 mean by well under one level; a face moving or
   appearing moves it by tens). A ``TILE`` x ``TILE`` tile changed when one of its
   blocks did.
2. The changed tiles grow by ``MARGIN`` pixels of context on every side, plus the box of
   every live detection touching them padded by ``TRACK_PAD`` of its size, so a
   detection being looked at again is looked at whole. Each connected group becomes a
   crop, snapped outwards to the detector's stride (32 px for CenterFace, 64 for the
   plate detector at half size) and merged with any crop it overlaps.
3. The detector runs at full resolution on each crop (both detectors are fully
   convolutional, so a crop is the same computation as the frame's pixels there; the
   input buffers are reused per size). Detections inside a crop replace the ones that
   were there; those elsewhere carry over unchanged; the two are merged by NMS.
4. A full-frame pass instead on the first frame, on every ``REFRESH_EVERY``-th scanned
   frame, and whenever the crops would cover more than ``FULL_PASS_SHARE`` of the frame
   (a lighting change, a moved camera, heavy noise), so nothing can drift.

``GateParameters.as_dict`` and ``ChangeGate.stats`` go on the redaction's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from evidence.redaction.detect import NMS_IOU, Detection, Detector, Frame, nms
from evidence.redaction.picture import Picture

BLOCK = 4
TILE = 16
THRESHOLD = 6.0
MARGIN = 48
TRACK_PAD = 0.5
REFRESH_EVERY = 50
FULL_PASS_SHARE = 0.5
Rect = tuple[int, int, int, int]
"""x1, y1, x2, y2 in pixels, x2 and y2 exclusive."""


@dataclass(frozen=True)
class GateParameters:
    """How the gate decides where to look; recorded with every redaction."""

    stride: int = 32
    block: int = BLOCK
    tile: int = TILE
    threshold: float = THRESHOLD
    margin: int = MARGIN
    track_pad: float = TRACK_PAD
    refresh_every: int = REFRESH_EVERY
    full_pass_share: float = FULL_PASS_SHARE

    def as_dict(self) -> dict[str, Any]:
        return {"method": "change-gated", "luma_block_px": self.block,
                "tile_px": self.tile, "threshold_grey_levels": self.threshold,
                "margin_px": self.margin, "track_pad": self.track_pad,
                "crop_stride_px": self.stride, "refresh_every_scanned_frames":
                    self.refresh_every, "full_pass_when_changed_share_over":
                    self.full_pass_share, "reference": "luma when last looked at"}


def luma_blocks(frame: Frame | Picture, block: int, tile: int) -> npt.NDArray[np.float32]:
    """The frame's luma averaged over ``block`` x ``block`` blocks, the frame padded (edge
    pixels repeated) to a multiple of ``tile`` first. For a decoded ``Picture`` this is
    its Y plane (BT.601, limited range) stretched to 0-255 grey levels, so the threshold
    means the same as on an RGB frame's luma."""
    import cv2

    grey = frame.y if isinstance(frame, Picture) else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    pad_h, pad_w = -height % tile, -width % tile
    if pad_h or pad_w:
        grey = cv2.copyMakeBorder(grey, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
    small = np.asarray(cv2.resize(grey, ((width + pad_w) // block,
                                         (height + pad_h) // block),
                                  interpolation=cv2.INTER_AREA), dtype=np.float32)
    if isinstance(frame, Picture):
        small = (small - 16.0) * np.float32(255 / 219)
    return small


def _snap(low: int, high: int, stride: int, limit: int) -> tuple[int, int]:
    """``[low, high)`` grown to multiples of ``stride``, clipped to ``[0, limit)``."""
    return max(0, low // stride * stride), min(limit, -(-high // stride) * stride)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def merge_rects(rects: list[Rect]) -> list[Rect]:
    """Overlapping rectangles replaced by their bounding rectangle, until none overlap."""
    result = list(rects)
    changed = True
    while changed:
        changed = False
        merged: list[Rect] = []
        for rect in result:
            for i, other in enumerate(merged):
                if _overlap(rect, other):
                    merged[i] = (min(rect[0], other[0]), min(rect[1], other[1]),
                                 max(rect[2], other[2]), max(rect[3], other[3]))
                    changed = True
                    break
            else:
                merged.append(rect)
        result = merged
    return sorted(result)


def _inside(d: Detection, rect: Rect) -> bool:
    return rect[0] <= d.x1 and rect[1] <= d.y1 and d.x2 <= rect[2] and d.y2 <= rect[3]


@dataclass
class GateStats:
    scanned: int = 0
    full_passes: int = 0
    crop_passes: int = 0
    unchanged: int = 0
    crops: int = 0
    pixels_detected: int = 0
    pixels_total: int = 0

    def as_dict(self) -> dict[str, Any]:
        share = self.pixels_detected / self.pixels_total if self.pixels_total else 0.0
        return {"scanned_frames": self.scanned, "full_frame_passes": self.full_passes,
                "crop_passes": self.crop_passes, "unchanged_frames": self.unchanged,
                "crops": self.crops, "share_of_pixels_detected_on": round(share, 4)}


@dataclass
class ChangeGate:
    """One detector over one clip's frames, looking only where they changed."""

    detector: Detector
    parameters: GateParameters = field(default_factory=GateParameters)
    stats: GateStats = field(default_factory=GateStats)
    _reference: npt.NDArray[np.float32] | None = None
    _detections: list[Detection] = field(default_factory=list)

    def detect(self, frame: Frame | Picture) -> list[Detection]:
        """This frame's detections: from a full pass, from crops, or carried over. A
        decoded ``Picture`` is converted to RGB only where the detector runs; an RGB
        frame is taken as it is."""
        p = self.parameters
        height, width = frame.shape[:2]
        luma = luma_blocks(frame, p.block, p.tile)
        refresh = self.stats.scanned % max(1, p.refresh_every) == 0
        self.stats.scanned += 1
        self.stats.pixels_total += height * width
        if self._reference is None or self._reference.shape != luma.shape or refresh:
            return self._full(frame, luma)
        crops = self.crops(luma, height=height, width=width)
        area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in crops)
        if area > p.full_pass_share * height * width:
            return self._full(frame, luma)
        if not crops:
            self.stats.unchanged += 1
            return list(self._detections)
        self.stats.crop_passes += 1
        self.stats.crops += len(crops)
        self.stats.pixels_detected += area
        found: list[Detection] = []
        for x1, y1, x2, y2 in crops:
            crop = frame.rgb(x1, y1, x2, y2) if isinstance(frame, Picture) \
                else frame[y1:y2, x1:x2]
            for d in self.detector.detect(crop, frame_width=width):
                found.append(Detection(d.x1 + x1, d.y1 + y1, d.x2 + x1, d.y2 + y1, d.score))
            b = p.block
            self._reference[y1 // b:-(-y2 // b), x1 // b:-(-x2 // b)] = \
                luma[y1 // b:-(-y2 // b), x1 // b:-(-x2 // b)]
        carried = [d for d in self._detections if not any(_inside(d, c) for c in crops)]
        self._detections = _merge(found, carried)
        return list(self._detections)

    def crops(self, luma: npt.NDArray[np.float32], *, height: int, width: int) -> list[Rect]:
        """The rectangles to look at again (see the module docstring, step 2)."""
        import cv2

        p = self.parameters
        assert self._reference is not None
        per_tile = p.tile // p.block
        changed = np.abs(luma - self._reference) > p.threshold
        rows, cols = changed.shape[0] // per_tile, changed.shape[1] // per_tile
        tiles = changed.reshape(rows, per_tile, cols, per_tile).any(axis=(1, 3))
        if not tiles.any():
            return []
        grow = -(-p.margin // p.tile)
        mask = cv2.dilate(tiles.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1),
                                                          np.uint8))
        for d in self._detections:
            w, h = d.x2 - d.x1, d.y2 - d.y1
            tx1 = max(0, int((d.x1 - p.track_pad * w) // p.tile))
            ty1 = max(0, int((d.y1 - p.track_pad * h) // p.tile))
            tx2 = min(cols, int(-(-(d.x2 + p.track_pad * w) // p.tile)))
            ty2 = min(rows, int(-(-(d.y2 + p.track_pad * h) // p.tile)))
            if mask[int(d.y1 // p.tile):int(-(-d.y2 // p.tile)),
                    int(d.x1 // p.tile):int(-(-d.x2 // p.tile))].any():
                mask[ty1:ty2, tx1:tx2] = 1
        count, _labels, boxes, _centroids = cv2.connectedComponentsWithStats(
            mask, connectivity=8)
        rects: list[Rect] = []
        for left, top, w_tiles, h_tiles, _area in boxes[1:count]:
            x1, x2 = _snap(int(left) * p.tile, int(left + w_tiles) * p.tile, p.stride, width)
            y1, y2 = _snap(int(top) * p.tile, int(top + h_tiles) * p.tile, p.stride, height)
            rects.append((x1, y1, x2, y2))
        return merge_rects(rects)

    def _full(self, frame: Frame | Picture, luma: npt.NDArray[np.float32]
              ) -> list[Detection]:
        height, width = frame.shape[:2]
        self.stats.full_passes += 1
        self.stats.pixels_detected += height * width
        self._reference = luma.copy()
        self._detections = list(self.detector.detect(
            frame.rgb() if isinstance(frame, Picture) else frame))
        return list(self._detections)


def _merge(found: list[Detection], carried: list[Detection]) -> list[Detection]:
    every = [*found, *carried]
    if len(every) < 2:
        return every
    boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in every], np.float32)
    scores = np.array([d.score + (1.0 if i < len(found) else 0.0)  # fresh ones first
                       for i, d in enumerate(every)], np.float32)
    return [every[i] for i in sorted(nms(boxes, scores, NMS_IOU))]


__all__ = ["BLOCK", "FULL_PASS_SHARE", "MARGIN", "REFRESH_EVERY", "THRESHOLD", "TILE",
           "TRACK_PAD", "ChangeGate", "GateParameters", "GateStats", "luma_blocks",
           "merge_rects"]
