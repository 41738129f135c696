"""The storage form of an embedding: float32, little-endian, no header.

A leaf module (numpy only), so the embedding queue, the shard writer and search can all
read and write vectors without importing each other or the model code.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

VECTOR_DTYPE = "<f4"

Vector = npt.NDArray[np.float32]


def vector_to_bytes(vector: npt.ArrayLike) -> bytes:
    """Storage form of one embedding."""
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def vector_from_bytes(data: bytes) -> Vector:
    """A writable native float32 copy of a stored embedding."""
    return np.frombuffer(data, dtype=VECTOR_DTYPE).astype(np.float32)


def vector_view(data: bytes) -> npt.NDArray[np.float32]:
    """A read-only view of a stored embedding, for arithmetic that makes no copy."""
    view: npt.NDArray[np.float32] = np.frombuffer(data, dtype=VECTOR_DTYPE)
    return view


__all__ = ["VECTOR_DTYPE", "Vector", "vector_from_bytes", "vector_to_bytes", "vector_view"]
