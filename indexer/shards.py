"""Keep the FAISS shards in step with the database: ``sync_shards`` and ``rebuild_shards``.

The database is the source of truth. A shard (camera, local day) is rewritten from the
database whenever one of its frames has no committed ``FrameIndexEntry.shard_key`` or its
sidecar is missing or broken; entries are marked only after the shard's files are
committed, so after a crash the next sync simply writes the shard again. Day phases are
computed here, once per frame, while the frames pass through.

Both functions take the engine and commit one transaction per shard: they maintain a
derived index, not user-visible records, and may run for a long time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Label, delete, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from indexer.daynight import classify
from indexer.embed_queue import (
    EMBEDDED,
    BacklogFrame,
    add_to_backlog,
    remove_from_backlog,
    vector_frame_id,
)
from indexer.shard_files import (
    DEFAULT_POLICY,
    PHASE_CODES,
    PHASE_UNKNOWN,
    IndexPolicy,
    ModelMismatchError,
    ShardKey,
    ShardMeta,
    ShardStore,
    collect_garbage,
    index_lock,
    local_day_bounds_utc,
    read_sidecar,
    remove_shard,
    shard_key_for,
    utc_microseconds,
    write_shard,
)
from indexer.vectors import vector_view
from storage.blobstore import BlobStore
from storage.errors import NotFoundError
from storage.models.media import Camera, Frame
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry, SearchShard
from storage.types import utcnow

SQL_CHUNK = 5000
DEFAULT_APPROXIMATE_MIN_VECTORS = 50_000


@dataclass
class SyncReport:
    """What one sync or rebuild did."""

    shards_written: list[str] = field(default_factory=list)
    shards_removed: list[str] = field(default_factory=list)
    mixed_model_shards: list[str] = field(default_factory=list)
    frames_indexed: int = 0
    phases_computed: int = 0
    garbage_removed: int = 0


def chunked(items: Sequence[Any], size: int = SQL_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def read_thumbnail(derived: BlobStore | None, sha256: str) -> bytes | None:
    if derived is None:
        return None
    try:
        with derived.open(sha256) as handle:
            return handle.read()
    except NotFoundError:
        return None


def phase_entry(*, frame_id: int, camera: Camera, captured_at_utc: datetime,
                thumbnail: bytes | None, entry: FrameIndexEntry | None) -> FrameIndexEntry:
    """A new or refreshed entry with the frame's day phase (sun + infrared check)."""
    verdict = classify(latitude=camera.latitude, longitude=camera.longitude,
                       at=captured_at_utc, image_bytes=thumbnail)
    entry = entry or FrameIndexEntry(frame_id=frame_id, day_phase=verdict.phase.value,
                                     sun_elevation_deg=verdict.sun_elevation_deg,
                                     monochrome=verdict.monochrome)
    entry.day_phase = verdict.phase.value
    entry.sun_elevation_deg = verdict.sun_elevation_deg
    entry.monochrome = verdict.monochrome
    entry.computed_at = utcnow()
    return entry


def _stale_keys(session: Session, index_dir: Path) -> set[ShardKey]:
    """Shards with a frame not yet committed to them, or whose files are gone or broken."""
    rows = session.exec(
        select(Frame.camera_id, Frame.captured_at_utc, Camera.timezone)
        .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
        .join(Camera, col(Camera.id) == col(Frame.camera_id))
        .outerjoin(FrameIndexEntry, col(FrameIndexEntry.frame_id) == col(Frame.id))
        .where(or_(col(FrameIndexEntry.frame_id).is_(None),
                   col(FrameIndexEntry.shard_key).is_(None),
                   col(FrameIndexEntry.weights_sha256) != col(FrameEmbedding.weights_sha256)))
    ).all()
    keys = {shard_key_for(camera_id=c, captured_at_utc=t, timezone=tz) for c, t, tz in rows}
    names = session.exec(select(FrameIndexEntry.shard_key)
                         .where(col(FrameIndexEntry.shard_key).is_not(None)).distinct()).all()
    for name in names:
        assert name is not None
        key = ShardKey.parse(name)
        if read_sidecar(key.sidecar_path(index_dir)) is None:
            keys.add(key)
    return keys


def _all_keys(session: Session) -> set[ShardKey]:
    rows = session.exec(
        select(Frame.camera_id, Frame.captured_at_utc, Camera.timezone)
        .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
        .join(Camera, col(Camera.id) == col(Frame.camera_id))
    ).all()
    return {shard_key_for(camera_id=c, captured_at_utc=t, timezone=tz) for c, t, tz in rows}


