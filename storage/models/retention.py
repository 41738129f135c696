"""The retention sweep's record of each original it expires (``indexer.retention``).

An ``OriginalExpiry`` row is written, with the original marked ``expiring``, before
anything is deleted, and names every derived blob the original's rows pointed at, so a
sweep that crashed half-way is finished by the next one: rows first, then blobs, then
the original's blob, then ``stage = "done"`` with its custody and audit entries. The
``Original`` row itself stays (status ``expired``) as the record that it existed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class OriginalExpiry(SQLModel, table=True):
    """One original deleted (or being deleted) by retention."""

    original_id: int = Field(primary_key=True, foreign_key="original.id")
    camera_id: str = Field(foreign_key="camera.id", index=True)
    sha256: str = Field(max_length=64, description="The expired original's hash")
    start_utc: datetime = Field(sa_type=UTCDateTime)
    end_utc: datetime = Field(sa_type=UTCDateTime)
    retention_days: int = Field(description="The rule that expired it")
    stage: str = Field(default="marked", description="marked, rows_deleted or done")
    derived_sha256: list[str] = Field(default_factory=list,
                                      sa_column=Column(JSON, nullable=False),
                                      description="Derived blobs its rows pointed at")
    marked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
