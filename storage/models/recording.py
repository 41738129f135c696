"""Tables for continuous recording: gaps in a camera's footage, recorder and watch state.

A ``CameraGap`` is open (``end_utc`` NULL) while its camera is not recording and closed
when recording resumes; nothing is ever invented to fill it. ``RecorderState`` holds one
row per camera that a recorder or watcher has touched, for ``oko cameras status``.
``WatchedFile`` remembers each file a watch folder ingested, so it is ingested once even
across restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class CameraGap(SQLModel, table=True):
    """A span with no recording from a camera that should have been recording."""

    id: int | None = Field(default=None, primary_key=True)
    camera_id: str = Field(foreign_key="camera.id", index=True)
    start_utc: datetime = Field(sa_type=UTCDateTime, index=True,
                                description="End of the last footage before the gap")
    end_utc: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True,
                                     description="Start of the next footage; NULL while open")
    reason: str = Field(description="One sentence: why nothing was recorded")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RecorderState(SQLModel, table=True):
    """What the recorder (or a watch folder) last knew about one camera."""

    camera_id: str = Field(primary_key=True, foreign_key="camera.id")
    state: str = Field(default="idle", description=(
        "idle, connecting, recording, reconnecting, paused, failed or watching"))
    message: str = Field(default="", description="One sentence about the state; no secrets")
    message_code: str = Field(default="", description=(
        "The message as a storage.state_messages.StateMessage code; empty before codes"))
    message_args: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"),
        description="The values the message names, for the web app's catalogs")
    worker: str = Field(default="", description="host:pid of the process recording it")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    connected_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_file_end_utc: datetime | None = Field(default=None, sa_type=UTCDateTime,
                                               description="End of the newest footage")
    last_ingested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ingest_lag_s: float | None = Field(
        default=None, description="From the end of the newest file to its ingest finishing")
    bitrate_bps: float | None = None
    fps: float | None = None
    files_recorded: int = 0


class WatchedFile(SQLModel, table=True):
    """A file a watch folder handed to ingest: once per name, size and modification time."""

    __table_args__ = (UniqueConstraint("folder", "name", "size_bytes", "mtime_ns"),)

    id: int | None = Field(default=None, primary_key=True)
    folder: str = Field(index=True)
    name: str
    size_bytes: int
    mtime_ns: int = Field(sa_type=BigInteger)
    camera_id: str = Field(foreign_key="camera.id", index=True)
    status: str = Field(description="ingested, duplicate or failed")
    sha256: str | None = Field(default=None, max_length=64)
    original_id: int | None = Field(default=None, foreign_key="original.id")
    message: str = ""
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
