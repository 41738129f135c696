"""Users, roles and agencies (access control); audit tables live here too."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    INVESTIGATOR = "investigator"
    SUPERVISOR = "supervisor"
    PROSECUTOR = "prosecutor"
    AUDITOR = "auditor"


class User(SQLModel, table=True):
    """A person who signs in; every user belongs to one agency."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    full_name: str = ""
    agency: str = Field(index=True)
    role: Role
    password_hash: str
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
