"""Search benchmark: latency at 100k and 1M vectors, recall@10 of IVF vs flat, embedding speed.

Run from the repository root: ``python -m benchmarks.search`` (prints JSON).

For each scale a data dir is synthesised directly (no footage): cameras, one original and
segment per camera-day, one frame row per vector (about 1.2 frames/s for a whole day,
the density of 1 fps sampling), embedding and index rows, and FAISS shards of 100k
vectors written with ``indexer.shard_files.write_shard``, so shards at the default
``approximate_min_vectors`` (50k) are IVF. Vectors are 512-d (ViT-B-32) and clustered
like real CLIP embeddings. The synthetic embedding rows carry no vector blob; search
never reads them while every frame sits in a committed shard.

* ``latency_ms``: ``indexer.search.engine.search`` end to end (text encoding with a
  randomly initialised ViT-B-32, shard selection, FAISS, re-rank, database join, moment
  grouping), p50/p95 over the query set, unfiltered and filtered (one camera, 12 hours,
  night: the ``IDSelector`` path). ``faiss_ms`` compares the IVF shards (IVF + exact
  re-rank) with an exact flat scan of the same vectors, side by side.
* ``recall_at_10``: merged top-10 of the IVF shards against the exact top-10.
* ``embedding``: ``benchmarks.embedding.run`` (frames/s of the default preset).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlmodel import Session

from benchmarks.embedding import run as embedding_run
from indexer.clip_presets import DEFAULT_PRESET
from indexer.daynight import sun_elevation_deg
from indexer.embeddings import build_unsafe_random_embedder
from indexer.search.engine import SearchFilters, SearchRequest, search
from indexer.shard_files import (
    PHASE_CODES,
    ShardKey,
    ShardStore,
    local_day_bounds_utc,
    utc_microseconds,
    write_shard,
)
from search_api.state import build_state
from storage.settings import Settings

DIM = 512
SHARD_VECTORS = 100_000
TIMEZONE = "Europe/Kyiv"
FIRST_DAY = date(2026, 1, 10)
LAT, LON = 50.45, 30.52
STAMP = "%Y-%m-%d %H:%M:%S.%f"
QUERIES = [
    "red car", "white van", "man in a dark jacket", "cyclist", "bus at a stop",
    "person with a backpack", "police car", "taxi", "motorbike", "crowd near the metro",
    "woman with a pram", "truck unloading", "dog on a leash", "black SUV", "yellow bus",
    "people crossing the road", "parked bicycle", "ambulance", "delivery scooter", "car crash",
]
CENTRES = 256


class CachedTextEmbedder:
    """The benchmark's embedder with text vectors computed once, to time search without it."""

    def __init__(self, embedder: Any) -> None:
        self.inner = embedder
        self.preset, self.weights_sha256, self.dim = (embedder.preset, embedder.weights_sha256,
                                                      embedder.dim)
        self.cache: dict[str, np.ndarray] = {}
        self.encode_ms: list[float] = []

    def encode_text(self, texts: list[str]) -> np.ndarray:
        key = texts[0]
        if key not in self.cache:
            began = time.perf_counter()
            self.cache[key] = self.inner.encode_text(texts)
            self.encode_ms.append((time.perf_counter() - began) * 1000)
        return self.cache[key]

    def encode_images(self, images: list[Any]) -> np.ndarray:
        return self.inner.encode_images(images)


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values), q)), 2)


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": _percentile(values, 50), "p95": _percentile(values, 95),
            "mean": round(statistics.fmean(values), 2)}


