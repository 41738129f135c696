"""Retention: delete originals whose camera's retention period has run out, and all
that was derived from them, never one under evidence lock.

An original expires when its recording ended (start + duration) more than the camera's
``retention_days`` ago (or the installation's default; neither set: kept forever). The
sweep takes expired originals in batches (``DEFAULT_BATCH``) and deletes each batch in
four steps, each one transaction (or one pass over the blobs) for the whole batch with a
few statements per table, ordered so that a crash never leaves a row pointing at a
missing blob, and the next sweep finishes what a crashed one started:

1. **Mark** (one transaction): the originals' rows are locked (``SELECT ... FOR
   UPDATE`` on PostgreSQL, the lock ``evidence.cases.add_clip`` also takes, so a clip
   being added either commits first and is seen, or finds the original no longer
   ``ready``); unless a case clip locks it, each becomes ``expiring`` (no new clip can
   take it: clips need a ``ready`` original) and an ``OriginalExpiry`` row records the
   rule.
2. **Rows** (one transaction): the lock is checked again (a clip added in the meantime
   puts it back to ``ready``). The hashes of the derived blobs its rows point at are
   added to the expiry row, then its segments, frames, embeddings (a later frame linked
   to one of them gets the vector copied), index entries, backlog rows, plate scans,
   sightings and their alerts are deleted. Every shard that held one of its frames is
   removed and the shard's other frames go back to the search backlog, so search keeps
   finding them and the next shard sync rewrites the shard without the expired ones.
3. **Blobs**: each derived blob no remaining row names (and a segment's playback proxy
   with its record) is expired, then the original's own blob (``BlobStore.expire``).
4. **Done** (one transaction): each original becomes ``expired`` (its row stays as the
   record of what existed), with its own ``retention_deletion`` custody entry naming its
   hash, camera, span and rule, and the caller's audit entry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from indexer.embed_queue import BacklogFrame, add_to_backlog
from indexer.shard_files import ShardKey, index_lock, remove_shard
from storage.blobstore import BlobStore
from storage.custody import append_custody_entry
from storage.errors import NotFoundError
from storage.media_copies import proxy_record_path
from storage.models.media import Camera, Frame, Original, Segment
from storage.models.plates import PlateEvent, PlateFrameScan, PlateSighting
from storage.models.retention import OriginalExpiry
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry, SearchBacklog, SearchShard
from storage.types import utcnow

log = logging.getLogger("oko.retention")
RETENTION_ACTOR = "system:retention"
DEFAULT_BATCH = 50
"""Originals per batch: each step's transaction covers this many."""
IN_CHUNK = 500
"""Ids per ``IN (...)`` list, well under SQLite's bound-parameter limit."""

LockedIds = Callable[[Session], set[int]]
"""The ids of originals under evidence lock, read in the given transaction."""
OnDeleted = Callable[[Session, "ExpiredOriginal"], None]
"""Called in step 4's transaction: writes the audit entry of one deletion."""
Step = Callable[[str, "ExpiredOriginal"], None]
"""Called after each step (``marked``, ``rows_deleted``, ``blobs_deleted``); tests raise."""


@dataclass(frozen=True)
class ExpiredOriginal:
    """An original past its camera's retention, as the sweep reports it."""

    original_id: int
    sha256: str
    camera_id: str
    filename: str
    start_utc: datetime
    end_utc: datetime
    retention_days: int
    size_bytes: int

    @property
    def rule(self) -> str:
        return f"retention {self.retention_days} days"

    def to_json(self) -> dict[str, Any]:
        return {"original_id": self.original_id, "sha256": self.sha256,
                "camera_id": self.camera_id, "filename": self.filename,
                "start_utc": self.start_utc.isoformat(), "end_utc": self.end_utc.isoformat(),
                "retention_days": self.retention_days, "rule": self.rule,
                "size_bytes": self.size_bytes}


