"""Search benchmark: end-to-end latency, its split, RSS and recall@10 per scale.

Run from the repository root: ``python -m benchmarks.search [--scales 100000 1000000]
[--runs 20] [--data-dir DIR]`` (prints JSON). Each scale runs in its own process, so its
RSS is its own. With ``--data-dir`` each scale's data set is built once and reused; build
it first with ``--prepare`` (untimed, e.g. under ``nice``).

For each scale a data dir is synthesised directly (no footage): cameras, one original and
segment per camera-day, one frame row per vector, embedding, index-entry and shard-registry
rows, and FAISS shards of ``--shard-vectors`` vectors (default 100k, a camera-day at about
1.2 frames/s) written with ``indexer.shard_files.write_shard`` with their capture times
and day phases (from the sun at the camera), so the index type follows the shard size.

Vectors are harder than well-separated clusters: each camera sees a few hundred scenes
(centres near shared global ones) and its frames are near-duplicates of them with a slow
drift in time, as CCTV is; queries lie between two scenes (near a cluster boundary).

* ``text_encoding_ms``: one query text (tokenised, then the tower) through the text tower
  of a randomly initialised ViT-B-32, the variants taking turns per text so they see the
  same load: ONNX Runtime (``indexer.onnx_towers``, exported once and kept with the data)
  on the tokens up to the end-of-text token (``onnx_trimmed``, what the API runs; also
  with one intra-op thread and cut to a multiple of 8), the same graph on the full 77
  tokens (``onnx_full_length``, the work before issue 16), torch cut the same way
  (``torch_trimmed``) and open_clip's own full pass (``torch_full``), and a cache hit.
* ``latency_ms``: ``indexer.search.engine.search`` end to end, as the API runs it: the
  model behind ``CachedQueryEmbedder``, shard selection, FAISS + exact re-rank, the
  top-k's one database read, moment grouping; p50/p95, unfiltered and filtered (one
  camera + 12 h + "at night"), with the split from ``provenance.timings_ms`` (encode,
  shards, database) and that of the two slowest runs. ``end_to_end``: ONNX text tower
  (tokens up to the end-of-text token, idle threads sleeping), text new to the cache;
  ``end_to_end_onnx_spinning``: the same with onnxruntime's spinning threads (its
  default); ``end_to_end_torch``: the same on torch; ``text_vector_cached``: a cache hit.
* ``recall_at_10``: the shards' merged top-10 (``LocalShardSearcher``) against an exact
  scan of the same float32 vectors, unfiltered and filtered.
* ``rss_mib``: resident memory after building, after loading every shard, after searching,
  and after dropping the torch text weights as the API does with its text tower on ONNX;
  ``rss_split_mib``: the same split into anonymous memory (indexes, arrays, models) and
  file-backed pages (the memory-mapped float16 re-rank stores the queries touched, which
  the kernel can reclaim).

``--pq-min-vectors N`` builds the data set with shards of N vectors or more as IVF-PQ (what
``OKO_PQ_INDEX_MIN_VECTORS`` sets; by default 100k shards are IVF-SQ8).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from sqlmodel import Session

from benchmarks.random_clip import random_embedder
from indexer import onnx_towers
from indexer.clip_presets import DEFAULT_PRESET
from indexer.daynight import sun_elevation_deg
from indexer.embeddings import ClipEmbedder, eot_length
from indexer.onnx_towers import OnnxTower, load_tower
from indexer.query_cache import CachedQueryEmbedder, QueryCache
from indexer.search.engine import SearchFilters, SearchRequest, search
from indexer.search.query import parse_query
from indexer.search.shard_search import LocalShardSearcher, ShardQuery
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
GLOBAL_CENTRES = 512
SCENES_PER_CAMERA = 300
RECALL_QUERIES = 40


def _summary(values: list[float]) -> dict[str, float]:
    array = np.array(values)
    return {"p50": round(float(np.percentile(array, 50)), 2),
            "p95": round(float(np.percentile(array, 95)), 2),
            "mean": round(statistics.fmean(values), 2), "runs": len(values)}


def _rss_mib() -> float:
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _rss_split_mib() -> dict[str, float]:
    """Resident memory split as Linux counts it: anonymous (the process's own: indexes,
    arrays, models) and file-backed (mapped files' pages in RAM, here the float16
    re-rank stores, which the kernel can reclaim), from /proc/self/status."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _sep, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "RssShmem"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return {"anon": fields.get("RssAnon", 0.0), "file": fields.get("RssFile", 0.0)}


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _phase_codes(day: date, times_us: np.ndarray) -> np.ndarray:
    start, _ = local_day_bounds_utc(day, TIMEZONE)
    by_minute = []
    for minute in range(25 * 60):  # DST days can be 25 hours long
        sun = sun_elevation_deg(latitude=LAT, longitude=LON, at=start + timedelta(minutes=minute))
        by_minute.append(PHASE_CODES["day" if sun >= 0 else "dusk" if sun >= -6 else "night"])
    minutes = (times_us - utc_microseconds(start)) // 60_000_000
    return np.array(by_minute, dtype=np.uint8)[minutes]


