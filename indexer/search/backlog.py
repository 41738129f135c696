"""Frames search cannot take from a shard, scored exactly from the database.

Two kinds, both found with indexed queries and both usually none:

- the backlog (``SearchBacklog``): frames embedded or linked but not yet in a committed
  shard; its rows come and go as frames are embedded and shards commit, so nothing is
  counted per query. Frames of the backlog still waiting for an embedding are counted
  with the same index;
- frames of a shard the database knows (``SearchShard``) whose files are not on disk
  (deleted, or a sidecar of an older format): scored from the database until the next
  sync writes the shard again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, false, func, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from indexer.daynight import classify
from indexer.search.moments import HIT_FRAME_COLUMNS, HitFrame, in_time_scope, read_hit_frames
from indexer.search.scope import Scope
from indexer.shard_files import ShardMeta
from indexer.shards import chunked, read_thumbnail
from indexer.vectors import vector_view
from storage.blobstore import BlobStore
from storage.models.media import Frame, Segment
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry, SearchBacklog, SearchShard


@dataclass
class DatabaseScores:
    """Exact scores of the frames scored from the database, and what was left out."""

    scores: dict[int, float] = field(default_factory=dict)  # vector id -> score
    frames: list[HitFrame] = field(default_factory=list)    # admitted, for moments
    vectors_scored: int = 0
    frames_of_another_model: int = 0


def shards_missing_on_disk(session: Session, scope: Scope, metas: list[ShardMeta]) -> list[str]:
    """Shards in scope that the database knows but no readable sidecar names."""
    query = select(SearchShard.shard_key).where(
        col(SearchShard.camera_id).in_(list(scope.cameras)))
    if scope.start is not None:
        query = query.where(col(SearchShard.local_day) >= (scope.start - timedelta(days=1))
                            .date())
    if scope.end is not None:
        query = query.where(col(SearchShard.local_day) <= (scope.end + timedelta(days=1)).date())
    present = {m.key.name for m in metas}
    # on the session's connection: per query, the ORM's statement handling costs more
    # than these indexed lookups (as for the top-k's rows, ``moments.read_hit_frames``)
    keys = session.connection().execute(query).scalars()
    return sorted(key for key in keys if key not in present)


def _in_backlog(session: Session, scope: Scope, *, embedded: bool) -> Select[Any]:
    """Backlog rows in scope, on the backlog's own (embedded, camera, time) index."""
    query = sa_select(col(SearchBacklog.frame_id)).where(
        col(SearchBacklog.embedded) == (true() if embedded else false()),
        col(SearchBacklog.camera_id).in_(list(scope.cameras)))
    if scope.start is not None:
        query = query.where(col(SearchBacklog.captured_at_utc) >= scope.start)
    if scope.end is not None:
        query = query.where(col(SearchBacklog.captured_at_utc) <= scope.end)
    return query


def _backlog_frames(session: Session, scope: Scope) -> list[HitFrame]:
    ids = [int(i) for i in session.connection().execute(
        _in_backlog(session, scope, embedded=True)).scalars()]
    frames: list[HitFrame] = []
    for part in chunked(ids):  # usually none at all: then no join runs
        frames += read_hit_frames(session, (
            sa_select(*HIT_FRAME_COLUMNS)
            .select_from(Frame)
            .join(Segment, col(Segment.id) == col(Frame.segment_id))
            .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
            .outerjoin(FrameIndexEntry, col(FrameIndexEntry.frame_id) == col(Frame.id))
            .where(col(Frame.id).in_(list(part)))))
    return frames


def _frames_of_shards(session: Session, scope: Scope, keys: list[str]) -> list[HitFrame]:
    query = (sa_select(*HIT_FRAME_COLUMNS)
             .select_from(FrameIndexEntry)
             .join(Frame, col(Frame.id) == col(FrameIndexEntry.frame_id))
             .join(Segment, col(Segment.id) == col(Frame.segment_id))
             .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
             .where(col(FrameIndexEntry.shard_key).in_(keys)))
    return read_hit_frames(session, in_time_scope(query, scope))


def database_scores(session: Session, scope: Scope, query: np.ndarray, *,
                    weights_sha256: str, missing_shards: list[str],
                    derived: BlobStore | None) -> DatabaseScores:
    """Exact scores of the backlog's frames in scope and of the frames of ``missing_shards``.

    Frames embedded by another model are not ranked with this one: they are counted in
    ``frames_of_another_model`` (the answer is then partial).
    """
    result = DatabaseScores()
    if not scope.cameras:
        return result
    candidates = _backlog_frames(session, scope)
    if missing_shards:
        seen = {f.frame_id for f in candidates}
        candidates += [f for f in _frames_of_shards(session, scope, missing_shards)
                       if f.frame_id not in seen]
    vector_ids: set[int] = set()
    for frame in candidates:
        phase = frame.day_phase
        if phase is None and scope.day_phase is not None:
            camera = scope.cameras[frame.camera_id]
            phase = classify(latitude=camera.latitude, longitude=camera.longitude,
                             at=frame.captured_at_utc,
                             image_bytes=read_thumbnail(derived, frame.thumbnail_sha256)
                             ).phase.value
        if not scope.admits(camera_id=frame.camera_id, at=frame.captured_at_utc, phase=phase):
            continue
        if frame.weights_sha256 != weights_sha256:
            result.frames_of_another_model += 1
            continue
        vid = frame.vector_id
        if vid is not None:
            vector_ids.add(vid)
            result.frames.append(replace(frame, day_phase=phase))
    for part in chunked(sorted(vector_ids)):
        for fid, blob in session.exec(select(FrameEmbedding.frame_id, FrameEmbedding.vector)
                                      .where(col(FrameEmbedding.frame_id).in_(part))).all():
            if blob is not None:
                result.scores[int(fid)] = float(vector_view(blob) @ query)
    result.vectors_scored = len(result.scores)
    return result


def frames_waiting_for_embedding(session: Session, scope: Scope) -> int:
    """Frames in scope not yet embedded (one count over the backlog's index)."""
    if not scope.cameras:
        return 0
    waiting = _in_backlog(session, scope, embedded=False).subquery()
    return int(session.connection().execute(sa_select(func.count()).select_from(waiting))
               .scalar_one())


__all__ = ["DatabaseScores", "database_scores", "frames_waiting_for_embedding",
           "shards_missing_on_disk"]