@dataclass
class RetentionReport:
    """What one sweep deleted (or, dry, would delete) and what it kept under lock."""

    dry_run: bool
    checked_at: datetime
    deleted: list[ExpiredOriginal] = field(default_factory=list)
    kept_locked: list[ExpiredOriginal] = field(default_factory=list)
    resumed: int = 0
    derived_blobs_removed: int = 0
    shards_removed: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(o.size_bytes for o in self.deleted)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "checked_at": self.checked_at.isoformat(),
                "deleted": [o.to_json() for o in self.deleted],
                "kept_locked": [o.to_json() for o in self.kept_locked],
                "kept_locked_count": len(self.kept_locked), "resumed": self.resumed,
                "derived_blobs_removed": self.derived_blobs_removed,
                "shards_removed": self.shards_removed, "bytes_freed": self.bytes_freed}


@dataclass(frozen=True)
class RetentionStores:
    """Where the sweep deletes: the two blob stores and the shard index."""

    originals: BlobStore
    derived: BlobStore
    index_dir: Path


def camera_retention(session: Session, *, default_days: int | None) -> dict[str, int]:
    """Each camera's retention in days; cameras kept forever are left out."""
    rules: dict[str, int] = {}
    for camera in session.exec(select(Camera)).all():
        days = camera.retention_days if camera.retention_days is not None else default_days
        if days is not None:
            rules[camera.id] = days
    return rules


def _expired(original: Original, days: int) -> ExpiredOriginal:
    assert original.id is not None
    end = original.recording_start_utc + timedelta(seconds=max(original.duration_s, 0.0))
    return ExpiredOriginal(original_id=original.id, sha256=original.sha256,
                           camera_id=original.camera_id, filename=original.filename,
                           start_utc=original.recording_start_utc, end_utc=end,
                           retention_days=days, size_bytes=original.size_bytes)


def expired_originals(session: Session, *, now: datetime,
                      default_days: int | None) -> list[ExpiredOriginal]:
    """Ready originals whose recording ended more than their camera's retention ago."""
    found: list[ExpiredOriginal] = []
    for camera_id, days in sorted(camera_retention(session, default_days=default_days).items()):
        cutoff = now - timedelta(days=days)
        rows = session.exec(select(Original).where(
            Original.camera_id == camera_id, Original.status == "ready",
            col(Original.recording_start_utc) < cutoff)
            .order_by(col(Original.recording_start_utc))).all()
        found.extend(e for e in (_expired(o, days) for o in rows) if e.end_utc < cutoff)
    return found


def _in(column: Any, ids: Iterable[Any]) -> Any:
    return col(column).in_(list(ids))


def _chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


@dataclass
class _BatchRows:
    """The rows of a batch of originals, read with one query per table."""

    frames: dict[int, list[int]]  # original id -> its frame ids
    segments: dict[int, list[tuple[int, str]]]  # original id -> (segment id, hash)
    thumbnails: dict[int, set[str]]
    sightings: list[PlateSighting]

    @property
    def frame_ids(self) -> list[int]:
        return sorted(i for ids in self.frames.values() for i in ids)

    @property
    def segment_ids(self) -> list[int]:
        return sorted(i for rows in self.segments.values() for i, _h in rows)

    def hashes(self, original_id: int) -> set[str]:
        """The derived blobs this original's rows point at (a sighting spanning two
        originals of the batch is named by both)."""
        frames = set(self.frames.get(original_id, []))
        segments = {i for i, _h in self.segments.get(original_id, [])}
        found = {h for _i, h in self.segments.get(original_id, [])}
        found |= self.thumbnails.get(original_id, set())
        for s in self.sightings:
            if s.crop_sha256 and (s.segment_id in segments or frames & {
                    s.best_frame_id, s.first_frame_id, s.last_frame_id}):
                found.add(s.crop_sha256)
        return found


def _batch_rows(session: Session, original_ids: Sequence[int]) -> _BatchRows:
    rows = _BatchRows(frames={}, segments={}, thumbnails={}, sightings=[])
    for part in _chunks(original_ids):
        for frame_id, original_id, thumb in session.exec(
                select(Frame.id, Frame.original_id, Frame.thumbnail_sha256)
                .where(_in(Frame.original_id, part))).all():
            if frame_id is not None:
                rows.frames.setdefault(original_id, []).append(frame_id)
                rows.thumbnails.setdefault(original_id, set()).add(thumb)
        for segment_id, original_id, sha256 in session.exec(
                select(Segment.id, Segment.original_id, Segment.sha256)
                .where(_in(Segment.original_id, part))).all():
            if segment_id is not None:
                rows.segments.setdefault(original_id, []).append((segment_id, sha256))
    rows.sightings = _sightings(session, rows.segment_ids, rows.frame_ids)
    return rows


