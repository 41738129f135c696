"""Ingest throughput on N minutes of 1080p25 footage (2 s GOP), next to ffmpeg baselines.

    python benchmarks/ingest.py [--minutes 5] [--runs 5] [--footage-dir DIR]

Prints JSON: the realtime factor (seconds of footage per wall second), frames sampled per
second and peak RSS (process plus children, sampled every 20 ms) of a full ``ingest_file``
(hash + store + segment + sample + JPEG + DB rows), once on the path ingest picks
(keyframes for a 2 s GOP) and once forced onto the reduced-size decode. ``process`` is the
wall time of a real ``oko ingest FILE --camera CAM-001 --here --json`` process (interpreter
start, imports, settings, the job and its audit entry, the ingest, the JSON answer) on an
initialised data dir (migrated and the camera registered beforehand, untimed);
``ingest_file`` is the call alone, timed inside its own fresh process. The goal baseline is
``ffmpeg -skip_frame nokey -i f -vf scale=224:-2 -f null -`` (keyframe-only decode);
the full decode ``ffmpeg -i f -vf fps=1/2,scale=448:-2 -f null -`` is shown as well.
Each run is a fresh process on a fresh data dir (SQLite); runs are interleaved and the
figures are medians.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from indexer.ingest import IngestOptions  # noqa: E402
from indexer.media import ffmpeg_exe, probe, tool_version  # noqa: E402
from indexer.samples import generate_benchmark_footage  # noqa: E402
from indexer.sampling import REDUCED_DECODE  # noqa: E402

PREPARE = """
import sys
from pathlib import Path
from search_api.state import build_state
from storage.cameras import add_camera, validate_camera
from storage.db import session_scope
from storage.settings import Settings

state = build_state(Settings(home=Path(sys.argv[1])))
with session_scope(state.engine) as session:
    add_camera(session, camera=validate_camera(id="CAM-001", name="Bench", latitude=50.45,
                                               longitude=30.52, agency="police"))
"""

# what an ingest process on an initialised data dir runs: imports, engine, ingest_file
ONE_RUN = """
import json, os, sys, time
from pathlib import Path
from benchmarks.ingest import PeakRss
from indexer.ingest import IngestOptions, ingest_file
from storage.blobstore import BlobStore
from storage.db import make_engine
from storage.settings import Settings

home, path = sys.argv[1], Path(sys.argv[2])
interval, max_side, forced = float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if forced:
    import indexer.ingest
    indexer.ingest.choose_sampling = lambda _info, interval_s: forced
settings = Settings(home=Path(home))
engine = make_engine(settings.resolved_database_url)
started = time.perf_counter()
with PeakRss(os.getpid()) as peak:
    outcome = ingest_file(engine=engine, originals=BlobStore(settings.blobs_dir, settings.tmp_dir),
                          derived=BlobStore(settings.derived_dir, settings.tmp_dir),
                          path=path, camera_id="CAM-001", start=None,
                          options=IngestOptions(sample_interval_seconds=interval,
                                                frame_max_side=max_side))
wall = time.perf_counter() - started
print(json.dumps({
    "wall_s": wall, "frames": outcome.frame_count, "segments": outcome.segment_count,
    "peak_rss_bytes": peak.bytes, "sampling": outcome.sampling,
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


def _prepared_home(home: str) -> None:
    subprocess.run([sys.executable, "-c", PREPARE, home], check=True, cwd=ROOT,
                   capture_output=True)


def _oko_command() -> list[str]:
    """The installed ``oko`` script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("oko")
    return [str(script)] if script.exists() else [sys.executable, "-m", "search_api.cli"]


def _cli_run(path: Path, options: IngestOptions) -> dict[str, Any]:
    """One real ``oko ingest --here`` process on a fresh, initialised data dir."""
    with tempfile.TemporaryDirectory(prefix="oko-bench-") as home:
        _prepared_home(home)
        env = {key: value for key, value in os.environ.items() if not key.startswith("OKO_")}
        env.update(OKO_HOME=home, OKO_SAMPLE_INTERVAL_SECONDS=str(
            options.sample_interval_seconds), OKO_FRAME_MAX_SIDE=str(options.frame_max_side))
        started = time.perf_counter()
        process = subprocess.Popen(
            [*_oko_command(), "ingest", str(path), "--camera", "CAM-001", "--here", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        with PeakRss(process.pid) as peak:
            out, err = process.communicate()
        wall = time.perf_counter() - started
    reports = json.loads(out) if process.returncode == 0 else None
    if not reports or reports[0]["status"] != "done":
        raise RuntimeError(f"oko ingest --here failed ({process.returncode}): {err or out}")
    return {"process_wall_s": wall, "process_peak_rss_bytes": peak.bytes,
            "process_frames": reports[0]["frames"]}


def _ingest_run(path: Path, options: IngestOptions, forced: str = "") -> dict[str, Any]:
    """``ingest_file`` timed inside a fresh process; without ``forced``, also the CLI's."""
    with tempfile.TemporaryDirectory(prefix="oko-bench-") as home:
        _prepared_home(home)
        result = subprocess.run(
            [sys.executable, "-c", ONE_RUN, home, str(path),
             str(options.sample_interval_seconds), str(options.frame_max_side), forced],
            capture_output=True, text=True, check=True, cwd=ROOT)
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if not forced:
        data.update(_cli_run(path, options))
    return data


def _scale(side: int) -> str:
    return f"scale='if(gt(iw,ih),{side},-2)':'if(gt(iw,ih),-2,{side})'"


def _ffmpeg_run(args: list[str]) -> dict[str, float]:
    started = time.perf_counter()
    process = subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
                                *args, "-f", "null", "-"])
    with PeakRss(process.pid) as peak:
        if process.wait() != 0:
            raise RuntimeError("an ffmpeg baseline failed")
    wall = time.perf_counter() - started
    return {"wall_s": wall, "peak_rss_bytes": peak.bytes}


def _keyframe_baseline_run(path: Path, _options: IngestOptions) -> dict[str, float]:
    """The goal's yardstick: decode keyframes only, scaled to 224."""
    return _ffmpeg_run(["-skip_frame", "nokey", "-i", str(path), "-vf", _scale(224)])


def _baseline_run(path: Path, options: IngestOptions) -> dict[str, float]:
    """Decode every frame, keep one per interval at the ingest size."""
    return _ffmpeg_run(["-i", str(path), "-vf", f"fps=1/{options.sample_interval_seconds:g},"
                        f"{_scale(options.frame_max_side)}"])


def _mb(runs: list[dict[str, float]]) -> float:
    """Largest sampled RSS (process plus children) over the runs, in MiB."""
    return round(max(r["peak_rss_bytes"] for r in runs) / 2**20, 1)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))


