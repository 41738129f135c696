"""Tables for plate reading: which frames were read, sightings, the watch list, its events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class PlateFrameScan(SQLModel, table=True):
    """One frame's turn through plate reading; frames without a row for the current
    ``reader_key`` (models and parameters) are the plate-reading queue."""

    frame_id: int = Field(primary_key=True, foreign_key="frame.id")
    reader_key: str = Field(index=True, max_length=32)
    status: str = Field(description="read (OCR ran), static (no motion: skipped) or "
                                    "unreadable (the frame image is missing)")
    reads: int = Field(default=0, description="Grammar-fitting reads in the frame")
    scanned_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PlateSighting(SQLModel, table=True):
    """Reads of one plate over consecutive sampled frames of one camera, merged.

    ``plate`` is the vote winner, normalised (``AE1234KX``); ``reads`` maps each read
    text to its votes and summed confidence, ``alternatives`` holds per position the
    share of each character read there. The crop is a derived blob; ``crop_provenance``
    names its source frame, the models (file and SHA-256) and the parameters.
    """

    id: int | None = Field(default=None, primary_key=True)
    camera_id: str = Field(foreign_key="camera.id", index=True)
    plate: str = Field(index=True, max_length=16)
    plate_format: str = Field(max_length=16)
    confidence: float = Field(description="Share of votes for the plate times their mean "
                                          "OCR confidence, 0..1")
    votes: int
    frames: int = Field(description="Frames the plate was read in")
    first_seen_utc: datetime = Field(sa_type=UTCDateTime, index=True)
    last_seen_utc: datetime = Field(sa_type=UTCDateTime, index=True)
    first_frame_id: int = Field(foreign_key="frame.id")
    last_frame_id: int = Field(foreign_key="frame.id")
    best_frame_id: int = Field(foreign_key="frame.id", index=True)
    segment_id: int = Field(foreign_key="segment.id")
    offset_in_segment_s: float
    day_phase: str = Field(index=True, max_length=8)
    reads: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    alternatives: list[Any] = Field(default_factory=list,
                                    sa_column=Column(JSON, nullable=False))
    best_confidence: float
    crop_sha256: str = Field(max_length=64)
    crop_provenance: dict[str, Any] = Field(default_factory=dict,
                                            sa_column=Column(JSON, nullable=False))
    reader_key: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WatchlistEntry(SQLModel, table=True):
    """A plate of interest, kept by an administrator, with a reason and an expiry."""

    id: int | None = Field(default=None, primary_key=True)
    plate: str = Field(unique=True, index=True, max_length=16)
    reason: str = Field(max_length=500)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    added_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PlateEvent(SQLModel, table=True):
    """A sighting of a listed plate, raised after the fact when its footage was read."""

    __table_args__ = (UniqueConstraint("watch_id", "sighting_id"),)

    id: int | None = Field(default=None, primary_key=True)
    watch_id: int = Field(foreign_key="watchlistentry.id", index=True)
    sighting_id: int = Field(foreign_key="platesighting.id", index=True)
    plate: str = Field(index=True, max_length=16)
    camera_id: str = Field(foreign_key="camera.id", index=True)
    seen_at_utc: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(max_length=500)
    raised_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