def _sightings(session: Session, segment_ids: Sequence[int],
               frame_ids: Sequence[int]) -> list[PlateSighting]:
    """Plate sightings read in any of these segments or frames (one spanning two
    originals goes with the first of them to expire)."""
    found: dict[int | None, PlateSighting] = {}
    for part in _chunks(segment_ids):
        found |= {s.id: s for s in session.exec(select(PlateSighting).where(
            _in(PlateSighting.segment_id, part))).all()}
    for part in _chunks(frame_ids):
        found |= {s.id: s for s in session.exec(select(PlateSighting).where(or_(
            _in(PlateSighting.best_frame_id, part), _in(PlateSighting.first_frame_id, part),
            _in(PlateSighting.last_frame_id, part)))).all()}
    return list(found.values())


def _relink(session: Session, frame_ids: Sequence[int]) -> None:
    """Frames of other originals whose embedding is a link to an expiring frame get the
    vector itself, so they stay searchable."""
    expiring = set(frame_ids)
    linked = [row for part in _chunks(frame_ids) for row in session.exec(
        select(FrameEmbedding).where(_in(FrameEmbedding.linked_frame_id, part))).all()
        if row.frame_id not in expiring]
    for row in linked:
        source = session.get(FrameEmbedding, row.linked_frame_id)
        row.vector = source.vector if source is not None else None
        row.status = "embedded" if row.vector is not None else row.status
        row.linked_frame_id = None
        session.add(row)
        entry = session.get(FrameIndexEntry, row.frame_id)
        frame = session.get(Frame, row.frame_id)
        if entry is not None and frame is not None:  # its shard is rewritten with the vector
            entry.shard_key, entry.indexed_at, entry.vector_frame_id = None, None, row.frame_id
            session.add(entry)
            add_to_backlog(session, [BacklogFrame(row.frame_id, frame.camera_id,
                                                  frame.captured_at_utc)], embedded=True)
    session.flush()


def _drop_shards(session: Session, index_dir: Path, frame_ids: Sequence[int]) -> list[str]:
    """Remove every shard holding one of ``frame_ids``; its other frames go back to the
    search backlog (embedded) with no shard, so the next sync rewrites it without them."""
    names = sorted({n for part in _chunks(frame_ids) for n in session.exec(
        select(FrameIndexEntry.shard_key).where(_in(FrameIndexEntry.frame_id, part))).all()
        if n})
    expiring = set(frame_ids)
    for name in names:
        remove_shard(index_dir=index_dir, key=ShardKey.parse(name))
        others = [(entry, frame) for entry, frame in session.exec(
            select(FrameIndexEntry, Frame)
            .join(Frame, col(Frame.id) == col(FrameIndexEntry.frame_id))
            .where(FrameIndexEntry.shard_key == name)).all()
            if entry.frame_id not in expiring]
        for entry, _frame in others:
            entry.shard_key = None
            entry.indexed_at = None
            session.add(entry)
        add_to_backlog(session, [BacklogFrame(f.frame_id, fr.camera_id, fr.captured_at_utc)
                                 for f, fr in others], embedded=True)
        session.execute(delete(SearchShard).where(col(SearchShard.shard_key) == name))
    return names


def _delete_rows(session: Session, original_ids: Sequence[int], rows: _BatchRows) -> None:
    """Everything derived from ``original_ids``, a few statements per table."""
    sightings = [s.id for s in rows.sightings if s.id is not None]
    for part in _chunks(sightings):
        session.execute(delete(PlateEvent).where(_in(PlateEvent.sighting_id, part)))
        session.execute(delete(PlateSighting).where(_in(PlateSighting.id, part)))
    for part in _chunks(rows.frame_ids):
        for table in (PlateFrameScan, FrameEmbedding, FrameIndexEntry, SearchBacklog):
            session.execute(delete(table).where(_in(table.frame_id, part)))
    for part in _chunks(original_ids):
        session.execute(delete(Frame).where(_in(Frame.original_id, part)))
        session.execute(delete(Segment).where(_in(Segment.original_id, part)))


