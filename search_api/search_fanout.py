"""Search across machines: the API's ``ShardSearcher`` that fans a query out over Celery.

Enabled by ``OKO_SEARCH_WORKERS=w1,w2,...`` (and a Redis broker). For one query:

1. the shards the filters selected are routed to their workers by rendezvous hashing of
   ``camera/day`` (``indexer.search.assignment``); a worker that recently missed a
   deadline is passed over for a shard's next holder when ``OKO_SEARCH_REPLICAS`` > 1;
2. one ``oko.search_shards`` task per worker goes out (``send_task``), each on the
   queue only that worker consumes (``search.<name>``), the query vector as base64
   float32 and the expected version (data SHA-256) of every shard; the tasks expire at
   the deadline, so a worker that comes back later does not answer stale queries;
3. the answers are awaited until ``OKO_SEARCH_DEADLINE_MS`` after sending, all
   together; every shard of a worker that did not answer in time, or failed, goes into
   ``missing`` with the reason, so the answer is partial and says so, never silently
   short;
4. the workers' hits are merged into one top-k (best score per frame, ties by frame id,
   as the local search ranks them).

The wire format (``encode_query``/``decode_query``, ``encode_reply``/``decode_reply``:
the query vector and the hits as packed little-endian arrays in base64, the shards
searched not repeated back) lives here too, so the sender never imports the task
bodies and the worker imports nothing of the API.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from indexer.search.assignment import check_worker_names, route_shards
from indexer.search.shard_search import ShardQuery, ShardSearchOutcome, merge_hits
from indexer.shard_files import ShardMeta
from search_api.tasks.app import SEARCH_TASK, make_search_celery, search_queue
from storage.errors import InvalidInputError, OkoError
from storage.settings import Settings

SUSPECT_SECONDS = 30.0
"""How long a worker that missed a deadline is passed over for its shards' next holder."""
MAX_WIRE_DIM = 4096
BROKER_ERRORS = (OperationalError, RedisError, RuntimeError)


class SearchWorkersUnavailableError(OkoError):
    """The broker that carries queries to the search workers cannot be reached."""

    exit_code = 4
    http_status = 503


class BadSearchMessageError(InvalidInputError):
    """A search task's arguments or a worker's reply are not in the wire format."""


