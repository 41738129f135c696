"""FFmpeg and PyAV plumbing: find the binary, probe a file, cut segments, sample frames.

PyAV (which ships FFmpeg's libraries) probes and decodes in-process; the ffmpeg binary
(on PATH, else the one from the ``imageio-ffmpeg`` wheel) cuts segments.
"""

from __future__ import annotations

import csv
import io
import itertools
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import av.error
from PIL import Image

from storage.errors import InvalidInputError, StorageError

# Demuxers that open stills or text as a one-frame "video"; they are not recordings.
NON_VIDEO_FORMATS = {"image2", "tty", "gif", "apng", "webp_pipe", "lavfi", "concat"}
TS_PACKET_BYTES = 188
# codecs that MP4 carries (and browsers mostly play); anything else is segmented into MKV
MP4_CODECS = {"h264", "hevc", "mpeg4", "av1"}
NON_VIDEO_CODECS = {"ansi", "bintext", "xbin", "idf", "png", "gif", "bmp", "webp", "tiff"}
# codecs of both stills and video: a recording only with many frames at a real frame rate
# (an MJPEG camera's AVI or MKV), never one picture (a JPEG, an MP3's cover art)
STILL_OR_VIDEO_CODECS = {"mjpeg"}
MIN_MOVING_FRAMES = 2


class MediaError(InvalidInputError):
    """A file that cannot be ingested as video."""


class EmptyFileError(MediaError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"'{path.name}' is empty (0 bytes); there is no recording to ingest.")


class NotVideoError(MediaError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"'{path.name}' is not a video file: FFmpeg does not recognise "
                         "its format.")


