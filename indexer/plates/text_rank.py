"""CLIP scores of plate sightings: how well a sighting's frames fit a text query.

A sighting spans the sampled frames of its camera from its first to its last read. Each
frame's stored embedding (``FrameEmbedding``; a static frame links to the vector it
reuses) is compared with the query vector, and the sighting scores the best of its
frames. Only vectors of the query model's weights count: a sighting whose frames were
not embedded (yet) with them gets no score and is reported as such, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_
from sqlmodel import Session, col, select

from indexer.embed_queue import EMBEDDED, LINKED
from indexer.vectors import vector_view
from storage.models.media import Frame
from storage.models.plates import PlateSighting
from storage.models.search import FrameEmbedding

SQL_CHUNK = 500


@dataclass
class SightingScores:
    """Best CLIP similarity per sighting id; ``unscored`` lists sightings without a vector."""

    scores: dict[int, float] = field(default_factory=dict)
    unscored: list[int] = field(default_factory=list)
    frames_scored: int = 0


def _chunks(items: Sequence[int], size: int = SQL_CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _frames_of(session: Session, sighting_ids: Sequence[int]) -> dict[int, list[int]]:
    """Sampled frame ids of each sighting: its camera's frames from first to last read."""
    frames: dict[int, list[int]] = {}
    for part in _chunks(sighting_ids):
        rows = session.exec(
            select(PlateSighting.id, Frame.id).join(Frame, and_(
                col(Frame.camera_id) == col(PlateSighting.camera_id),
                col(Frame.captured_at_utc) >= col(PlateSighting.first_seen_utc),
                col(Frame.captured_at_utc) <= col(PlateSighting.last_seen_utc)))
            .where(col(PlateSighting.id).in_(part))).all()
        for sighting_id, frame_id in rows:
            if sighting_id is not None and frame_id is not None:
                frames.setdefault(sighting_id, []).append(frame_id)
    return frames


def _vector_ids(session: Session, frame_ids: Sequence[int],
                weights_sha256: str) -> dict[int, int]:
    """Frame id -> the frame id holding its vector (itself or the linked one)."""
    found: dict[int, int] = {}
    for part in _chunks(frame_ids):
        rows = session.exec(select(FrameEmbedding.frame_id, FrameEmbedding.status,
                                   FrameEmbedding.linked_frame_id).where(
            col(FrameEmbedding.frame_id).in_(part),
            col(FrameEmbedding.weights_sha256) == weights_sha256)).all()
        for frame_id, status, linked in rows:
            if status == EMBEDDED:
                found[frame_id] = frame_id
            elif status == LINKED and linked is not None:
                found[frame_id] = linked
    return found


def sighting_clip_scores(session: Session, *, sighting_ids: Sequence[int],
                         query: npt.NDArray[np.float32],
                         weights_sha256: str) -> SightingScores:
    """The best cosine similarity of ``query`` (L2-normalised) over each sighting's frames,
    among vectors of ``weights_sha256``; sightings with no such vector are ``unscored``."""
    result = SightingScores()
    frames = _frames_of(session, list(dict.fromkeys(sighting_ids)))
    all_frames = sorted({f for ids in frames.values() for f in ids})
    holder = _vector_ids(session, all_frames, weights_sha256)
    similarity: dict[int, float] = {}
    for part in _chunks(sorted(set(holder.values()))):
        for frame_id, blob in session.exec(select(FrameEmbedding.frame_id, FrameEmbedding.vector)
                                           .where(col(FrameEmbedding.frame_id).in_(part),
                                                  col(FrameEmbedding.weights_sha256)
                                                  == weights_sha256)).all():
            if blob is not None:
                similarity[frame_id] = float(vector_view(blob) @ query)
    for sighting_id in dict.fromkeys(sighting_ids):
        values = [similarity[holder[f]] for f in frames.get(sighting_id, [])
                  if f in holder and holder[f] in similarity]
        if values:
            result.scores[sighting_id] = round(max(values), 6)
            result.frames_scored += len(values)
        else:
            result.unscored.append(sighting_id)
    return result


__all__ = ["SightingScores", "sighting_clip_scores"]
