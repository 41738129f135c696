"""Deterministic clip cutting from an original, and a deterministic still frame.

A clip is cut with ffmpeg stream copy (never re-encoded) from the ORIGINAL, widened to
the keyframe at or before the requested start and the keyframe at or after the requested
end, because a stream copy can only start on a keyframe. Bit-exact flags and stripped
metadata make two cuts of the same span byte-identical. The clip is MP4 when MP4 can
carry its streams, else Matroska (MS-MPEG4v3 from an AVI, PCM audio ...): the codec is
never changed. A copy that plays everywhere is the viewing copy's job
(``evidence.viewing_copy``).
"""

from __future__ import annotations

import bisect
import io
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import imageio_ffmpeg
import PIL
from PIL import Image

from storage.blobstore import BlobStore
from storage.errors import InvalidInputError, StorageError

STILL_JPEG_QUALITY = 90
# streams (by PyAV's canonical codec name) that ffmpeg's MP4 muxer carries
MP4_VIDEO_CODECS = {"h264", "hevc", "mpeg4", "av1", "vp9", "mjpeg", "mpeg1video",
                    "mpeg2video"}
MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}


@dataclass(frozen=True)
class CutResult:
    """A clip stored in the derived store, with how it was made."""

    sha256: str
    size_bytes: int
    requested_start_s: float
    requested_end_s: float
    actual_start_s: float
    actual_end_s: float
    codec: str
    width: int
    height: int
    tool: str
    tool_version: str
    command: list[str] = field(default_factory=list)
    container: str = "mp4"  # "mp4" or "mkv": the file suffix too

    @property
    def duration_s(self) -> float:
        return self.actual_end_s - self.actual_start_s


@dataclass(frozen=True)
class StillResult:
    sha256: str
    size_bytes: int
    offset_s: float
    tool: str
    tool_version: str
    parameters: dict[str, Any] = field(default_factory=dict)


def ffmpeg_version() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_version())


def keyframe_times(source: Path) -> tuple[list[float], float, dict[str, Any]]:
    """Keyframe times (s from the stream start), the stream's end, and video facts."""
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise InvalidInputError(f"{source.name} has no video stream.")
            stream = container.streams.video[0]
            base = stream.time_base or Fraction(1, 90000)
            first: int | None = None
            keyframes: list[int] = []
            last_end = 0
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                first = packet.pts if first is None else min(first, packet.pts)
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
                last_end = max(last_end, packet.pts + (packet.duration or 0))
            audio = [a.codec_context.codec.canonical_name for a in container.streams.audio]
            mp4 = stream.codec_context.codec.canonical_name in MP4_VIDEO_CODECS and all(
                name in MP4_AUDIO_CODECS for name in audio)
            facts = {"codec": stream.codec_context.name, "width": stream.codec_context.width,
                     "height": stream.codec_context.height,
                     "container": "mp4" if mp4 else "mkv"}
    except av.FFmpegError as exc:
        raise InvalidInputError(f"{source.name} cannot be read as video ({exc}).") from exc
    if first is None or not keyframes:
        raise InvalidInputError(f"{source.name} has no decodable keyframes.")
    times = sorted(float((pts - first) * base) for pts in keyframes)
    return times, float((last_end - first) * base), facts


def widen_to_keyframes(keyframes: list[float], stream_end: float,
                       start_s: float, end_s: float) -> tuple[float, float]:
    """The keyframe at or before ``start_s`` and the one at or after ``end_s`` (or the end)."""
    eps = 1e-6
    i = bisect.bisect_right(keyframes, start_s + eps) - 1
    actual_start = keyframes[max(i, 0)]
    j = bisect.bisect_left(keyframes, end_s - eps)
    actual_end = keyframes[j] if j < len(keyframes) else stream_end
    return actual_start, max(actual_end, min(end_s, stream_end))