class NoVideoStreamError(MediaError):
    def __init__(self, path: Path, why: str = "has no video stream") -> None:
        super().__init__(f"'{path.name}' {why}; only recordings with a decodable video "
                         "stream can be ingested.")


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg binary: the one on PATH, else the one bundled with ``imageio-ffmpeg``."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@lru_cache(maxsize=1)
def tool_version() -> str:
    """The ffmpeg version string (e.g. ``n9.0.2-17-g2a571b6068``), recorded on derived rows."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], check=True,
                            capture_output=True, text=True)
    words = result.stdout.split()
    return words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else words[0]


@dataclass(frozen=True)
class MediaInfo:
    """What ingest records about a recording, from its container and first video stream."""

    container: str
    video_codec: str
    width: int
    height: int
    fps: float
    variable_frame_rate: bool
    duration_s: float
    creation_time_utc: datetime | None
    has_video: bool = True
    start_time_s: float = 0.0  # presentation time of the first frame; offsets count from it
    frame_times_s: list[float] = field(default_factory=list, repr=False)
    keyframe_times_s: list[float] = field(default_factory=list, repr=False)
    demux_error: str = ""


def _parse_creation_time(metadata: dict[str, str]) -> datetime | None:
    raw = metadata.get("creation_time") or metadata.get("date")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # recorders with an unset clock write the epoch; that is no timestamp at all
    return value.astimezone(UTC) if value.year >= 2000 else None


def _open(path: Path) -> Any:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError) as exc:
        raise NotVideoError(path) from exc


def _scan_packets(container: Any, stream: Any,
                  limit: int | None = None) -> tuple[list[float], list[float], str]:
    """Presentation times of every video packet (sorted) and of keyframes; stops at damage.

    With ``limit`` it stops after that many packets.
    """
    times: list[float] = []
    keys: list[float] = []
    error = ""
    base = float(stream.time_base)  # a Fraction product per packet costs more than demuxing
    try:
        for packet in container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None or packet.size == 0:
                continue
            seconds = stamp * base
            times.append(seconds)
            if packet.is_keyframe:
                keys.append(seconds)
            if limit is not None and len(times) >= limit:
                break
    except av.error.FFmpegError as exc:
        error = str(exc)
    times.sort()
    return times, sorted(keys), error


def _first_frame_decodes(container: Any, stream: Any) -> bool:
    try:
        for _ in container.decode(stream):
            return True
    except av.error.FFmpegError:
        return False
    return False


def _moving(stream: Any, times: list[float]) -> bool:
    """Whether a stream of a still-or-video codec is video: several frames at distinct
    times, not a picture attached to audio."""
    attached = bool(getattr(stream, "disposition", 0) & av.stream.Disposition.attached_pic)
    return not attached and len(set(times)) >= MIN_MOVING_FRAMES


def _duration(container: Any, stream: Any, fallback: float) -> float:
    if container.duration:
        return float(container.duration) / 1_000_000
    if stream.duration:
        return float(stream.duration * stream.time_base)
    return fallback


def probe(path: Path, *, scan: bool = True) -> MediaInfo:
    """Describe ``path``'s container and first video stream without changing it.

    ``scan=False`` reads only up to the first video packet: enough to refuse what is no
    recording and to read the container time, but frame and keyframe times, duration
    and damage are then not known.

    Raises ``EmptyFileError``, ``NotVideoError`` or ``NoVideoStreamError`` (all
    ``InvalidInputError``) when the file is not a usable recording.
    """
    if path.stat().st_size == 0:
        raise EmptyFileError(path)
    with _open(path) as container:
        format_name = container.format.name
        if format_name in NON_VIDEO_FORMATS or format_name.endswith("_pipe"):
            raise NotVideoError(path)
        if not container.streams.video:
            raise NoVideoStreamError(path)
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context else ""
        if codec in NON_VIDEO_CODECS:
            raise NotVideoError(path)
        if not _first_frame_decodes(container, stream):
            raise NoVideoStreamError(path, "has a video stream that cannot be decoded")
        container.seek(0)
        still_or_video = codec in STILL_OR_VIDEO_CODECS
        times, keys, demux_error = _scan_packets(
            container, stream, None if scan else (MIN_MOVING_FRAMES if still_or_video else 1))
        if not times:
            raise NoVideoStreamError(path, "has a video stream without any frames")
        if still_or_video and not _moving(stream, times):
            raise NoVideoStreamError(path, "holds a single picture, not a moving video")
        origin = times[0]
        frame_times = [t - origin for t in times]
        key_times = [t - origin for t in keys]
        deltas = [b - a for a, b in itertools.pairwise(frame_times) if b > a]
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        typical = sorted(deltas)[len(deltas) // 2] if deltas else 0.0
        variable = bool(deltas) and (max(deltas) - min(deltas)) > 0.5 * typical
        duration = _duration(container, stream, frame_times[-1] + typical)
        declared = int(stream.frames or 0)
        if scan and declared > len(times):
            # an index or header promising more frames than the file holds: cut short
            demux_error = demux_error or (f"the container lists {declared} frames but only "
                                          f"{len(times)} are present")
            if rate:
                duration = max(duration, declared / float(rate))
        if scan and format_name == "mpegts" and path.stat().st_size % TS_PACKET_BYTES:
            demux_error = demux_error or "the MPEG-TS stream ends in the middle of a packet"
        fps = float(rate) if rate else (len(deltas) / frame_times[-1] if frame_times[-1] else 0.0)
        created = _parse_creation_time(dict(container.metadata)) or _parse_creation_time(
            dict(stream.metadata))
        return MediaInfo(
            container=format_name.split(",")[0] if format_name != "mov,mp4,m4a,3gp,3g2,mj2"
            else ("mp4" if path.suffix.lower() != ".mov" else "mov"),
            video_codec=codec, width=stream.codec_context.width,
            height=stream.codec_context.height, fps=round(fps, 3),
            variable_frame_rate=variable, duration_s=round(duration, 3),
            creation_time_utc=created, start_time_s=origin, frame_times_s=frame_times,
            keyframe_times_s=key_times,
            demux_error=demux_error,
        )


@dataclass(frozen=True)
class SegmentFile:
    """A segment written by ffmpeg; offsets are seconds from the original's first frame."""

    path: Path
    index: int
    start_offset_s: float
    duration_s: float
    frame_count: int


