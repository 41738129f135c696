"""Tables for redacted disclosure copies: a clip's proposed redaction and its review.

A ``Redaction`` holds what the detectors proposed for one case clip (tracks with a box
on every frame they cover, the detectors' names and model hashes, the parameters) and
its state: ``queued`` and ``running`` while the worker detects (``worker``,
``progress_frames``), ``failed`` with its ``message`` when detection could not finish,
``proposed`` while it is reviewed, ``approved`` once a person signed it off.
Each ``RedactionDecision`` is one reviewer's act, with who, when and why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class Redaction(SQLModel, table=True):
    """A reviewable redaction of one case clip; evidence once approved."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    clip_id: int = Field(foreign_key="caseclip.id", index=True)
    status: str = Field(default="proposed", index=True, description="queued, running, "
                        "failed, proposed or approved")
    targets: str = Field(description="what was detected: faces, plates or faces,plates")
    style: str = Field(default="blur", description="blur or fill")
    mute_audio: bool = False
    source_clip_sha256: str = Field(max_length=64, description="the stream-copy clip "
                                    "the detectors ran on")
    width: int
    height: int
    fps: str = Field(description="frame rate as a fraction, e.g. 25/1")
    frame_count: int
    detectors: list[dict[str, Any]] = Field(default_factory=list,
                                            sa_column=Column(JSON, nullable=False))
    parameters: dict[str, Any] = Field(default_factory=dict,
                                       sa_column=Column(JSON, nullable=False))
    tracks: list[dict[str, Any]] = Field(default_factory=list,
                                         sa_column=Column(JSON, nullable=False))
    created_by: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    approved_by: str | None = None
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    worker: str | None = Field(default=None, description="host:pid of the process running "
                               "its detection")
    progress_frames: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    message: str = Field(default="", sa_column_kwargs={"server_default": ""},
                         description="why detection failed")
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RedactionDecision(SQLModel, table=True):
    """One review decision: exclude or include a track, a manual box, or approval."""

    id: int | None = Field(default=None, primary_key=True)
    redaction_id: int = Field(foreign_key="redaction.id", index=True)
    kind: str = Field(description="exclude_track, include_track, manual_box or approve")
    track_id: str | None = None
    box: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    reason: str = ""
    actor: str
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
