"""Use cases: the plate watch list, its events, and plate reading as a queued step.

Administrators keep the watch list (``MANAGE_WATCHLIST``): a whole plate, a reason and
an expiry, each change audited. Reading is retrospective: when ingested footage is read
(``read_waiting_plates``, run by the worker beside embedding and by ``oko reindex``),
each new or grown sighting of a listed, unexpired plate raises one ``PlateEvent`` and an
audit entry (``plate_alert``) in the same transaction. Investigators and supervisors
list the events of the cameras they may see.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from indexer.plates.grammar import format_plate
from indexer.plates.reader import PlateReader
from indexer.plates.sightings import PlateReport, read_pending_plates
from indexer.plates.supersede import ExpiredCrops
from search_api.audit import AuditAction, record_event
from search_api.state import AppState
from search_api.usecases.context import UseCaseContext
from search_api.usecases.plates import crop_url, full_plate
from storage.db import session_scope
from storage.errors import ConflictError, InvalidInputError, NotFoundError
from storage.models.media import Camera
from storage.models.plates import PlateEvent, PlateSighting, WatchlistEntry
from storage.permissions import Permission
from storage.types import supported_utc, utcnow

MAX_WATCH_DAYS = 366
MAX_REASON_CHARS = 500
SYSTEM_ACTOR = "system:plates"

_reader_lock = threading.Lock()
_reader: PlateReader | None = None


def shared_reader() -> PlateReader:
    """One reader per process (loading the models takes a second or two)."""
    global _reader
    with _reader_lock:
        if _reader is None:
            _reader = PlateReader()
        return _reader


class WatchCreate(BaseModel):
    """A plate to watch: whole plate, why, and until when."""

    model_config = ConfigDict(extra="forbid")

    plate: str = Field(max_length=40)
    reason: str = Field(max_length=MAX_REASON_CHARS)
    expires_at: datetime = Field(description=f"At most {MAX_WATCH_DAYS} days ahead")


class WatchPublic(BaseModel):
    id: int
    plate: str
    plate_display: str
    reason: str
    expires_at: datetime
    added_by: str
    created_at: datetime
    active: bool

    @classmethod
    def of(cls, row: WatchlistEntry) -> WatchPublic:
        assert row.id is not None
        return cls(id=row.id, plate=row.plate, plate_display=format_plate(row.plate),
                   reason=row.reason, expires_at=row.expires_at, added_by=row.added_by,
                   created_at=row.created_at, active=row.expires_at > utcnow())


class PlateEventPublic(BaseModel):
    id: int
    plate: str
    plate_display: str
    reason: str
    camera_id: str
    seen_at_utc: datetime
    raised_at: datetime
    sighting_id: int
    crop_url: str


class WatchAlreadyListedError(ConflictError):
    """The plate is on the watch list already."""


def list_watches(ctx: UseCaseContext) -> list[WatchPublic]:
    ctx.require(Permission.MANAGE_WATCHLIST)
    rows = ctx.session.exec(select(WatchlistEntry).order_by(col(WatchlistEntry.plate))).all()
    return [WatchPublic.of(row) for row in rows]


def add_watch(ctx: UseCaseContext, *, body: WatchCreate) -> WatchPublic:
    """List a plate; audited. Raises ``PlateQueryError`` (not a whole plate),
    ``InvalidInputError`` (no reason, expiry past or too far) and
    ``WatchAlreadyListedError``; nothing is written then."""
    ctx.require(Permission.MANAGE_WATCHLIST)
    plate = full_plate(body.plate)
    reason = body.reason.strip()
    if not reason:
        raise InvalidInputError("Say why the plate is watched: the reason is empty.")
    expires = supported_utc(body.expires_at if body.expires_at.tzinfo is not None
                            else body.expires_at.astimezone(), name="expires_at",
                            given=body.expires_at)
    now = utcnow()
    if expires <= now or expires > now + timedelta(days=MAX_WATCH_DAYS):
        raise InvalidInputError(f"The expiry must lie in the next {MAX_WATCH_DAYS} days.")
    if ctx.session.exec(select(WatchlistEntry).where(WatchlistEntry.plate == plate)).first():
        raise WatchAlreadyListedError(f"{format_plate(plate)} is on the watch list already.")
    row = WatchlistEntry(plate=plate, reason=reason, expires_at=expires,
                         added_by=ctx.actor.name)
    ctx.session.add(row)
    ctx.session.flush()
    ctx.audit(AuditAction.WATCHLIST_CHANGE, change="add", watch_id=row.id, plate=plate,
              reason=reason, expires_at=expires.isoformat())
    ctx.commit()
    return WatchPublic.of(row)


def remove_watch(ctx: UseCaseContext, *, watch_id: int) -> None:
    """Take a plate off the list (its past events stay); audited.

    Raises ``NotFoundError`` for an unknown entry.
    """
    ctx.require(Permission.MANAGE_WATCHLIST)
    row = ctx.session.get(WatchlistEntry, watch_id)
    if row is None:
        raise NotFoundError(f"Watch-list entry {watch_id} does not exist.")
    # an entry with events keeps its row (they name it) but expires now
    has_events = ctx.session.exec(select(PlateEvent.id).where(
        PlateEvent.watch_id == watch_id).limit(1)).first() is not None
    if has_events:
        row.expires_at = utcnow()
        ctx.session.add(row)
    else:
        ctx.session.delete(row)
    ctx.audit(AuditAction.WATCHLIST_CHANGE, change="remove", watch_id=watch_id,
              plate=row.plate)
    ctx.commit()


def list_events(ctx: UseCaseContext, *, limit: int = 200) -> list[PlateEventPublic]:
    """Events on the cameras the actor may see, newest first."""
    ctx.require(Permission.SEARCH)
    query = select(PlateEvent).order_by(col(PlateEvent.raised_at).desc(),
                                        col(PlateEvent.id).desc()).limit(limit)
    if ctx.user is not None:
        query = query.where(col(PlateEvent.camera_id).in_(ctx.visible_camera_ids()))
    return [PlateEventPublic(
        id=e.id or 0, plate=e.plate, plate_display=format_plate(e.plate), reason=e.reason,
        camera_id=e.camera_id, seen_at_utc=e.seen_at_utc, raised_at=e.raised_at,
        sighting_id=e.sighting_id, crop_url=crop_url(e.sighting_id))
        for e in ctx.session.exec(query).all()]


def raise_watch_events(state: AppState, *, sighting_ids: Sequence[int]) -> list[int]:
    """One event (and audit entry) per sighting of a listed, unexpired plate; returns the
    new events' ids. A sighting already alerted for an entry raises nothing again."""
    if not sighting_ids:
        return []
    raised: list[int] = []
    with session_scope(state.engine) as session:
        now = utcnow()
        watches = {w.plate: w for w in session.exec(select(WatchlistEntry).where(
            col(WatchlistEntry.expires_at) > now)).all()}
        if not watches:
            return []
        sightings = session.exec(select(PlateSighting).where(
            col(PlateSighting.id).in_(list(sighting_ids)),
            col(PlateSighting.plate).in_(list(watches)))).all()
        for sighting in sightings:
            raised += _raise_one(session, state, watches[sighting.plate], sighting)
    return raised


