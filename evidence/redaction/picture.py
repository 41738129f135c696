"""A decoded frame as its yuv420p (I420) planes, what the detectors and the mask read.

The decoder's own planes are used as they are: the change gate reads the luma (Y) plane,
the detectors get RGB only for the crops they run on (BT.601, converted by OpenCV), and
the renderer masks the three planes inside the boxes and hands them to x264 unchanged,
so no whole frame is ever converted to RGB and back. yuv420p needs an even width and
height (each chroma sample covers 2x2 pixels); other sizes are refused by
``check_even_size``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from storage.errors import InvalidInputError

I420 = npt.NDArray[np.uint8]
"""A yuv420p frame packed as one array: height * 3 / 2 rows of ``width`` bytes (Y, then
U and V, each ``height / 2`` x ``width / 2``, two chroma rows per array row)."""
Rgb = npt.NDArray[np.uint8]


def check_even_size(width: int, height: int, name: str) -> None:
    """Raises ``InvalidInputError`` unless both sides are even (yuv420p, H.264 4:2:0)."""
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise InvalidInputError(
            f"{name} is {width}x{height}: a redacted copy is H.264 with 4:2:0 chroma, "
            "which needs an even width and height, so this clip cannot be redacted.")


@dataclass(frozen=True)
class Picture:
    """One frame's I420 planes (views into ``data``, never copies)."""

    data: I420

    @property
    def height(self) -> int:
        return int(self.data.shape[0]) * 2 // 3

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def y(self) -> npt.NDArray[np.uint8]:
        return self.data[:self.height]

    def chroma(self, index: int) -> npt.NDArray[np.uint8]:
        """U (0) or V (1), ``height / 2`` x ``width / 2`` (a view)."""
        h, w = self.height, self.width
        quarter = h * w // 4
        flat = self.data.reshape(-1)
        start = h * w + index * quarter
        return flat[start:start + quarter].reshape(h // 2, w // 2)

    @classmethod
    def from_rgb(cls, frame: Rgb) -> Picture:
        """The frame as the decoder would give it (BT.601, limited range); even sizes."""
        import cv2

        height, width = frame.shape[:2]
        check_even_size(width, height, "The frame")
        return cls(np.asarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), np.uint8))

    def rgb(self, x1: int = 0, y1: int = 0, x2: int | None = None,
            y2: int | None = None) -> Rgb:
        """RGB of the region ``[x1, x2) x [y1, y2)`` (the whole frame by default)."""
        import cv2

        x2 = self.width if x2 is None else x2
        y2 = self.height if y2 is None else y2
        ex1, ey1 = x1 // 2 * 2, y1 // 2 * 2  # the region grown to whole chroma samples
        ex2, ey2 = min(self.width, -(-x2 // 2) * 2), min(self.height, -(-y2 // 2) * 2)
        if (ex1, ey1, ex2, ey2) == (0, 0, self.width, self.height):
            packed = self.data
        else:
            w, h = ex2 - ex1, ey2 - ey1
            packed = np.empty((h * 3 // 2, w), np.uint8)
            flat = packed.reshape(-1)
            flat[:h * w] = self.y[ey1:ey2, ex1:ex2].reshape(-1)
            for index in (0, 1):
                start = h * w + index * (h * w // 4)
                flat[start:start + h * w // 4] = self.chroma(index)[
                    ey1 // 2:ey2 // 2, ex1 // 2:ex2 // 2].reshape(-1)
        rgb = np.asarray(cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_I420), np.uint8)
        return rgb[y1 - ey1:y2 - ey1, x1 - ex1:x2 - ex1]


__all__ = ["I420", "Picture", "check_even_size"]
