"""Routes for search: text and/or "find similar" (JSON), and image upload (multipart).

Filters are applied before ranking; the user's visible cameras are one of them, so
another agency's footage never takes a place in the top k.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from indexer.search.daynight import DayPhase
from indexer.search.engine import (
    DEFAULT_K,
    DEFAULT_MOMENT_GAP_S,
    MAX_K,
    SearchFilters,
    SearchRequest,
    SearchResult,
    search,
)
from search_api.audit import AuditAction, AuditDep, AuditRecorder
from search_api.deps import MAX_DB_ID, CurrentUser, EmbedderDep, SessionDep, ShardStoreDep, StateDep
from search_api.policy import Permission, require_search_purpose, requires, visible_camera_ids
from search_api.search_support import SearchResultPublic
from storage.errors import InvalidInputError

router = APIRouter(tags=["search"], dependencies=[Depends(requires(Permission.SEARCH))])

UPLOAD_FIELD = "image"


class UploadTooLargeError(InvalidInputError):
    http_status = 413


class SearchQuery(BaseModel):
    """A search: text, a frame to find similar ones to, or both, plus filters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    text: str | None = Field(default=None, description="Words; time-of-day phrases become "
                             "filters ('at night', 'вночі', 'in the morning')")
    similar_to_frame_id: int | None = Field(default=None, ge=1, le=MAX_DB_ID,
                                            description="Find similar frames")
    cameras: list[str] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    from_: datetime | None = Field(default=None, alias="from",
                                   description="Without an offset: the cameras' local time")
    to: datetime | None = None
    day_phase: DayPhase | None = None
    k: int = Field(default=DEFAULT_K, description=f"Frames to rank, 1 to {MAX_K}")
    moment_gap_s: float = Field(default=DEFAULT_MOMENT_GAP_S, ge=0.0, le=3600.0)
    purpose: str | None = Field(default=None, description=(
        "Required: the case number or the reason for this search; recorded in the audit log"))

    def to_request(self, image: bytes | None = None) -> SearchRequest:
        return SearchRequest(
            text=self.text, image=image, similar_to_frame_id=self.similar_to_frame_id,
            filters=SearchFilters(camera_ids=tuple(self.cameras),
                                  districts=tuple(self.districts), start=self.from_,
                                  end=self.to, day_phase=self.day_phase),
            k=self.k, moment_gap_s=self.moment_gap_s)


@router.post("/search", response_model=SearchResultPublic)
def search_json(body: SearchQuery, session: SessionDep, user: CurrentUser,
                embedder: EmbedderDep, shards: ShardStoreDep,
                state: StateDep, audit: AuditDep) -> SearchResultPublic:
    require_search_purpose(body.purpose)
    result = search(session=session, get_embedder=embedder, shards=shards,
                    request=body.to_request(), derived=state.derived,
                    visible_camera_ids=visible_camera_ids(session, user))
    return _audited(audit, session, body, result)


def _audited(audit: AuditRecorder, session: Session, query: SearchQuery, result: SearchResult,
             **extra: str) -> SearchResultPublic:
    """Every search is recorded with its text, filters, purpose and result count."""
    audit(AuditAction.SEARCH, text=query.text, purpose=require_search_purpose(query.purpose),
          filters=query.model_dump(mode="json", by_alias=True, exclude={"text", "purpose"}),
          results=len(result.moments), **extra)
    session.commit()
    return SearchResultPublic.from_result(result)


def _read_limited(upload: UploadFile, limit: int) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError(f"The uploaded image is larger than the "
                                  f"{limit / 1024 / 1024:g} MiB limit.")
    if not data:
        raise InvalidInputError("The uploaded image is empty.")
    return data


@router.post("/search/image", response_model=SearchResultPublic)
def search_image(
    image: Annotated[UploadFile, File(description="JPEG, PNG or WebP query image")],
    session: SessionDep, user: CurrentUser, embedder: EmbedderDep, shards: ShardStoreDep,
    state: StateDep, audit: AuditDep,
    text: Annotated[str | None, Form()] = None,
    cameras: Annotated[list[str] | None, Form()] = None,
    districts: Annotated[list[str] | None, Form()] = None,
    from_: Annotated[datetime | None, Form(alias="from")] = None,
    to: Annotated[datetime | None, Form()] = None,
    day_phase: Annotated[DayPhase | None, Form()] = None,
    k: Annotated[int, Form()] = DEFAULT_K,
    purpose: Annotated[str | None, Form()] = None,
) -> SearchResultPublic:
    require_search_purpose(purpose)
    data = _read_limited(image, state.settings.max_upload_bytes)
    query = SearchQuery(text=text, cameras=cameras or [], districts=districts or [],
                        from_=from_, to=to, day_phase=day_phase, k=k, purpose=purpose)
    result = search(session=session, get_embedder=embedder, shards=shards,
                    request=query.to_request(image=data), derived=state.derived,
                    visible_camera_ids=visible_camera_ids(session, user))
    return _audited(audit, session, query, result,
                    image_sha256=hashlib.sha256(data).hexdigest())