def cut_clip(*, original_path: Path, start_s: float, end_s: float, derived: BlobStore,
             tmp_dir: Path) -> CutResult:
    """Cut ``[start_s, end_s)`` (seconds into the original) widened to keyframes.

    Raises ``InvalidInputError`` for an empty or out-of-range span and ``StorageError``
    when ffmpeg fails; no temp file is left behind either way.
    """
    keyframes, stream_end, facts = keyframe_times(original_path)
    if not 0 <= start_s < end_s:
        raise InvalidInputError(f"The clip span {start_s:.3f}-{end_s:.3f} s is empty.")
    if start_s >= stream_end:
        raise InvalidInputError(
            f"The clip starts at {start_s:.3f} s but the original ends at {stream_end:.3f} s."
        )
    actual_start, actual_end = widen_to_keyframes(keyframes, stream_end, start_s,
                                                  min(end_s, stream_end))
    args = ["-nostdin", "-hide_banner", "-loglevel", "error",
            "-ss", f"{actual_start:.6f}", "-i", "{original}",
            "-t", f"{actual_end - actual_start:.6f}",
            "-map", "0:v:0", "-map", "0:a?", "-c", "copy",
            "-map_metadata", "-1", "-map_chapters", "-1",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
            "-avoid_negative_ts", "make_zero",
            "-f", "mp4" if facts["container"] == "mp4" else "matroska", "{clip}"]
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="clip-") as work:
        out = Path(work) / f"clip.{facts['container']}"
        real = [str(original_path) if a == "{original}" else str(out) if a == "{clip}" else a
                for a in args]
        run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), *real],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0 or not out.is_file():
            raise StorageError(f"ffmpeg could not cut the clip: {run.stderr.strip()[-300:]}")
        blob = derived.put_derived_file(out)
    return CutResult(
        sha256=blob.sha256, size_bytes=blob.size_bytes, requested_start_s=start_s,
        requested_end_s=end_s, actual_start_s=actual_start, actual_end_s=actual_end,
        codec=str(facts["codec"]), width=int(facts["width"]), height=int(facts["height"]),
        tool="ffmpeg", tool_version=ffmpeg_version(), command=["ffmpeg", *args],
        container=str(facts["container"]),
    )


def still_frame(*, original_path: Path, offset_s: float, derived: BlobStore) -> StillResult:
    """The first frame at or after ``offset_s`` as a JPEG without metadata (deterministic)."""
    try:
        with av.open(str(original_path)) as container:
            stream = container.streams.video[0]
            base = stream.time_base or Fraction(1, 90000)
            first_pts = stream.start_time or 0
            container.seek(first_pts + int(offset_s / base), stream=stream, backward=True)
            chosen: av.VideoFrame | None = None
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                chosen = frame  # converted once below: to_image() is the costly part
                if float((frame.pts - first_pts) * base) >= offset_s - 1e-6:
                    break
            image: Image.Image | None = None
            if chosen is not None:
                image = chosen.to_image()  # type: ignore[no-untyped-call]  # av's stub: untyped
    except av.FFmpegError as exc:
        raise InvalidInputError(f"{original_path.name} cannot be decoded ({exc}).") from exc
    if image is None:
        raise InvalidInputError(f"No frame could be decoded at {offset_s:.3f} s.")
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=STILL_JPEG_QUALITY,
                              optimize=False, progressive=False)
    data = buffer.getvalue()
    sha = derived.put_derived_bytes(data).sha256
    return StillResult(
        sha256=sha, size_bytes=len(data), offset_s=offset_s, tool="pyav+pillow",
        tool_version=f"av {av.__version__}, pillow {PIL.__version__}",
        parameters={"format": "JPEG", "quality": STILL_JPEG_QUALITY, "offset_s": offset_s},
    )


__all__ = ["CutResult", "StillResult", "cut_clip", "ffmpeg_version", "keyframe_times",
           "still_frame", "widen_to_keyframes"]
