"""Use cases: look at a sampled frame (details or image) and play a segment's video.

A frame or segment of a camera the actor may not see is reported exactly like a
missing one, so ids do not leak across agencies.

Every response that serves footage is audited, whatever byte range it asks for, unless
the same person was already recorded viewing the same segment (``view_video``) or the
same frame the same way (``view_frame``, details or image) within ``VIEW_WINDOW``: a
player's many range requests while seeking are one view, and a view after the window
is a new one. The window is looked up in the audit log itself, in the view's
transaction. A request that serves nothing (404, 416) is not a view.

A segment whose codec a browser cannot play (HEVC, MPEG-4 Part 2, MS-MPEG4v3, anything
in MKV) is served as its H.264 playback proxy (``indexer.transcode.playback_proxy``):
made on the first request, stored as a derived blob with its provenance record and
reused afterwards. Evidence clips are always cut from the original, never the proxy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlmodel import col, select

from indexer.transcode import playback_proxy
from search_api.audit import AuditAction
from search_api.usecases.context import UseCaseContext
from storage.errors import NotFoundError, OkoError
from storage.models.access import AuditEvent
from storage.models.media import Camera, Frame, Original, Segment
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry
from storage.permissions import Permission
from storage.types import utcnow

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$", re.IGNORECASE)  # the unit is case-insensitive
VIEW_WINDOW = timedelta(minutes=10)
"""Repeated views of one segment (or frame) by one person within this window are one."""
MAX_POSITION_DIGITS = 19  # more significant digits than any file's size has
PAST_ANY_END = 10_000_000_000_000_000_000  # what a longer position is clamped to


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
    proxy_sha256: str | None = None  # the H.264 proxy served in the segment's place


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


def viewed_recently(ctx: UseCaseContext, action: AuditAction, *, key: str, value: int,
                    what: str | None = None) -> bool:
    """Whether the actor has an ``action`` entry for ``details[key] == value`` (and
    ``details["what"] == what``) that is younger than ``VIEW_WINDOW``."""
    query = select(AuditEvent.seq).where(
        col(AuditEvent.action) == action.value, col(AuditEvent.actor) == ctx.actor.name,
        col(AuditEvent.occurred_at) >= utcnow() - VIEW_WINDOW,
        # compared as text: no cast that a row with another shape could make fail (PG)
        col(AuditEvent.details)[key].as_string() == str(value))
    if what is not None:
        query = query.where(col(AuditEvent.details)["what"].as_string() == what)
    return ctx.session.exec(query.limit(1)).first() is not None


def _audit_frame_view(ctx: UseCaseContext, frame: Frame, *, what: str) -> None:
    assert frame.id is not None
    if not viewed_recently(ctx, AuditAction.VIEW_FRAME, key="frame_id", value=frame.id,
                           what=what):
        ctx.audit(AuditAction.VIEW_FRAME, frame_id=frame.id, camera_id=frame.camera_id,
                  what=what)
    ctx.commit()


def view_frame_details(ctx: UseCaseContext, *, frame_id: int) -> FrameView:
    """Raises ``NotFoundError`` (404) for a missing or invisible frame."""
    ctx.require(Permission.VIEW_FOOTAGE)
    frame = _visible_frame(ctx, frame_id)
    _audit_frame_view(ctx, frame, what="details")
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
    _audit_frame_view(ctx, frame, what="image")
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


def _position(digits: str) -> int:
    """A byte position as the header spells it: leading zeros are legal (RFC 9110), and
    a number longer than any size is clamped rather than parsed (Python refuses ints of
    over 4,300 digits)."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > MAX_POSITION_DIGITS:
        return PAST_ANY_END
    return int(significant)


def parse_range(header: str, size: int) -> tuple[int, int]:
    """The inclusive byte span a single-range ``Range`` header asks for.

    ``bytes=A-B``, ``bytes=A-`` and the suffix ``bytes=-N`` (the last N bytes, all of a
    shorter video) are served; positions may have leading zeros. Raises
    ``RangeNotSatisfiableError`` (416) for anything else: another unit, several ranges,
    garbage, a start after its end, a start at or past the end, or an empty suffix.
    """
    shown = header[:80]
    match = RANGE.match(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiableError(f"Range '{shown}' is not a single byte range.",
                                       size=size)
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        start, end = max(0, size - _position(last)), size - 1
    else:
        start = _position(first)
        end = min(_position(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiableError(f"Range '{shown}' is outside the {size}-byte video.",
                                       size=size)
    return start, end


def play_segment(ctx: UseCaseContext, *, segment_id: int,
                 range_header: str | None) -> VideoSpan:
    """What to send for a request of the segment's video (whole, or one byte range).

    Audited as ``view_video`` (with the span served) unless the actor viewed this
    segment within ``VIEW_WINDOW``, whatever the range. Raises ``NotFoundError`` for a
    missing, invisible or lost segment, ``RangeNotSatisfiableError`` for a bad range
    (neither is a view) and ``TranscodeError`` when a segment browsers cannot play
    cannot be decoded for its proxy.
    """
    ctx.require(Permission.VIEW_FOOTAGE)
    segment = _visible_segment(ctx, segment_id)
    path = ctx.state.derived.path_for(segment.sha256)
    if not path.is_file():
        raise NotFoundError(f"The video of segment {segment_id} is missing from the store.")
    proxy = playback_proxy(source_sha256=segment.sha256, derived=ctx.state.derived,
                           tmp_dir=ctx.state.settings.tmp_dir, name=f"segment {segment_id}")
    if proxy is not None:
        path = ctx.state.derived.path_for(proxy["sha256"])
    size = path.stat().st_size
    partial = range_header is not None
    start, end = parse_range(range_header, size) if range_header is not None \
        else (0, size - 1)
    if not viewed_recently(ctx, AuditAction.VIEW_VIDEO, key="segment_id", value=segment_id):
        extra = {"proxy_sha256": proxy["sha256"]} if proxy is not None else {}
        ctx.audit(AuditAction.VIEW_VIDEO, segment_id=segment_id,
                  original_id=segment.original_id, bytes=f"{start}-{end}/{size}", **extra)
    ctx.commit()
    return VideoSpan(path=path, media_type=video_type(path), size=size, start=start,
                     end=end, partial=partial,
                     proxy_sha256=proxy["sha256"] if proxy is not None else None)


__all__ = [
    "VIEW_WINDOW",
    "FrameView",
    "RangeNotSatisfiableError",
    "VideoSpan",
    "parse_range",
    "play_segment",
    "view_frame_details",
    "view_frame_image",
    "viewed_recently",
]
