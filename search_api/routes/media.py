"""Routes for media: frame metadata and thumbnails, and segment video with HTTP Range.

A frame or segment of a camera the user may not see answers 404 exactly like a missing
one, so ids do not leak across agencies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from sqlmodel import Session

from search_api.audit import AuditAction
from search_api.deps import AuditDep, CurrentUser, DbId, SessionDep, StateDep, requires
from search_api.errors import ErrorPublic
from search_api.policy import Permission, visible_camera_ids
from search_api.search_support import thumbnail_url, video_url
from storage.errors import NotFoundError, OkoError
from storage.models.access import User
from storage.models.media import Camera, Frame, Original, Segment
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry

router = APIRouter(tags=["media"], dependencies=[Depends(requires(Permission.VIEW_FOOTAGE))])

CHUNK_BYTES = 256 * 1024
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiableError(OkoError):
    http_status = 416


class FramePublic(BaseModel):
    """A sampled frame and where to see it."""

    id: int
    camera_id: str
    original_id: int
    segment_id: int
    captured_at_utc: datetime
    captured_at_local: datetime
    offset_s: float
    offset_in_segment_s: float
    width: int
    height: int
    day_phase: str | None
    embedding_status: str | None
    thumbnail_url: str
    video_url: str


def _visible_frame(session: Session, user: User, frame_id: int) -> Frame:
    frame = session.get(Frame, frame_id)
    if frame is None or frame.camera_id not in visible_camera_ids(session, user):
        raise NotFoundError(f"Frame {frame_id} does not exist.")
    return frame


def _visible_segment(session: Session, user: User, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    original = session.get(Original, segment.original_id) if segment else None
    if segment is None or original is None \
            or original.camera_id not in visible_camera_ids(session, user):
        raise NotFoundError(f"Segment {segment_id} does not exist.")
    return segment


def _video_type(path: Path) -> str:
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
        raise RangeNotSatisfiableError(f"Range '{header}' is not a single byte range.")
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiableError(f"Range '{header}' is outside the {size}-byte video.")
    return start, end


def _stream(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


@router.get("/frames/{frame_id}", response_model=FramePublic)
def read_frame(frame_id: DbId, session: SessionDep, user: CurrentUser,
               audit: AuditDep) -> FramePublic:
    frame = _visible_frame(session, user, frame_id)
    audit(AuditAction.VIEW_FRAME, frame_id=frame_id, camera_id=frame.camera_id, what="details")
    session.commit()
    segment = session.get(Segment, frame.segment_id)
    camera = session.get(Camera, frame.camera_id)
    assert segment is not None and camera is not None and frame.id is not None
    entry = session.get(FrameIndexEntry, frame.id)
    embedding = session.get(FrameEmbedding, frame.id)
    return FramePublic(
        id=frame.id, camera_id=frame.camera_id, original_id=frame.original_id,
        segment_id=frame.segment_id, captured_at_utc=frame.captured_at_utc,
        captured_at_local=frame.captured_at_utc.astimezone(ZoneInfo(camera.timezone)),
        offset_s=frame.offset_s,
        offset_in_segment_s=round(max(0.0, frame.offset_s - segment.start_offset_s), 3),
        width=frame.width, height=frame.height,
        day_phase=entry.day_phase if entry else None,
        embedding_status=embedding.status if embedding else None,
        thumbnail_url=thumbnail_url(frame.id), video_url=video_url(frame.segment_id))


@router.get("/frames/{frame_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG thumbnail"}})
def read_thumbnail(frame_id: DbId, session: SessionDep, user: CurrentUser,
                   state: StateDep, audit: AuditDep) -> Response:
    frame = _visible_frame(session, user, frame_id)
    with state.derived.open(frame.thumbnail_sha256) as handle:
        data = handle.read()
    # audited once the image is in hand: a missing thumbnail (404) was not a view
    audit(AuditAction.VIEW_FRAME, frame_id=frame_id, camera_id=frame.camera_id, what="image")
    session.commit()
    return Response(content=data, media_type="image/jpeg")


@router.get("/segments/{segment_id}/video", response_class=StreamingResponse, responses={
    200: {"content": {"video/mp4": {}}, "description": "The whole segment"},
    206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
    416: {"description": "Range not satisfiable"}})
def read_segment_video(segment_id: DbId, session: SessionDep, user: CurrentUser,
                       state: StateDep, audit: AuditDep,
                       range_header: Annotated[str | None, Header(alias="Range")] = None,
                       ) -> Response:
    segment = _visible_segment(session, user, segment_id)
    path = state.derived.path_for(segment.sha256)
    if not path.is_file():
        raise NotFoundError(f"The video of segment {segment_id} is missing from the store.")
    if range_header is None or range_header.strip().startswith("bytes=0-"):
        # players fetch many ranges per playback; the first one counts as the view
        audit(AuditAction.VIEW_VIDEO, segment_id=segment_id, original_id=segment.original_id)
        session.commit()
    size = path.stat().st_size
    headers = {"Accept-Ranges": "bytes"}
    if range_header is None:
        return StreamingResponse(_stream(path, 0, size - 1), media_type=_video_type(path),
                                 headers={**headers, "Content-Length": str(size)})
    try:
        start, end = parse_range(range_header, size)
    except RangeNotSatisfiableError as exc:
        body = ErrorPublic(detail=exc.message).model_dump()
        return JSONResponse(body, status_code=exc.http_status,
                            headers={"Content-Range": f"bytes */{size}"})
    headers |= {"Content-Range": f"bytes {start}-{end}/{size}",
                "Content-Length": str(end - start + 1)}
    return StreamingResponse(_stream(path, start, end), status_code=206,
                             media_type=_video_type(path), headers=headers)
