"""What Oko keeps about a playable H.264 copy of footage: its facts and provenance.

The copies themselves are made by ``indexer.transcode`` (ffmpeg); this module only
describes them and says where the playback proxies' provenance records lie in the
derived store, so that ``storage`` stays free of media tools and ``evidence`` (viewing
copies) and ``indexer`` (retention of proxies) can share the types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.blobstore import BlobStore

# what a browser and an ordinary office PC play without extra codecs
PLAYABLE_CONTAINERS = {"mp4", "mov"}
PLAYABLE_VIDEO_CODECS = {"h264"}
PLAYABLE_PIXEL_FORMATS = {"yuv420p", "yuvj420p"}
PLAYABLE_AUDIO_CODECS = {"aac", "mp3"}


@dataclass(frozen=True)
class VideoFacts:
    """What decides whether a file plays everywhere: container, codecs, size, rate."""

    container: str
    codec: str
    pixel_format: str
    width: int
    height: int
    frame_rate: str  # "25/1": the stream's base rate (ffprobe's r_frame_rate); "" unknown
    audio_codec: str | None

    @property
    def widely_playable(self) -> bool:
        """H.264 4:2:0 in MP4, with AAC or MP3 audio or none."""
        return (self.container in PLAYABLE_CONTAINERS
                and self.codec in PLAYABLE_VIDEO_CODECS
                and self.pixel_format in PLAYABLE_PIXEL_FORMATS
                and (self.audio_codec is None or self.audio_codec in PLAYABLE_AUDIO_CODECS))


@dataclass(frozen=True)
class TranscodeResult:
    """A playable copy stored in the derived store, and exactly how it was made."""

    sha256: str
    size_bytes: int
    source_sha256: str
    profile: str
    facts: VideoFacts
    tool: str
    tool_version: str
    command: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


PROXY_RECORDS = "proxies"
"""Under the derived store's root: ``<source sha256>.json``, each proxy's provenance."""


def proxy_record_path(derived: BlobStore, source_sha256: str) -> Path:
    derived.path_for(source_sha256)  # refuses anything but a SHA-256
    return derived.root / PROXY_RECORDS / f"{source_sha256}.json"


__all__ = [
    "PLAYABLE_AUDIO_CODECS",
    "PLAYABLE_CONTAINERS",
    "PLAYABLE_PIXEL_FORMATS",
    "PLAYABLE_VIDEO_CODECS",
    "PROXY_RECORDS",
    "TranscodeResult",
    "VideoFacts",
    "proxy_record_path",
]