def _still_referenced(session: Session, hashes: Sequence[str]) -> set[str]:
    """Those of ``hashes`` a remaining row still names."""
    found: set[str] = set()
    for part in _chunks(hashes):
        for column in (col(Segment.sha256), col(Frame.thumbnail_sha256),
                       col(PlateSighting.crop_sha256)):
            found |= {h for h in session.exec(select(column).distinct()
                                              .where(column.in_(list(part)))).all() if h}
    return found


def _lock_originals(session: Session, ids: Sequence[int]) -> dict[int, Original]:
    """The originals' rows, locked (``FOR UPDATE`` on PostgreSQL, in id order, so two
    sweeps and ``evidence.cases.add_clip`` never deadlock; SQLite serialises writers)
    and read afresh, not from the session's cache."""
    locked: dict[int, Original] = {}
    for part in _chunks(sorted(ids)):
        for row in session.exec(select(Original).where(_in(Original.id, part))
                                .order_by(col(Original.id)).with_for_update()
                                .execution_options(populate_existing=True)).all():
            assert row.id is not None
            locked[row.id] = row
    return locked


def _lock_expiries(session: Session, ids: Sequence[int]) -> dict[int, OriginalExpiry]:
    found: dict[int, OriginalExpiry] = {}
    for part in _chunks(sorted(ids)):
        found |= {e.original_id: e for e in session.exec(
            select(OriginalExpiry).where(_in(OriginalExpiry.original_id, part))
            .order_by(col(OriginalExpiry.original_id)).with_for_update()
            .execution_options(populate_existing=True)).all()}
    return found


