"""Viewing-copy transcode speed: a 1080p25 HEVC clip to H.264/AAC MP4. Prints JSON.

1. Generate the clip once: ``testsrc2`` with grain (so it is not trivially compressible),
   1920x1080 at 25 fps, libx265 with a 2 s GOP, AAC audio, ``--seconds`` long (20).
2. Transcode it ``--runs`` times (3) with ``indexer.transcode.transcode_h264`` and the
   bundle's ``VIEWING_COPY`` profile (and once with ``PLAYBACK_PROXY``, the web app's
   720p proxy), each into a fresh derived store; report the median wall time and the
   speed as x realtime (clip seconds / wall seconds), with the machine's CPU count.

Run: ``.venv/bin/python benchmarks/viewing_copy.py [--seconds 20] [--runs 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.transcode import (
    PLAYBACK_PROXY,
    VIEWING_COPY,
    TranscodeProfile,
    ffmpeg_binary,
    ffmpeg_version,
    probe_video,
    transcode_h264,
)
from storage.blobstore import BlobStore


def make_hevc_clip(path: Path, *, seconds: float) -> Path:
    subprocess.run([
        ffmpeg_binary(), "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25,noise=alls=12:allf=t",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:g}", "-c:v", "libx265", "-preset", "ultrafast",
        "-x265-params", "log-level=error:keyint=50", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(path)], check=True)
    return path


def time_transcode(source: Path, work: Path, profile: TranscodeProfile) -> tuple[float, Any]:
    store = BlobStore(work / "derived", work / "derived" / ".tmp")
    started = time.perf_counter()
    made = transcode_h264(source=source, source_sha256="0" * 64, profile=profile,
                          derived=store, tmp_dir=work / "tmp")
    return time.perf_counter() - started, made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oko-viewing-bench-") as tmp:
        root = Path(tmp)
        source = make_hevc_clip(root / "hevc-1080p.mp4", seconds=args.seconds)
        facts = probe_video(source)
        walls: list[float] = []
        made: Any = None
        for run in range(args.runs):
            wall, made = time_transcode(source, root / f"run-{run}", VIEWING_COPY)
            walls.append(wall)
        proxy_wall, proxy = time_transcode(source, root / "proxy", PLAYBACK_PROXY)
        median = statistics.median(walls)
        print(json.dumps({
            "source": {"codec": facts.codec, "size": f"{facts.width}x{facts.height}",
                       "frame_rate": facts.frame_rate, "seconds": args.seconds,
                       "bytes": source.stat().st_size},
            "ffmpeg": ffmpeg_version(), "cpus": os.cpu_count(),
            "viewing_copy": {"profile": VIEWING_COPY.name, "runs_s": [round(w, 2) for w in walls],
                             "median_s": round(median, 2),
                             "x_realtime": round(args.seconds / median, 2),
                             "bytes": made.size_bytes,
                             "size": f"{made.facts.width}x{made.facts.height}",
                             "frame_rate": made.facts.frame_rate},
            "playback_proxy": {"profile": PLAYBACK_PROXY.name, "wall_s": round(proxy_wall, 2),
                               "x_realtime": round(args.seconds / proxy_wall, 2),
                               "bytes": proxy.size_bytes,
                               "size": f"{proxy.facts.width}x{proxy.facts.height}"},
        }, indent=2))


if __name__ == "__main__":
    main()