def encode_vector(vector: np.ndarray) -> str:
    """A query vector as base64 little-endian float32 (2.7 KB for 512 dimensions)."""
    raw = np.ascontiguousarray(vector, dtype="<f4").tobytes()
    return base64.b64encode(raw).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """Raises ``BadSearchMessageError`` for text that is not a finite float32 vector."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadSearchMessageError("The query vector is not base64.") from exc
    if not raw or len(raw) % 4 or len(raw) // 4 > MAX_WIRE_DIM:
        raise BadSearchMessageError("The query vector is not 1 to 4096 float32 values.")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(vector).all():
        raise BadSearchMessageError("The query vector is not finite.")
    return vector


def encode_query(query: ShardQuery) -> dict[str, Any]:
    """The JSON-safe fields of ``query`` (task kwargs, beside the shard list)."""
    return {
        "vector": encode_vector(query.vector), "k": int(query.k),
        "time_range_us": (None if query.time_range_us is None
                          else [int(query.time_range_us[0]), int(query.time_range_us[1])]),
        "phases": None if query.phases is None else sorted(int(p) for p in query.phases),
        "local_hours": (None if query.local_hours is None
                        else [int(query.local_hours[0]), int(query.local_hours[1])]),
    }


def decode_query(raw: dict[str, Any]) -> ShardQuery:
    """Raises ``BadSearchMessageError`` for a malformed query."""
    try:
        k = int(raw["k"])
        span = raw.get("time_range_us")
        time_range = None if span is None else (int(span[0]), int(span[1]))
        phases = raw.get("phases")
        phase_set = None if phases is None else frozenset(int(p) for p in phases)
        hours = raw.get("local_hours")
        local_hours = None if hours is None else (int(hours[0]), int(hours[1]))
        vector = decode_vector(str(raw["vector"]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BadSearchMessageError("The search task's query is malformed.") from exc
    if k < 1:
        raise BadSearchMessageError("The search task asks for fewer than one hit.")
    return ShardQuery(vector=vector, k=k, time_range_us=time_range, phases=phase_set,
                      local_hours=local_hours)


MAX_WIRE_HITS = 1_000_000


def encode_hits(hits: Sequence[tuple[int, float]]) -> tuple[str, str]:
    """Hits as two base64 arrays: little-endian int64 ids, float32 scores.

    Lossless: every score is a float32 product (the shard's exact re-rank), so packing
    it as float32 gives back the same Python float. 12 bytes a hit before base64,
    against ~30 for ``[id, score]`` in JSON, and no float printing or parsing.
    """
    ids = np.fromiter((fid for fid, _ in hits), dtype="<i8", count=len(hits))
    scores = np.fromiter((score for _, score in hits), dtype="<f4", count=len(hits))
    return (base64.b64encode(ids.tobytes()).decode("ascii"),
            base64.b64encode(scores.tobytes()).decode("ascii"))


def decode_hits(ids_text: str, scores_text: str) -> list[tuple[int, float]]:
    """Raises ``BadSearchMessageError`` unless both arrays are base64 of one length."""
    try:
        ids_raw = base64.b64decode(ids_text.encode("ascii"), validate=True)
        scores_raw = base64.b64decode(scores_text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError, AttributeError) as exc:
        raise BadSearchMessageError("A search worker's reply is malformed.") from exc
    if len(ids_raw) % 8 or len(ids_raw) // 8 != len(scores_raw) // 4 or len(scores_raw) % 4 \
            or len(ids_raw) // 8 > MAX_WIRE_HITS:
        raise BadSearchMessageError("A search worker's reply is malformed.")
    scores = np.frombuffer(scores_raw, dtype="<f4")
    if not np.isfinite(scores).all():
        raise BadSearchMessageError("A search worker's reply is malformed.")
    return list(zip(np.frombuffer(ids_raw, dtype="<i8").tolist(), scores.tolist(),
                    strict=True))


@dataclass(frozen=True)
class WorkerReply:
    """A worker's answer for its shards, and what it says about its own work.

    ``search_ms`` is the task's own time from start to answer (decoding the query and
    searching), ``cpu_ms`` its process's CPU over that time, ``started_at`` and
    ``finished_at`` its wall clock (Unix seconds), to split a round trip in benchmarks.
    """

    outcome: ShardSearchOutcome
    search_ms: float
    cpu_ms: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


def encode_reply(outcome: ShardSearchOutcome, *, worker: str, shards: Sequence[str],
                 search_ms: float, cpu_ms: float | None = None,
                 started_at: float | None = None,
                 finished_at: float | None = None) -> dict[str, Any]:
    """The JSON reply for the ``shards`` the task named: the hits packed
    (``encode_hits``), the shards left out with their reasons, and each index type with
    the positions, in ``sorted(shards)``, of the shards searched with it. The shards
    searched are those named and not missing, so their names do not travel back."""
    ids, scores = encode_hits(outcome.hits)
    position = {name: at for at, name in enumerate(sorted(shards))}
    kinds: dict[str, list[int]] = {}
    for name, kind in sorted(outcome.index_types.items()):
        kinds.setdefault(kind, []).append(position[name])
    reply: dict[str, Any] = {"worker": worker, "ids": ids, "scores": scores,
                             "missing": dict(outcome.missing),
                             "candidates": int(outcome.candidates), "index_types": kinds,
                             "search_ms": round(search_ms, 3)}
    if cpu_ms is not None:
        reply["cpu_ms"] = round(cpu_ms, 3)
    if started_at is not None and finished_at is not None:
        reply["at"] = [round(started_at, 6), round(finished_at, 6)]
    return reply


def decode_reply(raw: object, shards: Sequence[str]) -> WorkerReply:
    """A worker's reply to a task that named ``shards``; raises ``BadSearchMessageError``."""
    try:
        assert isinstance(raw, dict)
        hits = decode_hits(raw["ids"], raw["scores"])
        missing = {str(name): str(reason) for name, reason in dict(raw["missing"]).items()}
        candidates = int(raw.get("candidates", 0))
        ordered = sorted(shards)
        index_types = {ordered[int(at)]: str(kind)
                       for kind, positions in dict(raw.get("index_types", {})).items()
                       for at in positions}
        search_ms = float(raw.get("search_ms", 0.0))
        cpu = raw.get("cpu_ms")
        cpu_ms = None if cpu is None else float(cpu)
        at = raw.get("at")
        started_at, finished_at = (None, None) if at is None else (float(at[0]),
                                                                   float(at[1]))
    except (AssertionError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise BadSearchMessageError("A search worker's reply is malformed.") from exc
    outcome = ShardSearchOutcome(hits=hits,
                                 searched=[name for name in ordered if name not in missing],
                                 missing=missing, candidates=candidates,
                                 index_types=index_types)
    return WorkerReply(outcome, search_ms, cpu_ms, started_at, finished_at)


class _TaskFailed(Exception):
    """A search task that raised on its worker; the argument names the exception."""


def _on_worker(reason: str, worker: str) -> str:
    """A worker's reason for a shard, naming the worker once."""
    named = f"search worker {worker}"
    return reason if named in reason else f"{reason} (on {named})"


@dataclass(frozen=True)
class WorkerTiming:
    """One worker's part of the last query: its own search time, or why it gave none.

    ``sent_at`` and ``received_at`` are the API's wall clock (Unix seconds) when it
    began sending the query's tasks and when this answer was taken; ``started_at`` and
    ``finished_at`` the worker's (``WorkerReply``): on one machine the differences are
    the trip out and back.
    """

    worker: str
    shards: int
    search_ms: float | None
    failure: str | None = None
    task_id: str | None = None
    cpu_ms: float | None = None
    sent_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    received_at: float | None = None


class CeleryShardSearcher:
    """A ``ShardSearcher`` whose shards are searched by named Celery search workers.

    Thread-safe: the API's request threads share one. ``last_timings`` (per thread) says
    how long each worker took, for benchmarks and logs.
    """

    def __init__(self, app: Celery, *, workers: Sequence[str], replicas: int = 1,
                 deadline_ms: int = 2000, rebuild: Callable[[], Celery] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_worker_names(workers)
        self.app = app
        self._rebuild = rebuild
        self.workers = list(workers)
        self.replicas = replicas
        self.deadline_s = deadline_ms / 1000.0
        self._clock = clock
        self._suspects: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def last_timings(self) -> list[WorkerTiming]:
        timings: list[WorkerTiming] = getattr(self._local, "timings", [])
        return timings

    def _avoid(self, now: float) -> frozenset[str]:
        with self._lock:
            return frozenset(w for w, until in self._suspects.items() if until > now)

    def _suspect(self, worker: str, now: float) -> None:
        with self._lock:
            self._suspects[worker] = now + SUSPECT_SECONDS

    def _broker_lost(self, exc: BaseException, message: str) -> SearchWorkersUnavailableError:
        """After a lost broker Celery's result consumer cannot recover: start a new app."""
        if self._rebuild is not None:
            with self._lock:
                self.app = self._rebuild()
        error = SearchWorkersUnavailableError(message)
        error.__cause__ = exc
        return error

    def _clear(self, worker: str) -> None:
        with self._lock:
            self._suspects.pop(worker, None)

    def send(self, query: ShardQuery, shards: dict[str, dict[str, str]]) -> list[AsyncResult]:
        """One task per worker (worker -> its shards and their data SHA-256), in order.

        Each goes with ``send_task`` straight to the worker's queue: a ``celery.group``
        of the same signatures sends the same messages but costs the API more CPU per query
        (canvas freezing, group ids; ``benchmarks.search_fanout`` measures both), and
        nothing here needs a group id.
        """
        wire = encode_query(query)
        return [self.app.send_task(SEARCH_TASK, kwargs={"worker": worker, "shards": names,
                                                        **wire},
                                   queue=search_queue(worker), expires=self.deadline_s)
                for worker, names in shards.items()]

    def _collect(self, pending: list[AsyncResult],
                 deadline: float) -> dict[str, tuple[object, float]]:
        """The answers that came by ``deadline``: task id -> (result or the exception the
        task raised, when it was taken, Unix seconds). One ``get`` after another: a
        ``ResultSet``'s native join (one MGET, one wait for all) took ~450 ms longer a
        query on Celery 5.7's Redis backend (seemingly its drainer waiting out a poll
        interval; docs/scaling.md, "Fan-out cost"). Raises ``SearchWorkersUnavailableError``
        when the broker is lost.
        """
        answers: dict[str, tuple[object, float]] = {}
        try:
            for result in pending:
                try:
                    value = result.get(timeout=max(deadline - self._clock(), 0.001),
                                       propagate=False)
                except CeleryTimeoutError:
                    continue
                answers[result.id] = (value, time.time())
        except BROKER_ERRORS as exc:
            raise self._broker_lost(exc, "The search workers' broker stopped answering"
                                    " mid-query; no search result was kept.") from exc
        for result in pending:  # stop listening for a late answer now, not when collected
            if result.id not in answers:
                with contextlib.suppress(*BROKER_ERRORS):
                    result.backend.remove_pending_result(result)
        return answers

    def search(self, metas: Sequence[ShardMeta], query: ShardQuery) -> ShardSearchOutcome:
        """Search ``metas`` on their workers within the deadline; see the module docstring.

        Raises ``SearchWorkersUnavailableError`` when the broker cannot be reached.
        """
        self._local.timings = []
        if not metas:
            return ShardSearchOutcome(hits=[], searched=[], missing={})
        versions = {meta.key.name: meta.data_sha256 for meta in metas}
        started = self._clock()
        routed = route_shards(versions, self.workers, replicas=self.replicas,
                              avoid=self._avoid(started))
        order = sorted(routed)
        sent_at = time.time()
        try:
            pending = self.send(query, {worker: {name: versions[name] for name in routed[worker]}
                                        for worker in order})
        except BROKER_ERRORS as exc:  # RuntimeError: Celery gave up reconnecting
            raise self._broker_lost(exc, "The search workers' broker cannot be reached; no"
                                    " search was run.") from exc
        deadline = started + self.deadline_s
        answers = self._collect(pending, deadline)
        parts: list[list[tuple[int, float]]] = []
        searched: list[str] = []
        index_types: dict[str, str] = {}
        candidates = 0
        missing: dict[str, str] = {}
        timings: list[WorkerTiming] = []
        for worker, result in zip(order, pending, strict=True):
            shards = routed[worker]
            failure: str | None = None
            answer = answers.get(result.id)
            try:
                if answer is None:
                    raise CeleryTimeoutError()
                raw, received_at = answer
                if isinstance(raw, BaseException):  # the task raised (or expired unrun)
                    raise _TaskFailed(type(raw).__name__)
                reply = decode_reply(raw, shards)
            except CeleryTimeoutError:
                failure = (f"search worker {worker} did not answer within "
                           f"{round(self.deadline_s * 1000)} ms")
                self._suspect(worker, self._clock())
            except _TaskFailed as exc:
                failure = f"search worker {worker} failed ({exc})"
            except BadSearchMessageError as exc:
                failure = f"search worker {worker} failed ({exc.message})"
            if failure is not None:
                missing.update({name: failure for name in shards})
                timings.append(WorkerTiming(worker, len(shards), None, failure,
                                            task_id=result.id, sent_at=sent_at))
                continue
            self._clear(worker)
            outcome = reply.outcome
            parts.append(outcome.hits)
            searched += outcome.searched
            candidates += outcome.candidates
            index_types.update(outcome.index_types)
            missing.update({name: _on_worker(reason, worker)
                            for name, reason in outcome.missing.items()})
            timings.append(WorkerTiming(worker, len(shards), reply.search_ms,
                                        task_id=result.id, cpu_ms=reply.cpu_ms,
                                        sent_at=sent_at, started_at=reply.started_at,
                                        finished_at=reply.finished_at,
                                        received_at=received_at))
        self._local.timings = timings
        return ShardSearchOutcome(hits=merge_hits(parts, query.k), searched=sorted(searched),
                                  missing=dict(sorted(missing.items())),
                                  candidates=candidates, index_types=index_types)


def build_shard_searcher(settings: Settings) -> CeleryShardSearcher | None:
    """The fan-out searcher when ``OKO_SEARCH_WORKERS`` is set, else None (search locally).

    Raises ``ConfigurationError`` when workers are named but the broker is not Redis.
    """
    if not settings.search_workers:
        return None
    return CeleryShardSearcher(make_search_celery(settings), workers=settings.search_workers,
                               replicas=settings.search_replicas,
                               deadline_ms=settings.search_deadline_ms,
                               rebuild=lambda: make_search_celery(settings))


_searchers: dict[int, tuple[Settings, CeleryShardSearcher | None]] = {}
_searchers_lock = threading.Lock()


def shard_searcher_for(settings: Settings) -> CeleryShardSearcher | None:
    """``build_shard_searcher``, built once per settings object (its Celery app and Redis
    connections are reused by every query of the process)."""
    with _searchers_lock:
        built = _searchers.get(id(settings))
        if built is None or built[0] is not settings:
            built = (settings, build_shard_searcher(settings))
            _searchers[id(settings)] = built
        return built[1]


__all__ = [
    "SUSPECT_SECONDS",
    "BadSearchMessageError",
    "CeleryShardSearcher",
    "SearchWorkersUnavailableError",
    "WorkerReply",
    "WorkerTiming",
    "build_shard_searcher",
    "decode_hits",
    "decode_query",
    "decode_reply",
    "decode_vector",
    "encode_hits",
    "encode_query",
    "encode_reply",
    "encode_vector",
    "shard_searcher_for",
]
