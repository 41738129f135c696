"""Viewing copies: an H.264/AAC MP4 beside each clip a court's computer may not play.

The stream-copied clip stays the evidence. A clip that is not H.264 (4:2:0) in MP4 with
AAC or MP3 audio (HEVC, MPEG-4 Part 2, MS-MPEG4v3 from an AVI, MJPEG ...) also gets a
viewing copy, transcoded from the clip itself with the ``VIEWING_COPY`` profile (frame
rate and resolution kept) by the ``ViewingTranscoder`` the export is handed:
``indexer.transcode.viewing_copy``, passed in by the application layer, because media
tools live in ``indexer`` and ``evidence`` may not import it. The copy is recorded as
derived from the clip: tool, version, full command and parameters and the clip's
SHA-256 (``provenance_facts``), and named in the report (``report_note``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from storage.blobstore import BlobStore
from storage.media_copies import TranscodeResult

VIEWING_SUFFIX = ".viewing.mp4"
"""``data/clips/clip-001-cam.mkv`` gets ``data/clips/clip-001-cam.viewing.mp4``."""


class ViewingTranscoder(Protocol):
    """Makes and stores the viewing copy of a stored clip; None when it plays everywhere.

    Raises ``TranscodeError`` when ffmpeg cannot decode the clip and ``StorageError``
    when the copy cannot be stored (``indexer.transcode.viewing_copy``).
    """

    def __call__(self, *, source: Path, source_sha256: str, derived: BlobStore,
                 tmp_dir: Path, name: str) -> TranscodeResult | None: ...


@dataclass(frozen=True)
class ViewingCopy:
    """A clip's viewing copy, stored in the derived store, and where it goes in the bag."""

    made: TranscodeResult
    path: str  # in the bag

    @property
    def sha256(self) -> str:
        return self.made.sha256


def viewing_copy_path(clip_path: str) -> str:
    """The bag path of the viewing copy of the clip at ``clip_path``."""
    stem = clip_path.rsplit(".", 1)[0] if "." in Path(clip_path).name else clip_path
    return f"{stem}{VIEWING_SUFFIX}"


def make_viewing_copy(*, clip_sha256: str, clip_path: str, derived: BlobStore,
                      tmp_dir: Path, transcoder: ViewingTranscoder) -> ViewingCopy | None:
    """The viewing copy of the stored clip ``clip_sha256``, or None when the clip itself
    plays everywhere (H.264 in MP4).

    Raises ``TranscodeError`` when ffmpeg cannot decode the clip and ``StorageError``
    when the copy cannot be stored; nothing is stored then and no temp file is left.
    """
    made = transcoder(source=derived.path_for(clip_sha256), source_sha256=clip_sha256,
                      derived=derived, tmp_dir=tmp_dir, name=Path(clip_path).name)
    if made is None:
        return None
    return ViewingCopy(made=made, path=viewing_copy_path(clip_path))


def provenance_facts(copy: ViewingCopy) -> dict[str, Any]:
    """The viewing copy as the clip facts carry it into ``provenance.jsonld``."""
    made = copy.made
    return {"path": copy.path, "sha256": made.sha256, "size_bytes": made.size_bytes,
            "source_sha256": made.source_sha256, "tool": made.tool,
            "tool_version": made.tool_version, "command": " ".join(made.command),
            "parameters": made.parameters, "codec": made.facts.codec,
            "width": made.facts.width, "height": made.facts.height,
            "frame_rate": made.facts.frame_rate}


def report_note(copy: ViewingCopy) -> str:
    """One technical line for the report (no words to translate): what and how."""
    made = copy.made
    audio = "AAC" if made.facts.audio_codec else "—"
    return (f"H.264/{audio} MP4, {made.facts.width}×{made.facts.height}, "
            f"{made.facts.frame_rate} fps; {made.tool} {made.tool_version} libx264 "
            f"-preset {made.parameters['x264_preset']} -crf {made.parameters['crf']}; "
            f"SHA-256 {made.sha256}; ← {made.source_sha256}")


__all__ = ["VIEWING_SUFFIX", "ViewingCopy", "ViewingTranscoder", "make_viewing_copy",
           "provenance_facts", "report_note", "viewing_copy_path"]
