"""Gaps in a camera's recording: opened when footage stops, closed when it resumes.

Nothing is ever invented to fill a gap. ``gaps_near`` is what evidence calls to state,
in a clip's provenance and report, what was not recorded within ten minutes of it.
Mutating functions flush but leave the commit to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, or_, select

from storage.models.recording import CameraGap
from storage.types import utcnow

NEAR_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class GapView:
    """A gap as provenance states it; ``end_utc`` is None while the camera is still down."""

    camera_id: str
    start_utc: datetime
    end_utc: datetime | None
    reason: str

    @property
    def seconds(self) -> float | None:
        return None if self.end_utc is None else (self.end_utc - self.start_utc).total_seconds()

    def to_dict(self) -> dict[str, object]:
        return {"camera_id": self.camera_id, "start_utc": self.start_utc.isoformat(),
                "end_utc": self.end_utc.isoformat() if self.end_utc else None,
                "seconds": self.seconds, "reason": self.reason}


def _view(gap: CameraGap) -> GapView:
    return GapView(camera_id=gap.camera_id, start_utc=gap.start_utc, end_utc=gap.end_utc,
                   reason=gap.reason)


def open_gap(session: Session, *, camera_id: str, start: datetime, reason: str) -> CameraGap:
    """The camera's open gap, or a new one from ``start`` when none is open."""
    existing = session.exec(select(CameraGap).where(
        CameraGap.camera_id == camera_id, col(CameraGap.end_utc).is_(None))).first()
    if existing is not None:
        return existing
    gap = CameraGap(camera_id=camera_id, start_utc=start, reason=reason)
    session.add(gap)
    session.flush()
    return gap


def close_gap(session: Session, *, camera_id: str, end: datetime) -> CameraGap | None:
    """Close the camera's open gap at ``end`` (never before its start); None if none."""
    gap = session.exec(select(CameraGap).where(
        CameraGap.camera_id == camera_id, col(CameraGap.end_utc).is_(None))).first()
    if gap is None:
        return None
    gap.end_utc = max(end, gap.start_utc)
    session.add(gap)
    session.flush()
    return gap


def record_gap(session: Session, *, camera_id: str, start: datetime, end: datetime,
               reason: str) -> CameraGap:
    """A closed gap, for a span found empty after the fact (no recorder was running)."""
    gap = CameraGap(camera_id=camera_id, start_utc=start, end_utc=end, reason=reason)
    session.add(gap)
    session.flush()
    return gap


def gaps_between(session: Session, *, camera_id: str, start: datetime,
                 end: datetime) -> list[GapView]:
    """The camera's gaps overlapping ``start``..``end`` (open ones reach to now), oldest first."""
    rows = session.exec(select(CameraGap).where(
        CameraGap.camera_id == camera_id, col(CameraGap.start_utc) <= end,
        or_(col(CameraGap.end_utc).is_(None), col(CameraGap.end_utc) >= start))
        .order_by(col(CameraGap.start_utc))).all()
    return [_view(gap) for gap in rows]


def gaps_near(session: Session, camera_id: str, start: datetime,
              end: datetime) -> list[GapView]:
    """Gaps within ten minutes of a clip from ``start`` to ``end``: what a court must be told."""
    return gaps_between(session, camera_id=camera_id, start=start - NEAR_MARGIN,
                        end=end + NEAR_MARGIN)


def recent_gaps(session: Session, *, camera_id: str, hours: float = 24.0) -> list[GapView]:
    now = utcnow()
    return gaps_between(session, camera_id=camera_id, start=now - timedelta(hours=hours),
                        end=now)


__all__ = [
    "NEAR_MARGIN",
    "GapView",
    "close_gap",
    "gaps_between",
    "gaps_near",
    "open_gap",
    "recent_gaps",
    "record_gap",
]
