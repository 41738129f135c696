"""The ffmpeg process that records one camera: its command line and what it reports.

ffmpeg reads the stream and copies its first video stream, unchanged, into MPEG-TS files
of ``segment_seconds`` each (``-f segment``), listing each finished file with its start
and end in ``segments.csv``. ``-progress pipe:1`` reports frames, bitrate and the output
time twice a second; the first report anchors the stream's timeline to the wall clock.
Its log (stderr) tells which codec the stream carries and why it stopped; every line is
scrubbed of the URL's secrets before it is kept.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from indexer.media import ffmpeg_exe
from storage.gaps import GapReason, describe_gap_reason, gap_reason

# codecs MPEG-TS carries and ingest decodes: these are copied as they are
STREAM_COPY_CODECS = frozenset({"h264", "hevc", "mpeg2video", "mpeg4"})
SEGMENT_PATTERN = "seg-%06d.ts"
SEGMENT_LIST = "segments.csv"
_INPUT_VIDEO = re.compile(r"Stream #0:\d+[^:]*: Video: (\w+)")
_BITRATE = re.compile(r"([\d.]+)\s*kbits/s")


def input_args(url: str, *, timeout_s: float) -> list[str]:
    """How ffmpeg opens ``url``: RTSP over TCP, a listening RTSP server, or any other URL."""
    micros = str(int(timeout_s * 1_000_000))
    scheme = url.split("://", 1)[0].lower()
    if scheme == "rtsp+listen":
        # seconds here; ffmpeg 9 rejects its own default (-1) once it scales it
        wait = str(max(1, round(timeout_s)))
        return ["-rtsp_flags", "listen", "-listen_timeout", wait, "-i", "rtsp://" +
                url.split("://", 1)[1]]
    if scheme in ("rtsp", "rtsps"):
        return ["-rtsp_transport", "tcp", "-timeout", micros, "-i", url]
    return ["-rw_timeout", micros, "-i", url]


def record_command(url: str, session_dir: Path, *, camera_id: str, segment_seconds: float,
                   timeout_s: float) -> list[str]:
    """The full ffmpeg command line recording ``url`` into ``session_dir``.

    Each file names its camera (the MPEG-TS service name) and keeps the stream's own
    timestamps, so no two files are byte-identical: not two cameras showing the same
    still scene, nor a looping stream's second pass. Ingest is content-addressed, and
    identical bytes would be taken for one recording.
    """
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "info", "-nostats",
        "-progress", "pipe:1", "-stats_period", "0.5",
        *input_args(url, timeout_s=timeout_s),
        "-map", "0:v:0", "-c", "copy", "-metadata", f"service_name={camera_id}",
        "-metadata", "service_provider=Oko",
        "-f", "segment", "-segment_format", "mpegts", "-segment_time", f"{segment_seconds:g}",
        "-segment_list", str(session_dir / SEGMENT_LIST),
        "-segment_list_type", "csv", str(session_dir / SEGMENT_PATTERN),
    ]


@dataclass(frozen=True)
class ListedSegment:
    """A finished file as ffmpeg listed it; times are seconds on the stream's timeline."""

    name: str
    start_s: float
    end_s: float


def read_segment_list(session_dir: Path) -> list[ListedSegment]:
    """Every complete line of the session's ``segments.csv`` (a half-written one is left)."""
    listing = session_dir / SEGMENT_LIST
    if not listing.exists():
        return []
    text = listing.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    rows: list[ListedSegment] = []
    for row in csv.reader(line for line in lines if line.endswith("\n")):
        if len(row) >= 3:
            try:
                rows.append(ListedSegment(name=row[0], start_s=float(row[1]),
                                          end_s=float(row[2])))
            except ValueError:
                continue
    return rows


@dataclass
class Progress:
    """The latest ``-progress`` block."""

    out_time_s: float = 0.0
    frames: int = 0
    fps: float | None = None
    bitrate_bps: float | None = None
    blocks: int = 0


def parse_progress_line(line: str, progress: Progress) -> bool:
    """Fold one ``key=value`` line into ``progress``; True at the end of a block."""
    key, _, value = line.strip().partition("=")
    value = value.strip()
    try:
        if key == "out_time_us" and value not in ("", "N/A"):
            progress.out_time_s = max(0.0, int(value) / 1_000_000)
        elif key == "frame":
            progress.frames = int(value)
        elif key == "fps" and value not in ("", "N/A"):
            progress.fps = float(value) or progress.fps
        elif key == "bitrate":
            match = _BITRATE.search(value)
            if match:
                progress.bitrate_bps = float(match.group(1)) * 1000
    except ValueError:
        return False
    if key == "progress":
        progress.blocks += 1
        return True
    return False


def input_codec(log_line: str) -> str | None:
    """The codec of the input's video stream, from ffmpeg's stream description."""
    match = _INPUT_VIDEO.search(log_line)
    return match.group(1) if match else None


def stop_cause(log_tail: list[str], *, returncode: int | None,
               timeout_s: float) -> tuple[GapReason, str]:
    """Why ffmpeg stopped reading the stream: a gap reason's code and its detail (the
    timeout, or ffmpeg's last line: scrub it of the URL's secrets before storing it)."""
    text = "\n".join(log_tail).lower()
    if "timed out" in text or "timeout" in text:
        return GapReason.STREAM_TIMEOUT, f"{timeout_s:g}"
    if "connection refused" in text:
        return GapReason.CONNECTION_REFUSED, ""
    if "no route to host" in text or "network is unreachable" in text:
        return GapReason.HOST_UNREACHABLE, ""
    if "401" in text or "unauthorized" in text or "403" in text:
        return GapReason.CREDENTIALS_REFUSED, ""
    if "404" in text or "not found" in text:
        return GapReason.ADDRESS_NOT_FOUND, ""
    if "no space left" in text:
        return GapReason.DISK_FULL, ""
    if "end of file" in text or returncode == 0:
        return GapReason.STREAM_ENDED, ""
    last = next((line for line in reversed(log_tail) if line.strip()), "")
    return GapReason.STREAM_STOPPED, last.strip()[:200] or f"ffmpeg exit {returncode}"


def stop_reason(log_tail: list[str], *, returncode: int | None, timeout_s: float) -> str:
    """One English sentence on why ffmpeg stopped reading the stream (``stop_cause``)."""
    return describe_gap_reason(gap_reason(*stop_cause(log_tail, returncode=returncode,
                                                      timeout_s=timeout_s)))


__all__ = [
    "SEGMENT_LIST",
    "STREAM_COPY_CODECS",
    "ListedSegment",
    "Progress",
    "input_args",
    "input_codec",
    "parse_progress_line",
    "read_segment_list",
    "record_command",
    "stop_cause",
    "stop_reason",
]