@dataclass(frozen=True)
class SegmentRun:
    files: list[SegmentFile]
    method: str  # "stream_copy" or "reencode"
    parameters: dict[str, Any]


def _segment_args(source: Path, out_dir: Path, *, seconds: float, reencode: bool,
                  suffix: str, source_codec: str) -> tuple[list[str], dict[str, Any]]:
    pattern = out_dir / f"segment-%05d{suffix}"
    codec = (["-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
              "-force_key_frames", f"expr:gte(t,n_forced*{seconds:g})", "-pix_fmt", "yuv420p"]
             if reencode else ["-c", "copy"])
    params: dict[str, Any] = {
        "map": "0:v:0", "codec": codec, "format": "segment", "segment_time": seconds,
        "reset_timestamps": 1, "container": suffix.lstrip("."),
    }
    container_args = (["-segment_format_options", "movflags=+faststart"]
                      if suffix == ".mp4" else [])
    # Apple players want HEVC in MP4 tagged hvc1; copying keeps the source's tag otherwise
    tag_args = ["-tag:v", "hvc1"] if suffix == ".mp4" and source_codec == "hevc" and (
        not reencode) else []
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-fflags", "+genpts+discardcorrupt", "-i", str(source), "-map", "0:v:0", *codec,
            *tag_args, "-f", "segment", *container_args,
            "-segment_time", f"{seconds:g}", "-reset_timestamps", "1",
            "-segment_list", str(out_dir / "segments.csv"), "-segment_list_type", "csv",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
            str(pattern)]
    return args, params


