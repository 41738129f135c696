"""Cameras, originals, segments, frames and ingest jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class CameraBase(SQLModel):
    """Fields a user supplies when registering a camera."""

    id: str = Field(primary_key=True, max_length=64)
    name: str
    district: str = Field(default="", index=True)
    latitude: float
    longitude: float
    agency: str = Field(index=True, description="Owning agency")
    timezone: str = Field(default="Europe/Kyiv", description="IANA time zone")


class Camera(CameraBase, table=True):
    """A registered camera."""

    allowed_agencies: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False),
        description="Agencies besides the owner that may search this camera",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    stream_url: str | None = Field(
        default=None, description="Where the recorder reads the live stream; it may hold "
        "credentials, so it is never shown except redacted (storage.stream_urls)")
    retention_days: int | None = Field(
        default=None, description="Days its originals are kept after their recording "
        "ends; NULL: the installation's OKO_RETENTION_DAYS")


class Original(SQLModel, table=True):
    """A recording exactly as received; its bytes live in the blob store under ``sha256``."""

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(unique=True, index=True, max_length=64)
    camera_id: str = Field(foreign_key="camera.id", index=True)
    filename: str
    size_bytes: int
    container: str = ""
    video_codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    variable_frame_rate: bool = False
    duration_s: float = 0.0
    creation_time_utc: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recording_start_utc: datetime = Field(sa_type=UTCDateTime, index=True)
    timezone: str = "Europe/Kyiv"
    start_source: str = Field(description="cli, container or filename")
    damaged: bool = False
    decodable_duration_s: float = 0.0
    damage_reason: str = ""
    status: str = Field(default="processing", description="processing, ready, or expiring "
                        "then expired once retention deleted its bytes (storage.models."
                        "retention)")
    sampling: str = Field(default="", sa_column_kwargs={"server_default": ""},
                          description="keyframes or reduced_decode; empty before 0010")
    ingested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Segment(SQLModel, table=True):
    """A fixed-length piece of an original, cut by ffmpeg; a derived file."""

    __table_args__ = (UniqueConstraint("original_id", "index"),)

    id: int | None = Field(default=None, primary_key=True)
    original_id: int = Field(foreign_key="original.id", index=True)
    index: int
    start_offset_s: float
    duration_s: float
    start_utc: datetime = Field(sa_type=UTCDateTime, index=True)
    sha256: str = Field(max_length=64, description="Hash of the derived segment file")
    size_bytes: int
    method: str = Field(description="stream_copy or reencode")
    tool: str
    tool_version: str
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Frame(SQLModel, table=True):
    """A sampled frame; ``offset_s`` locates it exactly in its original."""

    __table_args__ = (UniqueConstraint("original_id", "offset_s"),)

    id: int | None = Field(default=None, primary_key=True)
    original_id: int = Field(foreign_key="original.id", index=True)
    segment_id: int = Field(foreign_key="segment.id", index=True)
    camera_id: str = Field(foreign_key="camera.id", index=True)
    offset_s: float
    captured_at_utc: datetime = Field(sa_type=UTCDateTime, index=True)
    width: int
    height: int
    thumbnail_sha256: str = Field(max_length=64)


class IngestJob(SQLModel, table=True):
    """One file's (or folder's) trip through ingest; the DB row is the source of truth.

    A folder's job is done once its walk has queued one job per video file, each with
    ``parent_id`` naming the folder's job.
    """

    id: int | None = Field(default=None, primary_key=True)
    source_path: str
    camera_id: str
    requested_start: str | None = None
    parent_id: int | None = Field(default=None, foreign_key="ingestjob.id", index=True,
                                  description="The folder job whose walk queued this file")
    requested_by: str = Field(default="system", sa_column_kwargs={"server_default": "system"},
                              description="Who asked for the ingest; the custody actor")
    status: str = Field(default="queued", index=True,
                        description="queued, running, done, duplicate, failed")
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    sha256: str | None = Field(default=None, max_length=64)
    original_id: int | None = Field(default=None, foreign_key="original.id")
    attempts: int = 0
    worker: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
