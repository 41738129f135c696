"""H.264/AAC MP4 copies of footage for players that cannot play the original's codec.

One transcode serves two callers, each with its own ``TranscodeProfile``:

* ``VIEWING_COPY``: the copy an evidence bundle carries beside a stream-copied clip
  whose codec or container an office PC may not play (HEVC, MPEG-4 Part 2, MS-MPEG4v3
  in AVI, MJPEG ...). Frame rate and resolution are kept.
* ``PLAYBACK_PROXY``: the low-bitrate copy the web app plays for a segment a browser
  cannot play, at most 720 lines high.

``transcode_h264`` runs in steps:

1. probe the source (PyAV): video size, frame rate, whether it has audio;
2. ffmpeg (the ``imageio-ffmpeg`` binary, which has libx264, as the clip cutter uses)
   writes H.264 (High profile, yuv420p), AAC when the source has audio, MP4 with
   ``+faststart``, every frame's timestamp passed through, into a temp dir under
   ``tmp_dir``;
3. the result is probed: it must be H.264 of the expected size, else nothing is kept;
4. it is stored in the derived blob store (identical content already stored is the same
   derivation) and the temp dir removed, whatever happened.

The result names the tool, its version, the full command and parameters and the
source's SHA-256, so the copy can be recorded as derived in provenance.

Media work belongs to the domain layer, not ``storage``: this module runs ffmpeg and
PyAV, and ``storage.media_copies`` only describes the result and where a proxy's record
lies. ``evidence`` may not import ``indexer``, so an export is handed ``viewing_copy``
(a ``evidence.viewing_copy.ViewingTranscoder``) by the application layer.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import imageio_ffmpeg

from storage.atomic import make_private_dirs, owner_tag, write_atomically
from storage.blobstore import BlobStore
from storage.errors import OkoError, StorageError
from storage.media_copies import TranscodeResult, VideoFacts, proxy_record_path

STDERR_TAIL = 200
_LOG_PREFIX = re.compile(r"\[[^\]]*@ 0x[0-9a-f]+\]\s*")  # "[dec:hevc @ 0x55d5...] "


class TranscodeError(OkoError):
    """ffmpeg could not make a playable copy of a file (it cannot decode it)."""

    exit_code = 3
    http_status = 422


@dataclass(frozen=True)
class TranscodeProfile:
    """The encoder settings of one kind of copy; recorded in full with every copy."""

    name: str
    preset: str
    crf: int
    max_height: int | None  # None: the source's size is kept
    audio_bitrate: str
    keyframe_seconds: float


VIEWING_COPY = TranscodeProfile(name="viewing-copy", preset="veryfast", crf=20,
                                max_height=None, audio_bitrate="128k", keyframe_seconds=2.0)
PLAYBACK_PROXY = TranscodeProfile(name="playback-proxy", preset="veryfast", crf=28,
                                  max_height=720, audio_bitrate="64k", keyframe_seconds=2.0)


def ffmpeg_binary() -> str:
    """The ffmpeg that transcodes: the ``imageio-ffmpeg`` one, built with libx264."""
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_version())


def _container_name(format_name: str) -> str:
    return "mp4" if format_name.startswith("mov,mp4") else format_name.split(",")[0]


def probe_video(path: Path, *, name: str | None = None) -> VideoFacts:
    """Container, first video stream and first audio stream of ``path`` (called
    ``name`` in messages).

    Raises ``TranscodeError`` when it cannot be read as video.
    """
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise TranscodeError(f"{name or path.name} has no video stream to play.")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            rate = video.base_rate or video.average_rate or video.guessed_rate
            context = video.codec_context
            return VideoFacts(
                container=_container_name(container.format.name),
                codec=context.codec.canonical_name,
                pixel_format=str(context.format.name) if context.format else "",
                width=context.width, height=context.height,
                frame_rate=f"{Fraction(rate).numerator}/{Fraction(rate).denominator}"
                if rate else "",
                audio_codec=audio.codec_context.codec.canonical_name if audio is not None
                else None)
    except (av.FFmpegError, ValueError) as exc:
        raise TranscodeError(f"{name or path.name} cannot be read as video ({exc}).") from exc


def _video_filter(facts: VideoFacts, profile: TranscodeProfile) -> str | None:
    """Scaling for a proxy; otherwise only a one-pixel pad when a side is odd (4:2:0
    needs even sides), so the size is kept."""
    if profile.max_height is not None and facts.height > profile.max_height:
        return f"scale=-2:{profile.max_height}"
    if facts.width % 2 or facts.height % 2:
        return "pad=ceil(iw/2)*2:ceil(ih/2)*2"
    return None


def _expected_size(facts: VideoFacts, profile: TranscodeProfile) -> tuple[int, int] | None:
    if profile.max_height is not None and facts.height > profile.max_height:
        return None  # the scaler rounds the width; only the codec is checked
    return facts.width + facts.width % 2, facts.height + facts.height % 2


def transcode_args(facts: VideoFacts, profile: TranscodeProfile) -> list[str]:
    """ffmpeg's arguments, with ``{source}`` and ``{copy}`` for the two paths."""
    video_filter = _video_filter(facts, profile)
    audio = (["-map", "0:a:0", "-c:a", "aac", "-b:a", profile.audio_bitrate]
             if facts.audio_codec is not None else ["-an"])
    return ["-nostdin", "-hide_banner", "-loglevel", "error",
            "-i", "{source}", "-map", "0:v:0",
            *(["-vf", video_filter] if video_filter else []),
            "-c:v", "libx264", "-preset", profile.preset, "-crf", str(profile.crf),
            "-profile:v", "high", "-pix_fmt", "yuv420p",
            "-force_key_frames", f"expr:gte(t,n_forced*{profile.keyframe_seconds:g})",
            "-fps_mode", "passthrough", *audio, "-sn", "-dn",
            "-map_metadata", "-1", "-map_chapters", "-1",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
            "-movflags", "+faststart", "-f", "mp4", "{copy}"]


