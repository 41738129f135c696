"""Users, roles and agencies (access control); audit tables live here too."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    INVESTIGATOR = "investigator"
    SUPERVISOR = "supervisor"
    PROSECUTOR = "prosecutor"
    AUDITOR = "auditor"


class UserBase(SQLModel):
    """Fields an admin supplies for a user."""

    username: str = Field(unique=True, index=True, max_length=64)
    full_name: str = ""
    agency: str = Field(index=True)
    role: Role


class User(UserBase, table=True):
    """A person who signs in; every user belongs to one agency."""

    id: int | None = Field(default=None, primary_key=True)
    password_hash: str
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    tokens_valid_after: datetime | None = Field(
        default=None, sa_type=UTCDateTime,
        description="Tokens issued before this (a password reset, a disable) are refused")


class UserCreate(UserBase):
    """An admin creates a user with an initial password."""

    password: str = Field(min_length=1, max_length=1024)


class UserUpdate(SQLModel):
    """Any subset of role, disabled flag and password."""

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)


class UserPublic(UserBase):
    """A user as the API shows it (never the password hash)."""

    id: int
    disabled: bool
    created_at: datetime


class AuditEvent(SQLModel, table=True):
    """One entry of the hash-chained audit log; rows are only ever appended.

    ``entry_hash`` covers every other column plus ``prev_hash``; ``mac`` is an HMAC of
    ``entry_hash`` under a key kept in the data dir, so a forged row needs the file too.
    """

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str = Field(index=True)
    agency: str = ""
    ip: str = ""
    action: str = Field(index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)
    mac: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The single row writers lock to serialise appends (the chain's current end)."""

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = 0
    entry_hash: str = Field(default="0" * 64, max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement "the log had ``entry_count`` entries ending in ``head_hash``"."""

    id: int | None = Field(default=None, primary_key=True)
    entry_count: int = Field(unique=True, index=True)
    head_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    signature: str = Field(description="Base64 signature over the canonical checkpoint JSON")
    signer_fingerprint: str = Field(max_length=64)


class LoginAttempt(SQLModel, table=True):
    """Every login try that was let through, counted for the rate limits.

    A try is stored as failed before its password is checked and marked succeeded after,
    so parallel tries count against each other. Rows older than the window are pruned.
    """

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, max_length=64)
    ip: str = Field(index=True)
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    succeeded: bool = False


class LoginRefusal(SQLModel, table=True):
    """Tries refused by a rate limit, counted per limit and subject, audited once a window.

    ``scope`` is the limit that refused (``user_address``, ``account``, ``address``) and
    ``subject`` what it counts (``name|ip``, the name, the address).
    """

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=16)
    subject: str = Field(index=True, max_length=160)
    first_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    last_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    refused: int = 1


class RevokedToken(SQLModel, table=True):
    """Tokens ended by logout before they expire."""

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
