"""The query-embedding LRU: hits, misses, normalisation, model hash, eviction, threads."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
from PIL import Image

from indexer.embeddings import build_unsafe_random_embedder
from indexer.query_cache import CachedQueryEmbedder, QueryCache, normalise_query


class CountingEmbedder:
    """A text tower stand-in: a deterministic vector per text, and a log of what it encoded."""

    preset = "test-tiny"
    dim = 8

    def __init__(self, weights_sha256: str = "a" * 64, *, fail: bool = False) -> None:
        self.weights_sha256 = weights_sha256
        self.fail = fail
        self.encoded: list[str] = []
        self.images = 0

    def encode_text(self, texts: list[str]) -> np.ndarray:
        if self.fail:
            raise RuntimeError("tower exploded")
        self.encoded.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(
                hashlib.sha256(f"{self.weights_sha256}|{text}".encode()).digest()[:8], "little")
            row = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            rows.append(row / np.linalg.norm(row))
        return np.stack(rows)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        self.images += len(images)
        return np.ones((len(images), self.dim), dtype=np.float32)


def test_normalise_query_nfc_casefold_whitespace() -> None:
    assert normalise_query("  Червоний\tАВТОМОБІЛЬ \n уночі ") == "червоний автомобіль уночі"
    assert normalise_query("Cafe\u0301") == normalise_query("café") == "café"
    assert normalise_query("STRASSE") == normalise_query("Straße") == "strasse"


def test_hit_returns_the_stored_vector_without_encoding_again() -> None:
    inner = CountingEmbedder()
    cache = QueryCache(16)
    cached = CachedQueryEmbedder(inner, cache)
    first = cached.encode_text(["Red car at night"])
    again = cached.encode_text(["  red CAR at   night"])
    assert inner.encoded == ["red car at night"]
    np.testing.assert_array_equal(first, again)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)


def test_batch_encodes_only_the_distinct_misses_in_order() -> None:
    inner = CountingEmbedder()
    cached = CachedQueryEmbedder(inner, QueryCache(16))
    cached.encode_text(["bus"])
    rows = cached.encode_text(["van", "bus", "VAN", "truck"])
    assert inner.encoded == ["bus", "van", "truck"]
    assert rows.shape == (4, 8) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[0], rows[2])
    np.testing.assert_array_equal(rows[1], inner.encode_text(["bus"])[0])


def test_other_model_hash_is_a_miss() -> None:
    cache = QueryCache(16)
    one, other = CountingEmbedder("a" * 64), CountingEmbedder("b" * 64)
    first = CachedQueryEmbedder(one, cache).encode_text(["white van"])
    second = CachedQueryEmbedder(other, cache).encode_text(["white van"])
    assert one.encoded == ["white van"] and other.encoded == ["white van"]
    assert not np.array_equal(first, second)
    assert cache.stats().entries == 2


def test_least_recently_used_entry_is_evicted() -> None:
    inner = CountingEmbedder()
    cache = QueryCache(2)
    cached = CachedQueryEmbedder(inner, cache)
    cached.encode_text(["one"])
    cached.encode_text(["two"])
    cached.encode_text(["one"])    # "one" is now the most recent
    cached.encode_text(["three"])  # evicts "two"
    assert cache.stats().entries == 2
    inner.encoded.clear()
    cached.encode_text(["one"])
    cached.encode_text(["three"])
    assert inner.encoded == []
    cached.encode_text(["two"])
    assert inner.encoded == ["two"]


def test_size_zero_caches_nothing() -> None:
    inner = CountingEmbedder()
    cache = QueryCache(0)
    cached = CachedQueryEmbedder(inner, cache)
    cached.encode_text(["bus"])
    cached.encode_text(["bus"])
    assert inner.encoded == ["bus", "bus"] and cache.stats().entries == 0
    with pytest.raises(ValueError, match="0 \\(no cache\\) or more"):
        QueryCache(-1)


def test_failure_propagates_and_caches_nothing() -> None:
    cache = QueryCache(4)
    with pytest.raises(RuntimeError, match="tower exploded"):
        CachedQueryEmbedder(CountingEmbedder(fail=True), cache).encode_text(["bus"])
    assert cache.stats().entries == 0


def test_callers_cannot_change_a_cached_vector() -> None:
    inner = CountingEmbedder()
    cached = CachedQueryEmbedder(inner, QueryCache(4))
    first = cached.encode_text(["bus"])
    first[0, :] = 0.0
    assert np.linalg.norm(cached.encode_text(["bus"])[0]) == pytest.approx(1.0, abs=1e-5)


def test_images_pass_through_uncached() -> None:
    inner = CountingEmbedder()
    cache = QueryCache(4)
    cached = CachedQueryEmbedder(inner, cache)
    image = Image.new("RGB", (8, 8))
    cached.encode_images([image])
    cached.encode_images([image])
    assert inner.images == 2 and cache.stats().entries == 0
    assert (cached.preset, cached.dim, cached.weights_sha256) == ("test-tiny", 8, "a" * 64)


def test_concurrent_queries_stay_bounded_and_consistent() -> None:
    inner = CountingEmbedder()
    cache = QueryCache(8)
    cached = CachedQueryEmbedder(inner, cache)
    expected = {f"q{i}": inner.encode_text([f"q{i}"])[0] for i in range(20)}
    errors: list[str] = []

    def worker(offset: int) -> None:
        for step in range(200):
            text = f"q{(offset + step) % 20}"
            if not np.array_equal(cached.encode_text([text])[0], expected[text]):
                errors.append(text)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = cache.stats()
    assert errors == [] and stats.entries == 8
    assert stats.hits + stats.misses == 800


def test_real_text_tower_gives_the_uncached_vector() -> None:
    embedder = build_unsafe_random_embedder("test-tiny", seed=0, threads=1)
    cached = CachedQueryEmbedder(embedder, QueryCache(4))
    for query in ("a red car at night", "Червоний  автомобіль уночі"):
        np.testing.assert_allclose(cached.encode_text([query]), embedder.encode_text([query]),
                                   atol=1e-6)
        np.testing.assert_array_equal(cached.encode_text([query]),
                                      cached.encode_text([query.upper()]))
