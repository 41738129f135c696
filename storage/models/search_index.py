"""Tables for the search index: per-frame day phase and which FAISS shard holds each frame."""

from __future__ import annotations

from datetime import datetime

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
