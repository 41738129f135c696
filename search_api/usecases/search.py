"""Use case: search footage in words, by example image or by a similar frame.

The audit entry records the text, the purpose and the filters in the shape of the API's
``SearchQuery``, whichever adapter asked, so the log reads the same for CLI and API. It
also records what a clip's provenance is later copied from: the model preset, its
weights' SHA-256, the text tower that encoded the query (torch or ONNX, precision, graph
path and hash) and whether its vector came from the query cache, ``k``, and each returned
moment's best frame id, camera and score (at most ``MAX_K`` moments, since a search
returns no more). The answer carries the entry's
number as ``search_id``: a clip taken from a moment names it with that moment's frame.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from indexer.daynight import DayPhase
from indexer.search.engine import (
    DEFAULT_K,
    DEFAULT_MOMENT_GAP_S,
    MAX_K,
    SearchFilters,
    SearchRequest,
    SearchResult,
    search,
)
from search_api.audit import AuditAction
from search_api.policy import require_search_purpose
from search_api.search_support import SearchResultPublic
from search_api.usecases.context import UseCaseContext
from storage.permissions import Permission

MAX_DB_ID = 2**63 - 1


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
    plate: str | None = Field(default=None, description=(
        "A licence plate, whole or with * and ? ('AE 12?? KX'): searches plate sightings "
        "with the same filters; needs no CLIP model"))

    def to_request(self, image: bytes | None = None) -> SearchRequest:
        return SearchRequest(
            text=self.text, image=image, similar_to_frame_id=self.similar_to_frame_id,
            filters=SearchFilters(camera_ids=tuple(self.cameras),
                                  districts=tuple(self.districts), start=self.from_,
                                  end=self.to, day_phase=self.day_phase),
            k=self.k, moment_gap_s=self.moment_gap_s)


def audited_moments(result: SearchResult) -> list[dict[str, object]]:
    """What the audit entry keeps of each returned moment (bounded by ``MAX_K``)."""
    return [{"frame_id": m.best_frame_id, "camera_id": m.camera_id, "score": m.score}
            for m in result.moments[:MAX_K]]


def run_search(ctx: UseCaseContext, *, query: SearchQuery,
               image: bytes | None = None) -> SearchResultPublic:
    """Rank the frames the actor may see; filters (cameras included) apply before ranking.

    The answer's ``search_id`` is the number of the search's audit entry.

    Raises ``PurposeRequiredError`` without a stated purpose, ``NoModelError`` (503)
    without CLIP weights, ``InvalidInputError`` for a bad query, and
    ``PermissionDeniedError`` for a role that may not search.
    """
    ctx.require(Permission.SEARCH)
    purpose = require_search_purpose(query.purpose)
    if query.plate is not None:
        return _plate_search(ctx, query=query)
    state = ctx.state
    searcher = None
    if state.settings.search_workers:  # OKO_SEARCH_WORKERS: fan out over Celery
        from search_api.search_fanout import shard_searcher_for

        searcher = shard_searcher_for(state.settings)
    result = search(session=ctx.session, get_embedder=state.query_embedder,
                    shards=state.shard_store(), request=query.to_request(image=image),
                    derived=state.derived, searcher=searcher,
                    # the operator sees every camera: no access filter to apply or report
                    visible_camera_ids=None if ctx.user is None else ctx.visible_camera_ids())
    extra = {"image_sha256": hashlib.sha256(image).hexdigest()} if image is not None else {}
    prov = result.provenance
    entry = ctx.audit(
        AuditAction.SEARCH, text=query.text, purpose=purpose,
        filters=query.model_dump(mode="json", by_alias=True, exclude={"text", "purpose"}),
        results=len(result.moments), model=prov.preset, weights_sha256=prov.weights_sha256,
        k=prov.k, moments=audited_moments(result),
        text_encoder=asdict(prov.text_encoder) if prov.text_encoder else None,
        query_vector_cached=prov.query_vector_cached, **extra)
    ctx.commit()
    return SearchResultPublic.from_result(result, search_id=entry.seq)


def _plate_search(ctx: UseCaseContext, *, query: SearchQuery) -> SearchResultPublic:
    """The ``plate`` field: plate sightings under the same filters (``usecases.plates``)."""
    from search_api.usecases.plates import (
        MAX_PLATE_RESULTS,
        PlateSearchQuery,
        plate_search_result,
    )

    plates = PlateSearchQuery(plate=query.plate or "", cameras=query.cameras,
                              districts=query.districts, from_=query.from_, to=query.to,
                              day_phase=query.day_phase, purpose=query.purpose,
                              limit=max(1, min(query.k, MAX_PLATE_RESULTS)))
    return plate_search_result(ctx, query=plates, text=query.text)


__all__ = ["SearchQuery", "audited_moments", "run_search"]
