"""The audit log's vocabulary and its one writer, used by every use case.

``record_event`` appends an entry in the caller's transaction (signing a checkpoint when
one is due), so an action and its entry commit together or not at all.

With ``OKO_AUDIT_CHECKPOINT_LOG`` set, each checkpoint signed in a transaction is also
appended to that file, in this order:

1. when it is signed (before the commit) the log is opened for appending; if it cannot
   be, ``StorageError`` fails the action, which is rolled back;
2. right after the transaction commits, its line is written and fsynced. A checkpoint
   rolled back (with its transaction or a savepoint) is never written, so the log never
   names an entry the database did not keep.

A crash or a failed write between the commit and the append loses that one line from
the log; the failure is logged at ERROR with the line, and verification reports the log
as behind (a warning), never as tampering. A new, empty log first receives every
checkpoint the database already has.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from evidence.audit import (
    AuditProblem,
    AuditVerification,
    CheckpointPolicy,
    CheckpointRecord,
    append_audit_event,
    append_checkpoint_lines,
    checkpoint_log_line,
    create_checkpoint,
    open_checkpoint_log,
    read_checkpoint_log,
    verify_audit_chain,
)
from evidence.audit_syslog import SyslogAddress, send_checkpoint_lines
from evidence.keys import known_certificates
from search_api.state import AppState
from storage.models.access import AuditCheckpoint, AuditEvent

logger = logging.getLogger(__name__)
NO_CHECKPOINT_LOG = ("No checkpoint log outside the database is set (OKO_AUDIT_CHECKPOINT_LOG):"
                     " without a copy, deleting the newest entries with their checkpoints"
                     " goes unnoticed.")
_PENDING = "oko.audit.pending_checkpoint_copies"
_PENDING_STAMPS = "oko.audit.pending_checkpoint_timestamps"


def checkpoint_timestamps_dir(state: AppState) -> Path:
    """Where each checkpoint's RFC 3161 token is kept (``evidence.audit_timestamp``)."""
    return state.settings.home / "audit-timestamps"


def _stamp_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING_STAMPS, None)
    if pending is None:
        return
    # the RFC 3161 stack loads only where a TSA is configured, not on every command
    from evidence.audit_timestamp import timestamp_checkpoint_or_log
    from evidence.timestamp import authority_from

    state, rows = pending
    authority = authority_from(state.settings.tsa_url, state.settings.tsa_ca_cert,
                               timeout_seconds=state.settings.tsa_timeout_seconds)
    for row, entry_count, signature in rows:
        if authority is not None and inspect(row).persistent:
            timestamp_checkpoint_or_log(entry_count=entry_count, signature_b64=signature,
                                        authority=authority,
                                        directory=checkpoint_timestamps_dir(state))


def _drop_uncommitted_stamps(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING_STAMPS, None)


def timestamp_checkpoint_after_commit(session: Session, *, state: AppState,
                                      checkpoint: AuditCheckpoint) -> None:
    """With ``OKO_TSA_URL``, fetch the checkpoint's token once ``session`` commits (never
    inside the write transaction; a TSA that is down is logged, not raised)."""
    if not state.settings.tsa_url:
        return
    _state, rows = session.info.setdefault(_PENDING_STAMPS, (state, []))
    rows.append((checkpoint, checkpoint.entry_count, checkpoint.signature))
    if not event.contains(session, "after_commit", _stamp_after_commit):
        event.listen(session, "after_commit", _stamp_after_commit)
        event.listen(session, "after_transaction_end", _drop_uncommitted_stamps)


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
    WATCHLIST_CHANGE = "watchlist_change"
    PLATE_ALERT = "plate_alert"
    RETENTION_DELETE = "retention_delete"
    PLATE_CROPS_EXPIRED = "plate_crops_expired"
    DISK_ALERT = "disk_alert"


