"""Search workers run numpy's and FAISS's OpenBLAS with the thread count they ask for."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from indexer.search.shard_search import blas_threads, limit_blas_threads


@pytest.fixture
def restored_blas() -> Iterator[dict[str, int]]:
    before = blas_threads()
    yield before
    for name, count in before.items():  # every library back to its own count
        limit_blas_threads(count)
        assert blas_threads()[name] == count


def test_numpy_s_openblas_is_found(restored_blas: dict[str, int]) -> None:
    assert any("openblas" in name for name in restored_blas)
    assert all(count >= 1 for count in restored_blas.values())


def test_limiting_sets_every_openblas_and_reports_the_counts_before(
        restored_blas: dict[str, int]) -> None:
    assert limit_blas_threads(1) == restored_blas
    assert set(blas_threads().values()) == {1}
    rows = np.random.default_rng(0).normal(size=(4000, 64)).astype(np.float32)
    query = rows[7]
    one_thread = rows @ query
    limit_blas_threads(2)
    assert set(blas_threads().values()) == {2}
    assert np.allclose(rows @ query, one_thread, atol=1e-4)  # the same products either way
