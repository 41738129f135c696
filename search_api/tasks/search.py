"""The search worker's task: search the named shards it holds and answer hits + reasons.

A search worker (``oko search-worker --name w1``) consumes only ``search.w1``. It keeps
the shards it holds loaded (one ``ShardStore`` per process, preloaded at start) and
answers each ``oko.search_shards`` task with its top-k and, per shard it could not
search, one sentence why: no copy here, another version than the API's, unreadable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from celery import shared_task

from indexer.search.shard_search import (
    LocalShardSearcher,
    ShardQuery,
    ShardSearchOutcome,
    limit_blas_threads,
)
from indexer.shard_files import LoadedShard, ShardKey, ShardMeta, ShardStore, inspect_sidecar
from search_api.search_fanout import decode_query, encode_reply
from search_api.tasks.app import SEARCH_TASK
from storage.errors import StorageError

logger = logging.getLogger(__name__)


class _ThreadSafeStore(ShardStore):
    """A ``ShardStore`` whose cache the worker's threads share: one load at a time."""

    def __init__(self, index_dir: Path) -> None:
        super().__init__(index_dir)
        self._load_lock = threading.Lock()

    def load(self, meta: ShardMeta) -> LoadedShard:
        with self._load_lock:  # a cached shard returns at once
            return super().load(meta)


class WorkerShards:
    """The shards of one search worker process: sidecars cached by mtime, data loaded once."""

    def __init__(self, index_dir: Path, *, name: str) -> None:
        self.index_dir = index_dir
        self.name = name
        self.store = _ThreadSafeStore(index_dir)
        self._meta: dict[str, tuple[int, ShardMeta | None, str | None]] = {}
        self._lock = threading.Lock()

    def meta(self, key: ShardKey) -> tuple[ShardMeta | None, str | None]:
        """The committed shard ``key`` here, or why not; re-read when its sidecar changed."""
        sidecar = key.sidecar_path(self.index_dir)
        try:
            stamp = sidecar.stat().st_mtime_ns
        except OSError:
            return None, f"search worker {self.name} has no copy of this shard"
        with self._lock:
            cached = self._meta.get(key.name)
        if cached is None or cached[0] != stamp:
            meta, reason = inspect_sidecar(sidecar)
            cached = (stamp, meta, reason or f"search worker {self.name} has no copy of"
                      " this shard")
            with self._lock:
                self._meta[key.name] = cached
        return cached[1], cached[2]

    def preload(self, names: list[str]) -> int:
        """Load ``names`` into memory before the first query; returns how many loaded."""
        loaded = 0
        for name in names:
            meta, reason = self.meta(ShardKey.parse(name))
            try:
                if meta is None:
                    raise StorageError(reason or "no copy")
                self.store.load(meta)
            except StorageError as exc:  # the queries that need it say why, per shard
                logger.warning("shard %s not loaded: %s", name, exc)
                continue
            loaded += 1
        return loaded

    def search(self, shards: dict[str, str], query: ShardQuery) -> ShardSearchOutcome:
        """Search the shards named (name -> the data SHA-256 the API expects)."""
        metas: list[ShardMeta] = []
        missing: dict[str, str] = {}
        for name, expected in sorted(shards.items()):
            try:
                key = ShardKey.parse(name)
            except ValueError:
                missing[name] = "not a shard name"
                continue
            meta, reason = self.meta(key)
            if meta is None:
                missing[name] = reason or "no copy"
            elif meta.data_sha256 != expected:
                missing[name] = (f"search worker {self.name} holds another version of this"
                                 " shard; copy the current one to it")
            else:
                metas.append(meta)
        outcome = LocalShardSearcher(self.store).search(metas, query)
        return ShardSearchOutcome(hits=outcome.hits, searched=outcome.searched,
                                  missing={**outcome.missing, **missing},
                                  candidates=outcome.candidates,
                                  index_types=outcome.index_types)


_shards: dict[int, WorkerShards] = {}


WORKER_BLAS_THREADS = 1
"""OpenBLAS threads in a search worker process: one. A worker's parallelism is its
queries side by side (``OKO_SEARCH_WORKER_CONCURRENCY``), and several workers often
share a machine; BLAS threads on top oversubscribe its cores (``limit_blas_threads``)."""


def install_worker_shards(shards: WorkerShards) -> None:
    """Make ``shards`` the ones this process's tasks search (``oko search-worker``), and
    run this process's OpenBLAS with ``WORKER_BLAS_THREADS`` threads."""
    limit_blas_threads(WORKER_BLAS_THREADS)
    _shards[os.getpid()] = shards


@shared_task(name=SEARCH_TASK, acks_late=False)  # type: ignore[untyped-decorator]  # celery ships no types
def search_shards(*, worker: str, shards: dict[str, str], vector: str, k: int,
                  time_range_us: list[int] | None = None, phases: list[int] | None = None,
                  local_hours: list[int] | None = None) -> dict[str, Any]:
    """Search ``shards`` (name -> expected data SHA-256) for the query; JSON in and out.

    The reply also says how long the search took here, the process's CPU meanwhile
    and when it ran (``search_api.search_fanout.WorkerReply``)."""
    started_at, started, cpu_started = time.time(), time.perf_counter(), time.process_time()
    held = _shards.get(os.getpid())
    if held is None or held.name != worker:
        reason = f"search worker {worker} is not running in this process"
        outcome = ShardSearchOutcome(hits=[], searched=[],
                                     missing={name: reason for name in shards})
        return encode_reply(outcome, worker=worker, shards=list(shards), search_ms=0.0)
    query = decode_query({"vector": vector, "k": k, "time_range_us": time_range_us,
                          "phases": phases, "local_hours": local_hours})
    outcome = held.search(dict(shards), query)
    return encode_reply(outcome, worker=worker, shards=list(shards),
                        search_ms=(time.perf_counter() - started) * 1000.0,
                        cpu_ms=(time.process_time() - cpu_started) * 1000.0,
                        started_at=started_at, finished_at=time.time())


__all__ = ["WORKER_BLAS_THREADS", "WorkerShards", "install_worker_shards", "search_shards"]
