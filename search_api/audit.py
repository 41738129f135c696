"""The audit log's vocabulary and its one writer, used by every use case.

``record_event`` appends an entry in the caller's transaction (signing a checkpoint when
one is due), so an action and its entry commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlmodel import Session

from evidence.audit import (
    AuditVerification,
    CheckpointPolicy,
    CheckpointRecord,
    append_audit_event,
    verify_audit_chain,
)
from evidence.keys import known_certificates
from search_api.state import AppState
from storage.models.access import AuditEvent


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
    MODEL_CHANGE = "model_change"
    KEY_CHANGE = "key_change"
    AUDIT_READ = "audit_read"
    AUDIT_EXPORT = "audit_export"
    CASE_READ = "case_read"
    ACCESS_DENIED = "access_denied"
    NOT_FOUND = "not_found"


class _InstallationSigner:
    """Loads the installation key only when a checkpoint is actually due."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    def sign(self, data: bytes) -> bytes:
        return self._state.signer().sign(data)

    @property
    def fingerprint_sha256(self) -> str:
        return self._state.signer().fingerprint_sha256


def record_event(session: Session, *, state: AppState, actor: str, agency: str, ip: str,
                 action: AuditAction, details: dict[str, Any]) -> AuditEvent:
    """Append one entry (signing a checkpoint when due); flushes, the caller commits."""
    settings = state.settings
    policy = CheckpointPolicy(signer=_InstallationSigner(state),
                              every_entries=settings.audit_checkpoint_entries,
                              every_minutes=settings.audit_checkpoint_minutes)
    return append_audit_event(session, actor=actor, agency=agency, ip=ip, action=action.value,
                              details=details, mac_key=state.audit_mac_key(),
                              checkpoints=policy)


def verify_installation_audit(session: Session, *, state: AppState,
                              exported: Sequence[CheckpointRecord] = ()) -> AuditVerification:
    """Verify the chain with this installation's audit key and every certificate it used."""
    return verify_audit_chain(session, mac_key=state.audit_mac_key(),
                              certificates=known_certificates(state.settings.keys_dir),
                              exported_checkpoints=exported)


__all__ = ["AuditAction", "record_event", "verify_installation_audit"]