def _count_video_packets(path: Path) -> int:
    """The video packets in a segment ffmpeg wrote: from an MP4's sample table when it has
    one (no demuxing), else counted."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if path.suffix == ".mp4" and stream.frames:
                return int(stream.frames)
            return sum(1 for p in container.demux(stream) if p.size and
                       (p.pts is not None or p.dts is not None))
    except (av.error.FFmpegError, IndexError):
        return 0


def _run_segmenter(source: Path, out_dir: Path, *, seconds: float, reencode: bool,
                   suffix: str, source_codec: str, frame_times: list[float],
                   ) -> tuple[list[SegmentFile], dict[str, Any]]:
    for stale in out_dir.glob("segment-*"):
        stale.unlink()
    args, params = _segment_args(source, out_dir, seconds=seconds, reencode=reencode,
                                 suffix=suffix, source_codec=source_codec)
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    listing = out_dir / "segments.csv"
    names: list[str] = []
    if listing.exists():
        with listing.open(newline="") as handle:
            names = [row[0] for row in csv.reader(handle) if row]
    if result.returncode != 0 and not names:
        return [], params
    files: list[SegmentFile] = []
    consumed = 0
    frame_step = (frame_times[-1] / (len(frame_times) - 1)) if len(frame_times) > 1 else seconds
    for index, name in enumerate(names):
        path = out_dir / name
        count = _count_video_packets(path)
        if count == 0:
            continue
        # a segment's real start is the time of its first frame in the original
        first = min(consumed, len(frame_times) - 1)
        after = consumed + count
        start = frame_times[first]
        end = frame_times[after] if after < len(frame_times) else frame_times[-1] + frame_step
        files.append(SegmentFile(path=path, index=index, start_offset_s=round(start, 6),
                                 duration_s=round(max(end - start, 0.0), 6), frame_count=count))
        consumed = after
    return files, params


def cut_segments(source: Path, out_dir: Path, *, seconds: float, info: MediaInfo) -> SegmentRun:
    """Cut ``source`` into ~``seconds`` pieces in ``out_dir`` without touching ``source``.

    Stream copy cuts only at keyframes; when that cannot give segments near the asked
    length (no keyframes, or a GOP far longer than a segment), the segment copies (never
    the original) are re-encoded with forced keyframes. Raises ``StorageError`` when
    ffmpeg cannot produce any segment.
    """
    suffix = ".mp4" if info.video_codec in MP4_CODECS else ".mkv"
    files, params = _run_segmenter(source, out_dir, seconds=seconds, reencode=False,
                                   suffix=suffix, source_codec=info.video_codec,
                                   frame_times=info.frame_times_s)
    too_long = any(f.duration_s > 2 * seconds for f in files)
    if files and not too_long:
        return SegmentRun(files=files, method="stream_copy", parameters=params)
    files, params = _run_segmenter(source, out_dir, seconds=seconds, reencode=True,
                                   suffix=".mp4", source_codec=info.video_codec,
                                   frame_times=info.frame_times_s)
    if not files:
        raise StorageError(f"ffmpeg could not cut '{source.name}' into segments.")
    return SegmentRun(files=files, method="reencode", parameters=params)


@dataclass(frozen=True)
class SampledFrame:
    offset_s: float
    width: int
    height: int
    jpeg: bytes


@dataclass
class DecodeReport:
    """How far decoding got; a shortfall against the probed duration means damage."""

    decoded_until_s: float = 0.0
    frames_decoded: int = 0
    errors: list[str] = field(default_factory=list)


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # even sizes keep every codec and swscale path happy
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def sample_frames(source: Path, *, origin_s: float, interval_s: float, max_side: int,
                  report: DecodeReport, jpeg_quality: int = 90,
                  progress: Callable[[float], None] | None = None,
                  duration_s: float = 0.0) -> Iterator[SampledFrame]:
    """Decode ``source`` and yield one reduced-size JPEG per ``interval_s`` of footage.

    Each sample is the first decoded frame at or after its due time; non-reference frames
    are skipped while decoding.

    Offsets are seconds from ``origin_s`` (``MediaInfo.start_time_s``, the first frame).
    Corrupt packets are skipped and noted in ``report``; decoding stops at the first
    unrecoverable error.
    """
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # frames nothing else refers to are never needed to decode later ones, and the
        # sample falls on the next decoded frame (a few hundredths of a second later,
        # recorded with its exact offset): about half the decoding work for H.264/HEVC
        stream.codec_context.skip_frame = "NONREF"
        size = _scaled_size(stream.codec_context.width, stream.codec_context.height, max_side)
        next_due = 0.0
        step = 1 / float(stream.average_rate) if stream.average_rate else 0.04
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                report.errors.append(f"demuxing stopped: {exc}")
                break
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                report.errors.append(f"corrupt packet skipped: {exc}")
                continue
            for frame in frames:
                if frame.time is None:
                    continue
                offset = frame.time - origin_s
                report.frames_decoded += 1
                report.decoded_until_s = max(report.decoded_until_s, offset + step)
                if offset + 1e-6 < next_due:
                    continue
                image: Image.Image = frame.to_image(  # type: ignore[no-untyped-call]  # av's stub
                    width=size[0], height=size[1])
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=jpeg_quality)
                yield SampledFrame(offset_s=round(offset, 6), width=size[0], height=size[1],
                                   jpeg=buffer.getvalue())
                next_due += interval_s
                while next_due <= offset:
                    next_due += interval_s
                if progress and duration_s:
                    progress(min(1.0, offset / duration_s))


def jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


__all__ = [
    "DecodeReport",
    "EmptyFileError",
    "MediaError",
    "MediaInfo",
    "NoVideoStreamError",
    "NotVideoError",
    "SampledFrame",
    "SegmentFile",
    "SegmentRun",
    "cut_segments",
    "ffmpeg_exe",
    "probe",
    "sample_frames",
    "tool_version",
]
