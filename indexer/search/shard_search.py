"""Searching a set of shards with no database: the interface search workers plug into.

``ShardQuery`` is everything a shard needs (the query vector, ``k``, a UTC time range, a
local hour window and day-phase codes), ``ShardSearchOutcome`` what comes back (merged
hits, the shards answered and those left out with a reason). ``ShardSearcher`` is the
one-method protocol; ``LocalShardSearcher`` searches in this process through a
``ShardStore``, a Celery-backed searcher sends the same ``ShardQuery`` to workers that
call ``search_loaded_shard`` on their own loaded shards.

A shard row is a (vector, day phase) run of frames in capture order, stamped with the
run's first capture time (``indexer.shards`` writes them): the row stands for its
frames from that time until the next row's. A time range therefore starts at the last
row at or before its start, so a static scene linked to a vector taken a little before
the range is still found; the engine drops frames outside the range afterwards.
"""

from __future__ import annotations

import ctypes
import heapq
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import faiss
import numpy as np

from indexer.shard_files import LoadedShard, ShardMeta, ShardStore
from storage.errors import StorageError


@dataclass(frozen=True)
class ShardQuery:
    """What a shard needs to answer a query; no database, no camera list.

    ``time_range_us`` is [start, end] in UTC microseconds (inclusive); ``local_hours``
    is a [start, end) window of local clock hours at the shard's camera (``end`` may be
    24); ``phases`` are ``indexer.shard_files.PHASE_CODES`` values.
    """

    vector: np.ndarray
    k: int
    time_range_us: tuple[int, int] | None
    phases: frozenset[int] | None
    local_hours: tuple[int, int] | None = None


@dataclass(frozen=True)
class ShardSearchOutcome:
    """Merged hits over the shards searched, best first, and the shards left out."""

    hits: list[tuple[int, float]]
    searched: list[str]
    missing: dict[str, str]
    candidates: int = 0  # rows the filters admitted, over all shards searched
    index_types: dict[str, str] = field(default_factory=dict)


class ShardSearcher(Protocol):
    """Searches shards for one query; shards that cannot answer go into ``missing``."""

    def search(self, metas: Sequence[ShardMeta], query: ShardQuery) -> ShardSearchOutcome: ...


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def shard_time_range_us(meta: ShardMeta, query: ShardQuery) -> tuple[int, int] | None:
    """The query's time range within this shard's day, narrowed by its local hour window.

    None means the whole shard. The hour window is converted with the camera's own time
    zone on the shard's local day, so a DST day still gets its 21:00-23:00 local.
    An empty intersection gives an empty range (start > end).
    """
    start_us, end_us = _us(meta.utc_start), _us(meta.utc_end) - 1
    narrowed = False
    if query.time_range_us is not None:
        start_us, end_us = max(start_us, query.time_range_us[0]), min(end_us,
                                                                      query.time_range_us[1])
        narrowed = True
    if query.local_hours is not None:
        zone = ZoneInfo(meta.timezone)
        day = meta.key.local_day
        first = datetime.combine(day, time(query.local_hours[0]), tzinfo=zone)
        if query.local_hours[1] >= 24:
            last = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
        else:
            last = datetime.combine(day, time(query.local_hours[1]), tzinfo=zone)
        start_us, end_us = max(start_us, _us(first)), min(end_us, _us(last) - 1)
        narrowed = True
    return (start_us, end_us) if narrowed else None


def search_loaded_shard(loaded: LoadedShard, query: ShardQuery) -> tuple[list[tuple[int, float]],
                                                                        int]:
    """The shard's best ``query.k`` (vector id, score) under the query's filters, and how
    many rows the filters admitted. Workers call this on their own loaded shards.

    Where the range starts inside a row's run, that row comes with one spare hit
    (``k + 1``): the engine drops vectors none of whose frames are in range."""
    time_range = shard_time_range_us(loaded.meta, query)
    times = loaded.captured_at_us
    k = query.k
    if time_range is not None:
        start_us, end_us = time_range
        if start_us > end_us or len(times) == 0:
            return [], 0
        # a row stands for its frames up to the next row: start from the one covering start
        lo = max(int(np.searchsorted(times, start_us, side="right")) - 1, 0)
        hi = int(np.searchsorted(times, end_us, side="right"))
        if hi <= lo:
            return [], 0
        if int(times[lo]) < start_us:
            k += 1  # that row's frames may all lie before the range: one spare hit
        time_range = (int(times[lo]), end_us)
    else:
        lo, hi = 0, len(times)
    if query.phases is not None:
        admitted = int(np.isin(loaded.phases[lo:hi], np.fromiter(query.phases, dtype=np.uint8))
                       .sum())
    else:
        admitted = hi - lo
    if admitted == 0:
        return [], 0
    hits = loaded.search(query.vector, k=k, time_range_us=time_range, phases=query.phases)
    best: dict[int, float] = {}
    for hit in hits:  # a vector may have several rows (one per phase run)
        best[hit.vector_id] = max(hit.score, best.get(hit.vector_id, -2.0))
    return list(best.items()), admitted


