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
would not fit in RAM (``--flat-max``). Temp data lives under ``--work-dir`` (default
/tmp) and is deleted afterwards.

    python -m benchmarks.index_types --scales 1000000 10000000 --queries 300
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
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
    frame = _unit(rng.normal(size=(count, DIM)).astype(np.float32))
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


def exact_top(*, seed: int, sizes: list[int], queries: np.ndarray) -> np.ndarray:
    """The exact top ``K`` ids of every query: a running top-K over each shard's scores."""
    concepts = _concepts(seed)
    best_scores = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), K), dtype=np.int64)
    for shard, count in enumerate(sizes):
        vectors = shard_vectors(concepts, seed, shard, count)
        _key, ids, _times, _phases = shard_rows(shard, count)
        scores = queries @ vectors.T  # (queries, count)
        top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        scores_all = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        ids_all = np.concatenate([best_ids, ids[top]], axis=1)
        keep = np.argsort(-scores_all, axis=1, kind="stable")[:, :K]
        best_scores = np.take_along_axis(scores_all, keep, 1)
        best_ids = np.take_along_axis(ids_all, keep, 1)
    return best_ids


def build(index_dir: Path, *, seed: int, sizes: list[int], index_type: str) -> dict[str, Any]:
    concepts = _concepts(seed)
    approximate_min, compressed_min = THRESHOLDS[index_type]
    build_s = 0.0
    first_params: dict[str, Any] = {}
    for shard, count in enumerate(sizes):
        vectors = shard_vectors(concepts, seed, shard, count)
        key, ids, times, phases = shard_rows(shard, count)
        began = time.perf_counter()
        meta = write_shard(index_dir=index_dir, key=key, timezone=TIMEZONE, vector_ids=ids,
                           vectors=vectors, captured_at_us=times, phases=phases,
                           frame_ids=ids.tolist(), preset="bench", weights_sha256="b" * 64,
                           approximate_min_vectors=approximate_min,
                           compressed_min_vectors=compressed_min)
        build_s += time.perf_counter() - began
        assert meta.index_type == index_type
        if shard == 0:
            first_params = meta.index_params
    disk = sum(p.stat().st_size for p in index_dir.rglob("*") if p.suffix in (".npz", ".npy"))
    return {"build_s": round(build_s, 1), "disk_bytes": disk,
            "index_params_first_shard": first_params}


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
            "search_ms": {name: _summary(values) for name, values in timings.items()},
            "recall_at_10": {"mean": round(statistics.fmean(recalls), 4),
                             "min": round(min(recalls), 2), "queries": len(recalls)}}


def run_type(work: Path, *, total: int, seed: int, shard_size: int, index_type: str,
             queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    index_dir = work / f"{total}-{index_type}"
    sizes = shard_plan(total, shard_size)
    try:
        result = build(index_dir, seed=seed, sizes=sizes, index_type=index_type)
        np.save(work / "queries.npy", queries)
        np.save(work / "truth.npy", truth)
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.index_types", "--measure", str(index_dir),
             "--work-dir", str(work)], capture_output=True, text=True, check=True)
        result.update(json.loads(done.stdout))
    finally:
        shutil.rmtree(index_dir, ignore_errors=True)
    loaded_bytes = result["rss_after_load_bytes"] - result["rss_before_load_bytes"]
    result["disk_bytes_per_vector"] = round(result.pop("disk_bytes") / total, 1)
    result["rss_load_bytes_per_vector"] = round(loaded_bytes / total, 1)
    result["rss_after_queries_gib"] = round(result["rss_after_queries_bytes"] / 2**30, 2)
    return {"index_type": index_type, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--types", nargs="+", default=list(INDEX_TYPES), choices=INDEX_TYPES)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--shard-size", type=int, default=43_200)
    parser.add_argument("--flat-max", type=int, default=2_000_000,
                        help="largest scale at which flat (float32 in RAM) is measured")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        queries = np.load(args.work_dir / "queries.npy")
        truth = np.load(args.work_dir / "truth.npy")
        print(json.dumps(measure(args.measure, queries, truth)))
        return
    result: dict[str, Any] = {"benchmark": "index_types", "dim": DIM, "k": K,
                              "shard_size": args.shard_size, "cpu_count": os.cpu_count(),
                              "load_average_1m_at_start": round(os.getloadavg()[0], 2),
                              "scales": []}
    with tempfile.TemporaryDirectory(prefix="oko-index-types-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        for total in args.scales:
            sizes = shard_plan(total, args.shard_size)
            queries = make_queries(_concepts(args.seed), args.seed, len(sizes), args.queries)
            began = time.perf_counter()
            truth = exact_top(seed=args.seed, sizes=sizes, queries=queries)
            scale: dict[str, Any] = {"vectors": total, "shards": len(sizes),
                                     "queries": len(queries),
                                     "exact_ground_truth_s": round(time.perf_counter() - began,
                                                                   1), "types": []}
            for index_type in args.types:
                if index_type == FLAT and total > args.flat_max:
                    scale["types"].append({"index_type": FLAT, "skipped": (
                        f"float32 vectors need {total * DIM * 4 / 2**30:.1f} GiB of RAM")})
                    continue
                scale["types"].append(run_type(
                    work, total=total, seed=args.seed, shard_size=args.shard_size,
                    index_type=index_type, queries=queries, truth=truth))
                print(json.dumps(scale["types"][-1]), file=sys.stderr, flush=True)
            result["scales"].append(scale)
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
