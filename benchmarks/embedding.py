"""Embedding throughput (frames/s) of the default preset's architecture on this machine.

Prints JSON: the median frames/s over several runs for batched embedding on all cores,
side by side with a one-frame-at-a-time, one-thread baseline, and the ratio. Real CLIP
weights cannot be downloaded here, so the model is ViT-B-32 with random weights, built
through the same open_clip code path; the compute (and so the speed) does not depend on
the weight values. When real weights are configured (OKO_CLIP_WEIGHTS, or a model
imported into OKO_HOME) they are measured too and their ratio to random is reported.
It also reports the fraction of frames motion gating skips on the sample footage.

``--onnx`` adds, side by side, the query encoder on torch and on ONNX Runtime (ms per
single-text query, p50 / p95, medians over runs, on English and Ukrainian queries), the
cost of a query-cache hit, and image embedding frames/s on ONNX Runtime fp32 and int8
(dynamic quantisation) next to torch, with each one's cosine against open_clip.

Run: ``.venv/bin/python benchmarks/embedding.py [--frames 64] [--runs 3] [--onnx]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sqlmodel import Session, col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.random_clip import random_embedder
from indexer.clip_presets import DEFAULT_PRESET
from indexer.embed_queue import embed_pending_frames
from indexer.embeddings import (
    ClipEmbedder,
    NoModelError,
    build_unsafe_random_embedder,
    load_embedder,
    resolve_weights,
)
from indexer.ingest import IngestOptions, ingest_file
from indexer.onnx_towers import OnnxExportError, load_tower
from indexer.query_cache import CachedQueryEmbedder, QueryCache
from indexer.samples import generate_sample_footage
from search_api.state import build_state
from storage.cameras import import_cameras_csv
from storage.db import make_engine, session_scope
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from storage.settings import Settings


def synthetic_frames(count: int, *, width: int = 448, height: int = 252,
                     seed: int = 0) -> list[Image.Image]:
    """Frames the size ingest stores (max side 448), with noise so nothing is trivially cached."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
            for _ in range(count)]


def measure_embedding_throughput(
    *, embedder: ClipEmbedder, frames: list[Image.Image], runs: int = 3,
    batch_size: int | None = None, threads: int | None = None,
) -> dict[str, Any]:
    """Median frames/s of ``embedder.encode_images`` (preprocessing included) over ``runs``.

    One untimed warm-up pass runs first. ``threads`` and ``batch_size`` temporarily override
    the torch thread count and the embedder's batch size.
    """
    saved_threads, saved_batch = torch.get_num_threads(), embedder.batch_size
    torch.set_num_threads(threads or os.cpu_count() or 1)
    embedder.batch_size = batch_size or saved_batch
    try:
        embedder.encode_images(frames[: embedder.batch_size])
        rates = []
        for _ in range(runs):
            start = time.perf_counter()
            embedder.encode_images(frames)
            rates.append(len(frames) / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(saved_threads)
        embedder.batch_size = saved_batch
    return {"frames_per_s_median": round(statistics.median(rates), 2),
            "frames_per_s_runs": [round(r, 2) for r in rates], "frames": len(frames),
            "batch_size": batch_size or saved_batch, "threads": threads or os.cpu_count()}


BENCH_QUERIES = (
    "a red car at night", "white van turning left at the crossing", "cyclist in a yellow jacket",
    "two people next to a black SUV", "bus at the stop", "man with a backpack running",
    "silver sedan parked on the pavement", "motorbike without a plate", "taxi in the rain",
    "червоний автомобіль уночі", "білий фургон повертає ліворуч", "велосипедист у жовтій куртці",
    "двоє людей біля чорного позашляховика", "автобус на зупинці", "чоловік з рюкзаком біжить",
    "сріблястий седан на тротуарі",
)


def _latencies_ms(call: Any, inputs: list[Any]) -> list[float]:
    times = []
    for item in inputs:
        start = time.perf_counter()
        call(item)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _latency_summary(runs: list[list[float]]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(_p(r, 50) for r in runs), 3),
            "p95_ms": round(statistics.median(_p(r, 95) for r in runs), 3)}


