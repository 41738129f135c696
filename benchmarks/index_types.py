"""Index types side by side: bytes per vector, RSS, build time, latency, recall@10 (JSON).

For each scale (default 1M and 10M synthetic 512-d vectors) and each index type (flat,
ivf_sq8, ivf_pq), the vectors are written as real shards with ``write_shard`` (one per
camera-day of ``--shard-size`` vectors, 43,200 = one camera sampled every 2 s), loaded
with ``ShardStore.load`` in a fresh process and searched with ``LoadedShard.search``
(top 10 merged across shards), unfiltered and with a 12-hour + night filter.

The vectors are harder than well-separated clusters, like CCTV: each camera has scenes
made of two overlapping concepts, a frame is its scene plus the drift of a static run
plus a little noise (many near-duplicates, cosine ~0.99 within a run), and queries mix
two scenes of one camera (near a cluster boundary). The exact top 10 of every query is
computed while the vectors are generated (a running top 10 over each shard's float32
matrix product), so no float32 copy of the whole set is ever stored.

Measured per type: ``disk_bytes_per_vector`` (index + re-rank store), ``rss_*`` (VmRSS of
the search process: after loading every shard, and after the queries, which touch pages
of the memory-mapped float16 re-rank store), ``build_s``, ``search_ms`` p50/p95 per query,
and ``recall_at_10`` against the exact scan. Flat is left out where its float32 vectors
would not fit in RAM (``--flat-max``).

Without ``--cache-dir`` the data lives in a temp dir under ``--work-dir`` and is deleted
afterwards. With ``--cache-dir`` the built set (shards of every type, queries, exact
ground truth) stays there, so the slow untimed build and the timed queries run apart:

    nice -n 19 python -m benchmarks.index_types --cache-dir /tmp/oko-bench-10m \
        --scales 10000000 --types ivf_sq8 ivf_pq --queries 200 --jobs 2 --build-only
    flock /tmp/oko-bench.lock python -m benchmarks.index_types \
        --cache-dir /tmp/oko-bench-10m --scales 10000000 --types ivf_sq8 ivf_pq --measure-only

The build generates one camera-day at a time in ``--jobs`` processes, writes it as a
shard of every type (the approximate types share one float16 re-rank file, hard-linked),
and keeps that day's exact top 10 per query in ``truth/``: an interrupted build resumes
at the first day missing.

    python -m benchmarks.index_types --scales 1000000 10000000 --queries 300
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from indexer.shard_files import (
    PHASE_CODES,
    ShardKey,
    ShardStore,
    local_day_bounds_utc,
    remove_shard,
    utc_microseconds,
    write_shard,
)
from indexer.shard_index import FLAT, INDEX_TYPES, IVF_PQ, IVF_SQ8

DIM = 512
CONCEPTS = 2048
SCENES_PER_CAMERA = 48
RUN_LENGTH = (20, 400)  # frames in a static stretch
TIMEZONE = "Europe/Kyiv"
DAY = date(2026, 1, 25)
K = 10
THRESHOLDS = {FLAT: (10**12, 10**12), IVF_SQ8: (0, 10**12), IVF_PQ: (0, 0)}


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _concepts(seed: int) -> np.ndarray:
    return _unit(np.random.default_rng([seed, 0]).normal(size=(CONCEPTS, DIM)))


def _scenes(concepts: np.ndarray, seed: int, shard: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1, shard])
    a = rng.integers(0, CONCEPTS, SCENES_PER_CAMERA)
    b = rng.integers(0, CONCEPTS, SCENES_PER_CAMERA)
    noise = _unit(rng.normal(size=(SCENES_PER_CAMERA, DIM)))
    return _unit(concepts[a] + 0.7 * concepts[b] + 0.5 * noise)


def shard_vectors(concepts: np.ndarray, seed: int, shard: int, count: int) -> np.ndarray:
    """One camera-day: static runs of near-duplicate frames over the camera's scenes."""
    rng = np.random.default_rng([seed, 2, shard])
    scenes = _scenes(concepts, seed, shard)
    lengths = rng.integers(*RUN_LENGTH, size=count // RUN_LENGTH[0] + 1)
    run_of = np.repeat(np.arange(len(lengths)), lengths)[:count]
    runs = run_of[-1] + 1
    run_scene = rng.integers(0, SCENES_PER_CAMERA, runs)
    drift = _unit(rng.normal(size=(runs, DIM)))
    frame = _unit(rng.standard_normal(size=(count, DIM), dtype=np.float32))
    return _unit(scenes[run_scene[run_of]] + 0.3 * drift[run_of] + 0.1 * frame)


def make_queries(concepts: np.ndarray, seed: int, shards: int, count: int) -> np.ndarray:
    """Each query mixes two scenes of one camera: near the boundary between clusters."""
    rng = np.random.default_rng([seed, 3])
    rows = []
    for shard in rng.integers(0, shards, count):
        scenes = _scenes(concepts, seed, int(shard))
        i, j = rng.choice(SCENES_PER_CAMERA, size=2, replace=False)
        rows.append(scenes[i] + scenes[j] + 0.2 * _unit(rng.normal(size=DIM)))
    return _unit(np.array(rows))


def shard_plan(total: int, shard_size: int) -> list[int]:
    sizes = [shard_size] * (total // shard_size)
    if total % shard_size:
        sizes.append(total % shard_size)
    return sizes


def shard_rows(shard: int, count: int) -> tuple[ShardKey, np.ndarray, np.ndarray, np.ndarray]:
    """Key, ids, capture times (one local day, evenly spaced) and a day/dusk/night plan."""
    key = ShardKey(f"CAM-{shard:04d}", DAY)
    start, end = local_day_bounds_utc(DAY, TIMEZONE)
    span_us = utc_microseconds(end) - utc_microseconds(start)
    times = utc_microseconds(start) + (np.arange(count) * (span_us // count)).astype(np.int64)
    hour = (np.arange(count) * 24) // count  # winter in Kyiv: night before 7, after 17
    phases = np.where((hour < 7) | (hour >= 17), PHASE_CODES["night"],
                      np.where((hour == 7) | (hour == 16), PHASE_CODES["dusk"],
                               PHASE_CODES["day"])).astype(np.uint8)
    ids = np.arange(count, dtype=np.int64) + shard * 10_000_000
    return key, ids, times, phases


def _top_k(queries: np.ndarray, vectors: np.ndarray,
           ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's exact top ``K`` scores and ids among one shard's vectors."""
    scores = queries @ vectors.T  # (queries, count)
    top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
    return np.take_along_axis(scores, top, 1), ids[top]


def merge_top(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The exact top ``K`` ids of every query from each shard's top ``K``."""
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    keep = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(ids, keep, 1)


def _link_rerank(source_dir: Path, target_dir: Path, key: ShardKey, rerank_file: str) -> None:
    """Let a second approximate type reuse the float16 file (``write_shard`` then skips it)."""
    target = key.directory(target_dir) / rerank_file
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(key.directory(source_dir) / rerank_file, target)


def build_shard(set_dir: Path, *, seed: int, shard: int, count: int, types: list[str],
                queries: np.ndarray) -> dict[str, float]:
    """Generate one camera-day, write it as a shard of each type; its exact top K per query.

    Returns the build seconds per type; the top K goes to ``truth/<shard>.npz``, written
    last, so a shard with a truth file is complete.
    """
    vectors = shard_vectors(_concepts(seed), seed, shard, count)
    key, ids, times, phases = shard_rows(shard, count)
    build_s: dict[str, float] = {}
    rerank: tuple[Path, str] | None = None
    for index_type in types:
        index_dir = set_dir / index_type
        if rerank is not None and index_type != FLAT:
            _link_rerank(rerank[0], index_dir, key, rerank[1])
        approximate_min, compressed_min = THRESHOLDS[index_type]
        began = time.perf_counter()
        meta = write_shard(index_dir=index_dir, key=key, timezone=TIMEZONE, vector_ids=ids,
                           vectors=vectors, captured_at_us=times, phases=phases,
                           frame_ids=ids.tolist(), preset="bench", weights_sha256="b" * 64,
                           approximate_min_vectors=approximate_min,
                           compressed_min_vectors=compressed_min)
        build_s[index_type] = time.perf_counter() - began
        assert meta.index_type == index_type
        if meta.rerank_file is not None and rerank is None:
            rerank = (index_dir, meta.rerank_file)
    scores, top_ids = _top_k(queries, vectors, ids)
    part = set_dir / "truth" / f"{shard:05d}.npz"
    np.savez(part.with_suffix(".tmp.npz"), scores=scores, ids=top_ids)
    part.with_suffix(".tmp.npz").rename(part)
    return build_s


_WORKER: dict[str, Any] = {}


def _init_worker(set_dir: Path, seed: int, types: list[str]) -> None:
    _WORKER.update(set_dir=set_dir, seed=seed, types=types,
                   queries=np.load(set_dir / "queries.npy"))


def _build_job(job: tuple[int, int]) -> dict[str, float]:
    shard, count = job
    return build_shard(_WORKER["set_dir"], seed=_WORKER["seed"], shard=shard, count=count,
                       types=_WORKER["types"], queries=_WORKER["queries"])


def build_set(set_dir: Path, *, total: int, seed: int, shard_size: int, types: list[str],
              queries: int, jobs: int, finish_partial: bool = False) -> dict[str, Any]:
    """Build (or finish building) the cached set of ``total`` vectors; its build record.

    ``finish_partial``: stop at the camera-days already built (the first ones) and
    record those as the set (``partial_of``: the scale asked for).
    """
    record_path = set_dir / "build.json"
    if record_path.is_file():
        record: dict[str, Any] = json.loads(record_path.read_text())
        if set(types) <= set(record["types"]) and record["queries"] == queries:
            return record
        raise SystemExit(f"{set_dir} holds another build ({record['types']}, "
                         f"{record['queries']} queries); delete it or pick another dir.")
    sizes = shard_plan(total, shard_size)
    (set_dir / "truth").mkdir(parents=True, exist_ok=True)
    if not (set_dir / "queries.npy").is_file():
        np.save(set_dir / "queries.npy", make_queries(_concepts(seed), seed, len(sizes), queries))
    todo = [(shard, count) for shard, count in enumerate(sizes)
            if not (set_dir / "truth" / f"{shard:05d}.npz").is_file()]
    partial_of: int | None = None
    if finish_partial:  # measure the days built so far; drop the one being written
        partial_of = total
        for shard, _count in todo:
            for index_type in types:
                remove_shard(index_dir=set_dir / index_type, key=shard_rows(shard, 1)[0])
        built = [(shard, count) for shard, count in enumerate(sizes) if (shard, count) not in todo]
        sizes = [count for _shard, count in built]
        total, todo = sum(sizes), []
    build_s = {t: 0.0 for t in types}
    began = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(
            jobs, initializer=_init_worker, initargs=(set_dir, seed, types)) as pool:
        for done, seconds in enumerate(pool.imap_unordered(_build_job, todo), 1):
            for index_type, value in seconds.items():
                build_s[index_type] += value
            if done % 10 == 0 or done == len(todo):
                print(json.dumps({"built_shards": done, "of": len(todo),
                                  "wall_s": round(time.perf_counter() - began, 1),
                                  "load_average_1m": round(os.getloadavg()[0], 2)}),
                      file=sys.stderr, flush=True)
    parts = []
    for shard in range(len(sizes)):
        with np.load(set_dir / "truth" / f"{shard:05d}.npz") as part:
            parts.append((part["scores"], part["ids"]))
    np.save(set_dir / "truth.npy", merge_top(parts))
    record = {"vectors": total, "partial_of": partial_of, "shards": len(sizes),
              "queries": queries, "types": types,
              "build_wall_s": round(time.perf_counter() - began, 1), "jobs": jobs,
              "build_s_this_run": {t: round(v, 1) for t, v in build_s.items()}}
    for index_type in types:
        index_dir = set_dir / index_type
        first = ShardStore(index_dir).all_meta()[0]
        record[index_type] = {
            "disk_bytes": sum(f.stat().st_size for f in index_dir.rglob("*")
                              if f.suffix in (".npz", ".npy")),
            "index_params_first_shard": first.index_params}
    record_path.write_text(json.dumps(record, indent=2))
    return record


def _rss_bytes() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2)}


def measure(index_dir: Path, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Load every shard and search; runs in a fresh process so RSS is the search's own."""
    gc.collect()
    before = _rss_bytes()
    store = ShardStore(index_dir)
    began = time.perf_counter()
    loaded = [store.load(meta) for meta in store.all_meta()]
    load_s = time.perf_counter() - began
    after_load = _rss_bytes()
    night = frozenset({PHASE_CODES["night"]})
    start, _end = local_day_bounds_utc(DAY, TIMEZONE)
    window = (utc_microseconds(start + timedelta(hours=12)),
              utc_microseconds(start + timedelta(hours=24)))
    timings: dict[str, list[float]] = {"unfiltered": [], "12h_night": []}
    recalls: list[float] = []
    for row, query in enumerate(queries):
        for name in timings:
            filters: dict[str, Any] = {} if name == "unfiltered" \
                else {"time_range_us": window, "phases": night}
            began = time.perf_counter()
            hits = [h for shard in loaded for h in shard.search(query, k=K, **filters)]
            hits.sort(key=lambda h: (-h.score, h.vector_id))
            timings[name].append((time.perf_counter() - began) * 1000)
            if name == "unfiltered":
                got = {h.vector_id for h in hits[:K]}
                recalls.append(len(got & set(truth[row].tolist())) / K)
    after_queries = _rss_bytes()
    return {"shards": len(loaded), "load_s": round(load_s, 1),
            "rss_before_load_bytes": before["VmRSS"],
            "rss_after_load_bytes": after_load["VmRSS"],
            "rss_after_queries_bytes": after_queries["VmRSS"],
            "rss_file_after_queries_bytes": after_queries.get("RssFile", 0),
            "rss_anon_after_queries_bytes": after_queries.get("RssAnon", 0),
            "search_ms": {name: _summary(values) for name, values in timings.items()},
            "recall_at_10": {"mean": round(statistics.fmean(recalls), 4),
                             "min": round(min(recalls), 2), "queries": len(recalls)}}


def measure_type(set_dir: Path, record: dict[str, Any], index_type: str,
                 queries: int | None) -> dict[str, Any]:
    """Search one type's shards in a fresh process (its RSS is the search's own)."""
    limit = [] if queries is None else ["--measure-queries", str(queries)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.index_types", "--measure", str(set_dir / index_type),
         "--work-dir", str(set_dir), *limit], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    total = record["vectors"]
    loaded_bytes = result["rss_after_load_bytes"] - result["rss_before_load_bytes"]
    per_type = record[index_type]
    result["disk_bytes_per_vector"] = round(per_type["disk_bytes"] / total, 1)
    result["rss_load_bytes_per_vector"] = round(loaded_bytes / total, 1)
    result["rss_after_queries_gib"] = round(result["rss_after_queries_bytes"] / 2**30, 2)
    result["rss_anon_after_queries_gib"] = round(result["rss_anon_after_queries_bytes"]
                                                 / 2**30, 2)
    result["index_params_first_shard"] = per_type["index_params_first_shard"]
    return {"index_type": index_type, **result}


def run_scale(set_dir: Path, *, total: int, args: argparse.Namespace) -> dict[str, Any]:
    types = [t for t in args.types if not (t == FLAT and total > args.flat_max)]
    scale: dict[str, Any] = {"vectors": total}
    if not args.measure_only:
        began = time.perf_counter()
        record = build_set(set_dir, total=total, seed=args.seed, shard_size=args.shard_size,
                           types=types, queries=args.queries, jobs=args.jobs,
                           finish_partial=args.finish_partial)
        scale["build_wall_s_this_run"] = round(time.perf_counter() - began, 1)
    else:
        record = json.loads((set_dir / "build.json").read_text())
    scale.update(vectors=record["vectors"], partial_of=record.get("partial_of"),
                 shards=record["shards"], queries=record["queries"],
                 build_s_per_type=record["build_s_this_run"], build_jobs=record["jobs"],
                 types=[])
    for index_type in args.types:
        if index_type not in types:
            scale["types"].append({"index_type": index_type, "skipped": (
                f"float32 vectors need {total * DIM * 4 / 2**30:.1f} GiB of RAM")})
        elif not args.build_only:
            scale["types"].append(measure_type(set_dir, record, index_type,
                                               args.measure_queries))
            print(json.dumps(scale["types"][-1]), file=sys.stderr, flush=True)
    return scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--types", nargs="+", default=list(INDEX_TYPES), choices=INDEX_TYPES)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--shard-size", type=int, default=43_200)
    parser.add_argument("--flat-max", type=int, default=2_000_000,
                        help="largest scale at which flat (float32 in RAM) is measured")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=1, help="processes that build shards")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep the built sets here (<dir>/<vectors>/) and reuse them")
    parser.add_argument("--build-only", action="store_true", help="build, do not search")
    parser.add_argument("--finish-partial", action="store_true",
                        help="end an interrupted build at the camera-days already built")
    parser.add_argument("--measure-only", action="store_true",
                        help="search the sets already built in --cache-dir")
    parser.add_argument("--measure-queries", type=int, default=None,
                        help="search only the first N of the built set's queries")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        queries = np.load(args.work_dir / "queries.npy")[:args.measure_queries]
        truth = np.load(args.work_dir / "truth.npy")[:args.measure_queries]
        print(json.dumps(measure(args.measure, queries, truth)))
        return
    if args.measure_only and args.cache_dir is None:
        parser.error("--measure-only needs --cache-dir")
    result: dict[str, Any] = {"benchmark": "index_types", "dim": DIM, "k": K,
                              "shard_size": args.shard_size, "cpu_count": os.cpu_count(),
                              "load_average_1m_at_start": round(os.getloadavg()[0], 2),
                              "scales": []}
    with tempfile.TemporaryDirectory(prefix="oko-index-types-", dir=args.work_dir) as tmp:
        root = args.cache_dir or Path(tmp)
        for total in args.scales:
            result["scales"].append(run_scale(root / str(total), total=total, args=args))
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
