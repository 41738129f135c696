"""Retention sweep rate: originals deleted per second, batched against a baseline, side by side.

    python benchmarks/retention.py [--originals 150] [--frames 30] [--segments 6]
                                   [--databases sqlite,postgres] [--runs 2]
                                   [--baseline-rev 9385db5] [--batch-size 50]

Each run builds a fresh data dir (SQLite, or a database on a throwaway PostgreSQL from
``tests.services``) holding ``--originals`` expired originals of 60 s recordings, each
with ``--segments`` segments, ``--frames`` frames with thumbnails, embeddings and backlog
rows, in camera-day shards written by the real ``sync_shards``; one more original is under
evidence lock. Every blob is a real file in the blob stores. Then one sweep runs and is
timed: the batched sweep of this tree, and the sweep of ``--baseline-rev`` (its
``indexer/retention.py``, read with ``git show``: one original per transaction, about 35
statements each), on identical worlds, alternating. Prints JSON: originals/s of each
with the ratio, per database, and the load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, func, select  # noqa: E402

from evidence.cases import locked_original_ids  # noqa: E402
from indexer.embed_queue import BacklogFrame, add_to_backlog  # noqa: E402
from indexer.retention import RetentionStores  # noqa: E402
from indexer.shards import sync_shards  # noqa: E402
from search_api.state import AppState, build_state  # noqa: E402
from storage.cameras import add_camera, validate_camera  # noqa: E402
from storage.db import session_scope  # noqa: E402
from storage.models.evidence import Case, CaseClip, CustodyEntry  # noqa: E402
from storage.models.media import Frame, Original, Segment  # noqa: E402
from storage.models.search import FrameEmbedding  # noqa: E402
from storage.settings import Settings  # noqa: E402

CAMERAS = ("CAM-R01", "CAM-R02")
PASSPHRASE = "benchmark-throwaway-passphrase"  # noqa: S105  # a throwaway key
NOW = datetime.now(UTC)


def baseline_module(rev: str) -> ModuleType:
    """``indexer/retention.py`` as it was at ``rev``, imported under another name."""
    source = subprocess.run(["git", "show", f"{rev}:indexer/retention.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="oko-retention-baseline-")) / "retention_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("retention_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def build_world(state: AppState, *, originals: int, frames: int, segments: int) -> None:
    """``originals`` expired 60 s originals (and one locked), with everything derived."""
    rng = np.random.default_rng(1)
    with session_scope(state.engine) as session:
        for camera in CAMERAS:
            row = add_camera(session, camera=validate_camera(
                id=camera, name=camera, latitude=50.45, longitude=30.52, agency="police"))
            row.retention_days = 30
    start = NOW - timedelta(days=40)
    for n in range(originals + 1):
        camera = CAMERAS[n % len(CAMERAS)]
        begins = start + timedelta(seconds=60 * (n // len(CAMERAS)))
        blob = state.originals.put_bytes(rng.bytes(4096) + n.to_bytes(4, "big"))
        with session_scope(state.engine) as session:
            original = Original(sha256=blob.sha256, camera_id=camera, filename=f"{n}.ts",
                                size_bytes=4100, duration_s=60.0, recording_start_utc=begins,
                                start_source="stream_clock", status="ready")
            session.add(original)
            session.flush()
            assert original.id is not None
            backlog = []
            for s in range(segments):
                data = state.derived.put_bytes(rng.bytes(1024))
                segment = Segment(original_id=original.id, index=s,
                                  start_offset_s=s * 60 / segments, duration_s=60 / segments,
                                  start_utc=begins + timedelta(seconds=s * 60 / segments),
                                  sha256=data.sha256, size_bytes=1024, method="stream_copy",
                                  tool="ffmpeg", tool_version="bench")
                session.add(segment)
                session.flush()
                assert segment.id is not None
                for f in range(frames // segments):
                    offset = s * 60 / segments + f * 60 / frames
                    thumb = state.derived.put_bytes(rng.bytes(512))
                    frame = Frame(original_id=original.id, segment_id=segment.id,
                                  camera_id=camera, offset_s=offset,
                                  captured_at_utc=begins + timedelta(seconds=offset),
                                  width=448, height=252, thumbnail_sha256=thumb.sha256)
                    session.add(frame)
                    session.flush()
                    assert frame.id is not None
                    vector = rng.standard_normal(512).astype("<f4")
                    vector /= np.linalg.norm(vector)
                    session.add(FrameEmbedding(frame_id=frame.id, weights_sha256="ab" * 32,
                                               preset="test", status="embedded",
                                               vector=vector.tobytes(), motion_score=1.0))
                    backlog.append(BacklogFrame(frame.id, camera, frame.captured_at_utc))
            add_to_backlog(session, backlog, embedded=True)
            if n == originals:  # the last one is evidence
                case = Case(number="2026/1", title="Robbery", legal_basis="CPC 234",
                            investigator_id=1, agency="police")
                session.add(case)
                session.flush()
                assert case.id is not None
                session.add(CaseClip(case_id=case.id, camera_id=camera, original_id=original.id,
                                     start_utc=begins, end_utc=begins + timedelta(seconds=5)))
    sync_shards(engine=state.engine, index_dir=state.settings.index_dir, derived=state.derived)


def one_run(module: ModuleType, *, database_url: str | None, home: Path, args: Any,
            batch_size: int | None) -> dict[str, Any]:
    settings = Settings(home=home, environment="test", key_passphrase=PASSPHRASE,
                        database_url=database_url)
    state = build_state(settings)
    build_world(state, originals=args.originals, frames=args.frames, segments=args.segments)
    extra = {"batch_size": batch_size} if batch_size is not None else {}
    sweep = module.RetentionSweep(
        engine=state.engine,
        stores=RetentionStores(originals=state.originals, derived=state.derived,
                               index_dir=settings.index_dir),
        locked_ids=locked_original_ids, on_deleted=lambda _session, _original: None, **extra)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    report = sweep.run(default_days=None)
    elapsed = time.perf_counter() - started
    with Session(state.engine) as session:
        custody = session.exec(select(func.count()).select_from(CustodyEntry).where(
            CustodyEntry.action == "retention_deletion")).one()
        frames_left = session.exec(select(func.count()).select_from(Frame)).one()
    state.engine.dispose()
    assert len(report.deleted) == args.originals and custody == args.originals
    assert len(report.kept_locked) == 1 and frames_left == args.frames // args.segments * (
        args.segments)
    return {"seconds": round(elapsed, 3), "originals_per_s": round(args.originals / elapsed, 1),
            "load_average_1min": round(load, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=150)
    parser.add_argument("--frames", type=int, default=30, help="Frames per original.")
    parser.add_argument("--segments", type=int, default=6, help="Segments per original.")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--baseline-rev", default="9385db5",
                        help="The commit whose per-original sweep is the baseline.")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    import indexer.retention as batched

    baseline = baseline_module(args.baseline_rev)
    results: dict[str, Any] = {}
    for database in args.databases.split(","):
        server = None
        if database == "postgres":
            from tests.services import start_postgres

            server = start_postgres()
        timings: dict[str, list[dict[str, Any]]] = {"baseline": [], "batched": []}
        try:
            for _ in range(args.runs):
                for name, module, size in (("baseline", baseline, None),
                                           ("batched", batched, args.batch_size)):
                    with tempfile.TemporaryDirectory(prefix="oko-ret-bench-") as home:
                        url = server.create_database(migrated=True) if server else None
                        timings[name].append(one_run(module, database_url=url,
                                                     home=Path(home) / "home", args=args,
                                                     batch_size=size))
        finally:
            if server is not None:
                server.stop()
        rates = {name: statistics.median(r["originals_per_s"] for r in runs)
                 for name, runs in timings.items()}
        results[database] = {
            "baseline_originals_per_s": rates["baseline"],
            "batched_originals_per_s": rates["batched"],
            "ratio": round(rates["batched"] / rates["baseline"], 2),
            "runs": timings,
        }
    print(json.dumps({
        "originals": args.originals, "frames_per_original": args.frames,
        "segments_per_original": args.segments, "batch_size": args.batch_size,
        "baseline": f"indexer/retention.py at {args.baseline_rev} (one original per step)",
        "results": results, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