def _ingest_summary(runs: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    call = _median(runs, "wall_s")
    frames = int(runs[0]["frames"])
    summary: dict[str, Any] = {
        "sampling": runs[0]["sampling"],
        "ingest_file_wall_s_median": round(call, 3),
        "ingest_file_realtime_factor": round(seconds / call, 2),
        "frames_sampled": frames,
        "segments": int(runs[0]["segments"]),
        "ingest_file_peak_rss_mb": _mb(runs),
        "ingest_file_wall_s_runs": [round(r["wall_s"], 3) for r in runs],
    }
    if "process_wall_s" in runs[0]:
        whole = _median(runs, "process_wall_s")
        summary.update({
            "process_command": "oko ingest FILE --camera CAM-001 --here --json",
            "process_wall_s_median": round(whole, 3),
            "process_realtime_factor": round(seconds / whole, 2),
            "process_frames": int(runs[0]["process_frames"]),
            "frames_sampled_per_s": round(frames / whole, 2),
            "process_peak_rss_mb": round(
                max(r["process_peak_rss_bytes"] for r in runs) / 2**20, 1),
            "process_wall_s_runs": [round(r["process_wall_s"], 3) for r in runs],
        })
    return summary


def _ffmpeg_summary(runs: list[dict[str, Any]], seconds: float,
                    command: str) -> dict[str, Any]:
    wall = _median(runs, "wall_s")
    return {"command": command, "wall_s_median": round(wall, 3),
            "realtime_factor": round(seconds / wall, 2), "peak_rss_mb": _mb(runs),
            "wall_s_runs": [round(r["wall_s"], 3) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--footage-dir", type=Path, default=None,
                        help="Reuse footage generated here (generated when missing).")
    parser.add_argument("--skip-reduced", action="store_true",
                        help="Leave out the run forced onto the reduced-size decode.")
    args = parser.parse_args()
    options = IngestOptions()
    load_start = [round(x, 2) for x in os.getloadavg()]

    footage_dir = args.footage_dir or Path(tempfile.mkdtemp(prefix="oko-bench-footage-"))
    path = footage_dir / "CAM-001_20260126T100000.mp4"
    if not path.exists():
        path = generate_benchmark_footage(footage_dir, minutes=args.minutes)
    info = probe(path)
    seconds = info.duration_s

    picked: list[dict[str, Any]] = []
    reduced: list[dict[str, Any]] = []
    keyframe_baseline: list[dict[str, Any]] = []
    full_baseline: list[dict[str, Any]] = []
    for _ in range(args.runs):  # interleaved, so drift in machine load hits all alike
        picked.append(_ingest_run(path, options))
        keyframe_baseline.append(dict(_keyframe_baseline_run(path, options)))
        if not args.skip_reduced:
            reduced.append(_ingest_run(path, options, forced=REDUCED_DECODE))
        full_baseline.append(dict(_baseline_run(path, options)))

    ingest = _ingest_summary(picked, seconds)
    keyframes = _ffmpeg_summary(keyframe_baseline, seconds,
                                "ffmpeg -skip_frame nokey -i FILE -vf scale=224:-2 -f null -")
    result: dict[str, Any] = {
        "footage": {"seconds": seconds, "width": info.width, "height": info.height,
                    "fps": info.fps, "codec": info.video_codec,
                    "keyframes": len(info.keyframe_times_s),
                    "size_bytes": path.stat().st_size},
        "settings": {"segment_seconds": options.segment_seconds,
                     "sample_interval_seconds": options.sample_interval_seconds,
                     "frame_max_side": options.frame_max_side},
        "runs": args.runs,
        "ingest": ingest,
        "baseline_ffmpeg_keyframes": keyframes,
        "baseline_ffmpeg_full_decode": _ffmpeg_summary(
            full_baseline, seconds, "ffmpeg -i FILE -vf fps=1/2,scale=448:-2 -f null -"),
        "ingest_process_vs_keyframe_baseline": round(
            ingest["process_realtime_factor"] / keyframes["realtime_factor"], 3),
        "ingest_file_vs_keyframe_baseline": round(
            ingest["ingest_file_realtime_factor"] / keyframes["realtime_factor"], 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ffmpeg": tool_version(), "load_average_start": load_start,
                    "load_average_end": [round(x, 2) for x in os.getloadavg()]},
    }
    if reduced:
        result["ingest_reduced_decode"] = _ingest_summary(reduced, seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
