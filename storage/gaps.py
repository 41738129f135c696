"""Gaps in a camera's recording: opened when footage stops, closed when it resumes.

Nothing is ever invented to fill a gap. ``gaps_near`` is what evidence calls to state,
in a clip's provenance and report, what was not recorded within ten minutes of it.
Mutating functions flush but leave the commit to the caller.

A gap's ``reason`` is stored as a stable code (``GapReason``), optionally followed by
``": "`` and a detail that needs no translation (a number of seconds, a directory,
ffmpeg's last log line): ``stream_timeout: 10``. Each edge translates the code itself:
the web app and the report from their catalogs (``gap_reason.<code>``), the CLI and the
API's ``reason`` with ``describe_gap_reason`` (English). A reason stored before codes
(an English sentence) is shown as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, col, or_, select

from storage.models.recording import CameraGap
from storage.types import utcnow

NEAR_MARGIN = timedelta(minutes=10)
DETAIL_MAX = 200


class GapReason(StrEnum):
    """Why a camera's recording stopped; the detail each takes is in ``ENGLISH``."""

    STREAM_TIMEOUT = "stream_timeout"  # detail: the timeout in seconds
    CONNECTION_REFUSED = "connection_refused"
    HOST_UNREACHABLE = "host_unreachable"
    CREDENTIALS_REFUSED = "credentials_refused"
    ADDRESS_NOT_FOUND = "address_not_found"
    STREAM_ENDED = "stream_ended"
    STREAM_STOPPED = "stream_stopped"  # detail: ffmpeg's last log line (scrubbed)
    DISK_FULL = "disk_full"  # ffmpeg could not write: no space left
    SPOOL_LOW = "spool_low"  # detail: the spool dir
    STORE_LOW = "store_low"  # detail: the blob store's dir
    RECORDER_STOPPED = "recorder_stopped"
    NO_RECORDER = "no_recorder"


ENGLISH: dict[GapReason, str] = {
    GapReason.STREAM_TIMEOUT: "The stream did not answer within {detail} s.",
    GapReason.CONNECTION_REFUSED: "The stream refused the connection.",
    GapReason.HOST_UNREACHABLE: "The stream's host cannot be reached.",
    GapReason.CREDENTIALS_REFUSED: "The stream refused the credentials.",
    GapReason.ADDRESS_NOT_FOUND: "The stream's address was not found on the camera.",
    GapReason.STREAM_ENDED: "The stream ended.",
    GapReason.STREAM_STOPPED: "The stream stopped ({detail}).",
    GapReason.DISK_FULL: "The spool dir ran out of space.",
    GapReason.SPOOL_LOW: "The spool dir {detail} ran low on free space; recording was paused.",
    GapReason.STORE_LOW: "The blob store {detail} ran low on free space; recording was "
                         "paused.",
    GapReason.RECORDER_STOPPED: "The recorder was stopped.",
    GapReason.NO_RECORDER: "No recorder was running for this camera.",
}
_STORED = re.compile(r"([a-z][a-z_]*)(?:: (.*))?", re.DOTALL)


def gap_reason(code: GapReason, detail: str = "") -> str:
    """The stored form of a reason: ``code`` or ``code: detail`` (one line, shortened)."""
    detail = " ".join(detail.split())[:DETAIL_MAX]
    return f"{code.value}: {detail}" if detail else code.value


def parse_gap_reason(stored: str) -> tuple[GapReason | None, str]:
    """``(code, detail)`` of a stored reason; ``(None, stored)`` for free text (a reason
    written before codes, or an unknown code)."""
    match = _STORED.fullmatch(stored)
    if match is None or match.group(1) not in GapReason._value2member_map_:
        return None, stored
    return GapReason(match.group(1)), match.group(2) or ""


def describe_gap_reason(stored: str) -> str:
    """The reason as one English sentence; free text as it is."""
    code, detail = parse_gap_reason(stored)
    return stored if code is None else ENGLISH[code].format(detail=detail)


@dataclass(frozen=True)
class GapView:
    """A gap as provenance states it; ``end_utc`` is None while the camera is still down."""

    camera_id: str
    start_utc: datetime
    end_utc: datetime | None
    reason: str  # as stored: a code (``GapReason``) and detail, or free text

    @property
    def seconds(self) -> float | None:
        return None if self.end_utc is None else (self.end_utc - self.start_utc).total_seconds()

    @property
    def reason_code(self) -> str | None:
        code = parse_gap_reason(self.reason)[0]
        return None if code is None else code.value

    @property
    def reason_detail(self) -> str:
        return parse_gap_reason(self.reason)[1]

    def to_dict(self) -> dict[str, object]:
        """``reason`` in English; ``reason_code`` None for free text, which is then
        ``reason_detail``."""
        return {"camera_id": self.camera_id, "start_utc": self.start_utc.isoformat(),
                "end_utc": self.end_utc.isoformat() if self.end_utc else None,
                "seconds": self.seconds, "reason": describe_gap_reason(self.reason),
                "reason_code": self.reason_code, "reason_detail": self.reason_detail}


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
    "ENGLISH",
    "NEAR_MARGIN",
    "GapReason",
    "GapView",
    "close_gap",
    "describe_gap_reason",
    "gap_reason",
    "gaps_between",
    "gaps_near",
    "open_gap",
    "parse_gap_reason",
    "recent_gaps",
    "record_gap",
]
