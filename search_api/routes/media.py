"""Routes for media: frame metadata and thumbnails, and segment video with HTTP Range.

A frame or segment of a camera the user may not see answers 404 exactly like a missing
one, so ids do not leak across agencies.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from search_api.deps import DbId, UseCaseDep, requires
from search_api.errors import ErrorPublic
from search_api.policy import Permission
from search_api.search_support import thumbnail_url, video_url
from search_api.usecases.media import (
    FrameView,
    RangeNotSatisfiableError,
    play_segment,
    view_frame_details,
    view_frame_image,
)

router = APIRouter(tags=["media"], dependencies=[Depends(requires(Permission.VIEW_FOOTAGE))])

CHUNK_BYTES = 256 * 1024


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

    @classmethod
    def of(cls, view: FrameView) -> FramePublic:
        frame, segment = view.frame, view.segment
        assert frame.id is not None
        return cls(
            id=frame.id, camera_id=frame.camera_id, original_id=frame.original_id,
            segment_id=frame.segment_id, captured_at_utc=frame.captured_at_utc,
            captured_at_local=frame.captured_at_utc.astimezone(ZoneInfo(view.camera.timezone)),
            offset_s=frame.offset_s,
            offset_in_segment_s=round(max(0.0, frame.offset_s - segment.start_offset_s), 3),
            width=frame.width, height=frame.height, day_phase=view.day_phase,
            embedding_status=view.embedding_status, thumbnail_url=thumbnail_url(frame.id),
            video_url=video_url(frame.segment_id))


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
def read_frame(frame_id: DbId, ctx: UseCaseDep) -> FramePublic:
    return FramePublic.of(view_frame_details(ctx, frame_id=frame_id))


@router.get("/frames/{frame_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG thumbnail"}})
def read_thumbnail(frame_id: DbId, ctx: UseCaseDep) -> Response:
    return Response(content=view_frame_image(ctx, frame_id=frame_id), media_type="image/jpeg")


@router.get("/segments/{segment_id}/video", response_class=StreamingResponse, responses={
    200: {"content": {"video/mp4": {}}, "description": "The whole segment"},
    206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
    416: {"description": "Range not satisfiable"}})
def read_segment_video(segment_id: DbId, ctx: UseCaseDep,
                       range_header: Annotated[str | None, Header(alias="Range")] = None,
                       ) -> Response:
    try:
        span = play_segment(ctx, segment_id=segment_id, range_header=range_header)
    except RangeNotSatisfiableError as exc:
        body = ErrorPublic(detail=exc.message, code=exc.code).model_dump()
        return JSONResponse(body, status_code=exc.http_status,
                            headers={"Content-Range": f"bytes */{exc.size}"})
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(span.end - span.start + 1)}
    if span.partial:
        headers["Content-Range"] = f"bytes {span.start}-{span.end}/{span.size}"
    if span.proxy_sha256 is not None:  # an H.264 proxy of a segment browsers cannot play
        headers["X-Oko-Playback-Proxy"] = span.proxy_sha256
    return StreamingResponse(_stream(span.path, span.start, span.end),
                             status_code=206 if span.partial else 200,
                             media_type=span.media_type, headers=headers)
