"""The final top-k becomes moments: the database is read once, for the hits' frames.

One query joins the frames whose vector is a hit (``FrameIndexEntry.vector_frame_id``,
indexed) with their segments, under the scope's camera and time bounds; the cameras are
the scope's own. Frames scored from the database (the backlog) arrive with the same
columns. Consecutive admitted frames of one camera within ``moment_gap_s`` form a moment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Label, Select
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from indexer.embed_queue import vector_frame_id
from indexer.search.scope import Scope
from indexer.search.types import Moment
from indexer.shards import chunked
from storage.models.media import Frame, Segment
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry


@dataclass(frozen=True)
class HitFrame:
    """A frame as search reads it: where its vector comes from and where to play it."""

    frame_id: int
    camera_id: str
    captured_at_utc: datetime
    status: str
    linked_frame_id: int | None
    weights_sha256: str
    day_phase: str | None
    thumbnail_sha256: str
    segment_id: int
    offset_s: float
    segment_start_offset_s: float

    @property
    def vector_id(self) -> int | None:
        """The frame whose vector stands for this one (itself, or the linked one)."""
        return vector_frame_id(frame_id=self.frame_id, status=self.status,
                               linked_frame_id=self.linked_frame_id)


# In HitFrame's field order, labelled with its names (rows are read by position).
HIT_FRAME_COLUMNS: tuple[Label[Any], ...] = (
    col(Frame.id).label("frame_id"),
    col(Frame.camera_id).label("camera_id"),
    col(Frame.captured_at_utc).label("captured_at_utc"),
    col(FrameEmbedding.status).label("status"),
    col(FrameEmbedding.linked_frame_id).label("linked_frame_id"),
    col(FrameEmbedding.weights_sha256).label("weights_sha256"),
    col(FrameIndexEntry.day_phase).label("day_phase"),
    col(Frame.thumbnail_sha256).label("thumbnail_sha256"),
    col(Frame.segment_id).label("segment_id"),
    col(Frame.offset_s).label("offset_s"),
    col(Segment.start_offset_s).label("segment_start_offset_s"),
)


def in_time_scope(query: Select[Any], scope: Scope) -> Select[Any]:
    """``query`` restricted to the scope's cameras and UTC bounds (on ``Frame``)."""
    query = query.where(col(Frame.camera_id).in_(list(scope.cameras)))
    if scope.start is not None:
        query = query.where(col(Frame.captured_at_utc) >= scope.start)
    if scope.end is not None:
        query = query.where(col(Frame.captured_at_utc) <= scope.end)
    return query


def read_hit_frames(session: Session, query: Select[Any]) -> list[HitFrame]:
    """Rows in ``HIT_FRAME_COLUMNS`` order, on the session's connection: the ORM's
    statement handling costs more than the query itself for a few hundred rows."""
    return [HitFrame(*row) for row in session.connection().execute(query)]


def indexed_frames_of(session: Session, vector_ids: list[int],
                      weights_sha256: str) -> list[HitFrame]:
    """The frames in committed shards whose vector is one of ``vector_ids``: one query
    (chunked only past ``SQL_CHUNK`` ids, i.e. never for k <= 500)."""
    frames: list[HitFrame] = []
    for part in chunked(vector_ids):
        query = (sa_select(*HIT_FRAME_COLUMNS)
                 .select_from(FrameIndexEntry)
                 .join(Frame, col(Frame.id) == col(FrameIndexEntry.frame_id))
                 .join(Segment, col(Segment.id) == col(Frame.segment_id))
                 .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
                 .where(col(FrameIndexEntry.vector_frame_id).in_(list(part)),
                        col(FrameIndexEntry.shard_key).is_not(None),
                        col(FrameIndexEntry.weights_sha256) == weights_sha256))
        # no camera or time terms: the planner then drives from the hits' index, and the
        # scope is checked per frame (``Scope.admits``) on these few rows
        frames += read_hit_frames(session, query)
    return frames


def admitted_vectors(scope: Scope, frames: Iterable[HitFrame]) -> set[int]:
    """The vectors with at least one frame the scope admits."""
    return {vid for f in frames if (vid := f.vector_id) is not None and scope.admits(
        camera_id=f.camera_id, at=f.captured_at_utc, phase=f.day_phase)}


@dataclass(frozen=True)
class _Hit:
    """A frame in scope whose vector scored ``score``."""

    frame: HitFrame
    score: float

    @property
    def at(self) -> datetime:
        return self.frame.captured_at_utc


def group_moments(scope: Scope, hits: dict[int, float], frames: Iterable[HitFrame],
                  gap_s: float) -> list[Moment]:
    """Moments of the admitted ``frames`` whose vector is in ``hits``, best first."""
    found: dict[int, _Hit] = {}
    for frame in frames:
        vid = frame.vector_id
        if vid is not None and vid in hits and frame.frame_id not in found and scope.admits(
                camera_id=frame.camera_id, at=frame.captured_at_utc, phase=frame.day_phase):
            found[frame.frame_id] = _Hit(frame, hits[vid])
    by_camera: dict[str, list[_Hit]] = defaultdict(list)
    for hit in sorted(found.values(),
                      key=lambda h: (h.frame.camera_id, h.at, h.frame.frame_id)):
        by_camera[hit.frame.camera_id].append(hit)
    groups: list[list[_Hit]] = []
    for camera_hits in by_camera.values():
        for hit in camera_hits:
            if groups and groups[-1][-1].frame.camera_id == hit.frame.camera_id \
                    and (hit.at - groups[-1][-1].at).total_seconds() <= gap_s:
                groups[-1].append(hit)
            else:
                groups.append([hit])
    moments: list[Moment] = []
    for group in groups:
        best = max(group, key=lambda h: (h.score, -h.at.timestamp()))
        frame = best.frame
        camera = scope.cameras[frame.camera_id]
        moments.append(Moment(
            camera_id=camera.id, camera_name=camera.name, district=camera.district,
            timezone=camera.timezone, start_utc=group[0].at, end_utc=group[-1].at,
            best_frame_id=frame.frame_id, best_frame_utc=best.at, score=round(best.score, 6),
            segment_id=frame.segment_id,
            offset_in_segment_s=round(max(0.0, frame.offset_s - frame.segment_start_offset_s),
                                      3),
            frame_ids=[h.frame.frame_id for h in group]))
    moments.sort(key=lambda m: (-m.score, m.start_utc, m.camera_id))
    return moments


__all__ = ["HIT_FRAME_COLUMNS", "HitFrame", "admitted_vectors", "group_moments", "in_time_scope",
           "indexed_frames_of", "read_hit_frames"]
