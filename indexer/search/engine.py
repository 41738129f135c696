"""Filters-first semantic search over the FAISS shards, grouped into playable moments.

1. Filters choose the cameras (request, districts, and what the user may see), the time
   range, the day phase and local hours (``indexer.search.scope``); cameras and days
   choose shards before any vector is read.
2. Each shard answers the ``ShardQuery`` from its own arrays (rows in capture order, day
   phase codes): a time range is a row range, a phase a mask, both inside FAISS, so no
   hit is dropped after ranking and no SQL builds an allowed-id list. A ``ShardSearcher``
   does this in this process (``LocalShardSearcher``) or on search workers. A shard that
   cannot answer (corrupt, another model, a worker that did not answer) is left out with
   its reason and the answer is marked partial.
3. Frames not yet in a committed shard (the backlog), and frames of a shard whose files
   are gone, are scored exactly from the database (``indexer.search.backlog``).
4. The database is read once more, for the top-k's frames and segments; consecutive hits
   of one camera within ``moment_gap_s`` form a moment (``indexer.search.moments``).

Every answer carries its provenance (model, weights hash, shards and their index types,
shards left out, filters, k, timing). An embedder failure raises ``EmbedderFailedError``;
it is never reported as "no results".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlmodel import Session

from indexer.search.backlog import (
    database_scores,
    frames_waiting_for_embedding,
    shards_missing_on_disk,
)
from indexer.search.moments import admitted_vectors, group_moments, indexed_frames_of
from indexer.search.query import parse_query
from indexer.search.query_vector import (
    decode_image,
    describe_text_encoder,
    query_vector,
    similar_embedding,
)
from indexer.search.scope import resolve_scope
from indexer.search.shard_search import (
    LocalShardSearcher,
    ShardSearcher,
    ShardSearchOutcome,
    merge_hits,
)
from indexer.search.types import (
    DEFAULT_K,
    DEFAULT_MOMENT_GAP_S,
    MAX_K,
    MAX_QUERY_IMAGE_PIXELS,
    QUERY_IMAGE_SIDE,
    AppliedFilter,
    EmbedderFailedError,
    ImageTowerInfo,
    InvalidImageError,
    Moment,
    Provenance,
    QueryEmbedder,
    QueryImageTooLargeError,
    SearchFilters,
    SearchRequest,
    SearchResult,
)
from indexer.shard_files import ShardKey, ShardMeta, ShardStore
from storage.blobstore import BlobStore
from storage.errors import InvalidInputError


def _other_model_reason(meta: ShardMeta, embedder: QueryEmbedder) -> str | None:
    if meta.weights_sha256 == embedder.weights_sha256 and meta.dim == embedder.dim:
        return None
    return (f"Shard {meta.key.name} holds {meta.preset} vectors (weights "
            f"{meta.weights_sha256[:12]}, {meta.dim}-d) but the query uses {embedder.preset} "
            f"(weights {embedder.weights_sha256[:12]}, {embedder.dim}-d); Oko will not mix "
            "models, so it was left out. Run `oko reindex` and `oko index rebuild` with one "
            "model.")


def search(*, session: Session, get_embedder: Callable[[], QueryEmbedder], shards: ShardStore,
           request: SearchRequest, visible_camera_ids: set[str] | None = None,
           derived: BlobStore | None = None,
           searcher: ShardSearcher | None = None) -> SearchResult:
    """Run one search. ``visible_camera_ids`` None means every camera (local CLI use).

    ``get_embedder`` is called once, after the request is validated, so bad input gets
    its own error even where no model is installed (then ``NoModelError`` propagates).
    ``searcher`` searches the selected shards (default: ``LocalShardSearcher(shards)``).

    Raises ``InvalidInputError`` (no query, k out of range, from after to, conflicting
    phases), ``InvalidImageError``, ``NotFoundError`` (unknown camera, district or frame),
    ``ModelMismatchError`` (the similar frame is of another model) and
    ``EmbedderFailedError``. Shards of another model or that cannot be read are left out
    with a reason (``provenance.shards_left_out``), never raised.
    """
    started = time.perf_counter()
    if not 1 <= request.k <= MAX_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_K}; got {request.k}.")
    parsed = parse_query(request.text.strip()) if request.text and request.text.strip() else None
    clip_text = parsed.clip_text if parsed else ""
    if not clip_text and request.image is None and request.similar_to_frame_id is None:
        if parsed and parsed.phrases:
            raise InvalidInputError("The query only names a time of day; say what to look "
                                    "for, or give an image.")
        raise InvalidInputError("Give a text query, an image, or a frame to find similar "
                                "ones; the query is empty.")
    scope, applied = resolve_scope(session, request.filters, parsed, visible_camera_ids)
    image = decode_image(request.image) if request.image is not None else None
    similar = (similar_embedding(session, request.similar_to_frame_id, visible_camera_ids)
               if request.similar_to_frame_id is not None else None)
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    embedder = get_embedder()
    vector, text_cached = query_vector(embedder, clip_text=clip_text, image=image,
                                       similar=similar, similar_id=request.similar_to_frame_id)
    timings["encode"] = _ms_since(mark)

    mark = time.perf_counter()
    metas = [m for m in shards.all_meta() if scope.selects(m)] if scope.cameras else []
    left_out: dict[str, str] = {}
    usable: list[ShardMeta] = []
    for meta in metas:
        reason = _other_model_reason(meta, embedder)
        if reason is None:
            usable.append(meta)
        else:
            left_out[meta.key.name] = reason
    outcome = (searcher or LocalShardSearcher(shards)).search(
        usable, scope.shard_query(vector, request.k)) if usable else ShardSearchOutcome(
            hits=[], searched=[], missing={})
    left_out.update(outcome.missing)
    timings["shards"] = _ms_since(mark)

    mark = time.perf_counter()
    missing_on_disk = shards_missing_on_disk(session, scope, metas) if scope.cameras else []
    for name, reason in shards.unusable.items():  # a sidecar that cannot be used
        if name not in missing_on_disk and scope.may_hold(ShardKey.parse(name)):
            left_out[name] = reason  # the database holds no frames for it to score
    from_db = database_scores(session, scope, vector, weights_sha256=embedder.weights_sha256,
                              missing_shards=missing_on_disk, derived=derived)
    # a shard may add one spare hit at the start of a time range (shard_search)
    ranked = merge_hits([outcome.hits, list(from_db.scores.items())],
                        request.k + len(outcome.searched))
    frames = [*indexed_frames_of(session, sorted(v for v, _s in ranked),
                                 embedder.weights_sha256), *from_db.frames] if ranked else []
    admitted = admitted_vectors(scope, frames)
    top = dict([hit for hit in ranked if hit[0] in admitted][:request.k])
    moments = group_moments(scope, top, frames, request.moment_gap_s)
    waiting = frames_waiting_for_embedding(session, scope)
    timings["database"] = _ms_since(mark)

    total = outcome.candidates + from_db.vectors_scored
    more = len(outcome.hits) + len(from_db.scores)
    provenance = Provenance(
        preset=embedder.preset, weights_sha256=embedder.weights_sha256, dim=embedder.dim,
        clip_text=clip_text or None, image_supplied=request.image is not None,
        similar_to_frame_id=request.similar_to_frame_id, filters=applied,
        shards_searched=outcome.searched, frames_scored_from_database=from_db.vectors_scored,
        frames_waiting_for_embedding=waiting, k=request.k, candidates=total,
        truncated=more > request.k or total > request.k,
        elapsed_ms=_ms_since(started), searched_at=datetime.now(UTC),
        shard_index_types=outcome.index_types, shards_left_out=dict(sorted(left_out.items())),
        frames_of_another_model=from_db.frames_of_another_model, timings_ms=timings,
        shards_scored_from_database=missing_on_disk,
        text_encoder=describe_text_encoder(embedder) if clip_text else None,
        query_vector_cached=text_cached,
        image_tower=ImageTowerInfo(preset=embedder.preset, weights_sha256=embedder.weights_sha256)
        if outcome.searched or from_db.vectors_scored else None,
    )
    return SearchResult(moments=moments, provenance=provenance)


def _ms_since(began: float) -> float:
    return round((time.perf_counter() - began) * 1000.0, 2)


__all__ = [
    "DEFAULT_K",
    "DEFAULT_MOMENT_GAP_S",
    "MAX_K",
    "MAX_QUERY_IMAGE_PIXELS",
    "QUERY_IMAGE_SIDE",
    "AppliedFilter",
    "EmbedderFailedError",
    "InvalidImageError",
    "Moment",
    "Provenance",
    "QueryEmbedder",
    "QueryImageTooLargeError",
    "SearchFilters",
    "SearchRequest",
    "SearchResult",
    "search",
]