def measure_text_encoder(*, embedder: ClipEmbedder, work_dir: Path, runs: int = 3,
                         threads: int = 0) -> dict[str, Any]:
    """Single-query text encoding on torch and on ONNX Runtime, and a cache hit, side by side.

    Each run encodes every query of ``BENCH_QUERIES`` once, one call per query (as search
    does); p50 / p95 are per run, then the median over runs. The export is timed too.
    """
    queries = list(BENCH_QUERIES)
    start = time.perf_counter()
    tower = load_tower(embedder, "text", cache_dir=work_dir, threads=threads)
    export_s = time.perf_counter() - start
    torch_call = lambda text: embedder.torch_encode_text(embedder.tokenize([text]))  # noqa: E731
    onnx_call = lambda text: tower(embedder.tokenize([text]).numpy())  # noqa: E731
    for call in (torch_call, onnx_call):
        _latencies_ms(call, queries[:3])  # warm-up
    torch_runs = [_latencies_ms(torch_call, queries) for _ in range(runs)]
    onnx_runs = [_latencies_ms(onnx_call, queries) for _ in range(runs)]
    expected = embedder.torch_encode_text(embedder.tokenize(queries))
    got = tower(embedder.tokenize(queries).numpy())
    embedder.use_runner("text", tower, tower.backend)
    cached = CachedQueryEmbedder(embedder, QueryCache(1024))
    cached.encode_text(queries)
    hit_runs = [_latencies_ms(lambda text: cached.encode_text([text]), queries)
                for _ in range(runs)]
    embedder.use_runner("text", None, "torch")
    torch_summary, onnx_summary = _latency_summary(torch_runs), _latency_summary(onnx_runs)
    return {
        "queries": len(queries), "runs": runs, "threads": threads or os.cpu_count(),
        "torch": torch_summary, "onnx_fp32": onnx_summary,
        "onnx_speedup_p50": round(torch_summary["p50_ms"] / onnx_summary["p50_ms"], 2),
        "cache_hit": {"p50_us": round(_latency_summary(hit_runs)["p50_ms"] * 1000, 1),
                      "p95_us": round(_latency_summary(hit_runs)["p95_ms"] * 1000, 1)},
        "onnx_min_cosine_vs_open_clip": round(float(np.min(np.sum(expected * got, axis=1))), 7),
        "export_s": round(export_s, 2), "onnx_bytes": tower.record["onnx_bytes"],
    }


def measure_image_onnx(*, embedder: ClipEmbedder, frames: list[Image.Image], work_dir: Path,
                       runs: int = 3, threads: int = 0) -> dict[str, Any]:
    """Batched image embedding frames/s on torch, ONNX fp32 and ONNX int8, with parity."""
    expected = embedder.encode_images(frames[:16])
    result: dict[str, Any] = {
        "torch": measure_embedding_throughput(embedder=embedder, frames=frames, runs=runs)}
    for precision in ("fp32", "int8"):
        start = time.perf_counter()
        try:
            tower = load_tower(embedder, "image", cache_dir=work_dir, threads=threads,
                               precision=precision)
        except OnnxExportError as exc:  # int8 may miss its parity floor: report it
            result[f"onnx_{precision}"] = {"refused": exc.message}
            continue
        export_s = time.perf_counter() - start
        embedder.use_runner("image", tower, tower.backend)
        try:
            got = embedder.encode_images(frames[:16])
            speed = measure_embedding_throughput(embedder=embedder, frames=frames, runs=runs)
        finally:
            embedder.use_runner("image", None, "torch")
        result[f"onnx_{precision}"] = {
            **speed, "export_s": round(export_s, 2), "onnx_bytes": tower.record["onnx_bytes"],
            "min_cosine_vs_open_clip": round(float(np.min(np.sum(expected * got, axis=1))), 7),
            "speedup_vs_torch": round(speed["frames_per_s_median"]
                                      / result["torch"]["frames_per_s_median"], 2)}
    return result


def _real_embedder(preset: str) -> ClipEmbedder | None:
    settings = Settings()
    if settings.clip_weights is None and not (settings.home / "oko.db").exists():
        return None
    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            weights = resolve_weights(preset=preset, env_weights=settings.clip_weights,
                                      models_dir=settings.models_dir, session=session)
    except NoModelError:
        return None
    finally:
        engine.dispose()
    return load_embedder(preset=preset, weights=weights)


