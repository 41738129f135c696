"""A new plate reader replaces the old one's sightings, one original at a time.

When the reader key changes (another model file, or other parameters), every frame is
pending again. The queue re-reads an original's frames in one transaction and, in that
same transaction, deletes the sightings an older reader made on that camera over the
original's time span, so search sees either the old sightings or the new ones, never
both. A watch-list event of a deleted sighting moves to the new sighting of the same
plate that covers it (so it is not raised again); with no such sighting it is deleted
(its ``plate_alert`` audit entry stays in the log). Once that transaction has
committed, the deleted sightings' crops that no remaining row names (another sighting,
also the new reader's when its best crop came out byte for byte the same, a frame or a
segment) are expired from the derived store through ``BlobStore.expire_many``, its one
deletion path, with the reader change as the reason; a crash in between leaves at most
a spare blob.

Every deletion is on the record: before a batch of crops is removed, the caller's
``OnCropsExpired`` writes its audit entry (``plate_crops_expired``, naming every hash,
the camera and both reader keys) and that entry commits; only then are the files
removed. A crash after the commit leaves blobs the entry names as expired but still
stored, never a deletion without an entry. Crops are no custody-tracked objects (custody
chains follow originals and cases), so there is no custody entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.blobstore import BlobStore
from storage.models.media import Frame, Segment
from storage.models.plates import PlateEvent, PlateSighting


@dataclass
class ReplaceCounts:
    sightings_replaced: int = 0
    events_moved: int = 0
    events_dropped: int = 0
    crops_expired: int = 0


@dataclass(frozen=True)
class ExpiredCrops:
    """One batch of crops expired because a plate reader replaced another's sightings."""

    camera_id: str
    replaced_reader_keys: list[str]
    reader_key: str
    sha256: list[str] = field(default_factory=list)  # sorted

    @property
    def reason(self) -> str:
        return (f"plate reader {', '.join(self.replaced_reader_keys)} replaced by "
                f"{self.reader_key}")

    def to_details(self) -> dict[str, object]:
        """What the audit entry records."""
        return {"camera_id": self.camera_id, "reason": self.reason,
                "replaced_reader_keys": self.replaced_reader_keys,
                "reader_key": self.reader_key, "count": len(self.sha256),
                "crop_sha256": self.sha256}


OnCropsExpired = Callable[[Session, ExpiredCrops], None]
"""Writes the audit entry of one expiry batch in ``session``; the expiry commits it
before any file is removed."""


def original_span(session: Session, original_id: int) -> tuple[datetime, datetime] | None:
    """First and last capture time of an original's sampled frames (None: no frames)."""
    low, high = session.exec(select(func.min(Frame.captured_at_utc),
                                    func.max(Frame.captured_at_utc))
                             .where(Frame.original_id == original_id)).one()
    return (low, high) if low is not None and high is not None else None


def older_sightings(session: Session, *, camera_id: str, reader_key: str,
                    span: tuple[datetime, datetime]) -> list[PlateSighting]:
    """Sightings of another reader key on ``camera_id`` that overlap ``span``."""
    return list(session.exec(select(PlateSighting).where(
        PlateSighting.camera_id == camera_id, col(PlateSighting.reader_key) != reader_key,
        col(PlateSighting.first_seen_utc) <= span[1],
        col(PlateSighting.last_seen_utc) >= span[0])).all())


def replace_sightings(session: Session, *, old: list[PlateSighting],
                      reader_key: str) -> ReplaceCounts:
    """Delete ``old`` (read by an older reader) in the caller's transaction, after the new
    reader's sightings were flushed into it; their events move to the new sightings."""
    counts = ReplaceCounts()
    for sighting in old:
        events = session.exec(select(PlateEvent).where(
            PlateEvent.sighting_id == sighting.id)).all()
        for event in events:
            new = session.exec(select(PlateSighting).where(
                PlateSighting.camera_id == sighting.camera_id,
                PlateSighting.reader_key == reader_key, PlateSighting.plate == event.plate,
                col(PlateSighting.first_seen_utc) <= sighting.last_seen_utc,
                col(PlateSighting.last_seen_utc) >= sighting.first_seen_utc)
                .order_by(col(PlateSighting.first_seen_utc))).first()
            taken = new is not None and session.exec(select(PlateEvent.id).where(
                PlateEvent.watch_id == event.watch_id,
                PlateEvent.sighting_id == new.id)).first() is not None
            if new is None or new.id is None or taken:
                session.delete(event)
                counts.events_dropped += 1
            else:
                event.sighting_id, event.seen_at_utc = new.id, new.first_seen_utc
                session.add(event)
                counts.events_moved += 1
        session.flush()
        session.delete(sighting)
        counts.sightings_replaced += 1
    session.flush()
    return counts


def referenced_blobs(session: Session, hashes: set[str]) -> set[str]:
    """Those of ``hashes`` that a sighting's crop, a frame's thumbnail or a segment names."""
    found: set[str] = set()
    for column in (col(PlateSighting.crop_sha256), col(Frame.thumbnail_sha256),
                   col(Segment.sha256)):
        found |= set(session.exec(select(column).distinct()
                                  .where(column.in_(sorted(hashes)))).all())
    return found


def expire_replaced_crops(session: Session, *, derived: BlobStore, crops: set[str],
                          camera_id: str, replaced_reader_keys: set[str], reader_key: str,
                          on_expired: OnCropsExpired) -> int:
    """Expire the crops of replaced sightings that no row names any more (call after the
    replacement committed); returns how many blobs were removed.

    ``on_expired`` writes the batch's audit entry and it is committed in ``session``
    before the first file goes. Raises ``StorageError`` when a crop cannot be removed (it
    stays whole; the entry already names it) and whatever ``on_expired`` raises (then
    nothing is removed).
    """
    crops = {c for c in crops if c}
    if not crops:
        return 0
    going = sorted(crops - referenced_blobs(session, crops))
    if not going:
        return 0
    batch = ExpiredCrops(camera_id=camera_id,
                         replaced_reader_keys=sorted(replaced_reader_keys),
                         reader_key=reader_key, sha256=going)
    on_expired(session, batch)
    session.commit()  # the record first: no deletion without its entry
    return derived.expire_many(going, reason=batch.reason)


__all__ = [
    "ExpiredCrops",
    "OnCropsExpired",
    "ReplaceCounts",
    "expire_replaced_crops",
    "older_sightings",
    "original_span",
    "referenced_blobs",
    "replace_sightings",
]