class RetentionSweep:
    """One sweep over every camera with a retention rule (see the module doc), in batches
    of ``batch_size`` originals: each step is one transaction (or one pass over the
    blobs) for the whole batch, with a few statements per table instead of per original."""

    def __init__(self, *, engine: Engine, stores: RetentionStores, locked_ids: LockedIds,
                 on_deleted: OnDeleted, step: Step | None = None,
                 batch_size: int = DEFAULT_BATCH) -> None:
        self.engine = engine
        self.stores = stores
        self.locked_ids = locked_ids
        self.on_deleted = on_deleted
        self.step = step or (lambda _name, _original: None)
        self.batch_size = max(1, batch_size)

    def run(self, *, now: datetime | None = None, default_days: int | None,
            dry_run: bool = False) -> RetentionReport:
        """Finish half-done deletions, then delete (or with ``dry_run`` only list) every
        expired original not under evidence lock. Raises ``StorageError`` when a blob
        cannot be removed (that original stays ``expiring``; the next sweep retries)."""
        now = now or utcnow()
        report = RetentionReport(dry_run=dry_run, checked_at=now)
        with Session(self.engine, expire_on_commit=False) as session:
            expiries = session.exec(select(OriginalExpiry).where(OriginalExpiry.stage != "done")
                                    .order_by(col(OriginalExpiry.original_id))).all()
            pending = self._pending(session, list(expiries))
            candidates = expired_originals(session, now=now, default_days=default_days)
            locked = self.locked_ids(session)
        if not dry_run:
            for batch in _chunks(pending, self.batch_size):
                report.resumed += len(batch)
                self._finish(list(batch), report)
        free = []
        for original in candidates:
            if original.original_id in locked:
                report.kept_locked.append(original)
            elif dry_run:
                report.deleted.append(original)
            else:
                free.append(original)
        for batch in _chunks(free, self.batch_size):
            marked = self._mark(list(batch), report)
            for original in marked:
                self.step("marked", original)
            self._finish(marked, report)
        if report.kept_locked:
            log.info("retention kept %d expired original(s) under evidence lock",
                     len(report.kept_locked))
        return report

    @staticmethod
    def _pending(session: Session, rows: list[OriginalExpiry]) -> list[ExpiredOriginal]:
        originals = {o.id: o for part in _chunks([r.original_id for r in rows])
                     for o in session.exec(select(Original).where(_in(Original.id, part))).all()}
        return [ExpiredOriginal(original_id=row.original_id, sha256=row.sha256,
                                camera_id=row.camera_id,
                                filename=originals[row.original_id].filename,
                                start_utc=row.start_utc, end_utc=row.end_utc,
                                retention_days=row.retention_days,
                                size_bytes=originals[row.original_id].size_bytes)
                for row in rows]

    def _mark(self, batch: list[ExpiredOriginal],
              report: RetentionReport) -> list[ExpiredOriginal]:
        """Step 1, one transaction: the originals still ``ready`` and not under lock become
        ``expiring``; those a case clip holds go to ``kept_locked``; those no longer
        ready (a concurrent sweep marked them first) are left to it."""
        marked: list[ExpiredOriginal] = []
        with Session(self.engine, expire_on_commit=False) as session:
            rows = _lock_originals(session, [o.original_id for o in batch])
            locked = self.locked_ids(session)  # read after the rows are locked
            old = {e.original_id: e for part in _chunks([o.original_id for o in batch])
                   for e in session.exec(select(OriginalExpiry).where(
                       _in(OriginalExpiry.original_id, part))).all()}
            for original in batch:
                row = rows[original.original_id]
                if row.status != "ready":
                    continue
                if original.original_id in locked:
                    report.kept_locked.append(original)
                    continue
                row.status = "expiring"
                session.add(row)
                # an original ingested again after it expired has its old record: reuse it
                expiry = old.get(original.original_id) or OriginalExpiry(
                    original_id=original.original_id, camera_id=original.camera_id,
                    sha256=original.sha256, start_utc=original.start_utc,
                    end_utc=original.end_utc, retention_days=original.retention_days)
                expiry.start_utc, expiry.end_utc = original.start_utc, original.end_utc
                expiry.retention_days, expiry.stage = original.retention_days, "marked"
                expiry.derived_sha256, expiry.marked_at, expiry.deleted_at = [], utcnow(), None
                session.add(expiry)
                marked.append(original)
            session.commit()
        return marked

    def _finish(self, batch: list[ExpiredOriginal], report: RetentionReport) -> None:
        if not batch:
            return
        hashes = self._delete_rows(batch, report)
        going = [o for o in batch if o.original_id in hashes]
        report.kept_locked.extend(o for o in batch if o.original_id not in hashes)
        for original in going:
            self.step("rows_deleted", original)
        report.derived_blobs_removed += self._delete_blobs(going, hashes)
        for original in going:
            self.step("blobs_deleted", original)
        self._done(going)
        report.deleted.extend(going)

    def _delete_rows(self, batch: list[ExpiredOriginal],
                     report: RetentionReport) -> dict[int, list[str]]:
        """Step 2, one transaction: each original's derived hashes, leaving out those a
        clip locked meanwhile (they are ``ready`` again)."""
        ids = [o.original_id for o in batch]
        with Session(self.engine, expire_on_commit=False) as session:
            rows = _lock_originals(session, ids)
            expiries = _lock_expiries(session, ids)
            locked = self.locked_ids(session)
            hashes: dict[int, list[str]] = {}
            to_delete: list[int] = []
            for original in batch:
                expiry = expiries.get(original.original_id)
                if expiry is None:  # a concurrent sweep found it locked and put it back
                    continue
                if expiry.stage == "done":  # a concurrent sweep finished it
                    hashes[original.original_id] = list(expiry.derived_sha256)
                elif original.original_id in locked:
                    rows[original.original_id].status = "ready"
                    session.add(rows[original.original_id])
                    session.delete(expiry)
                    log.warning("original %s was locked by a case while expiring; it is kept",
                                original.sha256)
                elif expiry.stage == "marked":
                    to_delete.append(original.original_id)
                else:
                    hashes[original.original_id] = list(expiry.derived_sha256)
            if to_delete:
                found = _batch_rows(session, to_delete)
                for original_id in to_delete:
                    own = found.hashes(original_id)
                    expiry = expiries[original_id]
                    expiry.derived_sha256 = sorted(own | self._proxies(own)
                                                   | set(expiry.derived_sha256))
                    expiry.stage = "rows_deleted"
                    session.add(expiry)
                    hashes[original_id] = list(expiry.derived_sha256)
                frame_ids = found.frame_ids
                if frame_ids:
                    _relink(session, frame_ids)
                    with index_lock(self.stores.index_dir):
                        report.shards_removed.extend(
                            _drop_shards(session, self.stores.index_dir, frame_ids))
                _delete_rows(session, to_delete, found)
            session.commit()
        return hashes

    def _proxies(self, hashes: Iterable[str]) -> set[str]:
        """The playback proxies of the segments among ``hashes``."""
        found: set[str] = set()
        for sha256 in hashes:
            try:
                record = proxy_record_path(self.stores.derived, sha256)
            except NotFoundError:
                continue
            try:
                proxy = str(json.loads(record.read_text(encoding="utf-8")).get("sha256", ""))
            except (OSError, ValueError, AttributeError):
                continue  # no record (the usual case), or a torn one: no proxy to expire
            if len(proxy) == 64:
                found.add(proxy)
        return found

    def _delete_blobs(self, batch: list[ExpiredOriginal],
                      hashes: dict[int, list[str]]) -> int:
        """Step 3: the derived blobs no remaining row names, then each original's blob."""
        removed = 0
        every = sorted({h for o in batch for h in hashes[o.original_id]})
        with Session(self.engine) as session:
            kept = _still_referenced(session, every)
        by_rule: dict[str, list[ExpiredOriginal]] = {}
        for original in batch:  # each blob goes under its own original's rule
            by_rule.setdefault(original.rule, []).append(original)
        for rule, originals in by_rule.items():
            going = [h for o in originals for h in hashes[o.original_id] if h not in kept]
            for sha256 in going:
                record = proxy_record_path(self.stores.derived, sha256)
                if record.exists():
                    record.unlink()
            removed += self.stores.derived.expire_many(going, reason=rule)
        for rule, originals in by_rule.items():
            self.stores.originals.expire_many([o.sha256 for o in originals], reason=rule)
        return removed

    def _done(self, batch: list[ExpiredOriginal]) -> None:
        """Step 4, one transaction: each original ``expired``, with its own custody entry
        and the caller's audit entry."""
        if not batch:
            return
        with Session(self.engine, expire_on_commit=False) as session:
            ids = [o.original_id for o in batch]
            rows = _lock_originals(session, ids)
            expiries = _lock_expiries(session, ids)
            finished = []
            for original in batch:
                expiry, row = expiries[original.original_id], rows[original.original_id]
                if expiry.stage == "done":
                    continue  # another sweep finished it meanwhile
                row.status = "expired"
                expiry.stage = "done"
                expiry.deleted_at = utcnow()
                session.add(row)
                session.add(expiry)
                append_custody_entry(
                    session, action="retention_deletion", actor=RETENTION_ACTOR,
                    original_id=original.original_id,
                    details={"original_sha256": original.sha256,
                             "camera_id": original.camera_id,
                             "start_utc": original.start_utc.isoformat(),
                             "end_utc": original.end_utc.isoformat(),
                             "retention_days": original.retention_days,
                             "rule": original.rule,
                             "derived_blobs": len(expiry.derived_sha256)})
                self.on_deleted(session, original)
                finished.append(original)
            session.commit()
        for original in finished:
            log.info("retention deleted original %s of camera %s (%s to %s, %s)",
                     original.sha256, original.camera_id, original.start_utc.isoformat(),
                     original.end_utc.isoformat(), original.rule)


__all__ = [
    "RETENTION_ACTOR",
    "ExpiredOriginal",
    "LockedIds",
    "OnDeleted",
    "RetentionReport",
    "RetentionStores",
    "RetentionSweep",
    "camera_retention",
    "expired_originals",
]