def _vectors(count: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    picks = rng.integers(0, len(centres), count)
    vectors = centres[picks] + rng.normal(scale=0.6 / np.sqrt(DIM), size=(count, DIM))
    vectors = vectors.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _phase_by_minute(day: date) -> list[str]:
    start, _ = local_day_bounds_utc(day, TIMEZONE)
    phases = []
    for minute in range(24 * 60 + 60):  # DST days can be 25 hours long
        sun = sun_elevation_deg(latitude=LAT, longitude=LON,
                                at=start + timedelta(minutes=minute))
        phases.append("day" if sun >= 0 else "dusk" if sun >= -6 else "night")
    return phases


def build_dataset(home: Path, total: int, weights_sha256: str, preset: str,
                  approximate_min_vectors: int) -> dict[str, Any]:
    """Synthesise a data dir holding ``total`` indexed vectors; returns build timings."""
    settings = Settings(home=home, environment="test", key_passphrase="bench-only")  # noqa: S106
    state = build_state(settings)
    state.engine.dispose()
    shards = max(1, total // SHARD_VECTORS)
    cameras = max(1, shards // 2)
    per_shard = total // shards
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    db = sqlite3.connect(home / "oko.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).strftime(STAMP)
    timings = {"db_rows_s": 0.0, "shards_s": 0.0}
    frame_id = 0
    for cam in range(cameras):
        camera_id = f"CAM-B{cam:02d}"
        db.execute("INSERT INTO camera (id, name, district, latitude, longitude, agency, timezone,"
                   " allowed_agencies, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (camera_id, camera_id, f"District {cam % 3}", LAT, LON, "police", TIMEZONE,
                    "[]", now))
    for shard in range(shards):
        camera_id = f"CAM-B{shard % cameras:02d}"
        day = FIRST_DAY + timedelta(days=shard // cameras)
        start, end = local_day_bounds_utc(day, TIMEZONE)
        step = (end - start).total_seconds() / per_shard
        began = time.perf_counter()
        original = db.execute(
            "INSERT INTO original (sha256, camera_id, filename, size_bytes, container, "
            "video_codec, width, height, fps, variable_frame_rate, duration_s, "
            "recording_start_utc, timezone, start_source, damaged, decodable_duration_s, "
            "damage_reason, status, ingested_at) VALUES (?, ?, ?, 0, 'mp4', 'h264', 448, 252, "
            "25, 0, ?, ?, ?, 'cli', 0, ?, '', 'ready', ?)",
            (f"{shard:064x}", camera_id, f"{camera_id}_{day}.mp4", 86400.0,
             start.strftime(STAMP), TIMEZONE, 86400.0, now)).lastrowid
        segment = db.execute(
            "INSERT INTO segment (original_id, \"index\", start_offset_s, duration_s, start_utc, "
            "sha256, size_bytes, method, tool, tool_version, parameters) VALUES "
            "(?, 0, 0, 86400, ?, ?, 0, 'stream_copy', 'ffmpeg', 'bench', '{}')",
            (original, start.strftime(STAMP), f"{shard:064x}")).lastrowid
        phases = _phase_by_minute(day)
        ids = np.arange(frame_id + 1, frame_id + per_shard + 1, dtype=np.int64)
        frame_id += per_shard
        frames, embeddings, entries = [], [], []
        key = ShardKey(camera_id, day)
        for i, fid in enumerate(ids.tolist()):
            offset = i * step
            at = start + timedelta(seconds=offset)
            frames.append((fid, original, segment, camera_id, offset, at.strftime(STAMP),
                           448, 252, "0" * 64))
            embeddings.append((fid, weights_sha256, preset, "embedded", None, 0.5, now))
            entries.append((fid, phases[int(offset // 60)], 0.0, 0, key.name, weights_sha256,
                            fid, now, now))
        db.executemany("INSERT INTO frame (id, original_id, segment_id, camera_id, offset_s, "
                       "captured_at_utc, width, height, thumbnail_sha256) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?)", frames)
        db.executemany("INSERT INTO frameembedding (frame_id, weights_sha256, preset, status, "
                       "linked_frame_id, motion_score, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       embeddings)
        db.executemany("INSERT INTO frameindexentry (frame_id, day_phase, sun_elevation_deg, "
                       "monochrome, shard_key, weights_sha256, vector_frame_id, computed_at, "
                       "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
        db.commit()
        timings["db_rows_s"] += time.perf_counter() - began
        began = time.perf_counter()
        offsets_s = np.arange(per_shard) * step
        write_shard(index_dir=settings.index_dir, key=key, timezone=TIMEZONE, vector_ids=ids,
                    vectors=_vectors(per_shard, centres, rng),
                    captured_at_us=utc_microseconds(start) + (offsets_s * 1e6).astype(np.int64),
                    phases=np.array([PHASE_CODES[phases[int(o // 60)]] for o in offsets_s],
                                    dtype=np.uint8),
                    frame_ids=ids.tolist(),
                    preset=preset, weights_sha256=weights_sha256,
                    approximate_min_vectors=approximate_min_vectors)
        timings["shards_s"] += time.perf_counter() - began
    db.close()
    return {"shards": shards, "cameras": cameras, "vectors_per_shard": per_shard,
            **{k: round(v, 1) for k, v in timings.items()}, "centres": centres}


def measure_scale(total: int, *, embedder: Any, work_dir: Path, queries: int,
                  approximate_min_vectors: int) -> dict[str, Any]:
    home = work_dir / f"scale-{total}"
    built = build_dataset(home, total, embedder.weights_sha256, embedder.preset,
                          approximate_min_vectors)
    centres = built.pop("centres")
    settings = Settings(home=home, environment="test", key_passphrase="bench-only")  # noqa: S106
    state = build_state(settings, run_migrations=False)
    store = ShardStore(settings.index_dir)
    loaded = [store.load(meta) for meta in store.all_meta()]  # warm: what a server holds
    texts = [QUERIES[i % len(QUERIES)] for i in range(queries)]
    camera = loaded[0].meta.key.camera_id
    day_start = loaded[0].meta.utc_start
    filtered = SearchFilters(camera_ids=(camera,), start=day_start + timedelta(hours=12),
                             end=day_start + timedelta(hours=24))
    results: dict[str, Any] = {"vectors": total, **built,
                               "index_kinds": sorted({s.meta.index_type for s in loaded})}
    cached = CachedTextEmbedder(embedder)
    with Session(state.engine) as session:
        for name, filters, text_suffix in (("unfiltered", SearchFilters(), ""),
                                           ("camera_12h_night", filtered, " at night")):
            for label, model in (("end_to_end", embedder), ("excluding_text_encoding", cached)):
                search(session=session, get_embedder=lambda m=model: m, shards=store,
                       request=SearchRequest(text="warm up" + text_suffix, filters=filters))
                elapsed = []
                for text in texts:
                    cached.encode_text([text])  # fills the cache; untimed
                    began = time.perf_counter()
                    search(session=session, get_embedder=lambda m=model: m, shards=store,
                           request=SearchRequest(text=text + text_suffix, filters=filters))
                    elapsed.append((time.perf_counter() - began) * 1000)
                results.setdefault("latency_ms", {}).setdefault(name, {})[label] = \
                    _summary(elapsed)
    results["text_encoding_ms"] = _summary(cached.encode_ms)

    rng = np.random.default_rng(11)
    probes = centres[rng.integers(0, len(centres), queries)] \
        + rng.normal(scale=0.6 / np.sqrt(DIM), size=(queries, DIM))
    probes = (probes / np.linalg.norm(probes, axis=1, keepdims=True)).astype(np.float32)
    ivf_ms, flat_ms, recalls = [], [], []
    for probe in probes:
        began = time.perf_counter()
        approx = sorted((h for s in loaded for h in s.search(probe, k=10)),
                        key=lambda h: -h.score)[:10]
        ivf_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        exact: list[tuple[float, int]] = []
        for shard in loaded:
            scores = shard.exact @ probe
            top = np.argpartition(-scores, 10)[:10]
            exact += [(float(scores[i]), int(shard.ids[i])) for i in top]
        exact_ids = {i for _s, i in sorted(exact, reverse=True)[:10]}
        flat_ms.append((time.perf_counter() - began) * 1000)
        recalls.append(len({h.vector_id for h in approx} & exact_ids) / 10)
    results["faiss_ms"] = {"ivf_with_exact_rerank": _summary(ivf_ms),
                           "flat_exact_scan_baseline": _summary(flat_ms),
                           "speedup_vs_flat": round(statistics.median(flat_ms)
                                                    / statistics.median(ivf_ms), 2)}
    results["recall_at_10"] = {"mean": round(statistics.fmean(recalls), 4),
                               "min": min(recalls), "queries": len(recalls)}
    state.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=12)
    parser.add_argument("--approximate-min-vectors", type=int,
                        default=Settings.model_fields["approximate_index_min_vectors"].default)
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    embedder = build_unsafe_random_embedder(DEFAULT_PRESET, seed=0)
    result: dict[str, Any] = {"benchmark": "search", "preset": DEFAULT_PRESET,
                              "weights": "random (same architecture and arithmetic as real)",
                              "dim": embedder.dim, "cpu_count": os.cpu_count(),
                              "approximate_min_vectors": args.approximate_min_vectors,
                              "torch_threads": torch.get_num_threads(),
                              "load_average_1m_at_start": round(os.getloadavg()[0], 2),
                              "scales": []}
    with tempfile.TemporaryDirectory(prefix="oko-search-bench-", dir=args.work_dir) as work:
        for total in args.scales:
            result["scales"].append(measure_scale(
                total, embedder=embedder, work_dir=Path(work), queries=args.queries,
                approximate_min_vectors=args.approximate_min_vectors))
    result["load_average_1m_after_search"] = round(os.getloadavg()[0], 2)
    if not args.skip_embedding:
        result["embedding"] = embedding_run(frames=32, runs=3, batch_size=32)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
