"""Fan-out benchmark: one machine's shard search against 2 and 3 local search workers.

Run from the repository root: ``python -m benchmarks.search_fanout`` (prints JSON).

Synthetic shards (``write_synthetic_shards``: per camera a few scenes, each row a
near-duplicate of its scene, as static CCTV gives) are written with
``indexer.shard_files.write_shard`` into one data dir. Then, for the same query set:

* ``local``: ``LocalShardSearcher`` in this process (the shards preloaded);
* ``workers_2`` / ``workers_3``: ``CeleryShardSearcher`` over that many real
  ``oko search-worker`` processes on a redis-server on 127.0.0.1, each holding the
  shards rendezvous hashing gives it.

Per configuration, ``--runs`` runs of the query set, local and fanned out in turns, each
figure the median over the runs: p50/p95 per query (ms), the slowest worker's own
search time per query (as the worker reports it: decoding the query and searching), the
fan-out overhead per query (the query's wall time minus that: sending, queueing, JSON,
result backend and merge), split into the trip out (sent to the critical worker's
start) and back (its finish to the answer taken), the CPU per query of the API process
and of the workers, the bytes of a task's request and stored reply, and whether every
answer has the local top-k's ids (``max_score_difference`` beside it). On a machine with
fewer cores than workers + API the workers' searches and the round trip compete for
cores, which the CPU figures show.
``empty_round_trip_send_task`` is the same round trip with no shards to search, as the
searcher sends it (one ``send_task`` per worker), and ``empty_round_trip_group`` the
same tasks sent as a ``celery.group`` (the earlier path), taking turns: wall time and the
CPU per round trip in the API process and in the workers (the overhead on a machine with
a core free for each). ``redis_ping_ms`` is a raw PING, which shows how busy the machine
was. The goal is an overhead under 30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from celery import group

from indexer.search.assignment import route_shards
from indexer.search.shard_search import (
    LocalShardSearcher,
    ShardQuery,
    ShardSearcher,
    blas_threads,
)
from indexer.shard_files import ShardKey, ShardMeta, ShardStore, local_day_bounds_utc, write_shard
from search_api.search_fanout import CeleryShardSearcher, encode_query
from search_api.tasks.app import SEARCH_TASK, make_search_celery, search_queue
from search_api.tasks.search import WORKER_BLAS_THREADS
from storage.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEZONE = "Europe/Kyiv"
WEIGHTS = "b" * 64
READY_TIMEOUT_S = 120.0


def _unit(rows: np.ndarray) -> np.ndarray:
    normed: np.ndarray = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return normed


def write_synthetic_shards(index_dir: Path, *, cameras: int, days: int, rows: int, dim: int,
                           seed: int = 0, scenes: int = 6,
                           first_day: date = date(2026, 11, 1)) -> list[ShardMeta]:
    """``cameras`` x ``days`` flat shards of ``rows`` near-duplicate vectors each.

    Vector ids are unique across shards; capture times spread over each local day, day
    phases cycle night-day-dusk by hour. Returns the shards' metadata.
    """
    rng = np.random.default_rng(seed)
    metas: list[ShardMeta] = []
    next_id = 1
    for camera in range(cameras):
        centres = _unit(rng.normal(size=(scenes, dim)))
        for day_index in range(days):
            day = first_day + timedelta(days=day_index)
            start, end = local_day_bounds_utc(day, TIMEZONE)
            start_us, end_us = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
            scene = rng.integers(0, scenes, size=rows)
            vectors = _unit(centres[scene] + 0.15 * rng.normal(size=(rows, dim)))
            ids = np.arange(next_id, next_id + rows, dtype=np.int64)
            next_id += rows
            times = np.linspace(start_us, end_us - 1, rows).astype(np.int64)
            hours = ((times - start_us) // 3_600_000_000) % 24
            phases = np.where((hours < 6) | (hours >= 21), 2,
                              np.where((hours == 6) | (hours == 20), 1, 0)).astype(np.uint8)
            metas.append(write_shard(
                index_dir=index_dir, key=ShardKey(f"CAM-{camera:03d}", day), timezone=TIMEZONE,
                vector_ids=ids, vectors=vectors, captured_at_us=times, phases=phases,
                frame_ids=[int(i) for i in ids], preset="synthetic", weights_sha256=WEIGHTS))
    return metas


def synthetic_queries(*, count: int, dim: int, k: int, seed: int = 1) -> list[ShardQuery]:
    """Random unit query vectors, unfiltered (every shard is searched whole)."""
    rng = np.random.default_rng(seed)
    return [ShardQuery(vector=_unit(rng.normal(size=dim)), k=k, time_range_us=None,
                       phases=None) for _ in range(count)]


@dataclass
class SearchWorkerProcess:
    """One ``oko search-worker`` process in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def signal(self, sig: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group and reap it."""
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def worker_env(*, home: Path, broker_url: str, workers: Sequence[str],
               replicas: int = 1) -> dict[str, str]:
    """The environment of a search worker (none of the caller's ``OKO_*`` settings)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OKO_")}
    env.update(OKO_HOME=str(home), OKO_BROKER_URL=broker_url,
               OKO_SEARCH_WORKERS=",".join(workers), OKO_SEARCH_REPLICAS=str(replicas),
               OKO_ENVIRONMENT="test", PYTHONPATH=str(REPO_ROOT))
    return env


def start_search_worker(name: str, *, home: Path, broker_url: str, workers: Sequence[str],
                        log_dir: Path, replicas: int = 1) -> SearchWorkerProcess:
    """Start ``oko search-worker --name NAME`` (its log in ``log_dir``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"search-worker-{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "search_api.cli", "search-worker", "--name", name],
            env=worker_env(home=home, broker_url=broker_url, workers=workers,
                           replicas=replicas),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=log_dir)
    return SearchWorkerProcess(name=name, process=process, log_path=log_path)


@contextmanager
def search_workers(names: Sequence[str], *, home: Path, broker_url: str,
                   workers: Sequence[str] | None = None, log_dir: Path,
                   replicas: int = 1) -> Iterator[dict[str, SearchWorkerProcess]]:
    """Run the named workers until the block ends; every one is killed afterwards."""
    listed = list(workers or names)
    started: dict[str, SearchWorkerProcess] = {}
    try:
        for name in names:
            started[name] = start_search_worker(name, home=home, broker_url=broker_url,
                                                workers=listed, log_dir=log_dir,
                                                replicas=replicas)
        yield started
    finally:
        for worker in started.values():
            worker.kill()


def wait_until_answering(searcher: ShardSearcher, metas: Sequence[ShardMeta],
                         query: ShardQuery, *, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Query until no shard is missing (every worker up and answering)."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = searcher.search(metas, query)
        if not outcome.missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"search workers not answering: {outcome.missing}")
        time.sleep(0.2)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 2), "p95": round(p95, 2)}


def _cpu_s(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def _empty_round_trip_ms(searcher: CeleryShardSearcher, query: ShardQuery,
                         repeats: int, *, as_group: bool = False) -> list[float]:
    """One task per worker with no shards, sent as the searcher sends them (``send``),
    or as a ``celery.group`` of the same signatures (``as_group``, the earlier path)."""
    times: list[float] = []
    wire = encode_query(query)
    for _ in range(repeats):
        started = time.perf_counter()
        if as_group:
            signatures = [searcher.app.signature(
                SEARCH_TASK, kwargs={"worker": worker, "shards": {}, **wire},
                queue=search_queue(worker), expires=searcher.deadline_s)
                for worker in searcher.workers]
            pending = group(signatures, app=searcher.app).apply_async().results
        else:
            pending = searcher.send(query, {worker: {} for worker in searcher.workers})
        for result in pending:
            result.get(timeout=searcher.deadline_s)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def _round_trips(searcher: CeleryShardSearcher, query: ShardQuery, repeats: int,
                 worker_pids: list[int], *, as_group: bool) -> dict[str, Any]:
    """Empty round trips: wall time, and CPU per round trip in the API and the workers."""
    api_before, workers_before = _cpu_s([os.getpid()]), _cpu_s(worker_pids)
    times = _empty_round_trip_ms(searcher, query, repeats, as_group=as_group)
    return {"ms": _percentiles(times),
            "api_cpu_ms": round((_cpu_s([os.getpid()]) - api_before) * 1000.0 / repeats, 2),
            "workers_cpu_ms": round((_cpu_s(worker_pids) - workers_before) * 1000.0 / repeats,
                                    2)}


def _redis_ping_ms(redis_url: str, repeats: int) -> list[float]:
    """Raw PING round trips: how loaded the machine is (sub-0.1 ms on an idle one)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.ping()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            client.ping()
            times.append((time.perf_counter() - started) * 1000.0)
        return times
    finally:
        client.close()


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0


def _request_bytes(searcher: CeleryShardSearcher, metas: Sequence[ShardMeta],
                   query: ShardQuery) -> list[int]:
    """The JSON kwargs of each task the searcher sends for ``query`` (before Celery's
    envelope): the query vector, ``k``, the filters and the shards with their versions."""
    versions = {meta.key.name: meta.data_sha256 for meta in metas}
    routed = route_shards(versions, searcher.workers, replicas=searcher.replicas)
    wire = encode_query(query)
    return [len(json.dumps({"worker": worker, "shards": {n: versions[n] for n in names},
                            **wire}).encode()) for worker, names in sorted(routed.items())]


def _measure_local(local: LocalShardSearcher, metas: Sequence[ShardMeta],
                   queries: list[ShardQuery]) -> dict[str, Any]:
    times: list[float] = []
    cpu: list[float] = []
    for query in queries:
        cpu_started, started = time.process_time(), time.perf_counter()
        local.search(metas, query)
        times.append((time.perf_counter() - started) * 1000.0)
        cpu.append((time.process_time() - cpu_started) * 1000.0)
    return {"per_query_ms": _percentiles(times), "cpu_ms": _median(cpu)}


def _measure_fanout(searcher: CeleryShardSearcher, metas: Sequence[ShardMeta],
                    queries: list[ShardQuery], reference: list[list[tuple[int, float]]],
                    worker_pids: list[int], redis_client: Any) -> dict[str, Any]:
    """Per query: wall time, the slowest worker's own search, the overhead (wall minus
    that), the CPU the API process and the workers spent, the trip out (sent to the
    critical worker's start) and back (its finish to the answer taken), and the bytes
    of requests and replies."""
    rows: dict[str, list[float]] = {name: [] for name in (
        "wall", "slowest_search", "overhead", "api_cpu", "workers_cpu",
        "worker_self_cpu", "out", "back", "reply_bytes")}
    identical_ids = True
    max_score_diff = 0.0
    for index, query in enumerate(queries):
        workers_before = _cpu_s(worker_pids)
        cpu_started, started = time.process_time(), time.perf_counter()
        outcome = searcher.search(metas, query)
        wall = (time.perf_counter() - started) * 1000.0
        api_cpu = (time.process_time() - cpu_started) * 1000.0
        workers_cpu = (_cpu_s(worker_pids) - workers_before) * 1000.0
        if outcome.missing:
            raise RuntimeError(f"shards missing during the benchmark: {outcome.missing}")
        expected = reference[index]
        identical_ids &= [fid for fid, _ in outcome.hits] == [fid for fid, _ in expected]
        if len(outcome.hits) == len(expected) and expected:
            max_score_diff = max(max_score_diff, float(np.max(np.abs(
                np.array([s for _, s in outcome.hits]) - np.array([s for _, s in expected])))))
        timings = searcher.last_timings
        critical = max(timings, key=lambda t: t.received_at or 0.0)
        slowest = max((t.search_ms or 0.0) for t in timings)
        rows["wall"].append(wall)
        rows["slowest_search"].append(slowest)
        rows["overhead"].append(wall - slowest)
        rows["api_cpu"].append(api_cpu)
        rows["workers_cpu"].append(workers_cpu)
        rows["worker_self_cpu"].append(sum(t.cpu_ms or 0.0 for t in timings))
        if None not in (critical.sent_at, critical.started_at, critical.finished_at,
                        critical.received_at):
            assert critical.sent_at and critical.started_at and critical.finished_at
            assert critical.received_at
            rows["out"].append((critical.started_at - critical.sent_at) * 1000.0)
            rows["back"].append((critical.received_at - critical.finished_at) * 1000.0)
        for timing in timings:  # the stored result, Celery's envelope included
            rows["reply_bytes"].append(float(redis_client.strlen(
                f"celery-task-meta-{timing.task_id}")))
    return {
        "per_query_ms": _percentiles(rows["wall"]),
        "slowest_worker_search_ms": _percentiles(rows["slowest_search"]),
        "fanout_overhead_ms": _percentiles(rows["overhead"]),
        "overhead_split_ms": {"out_to_worker": _percentiles(rows["out"]),
                              "back_to_api": _percentiles(rows["back"])},
        # means: psutil counts the workers' CPU in 10 ms clock ticks
        "api_cpu_ms": round(statistics.fmean(rows["api_cpu"]), 2),
        "workers_cpu_ms": round(statistics.fmean(rows["workers_cpu"]), 2),
        "workers_self_reported_cpu_ms": round(statistics.fmean(rows["worker_self_cpu"]), 2),
        "request_bytes_per_task": _median([float(b) for b in
                                           _request_bytes(searcher, metas, queries[0])]),
        "reply_bytes_per_task": _median(rows["reply_bytes"]),
        "identical_ids_to_local": identical_ids,
        "max_score_difference": max_score_diff,
    }


def _median_of_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number the median over the runs (p50 and p95 separately); flags ANDed."""
    merged: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs]
        if isinstance(first, dict):
            merged[key] = _median_of_runs(values)
        elif isinstance(first, bool):
            merged[key] = all(values)
        elif key == "max_score_difference":
            merged[key] = max(values)
        else:
            merged[key] = _median(values)
    return merged


def run(*, cameras: int, days: int, rows: int, dim: int, queries: int, k: int, runs: int,
        redis_url: str | None, work_dir: Path) -> dict[str, Any]:
    home = work_dir / "home"
    metas = write_synthetic_shards(home / "index", cameras=cameras, days=days, rows=rows,
                                   dim=dim)
    query_set = synthetic_queries(count=queries, dim=dim, k=k)
    store = ShardStore(home / "index")
    local = LocalShardSearcher(store)
    for meta in metas:
        store.load(meta)
    local.search(metas, query_set[0])
    reference = [local.search(metas, query).hits for query in query_set]
    report: dict[str, Any] = {
        "shards": len(metas), "vectors": len(metas) * rows, "dim": dim, "k": k,
        "queries": queries, "runs": runs, "cpu_count": os.cpu_count(),
        "local_blas_threads": blas_threads(),
        "workers_blas_threads": WORKER_BLAS_THREADS,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    with ExitStack() as stack:
        if redis_url is None:
            from tests.services_redis import redis_server

            redis_url = stack.enter_context(redis_server(work_dir / "redis"))
        import redis

        client = redis.Redis.from_url(redis_url)
        stack.callback(client.close)
        report["redis_ping_ms"] = _percentiles(_redis_ping_ms(redis_url, 200))
        for count in (2, 3):
            names = [f"w{i + 1}" for i in range(count)]
            settings = Settings(home=home, broker_url=redis_url, search_workers=names,
                                search_deadline_ms=10_000)
            searcher = CeleryShardSearcher(make_search_celery(settings), workers=names,
                                           deadline_ms=settings.search_deadline_ms)
            with search_workers(names, home=home, broker_url=redis_url,
                                log_dir=work_dir / f"logs-{count}") as running:
                wait_until_answering(searcher, metas, query_set[0])
                for query in query_set[:3]:  # warm: connections, subscriptions
                    searcher.search(metas, query)
                pids = [w.process.pid for w in running.values()]
                local_runs, fanout_runs = [], []
                for _ in range(runs):  # side by side: local, then fanned out, in turns
                    local_runs.append(_measure_local(local, metas, query_set))
                    fanout_runs.append(_measure_fanout(searcher, metas, query_set, reference,
                                                       pids, client))
                measured = _median_of_runs(fanout_runs)
                measured["local_side_by_side"] = _median_of_runs(local_runs)
                # the empty round trip, as the searcher sends it and as a celery.group;
                # the two ways alternate, so both see the same load
                trips: dict[str, list[dict[str, Any]]] = {"send_task": [], "group": []}
                for _ in range(3):
                    for name in trips:
                        trips[name].append(_round_trips(searcher, query_set[0], queries, pids,
                                                        as_group=name == "group"))
                for name, rounds in trips.items():
                    measured[f"empty_round_trip_{name}"] = {
                        "ms_p50": _median([r["ms"]["p50"] for r in rounds]),
                        "ms_p95": _median([r["ms"]["p95"] for r in rounds]),
                        "api_cpu_ms": _median([r["api_cpu_ms"] for r in rounds]),
                        "workers_cpu_ms": _median([r["workers_cpu_ms"] for r in rounds])}
                report[f"workers_{count}"] = measured
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=12)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--rows", type=int, default=4000, help="vectors per shard")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of the query set per configuration (medians reported)")
    parser.add_argument("--redis-url", default=None,
                        help="an existing Redis (default: start redis-server on 127.0.0.1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oko-fanout-") as tmp:
        report = run(cameras=args.cameras, days=args.days, rows=args.rows, dim=args.dim,
                     queries=args.queries, k=args.k, runs=args.runs,
                     redis_url=args.redis_url,
                     work_dir=Path(tmp))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
