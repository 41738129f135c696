"""Recording audit entries from routes and CLI commands, in the caller's transaction.

Routes call ``record(session, request, user, AuditAction.X, **details)`` just before
they commit; CLI commands call ``record_event(..., ip="cli")``.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session

from evidence.audit import (
    AuditVerification,
    CheckpointPolicy,
    CheckpointRecord,
    append_audit_event,
    load_audit_mac_key,
    verify_audit_chain,
)
from evidence.keys import Signer, known_certificates, load_signer
from search_api.deps import CurrentUser, SessionDep, get_state
from search_api.state import AppState
from storage.models.access import AuditEvent, User


class AuditAction(StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    SEARCH = "search"
    VIEW_FRAME = "view_frame"
    VIEW_VIDEO = "view_video"
    CASE_CHANGE = "case_change"
    EXPORT = "export"
    DOWNLOAD = "download"
    VERIFY = "verify"
    USER_CHANGE = "user_change"
    CAMERA_CHANGE = "camera_change"
    INGEST = "ingest"
    AUDIT_READ = "audit_read"
    AUDIT_EXPORT = "audit_export"


class _InstallationSigner:
    """Loads the installation key only when a checkpoint is actually due."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    def _signer(self) -> Signer:
        signer = self._state.extras.get("installation_signer")
        if signer is None:
            settings = self._state.settings
            signer = load_signer(keys_dir=settings.keys_dir, passphrase=settings.key_passphrase)
            self._state.extras["installation_signer"] = signer
        assert isinstance(signer, Signer)
        return signer

    def sign(self, data: bytes) -> bytes:
        return self._signer().sign(data)

    @property
    def fingerprint_sha256(self) -> str:
        return self._signer().fingerprint_sha256


def audit_mac_key(state: AppState) -> bytes:
    key = state.extras.get("audit_mac_key")
    if key is None:
        key = state.extras["audit_mac_key"] = load_audit_mac_key(state.settings.keys_dir)
    assert isinstance(key, bytes)
    return key


def record_event(session: Session, *, state: AppState, actor: str, agency: str, ip: str,
                 action: AuditAction, details: dict[str, Any]) -> AuditEvent:
    """Append one entry (signing a checkpoint when due); flushes, the caller commits."""
    settings = state.settings
    policy = CheckpointPolicy(signer=_InstallationSigner(state),
                              every_entries=settings.audit_checkpoint_entries,
                              every_minutes=settings.audit_checkpoint_minutes)
    return append_audit_event(session, actor=actor, agency=agency, ip=ip, action=action.value,
                              details=details, mac_key=audit_mac_key(state), checkpoints=policy)


def cli_actor() -> str:
    """How CLI commands appear in the audit log: ``cli:<os user>``."""
    return f"cli:{getpass.getuser()}"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def record(session: Session, request: Request, user: User | str, action: AuditAction,
           **details: Any) -> AuditEvent:
    """Record ``action`` by ``user`` (or an attempted username) from this request."""
    state = get_state(request)
    actor = user.username if isinstance(user, User) else user
    agency = user.agency if isinstance(user, User) else ""
    return record_event(session, state=state, actor=actor, agency=agency,
                        ip=client_ip(request), action=action, details=details)




@dataclass(frozen=True)
class AuditRecorder:
    """Records actions of this request's user, in this request's session (see ``AuditDep``)."""

    session: Session
    request: Request
    user: User

    def __call__(self, action: AuditAction, **details: Any) -> AuditEvent:
        return record(self.session, self.request, self.user, action, **details)


def get_audit_recorder(request: Request, session: SessionDep,
                       user: CurrentUser) -> AuditRecorder:
    return AuditRecorder(session=session, request=request, user=user)


AuditDep = Annotated[AuditRecorder, Depends(get_audit_recorder)]
"""Route parameter ``audit: AuditDep``; call ``audit(AuditAction.X, **details)`` before
committing, so the entry lands in the same transaction as the action."""


def verify_installation_audit(session: Session, *, state: AppState,
                              exported: Sequence[CheckpointRecord] = ()) -> AuditVerification:
    """Verify the chain with this installation's audit key and every certificate it used."""
    return verify_audit_chain(session, mac_key=audit_mac_key(state),
                              certificates=known_certificates(state.settings.keys_dir),
                              exported_checkpoints=exported)


__all__ = [
    "AuditAction",
    "AuditDep",
    "AuditRecorder",
    "audit_mac_key",
    "cli_actor",
    "client_ip",
    "get_audit_recorder",
    "record",
    "record_event",
    "verify_installation_audit",
]
