"""An in-memory LRU of text-query embeddings, in front of the query embedder.

Investigators repeat queries ("червоний автомобіль", then the same words with another
camera or night) and the text tower costs tens of milliseconds a query on CPU, while a
cache hit costs microseconds. The cache is keyed by (weights SHA-256, normalised text):

1. the text is normalised: Unicode NFC, case-folded, whitespace collapsed to single
   spaces and stripped (``normalise_query``);
2. a hit returns the stored vector; misses are encoded together, in one batch, from the
   *normalised* text, so a key always maps to one vector whatever spelling filled it
   (open_clip's tokenizer lower-cases and collapses whitespace itself, so this is the
   vector the raw text would give, up to the few letters where casefold and lower differ);
3. the least recently used entry goes when ``max_entries`` is reached.

Image queries are not cached (an upload is rarely sent twice); they pass through. The
cache is thread-safe: API requests run on a thread pool.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

__all__ = ["CacheStats", "CachedQueryEmbedder", "QueryCache", "normalise_query"]


class _QueryEncoder(Protocol):
    """What the wrapper needs (``indexer.embeddings.ClipEmbedder`` or a test double)."""

    @property
    def preset(self) -> str: ...
    weights_sha256: str
    dim: int

    def encode_images(self, images: list[Image.Image]) -> np.ndarray: ...
    def encode_text(self, texts: list[str]) -> np.ndarray: ...


def normalise_query(text: str) -> str:
    """NFC, case-folded, whitespace collapsed: the cache's notion of "the same query"."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return " ".join(folded.split())


@dataclass(frozen=True)
class CacheStats:
    entries: int
    max_entries: int
    hits: int
    misses: int


class QueryCache:
    """A bounded, thread-safe LRU from (weights SHA-256, normalised text) to a vector."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be 0 (no cache) or more")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, weights_sha256: str, key: str) -> np.ndarray | None:
        with self._lock:
            vector = self._entries.get((weights_sha256, key))
            if vector is None:
                self._misses += 1
                return None
            self._entries.move_to_end((weights_sha256, key))
            self._hits += 1
            return vector

    def put(self, weights_sha256: str, key: str, vector: np.ndarray) -> None:
        if self.max_entries == 0:
            return
        stored = np.array(vector, dtype=np.float32, copy=True)
        stored.flags.writeable = False  # shared between requests: nobody may change it
        with self._lock:
            self._entries[(weights_sha256, key)] = stored
            self._entries.move_to_end((weights_sha256, key))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(entries=len(self._entries), max_entries=self.max_entries,
                              hits=self._hits, misses=self._misses)


class CachedQueryEmbedder:
    """``inner`` with its text queries answered from ``cache`` where it can.

    It has the same shape as the embedder it wraps (``preset``, ``weights_sha256``,
    ``dim``, ``encode_text``, ``encode_images``), so search uses it unchanged. Errors
    from ``inner`` propagate and nothing is cached for the failed batch.
    """

    def __init__(self, inner: _QueryEncoder, cache: QueryCache) -> None:
        self.inner = inner
        self.cache = cache
        self.weights_sha256 = inner.weights_sha256
        self.dim = inner.dim

    @property
    def preset(self) -> str:
        return self.inner.preset

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.inner.encode_images(images)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, in order; repeated and cached texts are encoded once or not at all."""
        return self._encode(texts)[0]

    def encode_query_text(self, text: str) -> tuple[np.ndarray, bool]:
        """One text's vector, and whether it came from the cache (for the provenance)."""
        rows, hits = self._encode([text])
        return rows[0], hits > 0

    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), 0
        keys = [normalise_query(text) for text in texts]
        found: dict[str, np.ndarray] = {}
        for key in dict.fromkeys(keys):
            vector = self.cache.get(self.weights_sha256, key)
            if vector is not None:
                found[key] = vector
        hits = len(found)
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        if missing:
            encoded = self.inner.encode_text(missing)
            for key, vector in zip(missing, encoded, strict=True):
                self.cache.put(self.weights_sha256, key, vector)
                found[key] = vector
        rows = np.ascontiguousarray(np.stack([found[key] for key in keys]), dtype=np.float32)
        return rows, hits