def _shard_vectors(count: int, scenes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Near-duplicates of a camera's scenes, each scene held for a stretch of time."""
    stretch = rng.integers(20, 400, size=count // 20 + 2)
    picks = np.repeat(rng.integers(0, len(scenes), len(stretch)), stretch)[:count]
    drift = rng.normal(scale=0.25 / np.sqrt(DIM), size=(count, DIM))
    return _unit(scenes[picks] + drift)


def build_dataset(home: Path, total: int, shard_vectors: int, weights_sha256: str,
                  preset: str, probes: np.ndarray, pq_min_vectors: int | None = None
                  ) -> dict[str, Any]:
    """Synthesise a data dir holding ``total`` indexed vectors; returns build facts and the
    exact top-10 of each probe, unfiltered and under the filtered benchmark's scope."""
    settings = Settings(home=home, environment="test", key_passphrase="bench-only")  # noqa: S106
    state = build_state(settings)
    state.engine.dispose()
    shards = max(1, total // shard_vectors)
    cameras = max(1, shards // 2)
    per_shard = total // shards
    rng = np.random.default_rng(7)
    centres = _unit(rng.normal(size=(GLOBAL_CENTRES, DIM)))
    db = sqlite3.connect(home / "oko.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).strftime(STAMP)
    timings = {"db_rows_s": 0.0, "shards_s": 0.0}
    scenes: dict[str, np.ndarray] = {}
    for cam in range(cameras):
        camera_id = f"CAM-B{cam:03d}"
        db.execute("INSERT INTO camera (id, name, district, latitude, longitude, agency, timezone,"
                   " allowed_agencies, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (camera_id, camera_id, f"District {cam % 3}", LAT, LON, "police", TIMEZONE,
                    "[]", now))
        base = centres[rng.integers(0, GLOBAL_CENTRES, SCENES_PER_CAMERA)]
        scenes[camera_id] = _unit(base + rng.normal(scale=0.5 / np.sqrt(DIM),
                                                    size=(SCENES_PER_CAMERA, DIM)))
    filtered_scope = ("CAM-B000", FIRST_DAY)
    exact: dict[str, list[list[tuple[float, int]]]] = {
        "unfiltered": [[] for _ in probes], "filtered": [[] for _ in probes]}
    frame_id = 0
    for shard in range(shards):
        camera_id = f"CAM-B{shard % cameras:03d}"
        day = FIRST_DAY + timedelta(days=shard // cameras)
        start, end = local_day_bounds_utc(day, TIMEZONE)
        step_us = int((end - start).total_seconds() * 1e6) // per_shard
        times = utc_microseconds(start) + np.arange(per_shard, dtype=np.int64) * step_us
        phases = _phase_codes(day, times)
        ids = np.arange(frame_id + 1, frame_id + per_shard + 1, dtype=np.int64)
        frame_id += per_shard
        key = ShardKey(camera_id, day)
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
        names = {code: name for name, code in PHASE_CODES.items()}
        fids, offsets = ids.tolist(), ((times - times[0]) / 1e6).tolist()
        # the capture stamps at once (numpy), in STAMP's layout
        stamps = np.char.replace(np.datetime_as_string(times.astype("datetime64[us]")),
                                 "T", " ").tolist()
        phase_names = [names[code] for code in phases.tolist()]
        zeros = "0" * 64
        frames = [(fid, original, segment, camera_id, offset, at, 448, 252, zeros)
                  for fid, offset, at in zip(fids, offsets, stamps, strict=True)]
        embeddings = [(fid, weights_sha256, preset, "embedded", None, 0.5, now)
                      for fid in fids]
        entries = [(fid, phase, 0.0, 0, key.name, weights_sha256, fid, now, now)
                   for fid, phase in zip(fids, phase_names, strict=True)]
        db.executemany("INSERT INTO frame (id, original_id, segment_id, camera_id, offset_s, "
                       "captured_at_utc, width, height, thumbnail_sha256) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?)", frames)
        db.executemany("INSERT INTO frameembedding (frame_id, weights_sha256, preset, status, "
                       "linked_frame_id, motion_score, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       embeddings)
        db.executemany("INSERT INTO frameindexentry (frame_id, day_phase, sun_elevation_deg, "
                       "monochrome, shard_key, weights_sha256, vector_frame_id, computed_at, "
                       "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
        db.execute("INSERT INTO searchshard (shard_key, camera_id, local_day, frames, "
                   "weights_sha256, committed_at) VALUES (?, ?, ?, ?, ?, ?)",
                   (key.name, camera_id, day.isoformat(), per_shard, weights_sha256, now))
        db.commit()
        timings["db_rows_s"] += time.perf_counter() - began
        vectors = _shard_vectors(per_shard, scenes[camera_id], rng)
        began = time.perf_counter()
        write_shard(index_dir=settings.index_dir, key=key, timezone=TIMEZONE, vector_ids=ids,
                    vectors=vectors, captured_at_us=times, phases=phases,
                    frame_ids=ids.tolist(), preset=preset, weights_sha256=weights_sha256,
                    approximate_min_vectors=50_000, compressed_min_vectors=pq_min_vectors)
        timings["shards_s"] += time.perf_counter() - began
        scores = probes @ vectors.T  # exact ground truth, kept as running top-10s
        in_scope = None
        if (camera_id, day) == filtered_scope:
            in_scope = ((times >= utc_microseconds(start + timedelta(hours=12)))
                        & (phases == PHASE_CODES["night"]))
        for q in range(len(probes)):
            top = np.argpartition(-scores[q], 10)[:10]
            exact["unfiltered"][q] = sorted(exact["unfiltered"][q] + [
                (float(scores[q, i]), int(ids[i])) for i in top], reverse=True)[:10]
            if in_scope is not None:
                rows = np.flatnonzero(in_scope)
                best = rows[np.argsort(-scores[q, rows])[:10]]
                exact["filtered"][q] = [(float(scores[q, i]), int(ids[i])) for i in best]
        del vectors, scores
    db.close()
    return {"shards": shards, "cameras": cameras, "vectors_per_shard": per_shard,
            **{k: round(v, 1) for k, v in timings.items()},
            "exact": {name: [{i for _s, i in tops} for tops in per_query]
                      for name, per_query in exact.items()}}


def _text_backend(embedder: ClipEmbedder, tower: OnnxTower, backend: str) -> None:
    if backend == "onnx":
        embedder.use_runner("text", tower, tower.backend)
    else:
        embedder.use_runner("text", None, "torch")


def _encoding_ms(embedder: ClipEmbedder, tower: OnnxTower, one_thread: OnnxTower,
                 texts: list[str], torch_runs: int) -> dict[str, Any]:
    """One text at a time, each variant on texts it has not seen, taking turns per text
    (so all see the same load), and a query-cache hit."""
    def onnx(session_of: OnnxTower, multiple: int | None) -> Any:
        def run(text: str) -> None:
            tokens = embedder.tokenize([text]).numpy()
            cut = tokens.shape[1] if multiple is None else eot_length(tokens, multiple)
            session_of.session.run(None, {"input": tokens[:, :cut]})
        return run

    variants = {
        "onnx_trimmed": onnx(tower, 1), "onnx_trimmed_1_thread": onnx(one_thread, 1),
        "onnx_trimmed_multiple_8": onnx(tower, 8), "onnx_full_length": onnx(tower, None),
        "torch_trimmed": lambda text: embedder.torch_encode_text_trimmed(
            embedder.tokenize([text])),
        "torch_full": lambda text: embedder.torch_encode_text(embedder.tokenize([text])),
    }
    times: dict[str, list[float]] = {name: [] for name in [*variants, "cache_hit"]}
    for run in variants.values():  # warm: first runs allocate
        run("warm up")
    for index, text in enumerate(texts):
        for name, run in variants.items():
            if name.startswith("torch") and index >= torch_runs:
                continue
            began = time.perf_counter()
            run(text)
            times[name].append((time.perf_counter() - began) * 1000)
    _text_backend(embedder, tower, "onnx")
    cached = CachedQueryEmbedder(embedder, QueryCache(len(texts) + 1))
    cached.encode_text(texts)
    for text in texts:
        began = time.perf_counter()
        cached.encode_text([text])
        times["cache_hit"].append((time.perf_counter() - began) * 1000)
    summary: dict[str, Any] = {name: _summary(values) for name, values in times.items()}
    summary["full_over_trimmed_p50"] = round(
        summary["onnx_full_length"]["p50"] / summary["onnx_trimmed"]["p50"], 2)
    summary["tokens_p50"] = float(np.median([eot_length(embedder.tokenize([t])) for t in texts]))
    summary["onnx_file_sha256"] = tower.record.get("onnx_sha256")
    summary["onnx_parity_min_cosine"] = tower.record.get("parity_min_cosine")
    summary["onnx_text_sequence"] = tower.record.get("text_sequence")
    return summary


def cached_dataset(home: Path, total: int, shard_vectors: int, weights_sha256: str,
                   preset: str, probes: np.ndarray, pq_min_vectors: int | None = None
                   ) -> dict[str, Any]:
    """``build_dataset``, or the one a previous run left in ``home`` (``--data-dir``) for
    the same scale, shard size, model and probes (its ``built.json`` is written last)."""
    facts = {"total": total, "shard_vectors": shard_vectors, "weights_sha256": weights_sha256,
             "probes_sha256": hashlib.sha256(probes.tobytes()).hexdigest()}
    if pq_min_vectors is not None:
        facts["pq_min_vectors"] = pq_min_vectors
    record = home / "built.json"
    if record.exists():
        stored = json.loads(record.read_text())
        if stored.get("facts") == facts:
            built: dict[str, Any] = stored["built"]
            built["exact"] = {name: [set(ids) for ids in per_query]
                              for name, per_query in built["exact"].items()}
            return {**built, "reused": True}
        raise SystemExit(f"{home} holds another benchmark data set; remove it or use another "
                         "--data-dir.")
    if home.exists():  # a build that did not finish
        shutil.rmtree(home)
    home.mkdir(parents=True)
    built = build_dataset(home, total, shard_vectors, weights_sha256, preset, probes,
                          pq_min_vectors)
    stored_exact = {name: [sorted(ids) for ids in per_query]
                    for name, per_query in built["exact"].items()}
    record.write_text(json.dumps({"facts": facts, "built": {**built, "exact": stored_exact}}))
    return {**built, "reused": False}


def measure_scale(total: int, *, runs: int, shard_vectors: int, work_dir: Path,
                  prepare_only: bool = False, torch_runs: int = 5,
                  pq_min_vectors: int | None = None) -> dict[str, Any]:
    embedder = random_embedder(DEFAULT_PRESET)
    rng = np.random.default_rng(11)
    home = work_dir / f"scale-{total}"
    # probes between two scenes: built from the same generator's centres in build_dataset
    centres = _unit(np.random.default_rng(7).normal(size=(GLOBAL_CENTRES, DIM)))
    pairs = rng.integers(0, GLOBAL_CENTRES, size=(RECALL_QUERIES, 2))
    probes = _unit(centres[pairs[:, 0]] + centres[pairs[:, 1]]
                   + rng.normal(scale=0.3 / np.sqrt(DIM), size=(RECALL_QUERIES, DIM)))
    built = cached_dataset(home, total, shard_vectors, embedder.weights_sha256,
                           embedder.preset, probes, pq_min_vectors)
    exact = built.pop("exact")
    results: dict[str, Any] = {"vectors": total, **built, "rss_mib": {"built": _rss_mib()}}
    tower = load_tower(embedder, "text", cache_dir=work_dir / "onnx")  # exported once
    if prepare_only:
        return results
    settings = Settings(home=home, environment="test", key_passphrase="bench-only")  # noqa: S106
    state = build_state(settings, run_migrations=False)
    store = ShardStore(settings.index_dir)
    metas = store.all_meta()
    for meta in metas:
        store.load(meta)  # warm: what a server holds
    results["index_types"] = sorted({m.index_type for m in metas})
    results["rss_mib"]["shards_loaded"] = _rss_mib()
    results["rss_split_mib"] = {"shards_loaded": _rss_split_mib()}
    day_start = min(m.utc_start for m in metas if m.key.camera_id == "CAM-B000")
    filtered = SearchFilters(camera_ids=("CAM-B000",), start=day_start + timedelta(hours=12),
                             end=day_start + timedelta(hours=24))
    texts = [QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}")
             for i in range(runs)]
    one_thread = load_tower(embedder, "text", cache_dir=work_dir / "onnx", threads=1)
    results["text_encoding_ms"] = _encoding_ms(embedder, tower, one_thread, texts, torch_runs)
    del one_thread
    # the API's path: the installed model, its text tower on ONNX (OKO_TEXT_ENCODER=onnx)
    # or torch, behind the query cache (each text new to it, or already in it)
    spinning = replace(tower, session=onnx_towers._session(  # onnxruntime's own default
        tower.path.read_bytes(), 0, spinning=True))
    paths = {"end_to_end": ("onnx", False), "end_to_end_onnx_spinning": ("spinning", False),
             "end_to_end_torch": ("torch", False), "text_vector_cached": ("onnx", True)}
    latency: dict[str, Any] = {}
    with Session(state.engine) as session:
        for name, filters, suffix in (("unfiltered", SearchFilters(), ""),
                                      ("camera_12h_night", filtered, " at night")):
            for label, (backend, hit) in paths.items():
                _text_backend(embedder, spinning if backend == "spinning" else tower,
                              "torch" if backend == "torch" else "onnx")
                model = CachedQueryEmbedder(embedder, QueryCache(4 * runs))
                search(session=session, get_embedder=lambda m=model: m, shards=store,
                       request=SearchRequest(text="warm up" + suffix, filters=filters))
                elapsed: list[float] = []
                split: dict[str, list[float]] = {}
                for text in texts[:torch_runs] if backend == "torch" else texts:
                    query = f"{text}{suffix} {label}"  # new to every other path's cache
                    if hit:  # fill the cache with what the engine encodes, untimed
                        model.encode_text([parse_query(query).clip_text])
                    began = time.perf_counter()
                    result = search(session=session, get_embedder=lambda m=model: m,
                                    shards=store,
                                    request=SearchRequest(text=query, filters=filters))
                    elapsed.append((time.perf_counter() - began) * 1000)
                    assert result.provenance.query_vector_cached is hit
                    for part, ms in result.provenance.timings_ms.items():
                        split.setdefault(part, []).append(ms)
                slowest = sorted(range(len(elapsed)), key=elapsed.__getitem__)[-2:]
                latency.setdefault(name, {})[label] = {
                    **_summary(elapsed), "split_p50_ms": {
                        part: round(float(np.median(values)), 2)
                        for part, values in split.items()},
                    "slowest_runs": [{"ms": round(elapsed[i], 1), **{
                        part: round(values[i], 1) for part, values in split.items()}}
                        for i in reversed(slowest)]}
                latency[name]["shards_searched"] = len(result.provenance.shards_searched)
                latency[name]["candidates"] = result.provenance.candidates
    _text_backend(embedder, tower, "onnx")
    results["latency_ms"] = latency
    results["rss_mib"]["after_search"] = _rss_mib()
    results["rss_split_mib"]["after_search"] = _rss_split_mib()
    embedder.release_torch_text()  # as the API does once its text tower is on ONNX
    gc.collect()
    results["rss_mib"]["after_release_torch_text"] = _rss_mib()
    results["rss_split_mib"]["after_release_torch_text"] = _rss_split_mib()

    searcher = LocalShardSearcher(store)
    night = frozenset({PHASE_CODES["night"]})
    scoped = [m for m in metas if m.key == ShardKey("CAM-B000", FIRST_DAY)]
    start_us = utc_microseconds(scoped[0].utc_start + timedelta(hours=12))
    recall: dict[str, list[float]] = {"unfiltered": [], "filtered": []}
    shard_ms: dict[str, list[float]] = {"unfiltered": [], "filtered": []}
    for q, probe in enumerate(probes):
        for name, chosen, query in (
                ("unfiltered", metas, ShardQuery(probe, 10, None, None)),
                ("filtered", scoped, ShardQuery(probe, 10, (start_us, 2**62), night))):
            began = time.perf_counter()
            got = {vid for vid, _s in searcher.search(chosen, query).hits}
            shard_ms[name].append((time.perf_counter() - began) * 1000)
            truth = exact[name][q]
            recall[name].append(len(got & truth) / max(1, len(truth)))
    results["recall_at_10"] = {name: {"mean": round(statistics.fmean(values), 4),
                                      "min": round(min(values), 2), "queries": len(values)}
                               for name, values in recall.items()}
    results["shards_only_ms"] = {name: _summary(values) for name, values in shard_ms.items()}
    state.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--shard-vectors", type=int, default=100_000)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help=(
        "keep each scale's synthetic data set here and reuse it on later runs"))
    parser.add_argument("--prepare", action="store_true", help=(
        "only build (or check) the data sets in --data-dir; run this part under nice, "
        "outside the benchmark lock"))
    parser.add_argument("--torch-runs", type=int, default=5, help=(
        "runs of the torch text tower (seconds a query on a busy 2-core machine)"))
    parser.add_argument("--pq-min-vectors", type=int, default=None, help=(
        "shards of this many vectors or more are IVF-PQ (OKO_PQ_INDEX_MIN_VECTORS; "
        "default: the index policy's, 200k, so 100k shards are IVF-SQ8)"))
    parser.add_argument("--one-scale", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_scale is not None:  # a child process: one scale, its own RSS
        if args.data_dir is not None:
            print(json.dumps(measure_scale(args.one_scale, runs=args.runs,
                                           shard_vectors=args.shard_vectors,
                                           work_dir=args.data_dir, prepare_only=args.prepare,
                                           torch_runs=min(args.torch_runs, args.runs),
                                           pq_min_vectors=args.pq_min_vectors)))
            return
        with tempfile.TemporaryDirectory(prefix="oko-search-bench-", dir=args.work_dir) as work:
            print(json.dumps(measure_scale(args.one_scale, runs=args.runs,
                                           shard_vectors=args.shard_vectors,
                                           work_dir=Path(work), prepare_only=args.prepare,
                                           torch_runs=min(args.torch_runs, args.runs),
                                           pq_min_vectors=args.pq_min_vectors)))
        return
    result: dict[str, Any] = {"benchmark": "search", "preset": DEFAULT_PRESET,
                              "weights": "random (same architecture and arithmetic as real)",
                              "dim": DIM, "cpu_count": os.cpu_count(),
                              "load_average_1m_at_start": round(os.getloadavg()[0], 2),
                              "scales": []}
    for total in args.scales:
        command = [sys.executable, "-m", "benchmarks.search", "--one-scale", str(total),
                   "--runs", str(args.runs), "--shard-vectors", str(args.shard_vectors),
                   "--torch-runs", str(args.torch_runs)]
        if args.work_dir is not None:
            command += ["--work-dir", str(args.work_dir)]
        if args.data_dir is not None:
            command += ["--data-dir", str(args.data_dir)]
        if args.prepare:
            command += ["--prepare"]
        if args.pq_min_vectors is not None:
            command += ["--pq-min-vectors", str(args.pq_min_vectors)]
        child = subprocess.run(command, check=True, capture_output=True, text=True)
        result["scales"].append(json.loads(child.stdout.strip().splitlines()[-1]))
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
