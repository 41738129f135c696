"""Routes for search: text and/or "find similar" (JSON), and image upload (multipart).

Filters are applied before ranking; the user's visible cameras are one of them, so
another agency's footage never takes a place in the top k.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from indexer.daynight import DayPhase
from indexer.search.engine import DEFAULT_K
from search_api.deps import UseCaseDep, requires
from search_api.policy import Permission, require_search_purpose
from search_api.search_support import SearchResultPublic
from search_api.usecases.search import SearchQuery, run_search
from storage.errors import InvalidInputError

router = APIRouter(tags=["search"], dependencies=[Depends(requires(Permission.SEARCH))])


class UploadTooLargeError(InvalidInputError):
    http_status = 413


@router.post("/search", response_model=SearchResultPublic)
def search_json(body: SearchQuery, ctx: UseCaseDep) -> SearchResultPublic:
    return run_search(ctx, query=body)


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
    ctx: UseCaseDep,
    text: Annotated[str | None, Form()] = None,
    cameras: Annotated[list[str] | None, Form()] = None,
    districts: Annotated[list[str] | None, Form()] = None,
    from_: Annotated[datetime | None, Form(alias="from")] = None,
    to: Annotated[datetime | None, Form()] = None,
    day_phase: Annotated[DayPhase | None, Form()] = None,
    k: Annotated[int, Form()] = DEFAULT_K,
    purpose: Annotated[str | None, Form()] = None,
) -> SearchResultPublic:
    require_search_purpose(purpose)  # before the upload is read
    data = _read_limited(image, ctx.settings.max_upload_bytes)
    query = SearchQuery(text=text, cameras=cameras or [], districts=districts or [],
                        from_=from_, to=to, day_phase=day_phase, k=k, purpose=purpose)
    return run_search(ctx, query=query, image=data)
