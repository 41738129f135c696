"""Motion gating: is a frame different enough from the last embedded frame to embed again?

Both frames are reduced to 32x32 RGB by area averaging (which also averages away sensor
and compression noise), then compared cell by cell, taking the largest change of the
three channels (grayscale alone misses a red car on a road of the same brightness).
The score is the largest mean of those changes over the 8x8 grid of 4x4-cell blocks,
normalised to 0..1. Taking the busiest block rather than the whole-frame mean keeps a
small moving object (a person, a car far away) from being diluted by the still scene.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

GRID_SIDE = 32
BLOCK_SIDE = 4


def motion_signature(image: Image.Image) -> np.ndarray:
    """A 32x32x3 float32 RGB thumbnail in 0..1, the only thing gating compares."""
    small = image.convert("RGB").resize((GRID_SIDE, GRID_SIDE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def motion_score(current: np.ndarray, reference: np.ndarray | None) -> float:
    """How much ``current`` changed against ``reference`` (signatures), 0..1.

    With no reference (the camera's first frame) the score is 1.0: always embed.
    """
    if reference is None:
        return 1.0
    diff = np.abs(current - reference).max(axis=2)
    blocks = diff.reshape(GRID_SIDE // BLOCK_SIDE, BLOCK_SIDE, GRID_SIDE // BLOCK_SIDE, BLOCK_SIDE)
    return float(blocks.mean(axis=(1, 3)).max())


def is_static(score: float, *, threshold: float) -> bool:
    """True when the frame may reuse the reference embedding instead of being embedded."""
    return score < threshold
