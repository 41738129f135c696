"""What a search may look at: cameras, UTC time range, day phase and local hours.

``resolve_scope`` validates the request's filters (before any model is needed) and
records each one as an ``AppliedFilter``. The scope then selects shards by camera and
day, and becomes the ``ShardQuery`` each shard answers from its own filter arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlmodel import Session, select

from indexer.daynight import DayPhase
from indexer.search.query import HourWindow, ParsedQuery
from indexer.search.shard_search import ShardQuery
from indexer.search.types import AppliedFilter, SearchFilters
from indexer.shard_files import PHASE_CODES, ShardKey, ShardMeta
from storage.errors import InvalidInputError, NotFoundError
from storage.models.media import Camera
from storage.types import supported_utc


@dataclass(frozen=True)
class Scope:
    """The cameras, times and phases a search admits; ``cameras`` empty admits nothing."""

    cameras: dict[str, Camera]
    start: datetime | None
    end: datetime | None
    day_phase: DayPhase | None
    hours: HourWindow | None

    def admits(self, *, camera_id: str, at: datetime, phase: str | None) -> bool:
        if camera_id not in self.cameras:
            return False
        if (self.start and at < self.start) or (self.end and at > self.end):
            return False
        if self.day_phase is not None and phase != self.day_phase.value:
            return False
        if self.hours is not None:
            local = at.astimezone(ZoneInfo(self.cameras[camera_id].timezone))
            return self.hours.contains(local.hour)
        return True

    def selects(self, meta: ShardMeta) -> bool:
        """Whether the shard's camera and day can hold a frame in scope."""
        return (meta.key.camera_id in self.cameras
                and (self.start is None or meta.utc_end > self.start)
                and (self.end is None or meta.utc_start <= self.end))

    def may_hold(self, key: ShardKey) -> bool:
        """Whether a shard of this camera and local day may hold frames in scope (the day
        is taken one day wider each side, as no time zone is at hand)."""
        if key.camera_id not in self.cameras:
            return False
        if self.start is not None and key.local_day < (self.start - timedelta(days=1)).date():
            return False
        return self.end is None or key.local_day <= (self.end + timedelta(days=1)).date()

    def shard_query(self, vector: np.ndarray, k: int) -> ShardQuery:
        time_range = None
        if self.start is not None or self.end is not None:
            time_range = (_us(self.start) if self.start else -(2**62),
                          _us(self.end) if self.end else 2**62)
        phases = (frozenset({PHASE_CODES[self.day_phase.value]})
                  if self.day_phase is not None else None)
        hours = (self.hours.start_hour, self.hours.end_hour) if self.hours else None
        return ShardQuery(vector=vector, k=k, time_range_us=time_range, phases=phases,
                          local_hours=hours)


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _resolve_cameras(session: Session, filters: SearchFilters,
                     visible: set[str] | None) -> tuple[dict[str, Camera], list[AppliedFilter]]:
    cameras = {c.id: c for c in session.exec(select(Camera)).all()
               if visible is None or c.id in visible}
    applied: list[AppliedFilter] = []
    if filters.camera_ids:
        for camera_id in filters.camera_ids:
            if camera_id not in cameras:  # another agency's camera reads like a missing one
                raise NotFoundError(f"Camera '{camera_id}' does not exist.")
        cameras = {cid: cameras[cid] for cid in filters.camera_ids}
        applied.append(AppliedFilter("cameras", sorted(cameras), "request"))
    if filters.districts:
        wanted = {d.casefold() for d in filters.districts}
        for district in filters.districts:
            if not any(c.district.casefold() == district.casefold() for c in cameras.values()):
                raise NotFoundError(f"No camera you can see is in district '{district}'.")
        cameras = {cid: c for cid, c in cameras.items() if c.district.casefold() in wanted}
        applied.append(AppliedFilter("districts", sorted(filters.districts), "request"))
    if visible is not None and not filters.camera_ids:
        applied.append(AppliedFilter("cameras", sorted(cameras), "access policy"))
    return cameras, applied


def _aware(value: datetime | None, cameras: dict[str, Camera], name: str) -> datetime | None:
    """``value`` in UTC; without an offset it is read in the cameras' (one) time zone.

    Raises ``InvalidInputError`` for a time that has no UTC equivalent inside the years
    1 to 9999 (``0001-01-01T00:00:00+05:00``) or lies outside ``storage.types.SUPPORTED_YEARS``.
    """
    if value is None:
        return None
    zoned = value
    if value.tzinfo is None:
        zones = {c.timezone for c in cameras.values()}
        if len(zones) != 1:
            raise InvalidInputError(
                f"'{name}' has no UTC offset and the cameras searched are in different "
                "time zones; add an offset such as +02:00.")
        zoned = value.replace(tzinfo=ZoneInfo(zones.pop()))
    return supported_utc(zoned, name=name, given=value)


def resolve_scope(session: Session, filters: SearchFilters, parsed: ParsedQuery | None,
                  visible: set[str] | None) -> tuple[Scope, list[AppliedFilter]]:
    """The scope of a request and the filters applied, in the order they are reported.

    Raises ``NotFoundError`` (unknown camera or district) and ``InvalidInputError``
    (``from`` after ``to``, a naive time over several time zones, two day phases).
    """
    cameras, applied = _resolve_cameras(session, filters, visible)
    start = _aware(filters.start, cameras, "from")
    end = _aware(filters.end, cameras, "to")
    if start and end and start > end:
        raise InvalidInputError(f"'from' ({start.isoformat()}) is later than 'to' "
                                f"({end.isoformat()}).")
    phase = filters.day_phase
    if parsed and parsed.day_phase is not None:
        if phase is not None and phase != parsed.day_phase:
            raise InvalidInputError(f"The query says {parsed.day_phase.value} but the "
                                    f"{phase.value} filter is set; choose one.")
        applied.append(AppliedFilter("day_phase", parsed.day_phase.value,
                                     f"query phrase '{', '.join(parsed.phrases)}'"))
        phase = parsed.day_phase
    elif phase is not None:
        applied.append(AppliedFilter("day_phase", phase.value, "request"))
    hours = parsed.hours if parsed else None
    if hours is not None:
        assert parsed is not None
        applied.append(AppliedFilter("hours", f"{hours.name} ({hours.start_hour:02d}:00-"
                                     f"{hours.end_hour:02d}:00 local)",
                                     f"query phrase '{', '.join(parsed.phrases)}'"))
    if start:
        applied.append(AppliedFilter("from", start.isoformat(), "request"))
    if end:
        applied.append(AppliedFilter("to", end.isoformat(), "request"))
    return Scope(cameras=cameras, start=start, end=end, day_phase=phase, hours=hours), applied


__all__ = ["Scope", "resolve_scope"]
