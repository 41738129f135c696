"""Recording capacity: N simulated cameras streamed in real time over loopback, recorded.

    python benchmarks/recording.py [--cameras 1,2,4] [--seconds 300] [--height 720]
                                   [--segment-seconds 10]

Each simulated camera is an ffmpeg HTTP MPEG-TS server (``-re -stream_loop -1 -listen
1``) playing generated footage (``--height`` 720 or 1080, 25 fps, a keyframe every 2 s).
One in-process ``RecorderPool`` records all of them on a fresh SQLite data dir in
``--segment-seconds`` files, each ingested as it finishes (keyframe sampling; no model,
so nothing is embedded). For every N it prints, as JSON: files expected and recorded,
gaps and quarantined files (lost footage), and the ingest lag of each file (its
acquisition custody entry minus the file's end): median, maximum, and the lag of the
last files against the first (a lag that grows means the machine does not keep up).
N is "sustained" when nothing was lost and the lag stayed under two file lengths.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, select  # noqa: E402

from indexer.media import ffmpeg_exe, tool_version  # noqa: E402
from indexer.samples import H264, _encode, day_scene  # noqa: E402
from search_api.state import build_state  # noqa: E402
from search_api.usecases.recording import build_recorder_pool  # noqa: E402
from storage.cameras import add_camera, validate_camera  # noqa: E402
from storage.db import session_scope  # noqa: E402
from storage.models.evidence import CustodyEntry  # noqa: E402
from storage.models.media import Camera, Original  # noqa: E402
from storage.models.recording import CameraGap  # noqa: E402
from storage.settings import Settings  # noqa: E402


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_footage(directory: Path, *, height: int, seconds: float = 60.0,
                 grain: int = 0) -> Path:
    """``seconds`` of street footage at ``height`` p, 25 fps, 2 s GOP, no B-frames, as TS.

    ``grain`` adds sensor-like noise of that strength, encoded at a camera's 3 Mbit/s
    (the flat drawing alone compresses to ~0.1 Mbit/s, far cheaper to decode than real
    footage).
    """
    path = directory / f"street-{height}p-grain{grain}.ts"
    if not path.exists():
        width = height * 16 // 9 // 2 * 2
        small = day_scene(width // 4 // 2 * 2, height // 4 // 2 * 2, seconds)
        noise = f",noise=alls={grain}:allf=t" if grain else ""
        graph = small.removesuffix("[v]") + f",scale={width}:{height}:flags=neighbor{noise}[v]"
        rate = ["-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M"] if grain else []
        _encode(out=path, graph=graph,
                codec_args=[*H264[:-2], "-threads", "0", "-bf", "0", *rate])
    return path


def _servers(footage: Path, count: int) -> list[tuple[str, subprocess.Popen[bytes]]]:
    started = []
    for _ in range(count):
        url = f"http://127.0.0.1:{_free_port()}/cam.ts"
        process = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
             "-stream_loop", "-1", "-i", str(footage), "-map", "0:v:0", "-c", "copy",
             "-f", "mpegts", "-listen", "1", url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append((url, process))
    return started


def run_cameras(footage: Path, *, count: int, seconds: float,
                segment_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oko-rec-bench-") as home:
        state = build_state(Settings(home=Path(home), record_segment_seconds=segment_seconds,
                                     record_min_free_mb=0, record_backoff_seconds=0.5,
                                     record_backoff_max_seconds=2))
        servers = _servers(footage, count)
        with session_scope(state.engine) as session:
            for number, (url, _process) in enumerate(servers, start=1):
                camera = validate_camera(id=f"SIM-{number:03d}", name="Simulated",
                                         latitude=50.45, longitude=30.52, agency="police")
                row = add_camera(session, camera=camera)
                row.stream_url = url
        pool = build_recorder_pool(state, refresh_s=3600)
        started = time.monotonic()
        pool.start()
        time.sleep(seconds)
        pool.stop()
        elapsed = time.monotonic() - started
        for _url, process in servers:
            process.kill()
            process.wait()
        with Session(state.engine) as session:
            originals = session.exec(select(Original)).all()
            entries = {e.original_id: e.recorded_at for e in session.exec(
                select(CustodyEntry).where(CustodyEntry.action == "acquisition")).all()}
            gaps = [g for g in session.exec(select(CameraGap)).all()
                    if g.reason != "The recorder was stopped."]
            cameras = len(session.exec(select(Camera)).all())
        lags = sorted((o.recording_start_utc + timedelta(seconds=o.duration_s),
                       (entries[o.id] - o.recording_start_utc - timedelta(
                           seconds=o.duration_s)).total_seconds())
                      for o in originals if o.id in entries)
        quarantined = list(state.settings.spool_dir.glob("*/quarantine/*"))
        state.engine.dispose()
    values = [lag for _end, lag in lags]
    tail = values[-count:] if len(values) >= 2 * count else values[-1:]
    head = values[:count] if len(values) >= 2 * count else values[:1]
    expected = int(elapsed // segment_seconds) * cameras
    max_lag = max(values) if values else None
    return {
        "cameras": count,
        "recorded_s": round(elapsed, 1),
        "files_expected_about": expected,
        "files_recorded": len(originals),
        "footage_s_recorded": round(sum(o.duration_s for o in originals), 1),
        "gaps": len(gaps),
        "quarantined": len(quarantined),
        "ingest_lag_s": {
            "median": round(statistics.median(values), 2) if values else None,
            "max": round(max_lag, 2) if max_lag is not None else None,
            "first_files": [round(v, 2) for v in head],
            "last_files": [round(v, 2) for v in tail],
        },
        "sustained": bool(values) and not gaps and not quarantined
        and max_lag is not None and max_lag < 2 * segment_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,4",
                        help="Comma-separated camera counts to try, in order.")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--height", type=int, default=720, choices=(720, 1080))
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--footage-dir", type=Path, default=None)
    parser.add_argument("--grain", type=int, default=0,
                        help="Noise strength (e.g. 8) for a realistic bitrate.")
    args = parser.parse_args()
    footage_dir = args.footage_dir or Path(tempfile.mkdtemp(prefix="oko-rec-footage-"))
    footage_dir.mkdir(parents=True, exist_ok=True)
    footage = make_footage(footage_dir, height=args.height, grain=args.grain)
    results = [run_cameras(footage, count=int(n), seconds=args.seconds,
                           segment_seconds=args.segment_seconds)
               for n in args.cameras.split(",")]
    sustained = [r["cameras"] for r in results if r["sustained"]]
    print(json.dumps({
        "footage": {"height": args.height, "fps": 25, "gop_s": 2, "grain": args.grain,
                    "mbit_per_s": round(footage.stat().st_size * 8 / 60 / 1e6, 2)},
        "segment_seconds": args.segment_seconds,
        "seconds_per_run": args.seconds,
        "embedding": False,
        "runs": results,
        "largest_sustained": max(sustained) if sustained else 0,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ffmpeg": tool_version()},
    }, indent=2))


if __name__ == "__main__":
    main()