def _load_vectors(session: Session, vector_ids: list[int]) -> dict[int, np.ndarray]:
    vectors: dict[int, np.ndarray] = {}
    for part in chunked(vector_ids):
        rows = session.exec(
            select(FrameEmbedding.frame_id, FrameEmbedding.vector)
            .where(col(FrameEmbedding.frame_id).in_(part), FrameEmbedding.status == EMBEDDED,
                   col(FrameEmbedding.vector).is_not(None))
        ).all()
        vectors.update((fid, vector_view(blob)) for fid, blob in rows if blob is not None)
    return vectors


def _unmark(session: Session, key: ShardKey) -> None:
    session.execute(update(FrameIndexEntry).where(col(FrameIndexEntry.shard_key) == key.name)
                    .values(shard_key=None, indexed_at=None))


@dataclass(frozen=True)
class _DayFrame:
    """One embedded frame of a shard's day, as the shard writer reads it."""

    frame_id: int
    captured_at_utc: datetime
    thumbnail_sha256: str
    status: str
    linked_frame_id: int | None
    weights_sha256: str
    preset: str

    @property
    def vector_id(self) -> int | None:
        """The frame whose vector stands for this one (itself, or the linked one)."""
        return vector_frame_id(frame_id=self.frame_id, status=self.status,
                               linked_frame_id=self.linked_frame_id)


# Labelled with _DayFrame's field names; rows are read by name (row._asdict()).
_DAY_FRAME_COLUMNS: tuple[Label[Any], ...] = (
    col(Frame.id).label("frame_id"),
    col(Frame.captured_at_utc).label("captured_at_utc"),
    col(Frame.thumbnail_sha256).label("thumbnail_sha256"),
    col(FrameEmbedding.status).label("status"),
    col(FrameEmbedding.linked_frame_id).label("linked_frame_id"),
    col(FrameEmbedding.weights_sha256).label("weights_sha256"),
    col(FrameEmbedding.preset).label("preset"),
)


def _write_key(*, session: Session, index_dir: Path, key: ShardKey, derived: BlobStore | None,
               policy: IndexPolicy, approximate_min_vectors: int | None,
               recompute_phases: bool, report: SyncReport) -> None:
    camera = session.get(Camera, key.camera_id)
    assert camera is not None  # frames reference cameras by foreign key
    start, end = local_day_bounds_utc(key.local_day, camera.timezone)
    query = (
        sa_select(*_DAY_FRAME_COLUMNS)
        .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
        .where(col(Frame.camera_id) == key.camera_id, col(Frame.captured_at_utc) >= start,
               col(Frame.captured_at_utc) < end)
        .order_by(col(Frame.id))
    )
    rows = [_DayFrame(**row._asdict()) for row in session.execute(query)]
    _unmark(session, key)
    if not rows:
        _drop_key(session, index_dir, key)
        report.shards_removed.append(key.name)
        session.commit()
        return
    frame_ids = [r.frame_id for r in rows]
    entries: dict[int, FrameIndexEntry] = {}
    for part in chunked(frame_ids):
        entries.update((e.frame_id, e) for e in session.exec(
            select(FrameIndexEntry).where(col(FrameIndexEntry.frame_id).in_(part))))
    for row in rows:
        frame_id = row.frame_id
        if frame_id not in entries or recompute_phases:
            entries[frame_id] = phase_entry(
                frame_id=frame_id, camera=camera, captured_at_utc=row.captured_at_utc,
                thumbnail=read_thumbnail(derived, row.thumbnail_sha256),
                entry=entries.get(frame_id))
            session.add(entries[frame_id])
            report.phases_computed += 1
    weights = {r.weights_sha256 for r in rows}
    if len(weights) > 1:
        # frames of two models in one day: leave them unindexed (in the backlog, scored
        # from the database, where search ranks only the query's model)
        _drop_key(session, index_dir, key)
        _back_to_backlog(session, key, rows)
        session.commit()
        report.mixed_model_shards.append(key.name)
        return
    vector_of = {r.frame_id: r.vector_id for r in rows}
    vectors = _load_vectors(session, sorted({v for v in vector_of.values() if v is not None}))
    covered = [r for r in rows if r.vector_id in vectors]
    if not vectors:
        _drop_key(session, index_dir, key)
        _back_to_backlog(session, key, rows)
        session.commit()
        return
    row_ids, captured, phase_codes = shard_rows(covered, entries)
    matrix = np.stack([vectors[int(i)] for i in row_ids])
    weights_sha256, preset = rows[0].weights_sha256, rows[0].preset
    write_shard(index_dir=index_dir, key=key, timezone=camera.timezone, vector_ids=row_ids,
                vectors=matrix, captured_at_us=captured, phases=phase_codes,
                frame_ids=[r.frame_id for r in covered], preset=preset,
                weights_sha256=weights_sha256, policy=policy,
                approximate_min_vectors=approximate_min_vectors)
    now = utcnow()
    for row in covered:
        entry = entries[row.frame_id]
        entry.shard_key, entry.weights_sha256, entry.indexed_at = key.name, weights_sha256, now
        entry.vector_frame_id = vector_of[row.frame_id]
        session.add(entry)
    remove_from_backlog(session, [r.frame_id for r in covered])
    _back_to_backlog(session, key, [r for r in rows if r.vector_id not in vectors])
    session.merge(SearchShard(shard_key=key.name, camera_id=key.camera_id,
                              local_day=key.local_day, frames=len(covered),
                              weights_sha256=weights_sha256, committed_at=now))
    session.commit()  # only after the shard's files are committed
    report.shards_written.append(key.name)
    report.frames_indexed += len(covered)


