"""Ingest throughput on N minutes of 1080p sample footage, next to a plain ffmpeg baseline.

    python benchmarks/ingest.py [--minutes 2] [--runs 3]

Prints JSON: the realtime factor (seconds of footage per wall second), frames sampled per
second and peak RSS (process plus children, sampled every 20 ms) of a full ``ingest_file``
(hash + store + segment + sample + JPEG + DB rows), and the realtime factor of
``ffmpeg -i f -vf fps=1/2,scale=... -f null -`` decoding the same file at the same
sampling. Each run is a fresh process on a fresh data dir (SQLite); figures are medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from indexer.ingest import IngestOptions  # noqa: E402
from indexer.media import ffmpeg_exe, probe, tool_version  # noqa: E402
from indexer.samples import generate_benchmark_footage  # noqa: E402

ONE_RUN = """
import json, os, sys, time
from pathlib import Path
from benchmarks.ingest import PeakRss
from indexer.ingest import IngestOptions, ingest_file
from search_api.state import build_state
from storage.cameras import add_camera, validate_camera
from storage.db import session_scope
from storage.settings import Settings

home, path = sys.argv[1], Path(sys.argv[2])
interval, max_side = float(sys.argv[3]), int(sys.argv[4])
state = build_state(Settings(home=Path(home)))
with session_scope(state.engine) as session:
    add_camera(session, camera=validate_camera(id="CAM-001", name="Bench", latitude=50.45,
                                               longitude=30.52, agency="police"))
started = time.perf_counter()
with PeakRss(os.getpid()) as peak:
    outcome = ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                          path=path, camera_id="CAM-001", start=None,
                          options=IngestOptions(sample_interval_seconds=interval,
                                                frame_max_side=max_side))
wall = time.perf_counter() - started
print(json.dumps({
    "wall_s": wall, "frames": outcome.frame_count, "segments": outcome.segment_count,
    "peak_rss_bytes": peak.bytes,
}))
"""


class PeakRss:
    """Samples the summed RSS of a process and all its descendants every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                for proc in [self.process, *self.process.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
            except psutil.Error:
                pass
            self.bytes = max(self.bytes, total)
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _ingest_run(path: Path, options: IngestOptions) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="oko-bench-") as home:
        result = subprocess.run(
            [sys.executable, "-c", ONE_RUN, home, str(path),
             str(options.sample_interval_seconds), str(options.frame_max_side)],
            capture_output=True, text=True, check=True, cwd=ROOT)
    data: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _baseline_run(path: Path, options: IngestOptions) -> dict[str, float]:
    side = options.frame_max_side
    scale = f"scale='if(gt(iw,ih),{side},-2)':'if(gt(iw,ih),-2,{side})'"
    started = time.perf_counter()
    process = subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
                                "-i", str(path), "-vf",
                                f"fps=1/{options.sample_interval_seconds:g},{scale}",
                                "-f", "null", "-"])
    with PeakRss(process.pid) as peak:
        if process.wait() != 0:
            raise RuntimeError("the ffmpeg baseline failed")
    wall = time.perf_counter() - started
    return {"wall_s": wall, "peak_rss_bytes": peak.bytes}


def _mb(runs: list[dict[str, float]]) -> float:
    """Largest sampled RSS (process plus children) over the runs, in MiB."""
    return round(max(r["peak_rss_bytes"] for r in runs) / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--footage-dir", type=Path, default=None,
                        help="Reuse footage generated here (generated when missing).")
    args = parser.parse_args()
    options = IngestOptions()

    footage_dir = args.footage_dir or Path(tempfile.mkdtemp(prefix="oko-bench-footage-"))
    path = footage_dir / "CAM-001_20260126T100000.mp4"
    if not path.exists():
        path = generate_benchmark_footage(footage_dir, minutes=args.minutes)
    info = probe(path)

    ingest_runs, baseline_runs = [], []
    for _ in range(args.runs):  # interleaved, so drift in machine load hits both alike
        ingest_runs.append(_ingest_run(path, options))
        baseline_runs.append(_baseline_run(path, options))

    ingest_wall = statistics.median(r["wall_s"] for r in ingest_runs)
    baseline_wall = statistics.median(r["wall_s"] for r in baseline_runs)
    frames = int(ingest_runs[0]["frames"])
    ingest_factor = info.duration_s / ingest_wall
    baseline_factor = info.duration_s / baseline_wall
    print(json.dumps({
        "footage": {"seconds": info.duration_s, "width": info.width, "height": info.height,
                    "fps": info.fps, "codec": info.video_codec,
                    "size_bytes": path.stat().st_size},
        "settings": {"segment_seconds": options.segment_seconds,
                     "sample_interval_seconds": options.sample_interval_seconds,
                     "frame_max_side": options.frame_max_side},
        "runs": args.runs,
        "ingest": {
            "wall_s_median": round(ingest_wall, 3),
            "realtime_factor": round(ingest_factor, 2),
            "frames_sampled": frames,
            "segments": int(ingest_runs[0]["segments"]),
            "frames_sampled_per_s": round(frames / ingest_wall, 2),
            "peak_rss_mb": _mb(ingest_runs),
            "wall_s_runs": [round(r["wall_s"], 3) for r in ingest_runs],
        },
        "baseline_ffmpeg_decode": {
            "command": "ffmpeg -i FILE -vf fps=1/2,scale=448:-2 -f null -",
            "wall_s_median": round(baseline_wall, 3),
            "realtime_factor": round(baseline_factor, 2),
            "frames_sampled_per_s": round(frames / baseline_wall, 2),
            "peak_rss_mb": _mb(baseline_runs),
            "wall_s_runs": [round(r["wall_s"], 3) for r in baseline_runs],
        },
        "ingest_vs_baseline": round(ingest_factor / baseline_factor, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ffmpeg": tool_version()},
    }, indent=2))


if __name__ == "__main__":
    main()