def _ffmpeg_reason(stderr: str, returncode: int) -> str:
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.strip().splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:STDERR_TAIL] if lines else f"exit status {returncode}"


def transcode_h264(*, source: Path, source_sha256: str, profile: TranscodeProfile,
                   derived: BlobStore, tmp_dir: Path, name: str | None = None,
                   ) -> TranscodeResult:
    """Make and store an H.264/AAC MP4 copy of ``source`` (called ``name`` in messages)
    with ``profile``.

    Raises ``TranscodeError`` when ffmpeg cannot decode ``source`` or its output is not
    the expected H.264, and ``StorageError`` when the copy cannot be stored; either way
    no temp file is left and nothing is stored.
    """
    facts = probe_video(source, name=name)
    args = transcode_args(facts, profile)
    make_private_dirs(tmp_dir)
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix=f"transcode-{owner_tag()}-") as work:
        out = Path(work) / "copy.mp4"
        real = [str(source) if a == "{source}" else str(out) if a == "{copy}" else a
                for a in args]
        run = subprocess.run([ffmpeg_binary(), *real], capture_output=True, text=True,
                             check=False)
        shown = name or source.name
        if run.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            raise TranscodeError(
                f"ffmpeg could not decode {shown} to make its H.264 copy "
                f"({_ffmpeg_reason(run.stderr, run.returncode)}).")
        made = probe_video(out)
        expected = _expected_size(facts, profile)
        if made.codec != "h264" or (expected is not None
                                    and (made.width, made.height) != expected):
            raise TranscodeError(
                f"ffmpeg's copy of {shown} is {made.codec} {made.width}x{made.height}, "
                "not the expected H.264.")
        blob = derived.put_derived_file(out)
        sha, size = blob.sha256, blob.size_bytes
    return TranscodeResult(
        sha256=sha, size_bytes=size, source_sha256=source_sha256, profile=profile.name,
        facts=made, tool="ffmpeg", tool_version=ffmpeg_version(),
        command=["ffmpeg", *args],
        parameters={"profile": profile.name, "video_codec": "libx264",
                    "x264_preset": profile.preset, "crf": profile.crf,
                    "h264_profile": "high", "pixel_format": "yuv420p",
                    "keyframe_seconds": profile.keyframe_seconds,
                    "video_filter": _video_filter(facts, profile),
                    "frame_timestamps": "passthrough",
                    "audio": (f"aac {profile.audio_bitrate}" if facts.audio_codec
                              else "none (the source has none)"),
                    "container": "mp4 +faststart",
                    "source_codec": facts.codec, "source_container": facts.container,
                    "source_size": f"{facts.width}x{facts.height}",
                    "source_frame_rate": facts.frame_rate},
    )


def viewing_copy(*, source: Path, source_sha256: str, derived: BlobStore, tmp_dir: Path,
                 name: str) -> TranscodeResult | None:
    """The ``VIEWING_COPY`` of ``source`` (a stored clip called ``name``), stored in
    ``derived``; None when ``source`` itself plays everywhere (H.264 in MP4).

    Raises like ``transcode_h264``.
    """
    if probe_video(source, name=name).widely_playable:
        return None
    return transcode_h264(source=source, source_sha256=source_sha256, profile=VIEWING_COPY,
                          derived=derived, tmp_dir=tmp_dir, name=name)


def playback_proxy(*, source_sha256: str, derived: BlobStore, tmp_dir: Path,
                   name: str) -> dict[str, Any] | None:
    """The browser-playable proxy of the derived file ``source_sha256`` (a segment):
    None when the file itself plays in a browser, else its provenance record, with the
    proxy's ``sha256`` in the derived store.

    Made on first request with ``PLAYBACK_PROXY``, stored as a derived blob, and its
    record (tool, version, command, parameters, source hash) written atomically to
    ``proxy_record_path``; later requests reuse both. Raises ``TranscodeError`` when
    ffmpeg cannot decode the file and ``StorageError`` when the record cannot be
    written (the record is then absent, so the next request tries again).
    """
    record_path = proxy_record_path(derived, source_sha256)
    if record_path.is_file():
        record: dict[str, Any] = json.loads(record_path.read_text(encoding="utf-8"))
        if derived.exists(str(record.get("sha256", ""))):
            return record
    source = derived.path_for(source_sha256)
    if probe_video(source, name=name).widely_playable:
        return None
    made = transcode_h264(source=source, source_sha256=source_sha256,
                          profile=PLAYBACK_PROXY, derived=derived, tmp_dir=tmp_dir, name=name)
    record = {"sha256": made.sha256, "size_bytes": made.size_bytes,
              "source_sha256": source_sha256, "derived": True, "profile": made.profile,
              "tool": made.tool, "tool_version": made.tool_version,
              "command": " ".join(made.command), "parameters": made.parameters,
              "width": made.facts.width, "height": made.facts.height,
              "frame_rate": made.facts.frame_rate}
    try:
        make_private_dirs(record_path.parent)
        write_atomically(record_path, json.dumps(record, sort_keys=True).encode() + b"\n")
    except OSError as exc:
        raise StorageError(f"The playback proxy's record for {name} could not be written "
                           f"({exc.strerror or exc}).") from exc
    return record


__all__ = [
    "PLAYBACK_PROXY",
    "VIEWING_COPY",
    "TranscodeError",
    "TranscodeProfile",
    "ffmpeg_binary",
    "ffmpeg_version",
    "playback_proxy",
    "probe_video",
    "transcode_args",
    "transcode_h264",
    "viewing_copy",
]