def _raise_one(session: Session, state: AppState, watch: WatchlistEntry,
               sighting: PlateSighting) -> list[int]:
    assert watch.id is not None and sighting.id is not None
    exists = session.exec(select(PlateEvent.id).where(
        PlateEvent.watch_id == watch.id, PlateEvent.sighting_id == sighting.id)).first()
    if exists is not None:
        return []
    event = PlateEvent(watch_id=watch.id, sighting_id=sighting.id, plate=sighting.plate,
                       camera_id=sighting.camera_id, seen_at_utc=sighting.first_seen_utc,
                       reason=watch.reason)
    session.add(event)
    session.flush()
    camera = session.get(Camera, sighting.camera_id)
    record_event(session, state=state, actor=SYSTEM_ACTOR,
                 agency=camera.agency if camera else "", ip="worker",
                 action=AuditAction.PLATE_ALERT,
                 details={"event_id": event.id, "watch_id": watch.id, "plate": sighting.plate,
                          "sighting_id": sighting.id, "camera_id": sighting.camera_id,
                          "frame_id": sighting.best_frame_id,
                          "seen_at_utc": sighting.first_seen_utc.isoformat()})
    return [event.id] if event.id is not None else []


def read_waiting_plates(state: AppState, *, reader: PlateReader | None = None,
                        limit: int | None = None,
                        progress: Callable[[int, int], None] | None = None,
                        ) -> tuple[PlateReport, list[int]]:
    """Read every frame waiting for plate reading, then raise the watch list's events.

    Returns the report and the new events' ids.
    """
    chosen = reader or shared_reader()
    report = read_pending_plates(engine=state.engine, derived=state.derived, reader=chosen,
                                 originals=state.originals,
                                 on_crops_expired=crop_expiry_auditor(state),
                                 motion_threshold=state.settings.motion_threshold,
                                 limit=limit, progress=progress)
    events = raise_watch_events(state, sighting_ids=report.touched)
    return report, events


def crop_expiry_auditor(state: AppState) -> Callable[[Session, ExpiredCrops], None]:
    """Writes the ``plate_crops_expired`` audit entry of one batch of replaced crops,
    as ``system:plates`` (the reader runs for no one in particular), under the camera's
    agency like a ``plate_alert``."""
    def audit(session: Session, batch: ExpiredCrops) -> None:
        camera = session.get(Camera, batch.camera_id)
        record_event(session, state=state, actor=SYSTEM_ACTOR,
                     agency=camera.agency if camera else "", ip="worker",
                     action=AuditAction.PLATE_CROPS_EXPIRED, details=batch.to_details())
    return audit


def read_plates(ctx: UseCaseContext, *, limit: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                ) -> tuple[PlateReport, list[int]]:
    """``read_waiting_plates`` for an operator (``oko plates read``, ``oko reindex``)."""
    ctx.require(Permission.MANAGE_MODELS)
    return read_waiting_plates(ctx.state, limit=limit, progress=progress)


def plates_pending_line(state: AppState) -> str:
    """``read_waiting_plates`` as the one line the worker and ``oko demo`` print."""
    report, events = read_waiting_plates(state)
    alerts = f"; {len(events)} watch-list event(s)" if events else ""
    return (f"Read plates in {report.frames_read} frames ({report.frames_static} static "
            f"skipped): {report.reads} reads, {report.new_sightings} new sighting(s){alerts}.")


__all__ = [
    "PlateEventPublic",
    "WatchAlreadyListedError",
    "WatchCreate",
    "WatchPublic",
    "add_watch",
    "crop_expiry_auditor",
    "list_events",
    "list_watches",
    "plates_pending_line",
    "raise_watch_events",
    "read_plates",
    "read_waiting_plates",
    "remove_watch",
    "shared_reader",
]
