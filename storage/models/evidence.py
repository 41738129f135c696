"""Tables for the evidence domain: cases, their clips and shares, custody log, exports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class Case(SQLModel, table=True):
    """An investigation that collects clips and is exported as a signed bundle."""

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, index=True, max_length=64)
    title: str
    legal_basis: str
    # No FK to user: the user table arrives in a later migration (0004).
    investigator_id: int = Field(index=True)
    agency: str = Field(index=True)
    status: str = Field(default="open", description="open or closed")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CaseShare(SQLModel, table=True):
    """A user (e.g. a prosecutor) the case's investigator shared the case with."""

    __table_args__ = (UniqueConstraint("case_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    user_id: int = Field(index=True)
    shared_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CaseClip(SQLModel, table=True):
    """A camera and a time range in a case; its original is under evidence lock."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    camera_id: str = Field(foreign_key="camera.id", index=True)
    original_id: int = Field(foreign_key="original.id", index=True)
    start_utc: datetime = Field(sa_type=UTCDateTime)
    end_utc: datetime = Field(sa_type=UTCDateTime)
    note: str = ""
    source: str = Field(default="manual", description="manual or search")
    provenance: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False),
        description="The search moment's provenance (query, model, weights hash, score)",
    )
    added_by_id: int | None = None
    added_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustodyChainHead(SQLModel, table=True):
    """The last entry of one custody chain; writers lock this row to append."""

    chain: str = Field(primary_key=True, max_length=64)
    last_seq: int
    last_hash: str = Field(max_length=64)


class CustodyEntry(SQLModel, table=True):
    """One hash-chained custody action; ``prev_hash`` is the previous entry's hash."""

    __table_args__ = (UniqueConstraint("chain", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(index=True, max_length=64, description="case:<id> or original:<id>")
    seq: int
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(unique=True, max_length=64)
    action: str = Field(index=True)
    actor: str
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    original_id: int | None = Field(default=None, foreign_key="original.id", index=True)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ExportJob(SQLModel, table=True):
    """One export of a case; the row is the source of truth for progress."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    requested_by_id: int | None = None
    status: str = Field(default="queued", index=True, description="queued, running, done, failed")
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    bundle_path: str | None = None
    bundle_sha256: str | None = Field(default=None, max_length=64)
    tag_manifest_sha256: str | None = Field(default=None, max_length=64)
    size_bytes: int | None = None
    worker: str | None = Field(default=None, description="host:pid of the process that "
                               "claimed it, so a worker can tell when that process died")
    no_timestamp: bool = Field(default=False, sa_column_kwargs={"server_default": "0"},
                               description="the requester declined a trusted timestamp")
    lang: str = Field(default="uk", max_length=8, sa_column_kwargs={"server_default": "uk"},
                      description="the report's language: uk (Ukrainian) or en (English)")
    redact: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""},
                        description="a disclosure export's masks (faces,plates); empty for "
                        "a full export")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
