"""Use cases: look at a sampled frame (details or image) and play a segment's video.

A frame or segment of a camera the actor may not see is reported exactly like a
missing one, so ids do not leak across agencies. Every view is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from search_api.audit import AuditAction
from search_api.usecases.context import UseCaseContext
from storage.errors import NotFoundError, OkoError
from storage.models.media import Camera, Frame, Original, Segment
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry
from storage.permissions import Permission

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiableError(OkoError):
    """A ``Range`` header that is malformed, multi-range or outside the video."""

    http_status = 416

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


@dataclass(frozen=True)
class FrameView:
    """A frame with what its details page shows: segment, camera, index and embedding."""

    frame: Frame
    segment: Segment
    camera: Camera
    day_phase: str | None
    embedding_status: str | None


@dataclass(frozen=True)
class VideoSpan:
    """The bytes of a segment's video to send: ``[start, end]`` of ``size``."""

    path: Path
    media_type: str
    size: int
    start: int
    end: int
    partial: bool


def _visible_frame(ctx: UseCaseContext, frame_id: int) -> Frame:
    frame = ctx.session.get(Frame, frame_id)
    if frame is None or frame.camera_id not in ctx.visible_camera_ids():
        raise NotFoundError(f"Frame {frame_id} does not exist.")
    return frame


def _visible_segment(ctx: UseCaseContext, segment_id: int) -> Segment:
    segment = ctx.session.get(Segment, segment_id)
    original = ctx.session.get(Original, segment.original_id) if segment else None
    if segment is None or original is None \
            or original.camera_id not in ctx.visible_camera_ids():
        raise NotFoundError(f"Segment {segment_id} does not exist.")
    return segment


def view_frame_details(ctx: UseCaseContext, *, frame_id: int) -> FrameView:
    """Raises ``NotFoundError`` (404) for a missing or invisible frame."""
    ctx.require(Permission.VIEW_FOOTAGE)
    frame = _visible_frame(ctx, frame_id)
    ctx.audit(AuditAction.VIEW_FRAME, frame_id=frame_id, camera_id=frame.camera_id,
              what="details")
    ctx.commit()
    segment = ctx.session.get(Segment, frame.segment_id)
    camera = ctx.session.get(Camera, frame.camera_id)
    assert segment is not None and camera is not None
    entry = ctx.session.get(FrameIndexEntry, frame_id)
    embedding = ctx.session.get(FrameEmbedding, frame_id)
    return FrameView(frame=frame, segment=segment, camera=camera,
                     day_phase=entry.day_phase if entry else None,
                     embedding_status=embedding.status if embedding else None)


def view_frame_image(ctx: UseCaseContext, *, frame_id: int) -> bytes:
    """The frame's JPEG. Raises ``NotFoundError`` for a missing frame or image."""
    ctx.require(Permission.VIEW_FOOTAGE)
    frame = _visible_frame(ctx, frame_id)
    with ctx.state.derived.open(frame.thumbnail_sha256) as handle:
        data = handle.read()
    # audited once the image is in hand: a missing thumbnail (404) was not a view
    ctx.audit(AuditAction.VIEW_FRAME, frame_id=frame_id, camera_id=frame.camera_id,
              what="image")
    ctx.commit()
    return data


def video_type(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(12)
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video/x-matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[:1] == b"\x47":
        return "video/mp2t"
    return "application/octet-stream"


def parse_range(header: str, size: int) -> tuple[int, int]:
    """The inclusive byte span a single-range ``Range`` header asks for.

    Raises ``RangeNotSatisfiableError`` (416) for a malformed, multi-range or
    out-of-bounds request.
    """
    match = RANGE.match(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiableError(f"Range '{header}' is not a single byte range.",
                                       size=size)
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiableError(f"Range '{header}' is outside the {size}-byte video.",
                                       size=size)
    return start, end


def play_segment(ctx: UseCaseContext, *, segment_id: int,
                 range_header: str | None) -> VideoSpan:
    """What to send for a request of the segment's video (whole, or one byte range).

    Raises ``NotFoundError`` for a missing, invisible or lost segment and
    ``RangeNotSatisfiableError`` for a bad range.
    """
    ctx.require(Permission.VIEW_FOOTAGE)
    segment = _visible_segment(ctx, segment_id)
    path = ctx.state.derived.path_for(segment.sha256)
    if not path.is_file():
        raise NotFoundError(f"The video of segment {segment_id} is missing from the store.")
    if range_header is None or range_header.strip().startswith("bytes=0-"):
        # players fetch many ranges per playback; the first one counts as the view
        ctx.audit(AuditAction.VIEW_VIDEO, segment_id=segment_id,
                  original_id=segment.original_id)
        ctx.commit()
    size = path.stat().st_size
    if range_header is None:
        return VideoSpan(path=path, media_type=video_type(path), size=size, start=0,
                         end=size - 1, partial=False)
    start, end = parse_range(range_header, size)
    return VideoSpan(path=path, media_type=video_type(path), size=size, start=start,
                     end=end, partial=True)


__all__ = [
    "FrameView",
    "RangeNotSatisfiableError",
    "VideoSpan",
    "parse_range",
    "play_segment",
    "view_frame_details",
    "view_frame_image",
]
