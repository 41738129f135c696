"""Retention: delete originals whose camera's retention period has run out, and all
that was derived from them, never one under evidence lock.

An original expires when its recording ended (start + duration) more than the camera's
``retention_days`` ago (or the installation's default; neither set: kept forever). Each
is deleted in four steps, ordered so that a crash never leaves a row pointing at a
missing blob, and the next sweep finishes what a crashed one started:

1. **Mark** (one transaction): unless a case clip locks it, the original becomes
   ``expiring`` (no new clip can take it: clips need a ``ready`` original) and an
   ``OriginalExpiry`` row records the rule.
2. **Rows** (one transaction): the lock is checked again (a clip added in the meantime
   puts it back to ``ready``). The hashes of the derived blobs its rows point at are
   added to the expiry row, then its segments, frames, embeddings (a later frame linked
   to one of them gets the vector copied), index entries, backlog rows, plate scans,
   sightings and their alerts are deleted. Every shard that held one of its frames is
   removed and the shard's other frames go back to the search backlog, so search keeps
   finding them and the next shard sync rewrites the shard without the expired ones.
3. **Blobs**: each derived blob no remaining row names (and a segment's playback proxy
   with its record) is expired, then the original's own blob (``BlobStore.expire``).
4. **Done** (one transaction): the original becomes ``expired`` (its row stays as the
   record of what existed), with a ``retention_deletion`` custody entry naming its hash,
   camera, span and rule, and the caller's audit entry.
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
from storage.models.media import Camera, Frame, Original, Segment
from storage.models.plates import PlateEvent, PlateFrameScan, PlateSighting
from storage.models.retention import OriginalExpiry
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry, SearchBacklog, SearchShard
from storage.transcode import proxy_record_path
from storage.types import utcnow

log = logging.getLogger("oko.retention")
RETENTION_ACTOR = "system:retention"

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


def _in(column: Any, ids: Sequence[int]) -> Any:
    return col(column).in_(list(ids))


def _segment_ids(session: Session, original_id: int) -> list[int]:
    return [i for i in session.exec(select(Segment.id)
                                    .where(Segment.original_id == original_id)).all()
            if i is not None]


def _sightings(session: Session, segment_ids: Sequence[int],
               frame_ids: Sequence[int]) -> list[PlateSighting]:
    """Plate sightings read in any of these segments or frames (one spanning two
    originals goes with the first of them to expire)."""
    if not (segment_ids or frame_ids):
        return []
    return list(session.exec(select(PlateSighting).where(or_(
        _in(PlateSighting.segment_id, segment_ids),
        _in(PlateSighting.best_frame_id, frame_ids),
        _in(PlateSighting.first_frame_id, frame_ids),
        _in(PlateSighting.last_frame_id, frame_ids)))).all())


def _derived_hashes(session: Session, original_id: int, frame_ids: Sequence[int]) -> set[str]:
    hashes = set(session.exec(select(Segment.sha256)
                              .where(Segment.original_id == original_id)).all())
    hashes |= set(session.exec(select(Frame.thumbnail_sha256)
                               .where(Frame.original_id == original_id)).all())
    sightings = _sightings(session, _segment_ids(session, original_id), frame_ids)
    return hashes | {s.crop_sha256 for s in sightings if s.crop_sha256}


def _relink(session: Session, frame_ids: Sequence[int]) -> None:
    """Frames of other originals whose embedding is a link to an expiring frame get the
    vector itself, so they stay searchable."""
    linked = session.exec(select(FrameEmbedding).where(
        _in(FrameEmbedding.linked_frame_id, frame_ids),
        ~_in(FrameEmbedding.frame_id, frame_ids))).all()
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
    names = sorted({n for n in session.exec(select(FrameIndexEntry.shard_key).where(
        _in(FrameIndexEntry.frame_id, frame_ids))).all() if n})
    for name in names:
        remove_shard(index_dir=index_dir, key=ShardKey.parse(name))
        others = session.exec(
            select(FrameIndexEntry, Frame)
            .join(Frame, col(Frame.id) == col(FrameIndexEntry.frame_id))
            .where(FrameIndexEntry.shard_key == name,
                   ~_in(FrameIndexEntry.frame_id, frame_ids))).all()
        for entry, _frame in others:
            entry.shard_key = None
            entry.indexed_at = None
            session.add(entry)
        add_to_backlog(session, [BacklogFrame(f.frame_id, fr.camera_id, fr.captured_at_utc)
                                 for f, fr in others], embedded=True)
        session.execute(delete(SearchShard).where(col(SearchShard.shard_key) == name))
    return names


def _delete_rows(session: Session, original_id: int, frame_ids: Sequence[int]) -> None:
    sightings = [s.id for s in _sightings(session, _segment_ids(session, original_id),
                                          frame_ids) if s.id is not None]
    if sightings:
        session.execute(delete(PlateEvent).where(_in(PlateEvent.sighting_id, sightings)))
        session.execute(delete(PlateSighting).where(_in(PlateSighting.id, sightings)))
    if frame_ids:
        for table in (PlateFrameScan, FrameEmbedding, FrameIndexEntry, SearchBacklog):
            session.execute(delete(table).where(_in(table.frame_id, frame_ids)))
    session.execute(delete(Frame).where(col(Frame.original_id) == original_id))
    session.execute(delete(Segment).where(col(Segment.original_id) == original_id))


def _still_referenced(session: Session, sha256: str) -> bool:
    return any(session.exec(select(column).where(column == sha256).limit(1)).first()
               for column in (col(Segment.sha256), col(Frame.thumbnail_sha256),
                              col(PlateSighting.crop_sha256)))


class RetentionSweep:
    """One sweep over every camera with a retention rule (see the module doc)."""

    def __init__(self, *, engine: Engine, stores: RetentionStores, locked_ids: LockedIds,
                 on_deleted: OnDeleted, step: Step | None = None) -> None:
        self.engine = engine
        self.stores = stores
        self.locked_ids = locked_ids
        self.on_deleted = on_deleted
        self.step = step or (lambda _name, _original: None)

    def run(self, *, now: datetime | None = None, default_days: int | None,
            dry_run: bool = False) -> RetentionReport:
        """Finish half-done deletions, then delete (or with ``dry_run`` only list) every
        expired original not under evidence lock. Raises ``StorageError`` when a blob
        cannot be removed (that original stays ``expiring``; the next sweep retries)."""
        now = now or utcnow()
        report = RetentionReport(dry_run=dry_run, checked_at=now)
        with Session(self.engine, expire_on_commit=False) as session:
            pending = [self._pending(session, row) for row in session.exec(
                select(OriginalExpiry).where(OriginalExpiry.stage != "done")
                .order_by(col(OriginalExpiry.original_id))).all()]
            candidates = expired_originals(session, now=now, default_days=default_days)
            locked = self.locked_ids(session)
        for original in pending if not dry_run else []:
            report.resumed += 1
            self._finish(original, report)
        for original in candidates:
            if original.original_id in locked:
                report.kept_locked.append(original)
            elif dry_run:
                report.deleted.append(original)
            else:
                marked = self._mark(original)
                if marked == "marked":
                    self.step("marked", original)
                    self._finish(original, report)
                elif marked == "locked":
                    report.kept_locked.append(original)
                # "taken": another sweep is expiring it
        if report.kept_locked:
            log.info("retention kept %d expired original(s) under evidence lock",
                     len(report.kept_locked))
        return report

    @staticmethod
    def _pending(session: Session, row: OriginalExpiry) -> ExpiredOriginal:
        original = session.get(Original, row.original_id)
        assert original is not None
        return ExpiredOriginal(original_id=row.original_id, sha256=row.sha256,
                               camera_id=row.camera_id, filename=original.filename,
                               start_utc=row.start_utc, end_utc=row.end_utc,
                               retention_days=row.retention_days,
                               size_bytes=original.size_bytes)

    def _mark(self, original: ExpiredOriginal) -> str:
        """Step 1: ``marked``, ``locked`` (a case clip holds it) or ``taken`` (no longer
        ready: a concurrent sweep marked it first)."""
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.exec(select(Original).where(Original.id == original.original_id)
                               .with_for_update()).one()
            if row.status != "ready":
                return "taken"
            if original.original_id in self.locked_ids(session):
                return "locked"
            row.status = "expiring"
            session.add(row)
            # an original ingested again after it expired has its old record: reuse it
            expiry = session.get(OriginalExpiry, original.original_id) or OriginalExpiry(
                original_id=original.original_id, camera_id=original.camera_id,
                sha256=original.sha256, start_utc=original.start_utc,
                end_utc=original.end_utc, retention_days=original.retention_days)
            expiry.start_utc, expiry.end_utc = original.start_utc, original.end_utc
            expiry.retention_days, expiry.stage = original.retention_days, "marked"
            expiry.derived_sha256, expiry.marked_at, expiry.deleted_at = [], utcnow(), None
            session.add(expiry)
            session.commit()
        return "marked"

    def _finish(self, original: ExpiredOriginal, report: RetentionReport) -> None:
        hashes = self._delete_rows(original, report)
        if hashes is None:
            report.kept_locked.append(original)
            return
        self.step("rows_deleted", original)
        report.derived_blobs_removed += self._delete_blobs(original, hashes)
        self.step("blobs_deleted", original)
        self._done(original)
        report.deleted.append(original)

    def _delete_rows(self, original: ExpiredOriginal,
                     report: RetentionReport) -> list[str] | None:
        """Step 2; None when a clip locked the original meanwhile (it is ``ready`` again)."""
        with Session(self.engine, expire_on_commit=False) as session:
            expiry = session.exec(select(OriginalExpiry).where(
                OriginalExpiry.original_id == original.original_id).with_for_update()).one()
            row = session.get(Original, original.original_id)
            assert row is not None
            if expiry.stage == "done":
                return list(expiry.derived_sha256)  # a concurrent sweep finished it
            if original.original_id in self.locked_ids(session):
                row.status = "ready"
                session.add(row)
                session.delete(expiry)
                session.commit()
                log.warning("original %s was locked by a case while expiring; it is kept",
                            original.sha256)
                return None
            if expiry.stage == "marked":
                frame_ids = list(session.exec(select(Frame.id).where(
                    Frame.original_id == original.original_id)).all())
                ids = [i for i in frame_ids if i is not None]
                hashes = _derived_hashes(session, original.original_id, ids)
                hashes |= self._proxies(hashes)
                expiry.derived_sha256 = sorted(hashes | set(expiry.derived_sha256))
                if ids:
                    _relink(session, ids)
                    with index_lock(self.stores.index_dir):
                        report.shards_removed.extend(
                            _drop_shards(session, self.stores.index_dir, ids))
                _delete_rows(session, original.original_id, ids)
                expiry.stage = "rows_deleted"
                session.add(expiry)
                session.commit()
            return list(expiry.derived_sha256)

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

    def _delete_blobs(self, original: ExpiredOriginal, hashes: Sequence[str]) -> int:
        """Step 3: the derived blobs no other row names, then the original's blob."""
        removed = 0
        with Session(self.engine) as session:
            kept = {h for h in hashes if _still_referenced(session, h)}
        for sha256 in hashes:
            if sha256 in kept:
                continue
            proxy_record_path(self.stores.derived, sha256).unlink(missing_ok=True)
            removed += self.stores.derived.expire(sha256, reason=original.rule)
        self.stores.originals.expire(original.sha256, reason=original.rule)
        return removed

    def _done(self, original: ExpiredOriginal) -> None:
        """Step 4: ``expired``, with the custody entry and the caller's audit entry."""
        with Session(self.engine, expire_on_commit=False) as session:
            expiry = session.exec(select(OriginalExpiry).where(
                OriginalExpiry.original_id == original.original_id).with_for_update()).one()
            row = session.get(Original, original.original_id)
            assert row is not None
            if expiry.stage == "done":
                return  # another sweep finished it meanwhile
            row.status = "expired"
            expiry.stage = "done"
            expiry.deleted_at = utcnow()
            session.add(row)
            session.add(expiry)
            append_custody_entry(
                session, action="retention_deletion", actor=RETENTION_ACTOR,
                original_id=original.original_id,
                details={"original_sha256": original.sha256, "camera_id": original.camera_id,
                         "start_utc": original.start_utc.isoformat(),
                         "end_utc": original.end_utc.isoformat(),
                         "retention_days": original.retention_days, "rule": original.rule,
                         "derived_blobs": len(expiry.derived_sha256)})
            self.on_deleted(session, original)
            session.commit()
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
