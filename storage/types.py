"""Column types shared by all models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

from storage.errors import InvalidInputError


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


SUPPORTED_YEARS = (1900, 2999)
"""Times a user gives (search and audit ranges) must fall in these years, in UTC, so that
no later step overflows a datetime."""


def supported_utc(value: datetime, *, name: str, given: datetime | None = None) -> datetime:
    """``value`` (which has a zone) in UTC.

    Raises ``InvalidInputError`` naming ``name`` and the time as ``given`` (default
    ``value``) when it has no UTC equivalent (``0001-01-01T00:00:00+05:00``) or lies
    outside ``SUPPORTED_YEARS``.
    """
    try:
        utc = value.astimezone(UTC)
        in_range = SUPPORTED_YEARS[0] <= utc.year <= SUPPORTED_YEARS[1]
    except OverflowError:
        in_range = False
    if not in_range:
        raise InvalidInputError(f"'{name}' ({(given or value).isoformat()}) is outside the "
                                f"years {SUPPORTED_YEARS[0]} to {SUPPORTED_YEARS[1]}.")
    return utc
