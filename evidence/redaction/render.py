"""Masking the redacted boxes of a frame: a strong blur (the default) or a solid fill.

Both are irreversible (the box keeps only a few numbers per cell of its own) and
idempotent: redacting a redacted frame with the same boxes changes nothing.

- ``blur``: the box is cut into a grid of at most ``CELLS`` cells along its shorter side;
  each cell keeps only its mean colour, quantised to a step of ``LEVEL_STEP``. The cells
  are smoothed into each other with a Gaussian (sigma half a cell), then each cell is
  shifted so its mean is its quantised mean again. A second pass therefore finds the
  same quantised means (pixel rounding moves a cell's mean by at most half a level, and
  a level is ``LEVEL_STEP`` wide) and draws the same pixels.
- ``fill``: the box becomes flat black.

Overlapping boxes are merged first into the box that covers them, so each pixel
belongs to one mask and the passes cannot disturb each other.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from evidence.redaction.detect import Frame
from evidence.redaction.tracking import Box
from storage.errors import InvalidInputError

STYLES = ("blur", "fill")
CELLS = 4
LEVEL_STEP = 8
TOP_LEVEL = 248  # the highest multiple of LEVEL_STEP that leaves room below 255


def merge_overlapping(boxes: Iterable[Box]) -> list[Box]:
    """Boxes with every overlapping group replaced by its bounding box, sorted."""
    merged = [(b.x, b.y, b.x + b.w, b.y + b.h) for b in boxes if b.w > 0 and b.h > 0]
    changed = True
    while changed:
        changed = False
        result: list[tuple[int, int, int, int]] = []
        for box in merged:
            for i, other in enumerate(result):
                if box[0] < other[2] and other[0] < box[2] and box[1] < other[3] \
                        and other[1] < box[3]:
                    result[i] = (min(box[0], other[0]), min(box[1], other[1]),
                                 max(box[2], other[2]), max(box[3], other[3]))
                    changed = True
                    break
            else:
                result.append(box)
        merged = result
    return sorted(Box(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in merged)


def _edges(length: int, cells: int) -> npt.NDArray[np.intp]:
    return np.unique(np.linspace(0, length, cells + 1).round().astype(np.intp))


def _cell_means(region: npt.NDArray[np.float64], ys: npt.NDArray[np.intp],
                xs: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
    sums = np.add.reduceat(np.add.reduceat(region, ys[:-1], axis=0), xs[:-1], axis=1)
    counts = np.outer(np.diff(ys), np.diff(xs)).astype(np.float64)
    result: npt.NDArray[np.float64] = sums / counts[:, :, None]
    return result


def blur_region(region: Frame) -> Frame:
    """The blurred box (see the module docstring); same shape, uint8."""
    import cv2

    height, width = region.shape[:2]
    cell = max(1.0, min(height, width) / CELLS)
    ys = _edges(height, max(1, round(height / cell)))
    xs = _edges(width, max(1, round(width / cell)))
    means = _cell_means(region.astype(np.float64), ys, xs)
    levels = np.clip(np.round(means / LEVEL_STEP) * LEVEL_STEP, 0, TOP_LEVEL)
    rows = np.repeat(np.arange(len(ys) - 1), np.diff(ys))
    cols = np.repeat(np.arange(len(xs) - 1), np.diff(xs))
    flat = levels[rows][:, cols].astype(np.float32)
    smooth = cv2.GaussianBlur(flat, (0, 0), sigmaX=cell / 2, sigmaY=cell / 2,
                              borderType=cv2.BORDER_REPLICATE).astype(np.float64)
    shift = levels - _cell_means(smooth, ys, xs)
    out = smooth + shift[rows][:, cols]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def redact_frame(frame: Frame, boxes: Iterable[Box], *, style: str = "blur") -> Frame:
    """A copy of ``frame`` with every box masked. Raises ``InvalidInputError`` for an
    unknown style."""
    if style not in STYLES:
        raise InvalidInputError(f"The redaction style {style!r} is not one of "
                                f"{', '.join(STYLES)}.")
    out = frame.copy()
    height, width = frame.shape[:2]
    for box in merge_overlapping(boxes):
        x1, y1 = max(0, box.x), max(0, box.y)
        x2, y2 = min(width, box.x + box.w), min(height, box.y + box.h)
        if x2 <= x1 or y2 <= y1:
            continue
        if style == "fill":
            out[y1:y2, x1:x2] = 0
        else:
            out[y1:y2, x1:x2] = blur_region(out[y1:y2, x1:x2])
    return out


__all__ = ["CELLS", "LEVEL_STEP", "STYLES", "blur_region", "merge_overlapping",
           "redact_frame"]