def merge_hits(parts: Sequence[Sequence[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    """The best ``k`` of several shards' hits, one score per vector id, best first."""
    best: dict[int, float] = {}
    for part in parts:
        for vector_id, score in part:
            best[vector_id] = max(score, best.get(vector_id, -2.0))
    return heapq.nsmallest(k, best.items(), key=lambda item: (-item[1], item[0]))


SHARD_SEARCH_THREADS = 1
"""Threads that search shards. One: on the 2-core machine two threads searching 12 flat
shards side by side took 81-156 ms a query against 50 ms one after another, as numpy's
own BLAS threads (flat shards, re-rank) then oversubscribe the cores; with
OPENBLAS_NUM_THREADS=1 both took 28 ms. Raise it only where BLAS runs single-threaded."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _one_openmp_thread() -> None:
    # OpenMP's thread count is per calling thread: this sets it for the pool's threads
    # only. A one-vector query gains nothing from more (FAISS splits work over queries),
    # and idle OpenMP threads spinning at their barrier cost 2-10x under load.
    faiss.omp_set_num_threads(1)


def shard_search_pool() -> ThreadPoolExecutor:
    """The process's shard-search threads, started on first use, one OpenMP thread each."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=SHARD_SEARCH_THREADS,
                                       thread_name_prefix="oko-shard-search",
                                       initializer=_one_openmp_thread)
        return _pool


_BLAS_THREAD_CALLS = (  # (set, get) in numpy's scipy-openblas, then a plain OpenBLAS
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def _loaded_openblas() -> list[tuple[ctypes.CDLL, str, str]]:
    """The OpenBLAS libraries mapped into this process, with their thread calls."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = sorted({line.split()[-1] for line in maps
                            if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:  # not Linux: nothing found, nothing changed
        return []
    found: list[tuple[ctypes.CDLL, str, str]] = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)  # already loaded: the same handle, no second copy
        except OSError:
            continue
        for setter, getter in _BLAS_THREAD_CALLS:
            if hasattr(library, setter) and hasattr(library, getter):
                found.append((library, setter, getter))
                break
    return found


def blas_threads() -> dict[str, int]:
    """Threads of each OpenBLAS in this process (library file name -> count)."""
    counts: dict[str, int] = {}
    for library, _setter, getter in _loaded_openblas():
        counts[str(library._name).rsplit("/", 1)[-1]] = int(getattr(library, getter)())
    return counts


def limit_blas_threads(count: int) -> dict[str, int]:
    """Run every OpenBLAS of this process (numpy's, FAISS's) with ``count`` threads.

    For search worker processes (``oko search-worker``), at start. OpenBLAS's count is
    process-wide, and its idle threads spin before they sleep: two or three workers each
    multiplying with two BLAS threads on two cores oversubscribe them, and every
    worker's search gets slower (docs/scaling.md, "Fan-out cost"). A worker answers many
    queries side by side instead. Returns the counts before (see ``blas_threads``); setting
    ``OPENBLAS_NUM_THREADS`` before numpy is imported has the same effect.
    """
    before = blas_threads()
    for library, setter, _getter in _loaded_openblas():
        getattr(library, setter)(ctypes.c_int(count))
    return before


class LocalShardSearcher:
    """Searches shards in this process; a shard that cannot be loaded is left out.

    Shards are loaded (or taken from the store's cache) in this thread, then searched on
    ``shard_search_pool()`` (FAISS with one OpenMP thread); the merge does not depend on
    the order they answer in.
    """

    def __init__(self, store: ShardStore) -> None:
        self.store = store

    def search(self, metas: Sequence[ShardMeta], query: ShardQuery) -> ShardSearchOutcome:
        missing: dict[str, str] = {}
        loaded: list[LoadedShard] = []
        for meta in sorted(metas, key=lambda m: m.key):
            try:
                loaded.append(self.store.load(meta))
            except StorageError as exc:
                missing[meta.key.name] = str(exc)
        answers = list(shard_search_pool().map(lambda shard: search_loaded_shard(shard, query),
                                                loaded))
        return ShardSearchOutcome(
            hits=merge_hits([hits for hits, _admitted in answers], query.k),
            searched=[shard.meta.key.name for shard in loaded], missing=missing,
            candidates=sum(admitted for _hits, admitted in answers),
            index_types={shard.meta.key.name: shard.meta.index_type for shard in loaded})


__all__ = [
    "SHARD_SEARCH_THREADS",
    "LocalShardSearcher",
    "ShardQuery",
    "ShardSearchOutcome",
    "ShardSearcher",
    "blas_threads",
    "limit_blas_threads",
    "merge_hits",
    "search_loaded_shard",
    "shard_search_pool",
    "shard_time_range_us",
]
