"""Tables for the search index: per-frame day phase and which FAISS shard holds each frame."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class FrameIndexEntry(SQLModel, table=True):
    """Search facts about one embedded or linked frame, written when shards are synced.

    ``day_phase`` comes from the sun's elevation at the camera and an infrared check of
    the frame. ``shard_key`` is NULL until the frame's vector sits in a committed shard;
    search scores such frames exactly from the database so nothing is ever missed.
    """

    frame_id: int = Field(primary_key=True, foreign_key="frame.id")
    day_phase: str = Field(index=True, max_length=8, description="day, dusk or night")
    sun_elevation_deg: float
    monochrome: bool = Field(description="Frame looks like infrared night footage")
    shard_key: str | None = Field(default=None, index=True,
                                  description="camera_id/YYYY-MM-DD (camera's local day)")
    weights_sha256: str | None = Field(default=None, max_length=64)
    vector_frame_id: int | None = Field(
        default=None, index=True,
        description="The frame whose vector stands for this one (itself, or the linked one)")
    computed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    indexed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SearchBacklog(SQLModel, table=True):
    """A frame not yet in a committed shard: search finds these with one indexed query.

    Rows are added when a frame is stored (``embedded`` false), marked ``embedded`` when
    the embedding queue embeds or links it, and deleted when its shard is committed, so
    completeness is tracked as frames move instead of being counted per query.
    """

    frame_id: int = Field(primary_key=True, foreign_key="frame.id")
    camera_id: str = Field(foreign_key="camera.id")
    captured_at_utc: datetime = Field(sa_type=UTCDateTime)
    embedded: bool = Field(default=False, description="Has an embedding or link")

    __table_args__ = (Index("ix_searchbacklog_scope", "embedded", "camera_id",
                            "captured_at_utc"),)


class SearchShard(SQLModel, table=True):
    """A committed shard as the database knows it (one per camera and local day), so a
    shard whose files are gone is noticed and its frames scored from the database."""

    shard_key: str = Field(primary_key=True, description="camera_id/YYYY-MM-DD")
    camera_id: str = Field(foreign_key="camera.id")
    local_day: date
    frames: int
    weights_sha256: str = Field(max_length=64)
    committed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    __table_args__ = (Index("ix_searchshard_camera_day", "camera_id", "local_day"),)