class _InstallationSigner:
    """Loads the installation key only when a checkpoint is actually due."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    def sign(self, data: bytes) -> bytes:
        return self._state.signer().sign(data)

    @property
    def fingerprint_sha256(self) -> str:
        return self._state.signer().fingerprint_sha256


@dataclass
class _PendingCopies:
    """Checkpoints signed in one transaction, to copy out once it commits: appended to the
    log file (``path``/``fd``) and sent to ``syslog``, each where set."""

    path: Path | None
    fd: int | None
    new_file: bool
    syslog: SyslogAddress | None
    lines: list[tuple[AuditCheckpoint, bytes]] = field(default_factory=list)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def _append_to_file(pending: _PendingCopies, data: bytes) -> None:
    if pending.fd is None or pending.path is None:
        return
    try:
        append_checkpoint_lines(pending.fd, data)
        if pending.new_file:
            directory = os.open(pending.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    except OSError as exc:  # committed already: say so loudly, verification sees the gap
        logger.error("Could not append committed audit checkpoints to %s (%s); the log is"
                     " now behind the database. Lost lines: %s", pending.path, exc,
                     data.decode())


def _send_to_syslog(pending: _PendingCopies, lines: list[bytes]) -> None:
    if pending.syslog is None:
        return
    try:
        send_checkpoint_lines(pending.syslog, lines)
    except OSError as exc:
        logger.error("Could not send committed audit checkpoints to syslog %s (%s). Lost"
                     " lines: %s", pending.syslog.target, exc, b"".join(lines).decode())


def _append_after_commit(session: Session) -> None:
    pending: _PendingCopies | None = session.info.pop(_PENDING, None)
    if pending is None:
        return
    # a checkpoint whose savepoint was rolled back is no longer persistent
    lines = [line for row, line in pending.lines if inspect(row).persistent]
    try:
        _append_to_file(pending, b"".join(lines))
        _send_to_syslog(pending, lines)
    finally:
        pending.close()


def _drop_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended without a commit
        pending: _PendingCopies | None = session.info.pop(_PENDING, None)
        if pending is not None:
            pending.close()


def copy_checkpoint_outside(session: Session, *, state: AppState,
                            checkpoint: AuditCheckpoint) -> None:
    """Stage ``checkpoint`` for the checkpoint log and syslog, copied once ``session``
    commits; nothing when neither ``OKO_AUDIT_CHECKPOINT_LOG`` nor
    ``OKO_AUDIT_CHECKPOINT_SYSLOG`` is set.

    Raises ``StorageError`` (so the action fails and rolls back) when the log cannot be
    opened for appending, ``ConfigurationError`` for a malformed syslog address.
    """
    path = state.settings.audit_checkpoint_log
    syslog_setting = state.settings.audit_checkpoint_syslog
    if path is None and not syslog_setting:
        return
    pending: _PendingCopies | None = session.info.get(_PENDING)
    if pending is None:
        syslog = SyslogAddress.parse(syslog_setting) if syslog_setting else None
        fd = open_checkpoint_log(path) if path is not None else None
        pending = _PendingCopies(path=path, fd=fd, syslog=syslog,
                                 new_file=fd is not None and os.fstat(fd).st_size == 0)
        if pending.new_file:  # a new log starts with what the database already signed
            older = session.exec(select(AuditCheckpoint)
                                 .where(col(AuditCheckpoint.entry_count)
                                        != checkpoint.entry_count)
                                 .order_by(col(AuditCheckpoint.entry_count))).all()
            pending.lines += [(row, checkpoint_log_line(row)) for row in older]
        session.info[_PENDING] = pending
        if not event.contains(session, "after_commit", _append_after_commit):
            event.listen(session, "after_commit", _append_after_commit)
            event.listen(session, "after_transaction_end", _drop_uncommitted)
    pending.lines.append((checkpoint, checkpoint_log_line(checkpoint)))


def record_event(session: Session, *, state: AppState, actor: str, agency: str, ip: str,
                 action: AuditAction, details: dict[str, Any]) -> AuditEvent:
    """Append one entry (signing a checkpoint when due, copied to the checkpoint log once
    the caller commits); flushes, the caller commits.

    Raises ``StorageError`` when a checkpoint is due and the checkpoint log cannot be
    opened for appending.
    """
    settings = state.settings

    def copy_outside(checkpoint: AuditCheckpoint) -> None:
        copy_checkpoint_outside(session, state=state, checkpoint=checkpoint)
        timestamp_checkpoint_after_commit(session, state=state, checkpoint=checkpoint)

    policy = CheckpointPolicy(signer=_InstallationSigner(state),
                              every_entries=settings.audit_checkpoint_entries,
                              every_minutes=settings.audit_checkpoint_minutes,
                              on_signed=copy_outside)
    return append_audit_event(session, actor=actor, agency=agency, ip=ip, action=action.value,
                              details=details, mac_key=state.audit_mac_key(),
                              checkpoints=policy)


def sign_checkpoint_now(session: Session, *, state: AppState) -> AuditCheckpoint | None:
    """Sign the current head (None if empty or already signed), copied like any other."""
    checkpoint = create_checkpoint(session, signer=state.signer())
    if checkpoint is not None:
        copy_checkpoint_outside(session, state=state, checkpoint=checkpoint)
        timestamp_checkpoint_after_commit(session, state=state, checkpoint=checkpoint)
    return checkpoint


def verify_installation_audit(session: Session, *, state: AppState,
                              exported: Sequence[CheckpointRecord] = ()) -> AuditVerification:
    """Verify the chain with this installation's audit key and every certificate it used,
    against the checkpoint log (when configured) and ``exported`` copies.

    Raises ``StorageError`` when the configured checkpoint log exists but is unreadable.
    """
    log_path = state.settings.audit_checkpoint_log
    report = verify_audit_chain(
        session, mac_key=state.audit_mac_key(),
        certificates=known_certificates(state.settings.keys_dir),
        exported_checkpoints=exported,
        checkpoint_log=read_checkpoint_log(log_path) if log_path is not None else None)
    if log_path is None:
        report.warnings.append(NO_CHECKPOINT_LOG)
    _check_timestamps(session, state, report)
    return report


def _check_timestamps(session: Session, state: AppState, report: AuditVerification) -> None:
    """Each checkpoint's token (``evidence.audit_timestamp``) against OKO_TSA_CA_CERT."""
    from oko_verify.trust import TrustAnchors

    from evidence.audit_timestamp import check_checkpoint_timestamps
    from evidence.timestamp import authority_from

    authority = authority_from(state.settings.tsa_url, state.settings.tsa_ca_cert,
                               timeout_seconds=state.settings.tsa_timeout_seconds)
    directory = checkpoint_timestamps_dir(state)
    if authority is None and not directory.is_dir():
        return
    rows = session.exec(select(AuditCheckpoint)).all()
    anchors = TrustAnchors(certificates=authority.ca_certificates if authority else ())
    found = check_checkpoint_timestamps([(r.entry_count, r.signature) for r in rows],
                                        directory, anchors)
    report.problems += [AuditProblem(None, problem) for problem in found.problems]
    report.trusted_times = found.times


__all__ = ["AuditAction", "copy_checkpoint_outside", "record_event", "sign_checkpoint_now",
           "verify_installation_audit"]