def measure_motion_gating(*, work_dir: Path, threshold: float = 0.02) -> dict[str, Any]:
    """Fraction of frames motion gating skips on the sample footage, per camera and overall.

    Ingests ``indexer.samples`` (test profile) with the default settings into a fresh data
    dir and runs the queue; gating does not depend on the weights, so the tiny model is used.
    """
    settings = Settings(home=work_dir / "home", environment="test")
    state = build_state(settings)
    samples = generate_sample_footage(work_dir / "footage", profile="test")
    assert samples.cameras_csv is not None
    with session_scope(state.engine) as session:
        import_cameras_csv(session, path=samples.cameras_csv)
    options = IngestOptions(segment_seconds=settings.segment_seconds,
                            sample_interval_seconds=settings.sample_interval_seconds,
                            frame_max_side=settings.frame_max_side)
    for clip in samples.clips:
        ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                    path=clip.path, camera_id=clip.camera_id, start=None, options=options)
    report = embed_pending_frames(
        engine=state.engine, derived=state.derived,
        embedder=build_unsafe_random_embedder("test-tiny"), batch_size=32,
        motion_threshold=threshold)
    per_camera: dict[str, dict[str, int]] = {}
    with Session(state.engine) as session:
        for camera_id, status in session.exec(
                select(Frame.camera_id, FrameEmbedding.status)
                .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))).all():
            counts = per_camera.setdefault(camera_id, {"embedded": 0, "linked": 0})
            counts[status] += 1
    state.engine.dispose()
    return {"threshold": threshold, "frames": report.processed, "embedded": report.embedded,
            "linked": report.linked, "skipped_fraction": round(report.skipped_fraction, 4),
            "per_camera": {cam: {**c, "skipped_fraction": round(c["linked"] / sum(c.values()), 4)}
                           for cam, c in sorted(per_camera.items())}}


def run(*, frames: int = 64, runs: int = 3, batch_size: int = 32) -> dict[str, Any]:
    images = synthetic_frames(frames)
    random_model = random_embedder(DEFAULT_PRESET, batch_size=batch_size)
    batched = measure_embedding_throughput(embedder=random_model, frames=images, runs=runs)
    baseline = measure_embedding_throughput(embedder=random_model, frames=images[:16],
                                            runs=runs, batch_size=1, threads=1)
    result: dict[str, Any] = {
        "benchmark": "embedding_throughput",
        "preset": DEFAULT_PRESET,
        "architecture": random_model.architecture,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "random_weights": batched,
        "baseline_one_frame_one_thread": baseline,
        "speedup_vs_baseline": round(batched["frames_per_s_median"]
                                     / baseline["frames_per_s_median"], 2),
    }
    real_model = _real_embedder(DEFAULT_PRESET)
    if real_model is None:
        result["real_weights"] = None
        result["real_weights_note"] = (
            "no real weights on this machine (they cannot be downloaded here); the random "
            "model has the same architecture, tensor shapes and code path, so it does the "
            "same arithmetic and runs at the same speed")
    else:
        real = measure_embedding_throughput(embedder=real_model, frames=images, runs=runs)
        result["real_weights"] = real
        result["real_over_random"] = round(real["frames_per_s_median"]
                                           / batched["frames_per_s_median"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-gating", action="store_true",
                        help="Do not measure motion gating on the sample footage.")
    parser.add_argument("--onnx", action="store_true",
                        help="Also measure the ONNX Runtime towers and the query cache.")
    parser.add_argument("--onnx-only", action="store_true",
                        help="Measure only the ONNX Runtime towers and the query cache.")
    args = parser.parse_args()
    if args.onnx_only:
        result: dict[str, Any] = {"benchmark": "embedding_onnx", "preset": DEFAULT_PRESET,
                                  "cpu_count": os.cpu_count(), "torch": torch.__version__}
        args.skip_gating = True
    else:
        result = run(frames=args.frames, runs=args.runs, batch_size=args.batch_size)
    if args.onnx or args.onnx_only:
        model = random_embedder(DEFAULT_PRESET, batch_size=args.batch_size)
        with tempfile.TemporaryDirectory(prefix="oko-bench-onnx-") as work_dir:
            result["text_encoder"] = measure_text_encoder(
                embedder=model, work_dir=Path(work_dir), runs=args.runs)
            print(json.dumps({"text_encoder": result["text_encoder"]}), file=sys.stderr)
            result["image_encoder"] = measure_image_onnx(
                embedder=model, frames=synthetic_frames(args.frames), work_dir=Path(work_dir),
                runs=args.runs)
    if not args.skip_gating:
        with tempfile.TemporaryDirectory(prefix="oko-bench-") as work_dir:
            result["motion_gating_sample_footage"] = measure_motion_gating(
                work_dir=Path(work_dir))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