def shard_rows(frames: Sequence[_DayFrame],
               entries: dict[int, FrameIndexEntry]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A shard's rows: vector ids, UTC microseconds and phase codes, in capture order.

    A row is a run of consecutive frames (in capture order) sharing one vector and one
    day phase, stamped with the run's first capture time: it stands for its frames until
    the next row. An embedded frame and the static frames linked to it are one row, or
    one per day phase where the phase changes during the static stretch, so a phase
    filter inside the shard finds every frame of that phase.
    """
    ids: list[int] = []
    times: list[int] = []
    codes: list[int] = []
    last: tuple[int, int] | None = None
    for frame in sorted(frames, key=lambda f: (f.captured_at_utc, f.frame_id)):
        vid = frame.vector_id
        assert vid is not None  # the caller passes only frames whose vector is loaded
        phase = PHASE_CODES.get(entries[frame.frame_id].day_phase, PHASE_UNKNOWN)
        if last != (vid, phase):
            ids.append(vid)
            times.append(utc_microseconds(frame.captured_at_utc))
            codes.append(phase)
            last = (vid, phase)
    return (np.array(ids, dtype=np.int64), np.array(times, dtype=np.int64),
            np.array(codes, dtype=np.uint8))


def _drop_key(session: Session, index_dir: Path, key: ShardKey) -> None:
    remove_shard(index_dir=index_dir, key=key)
    session.execute(delete(SearchShard).where(col(SearchShard.shard_key) == key.name))


def _back_to_backlog(session: Session, key: ShardKey, frames: Sequence[_DayFrame]) -> None:
    """Embedded frames left out of the shard stay searchable from the database."""
    add_to_backlog(session, [BacklogFrame(f.frame_id, key.camera_id, f.captured_at_utc)
                             for f in frames], embedded=True)


def sync_shards(*, engine: Engine, index_dir: Path, derived: BlobStore | None = None,
                policy: IndexPolicy = DEFAULT_POLICY,
                approximate_min_vectors: int | None = None) -> SyncReport:
    """Add every embedded or linked frame not yet in a shard; idempotent and crash-safe.

    ``derived`` (the store holding thumbnails) enables the infrared check of the day
    phase; without it the phase comes from the sun alone. Raises ``StorageError`` when
    shard files cannot be written (the previous shards stay in place).
    """
    report = SyncReport()
    with index_lock(index_dir):
        report.garbage_removed += collect_garbage(index_dir)
        with Session(engine, expire_on_commit=False) as session:
            for key in sorted(_stale_keys(session, index_dir)):
                _write_key(session=session, index_dir=index_dir, key=key, derived=derived,
                           policy=policy, approximate_min_vectors=approximate_min_vectors,
                           recompute_phases=False, report=report)
        report.garbage_removed += collect_garbage(index_dir)
    return report


def rebuild_shards(*, engine: Engine, index_dir: Path, derived: BlobStore | None = None,
                   policy: IndexPolicy = DEFAULT_POLICY,
                   approximate_min_vectors: int | None = None) -> SyncReport:
    """Rewrite every shard from the database, recomputing day phases; drop orphan shards."""
    report = SyncReport()
    with index_lock(index_dir):
        with Session(engine, expire_on_commit=False) as session:
            keys = _all_keys(session)
            for meta in ShardStore(index_dir).all_meta():
                if meta.key not in keys:
                    _drop_key(session, index_dir, meta.key)
                    report.shards_removed.append(meta.key.name)
            session.commit()
            for key in sorted(keys):
                _write_key(session=session, index_dir=index_dir, key=key, derived=derived,
                           policy=policy, approximate_min_vectors=approximate_min_vectors,
                           recompute_phases=True, report=report)
        report.garbage_removed += collect_garbage(index_dir)
    return report


__all__ = [
    "DEFAULT_APPROXIMATE_MIN_VECTORS",
    "ModelMismatchError",
    "ShardKey",
    "ShardMeta",
    "ShardStore",
    "SyncReport",
    "phase_entry",
    "read_thumbnail",
    "rebuild_shards",
    "sync_shards",
]
