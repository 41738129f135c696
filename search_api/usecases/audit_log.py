"""Use cases: read, verify and export the tamper-evident audit log, and its checkpoints.

Verifying writes a ``verify`` entry (``target="audit_log", ok, first_broken_seq``),
exporting an ``audit_export`` entry (``format, entries, start, end``), browsing entries
an ``audit_read`` entry (``what="events"``, the filter as ``where``, the page and how
many matched) and reading the checkpoints one with ``what="checkpoints"``, each after
the work it records and in its transaction (a page never lists its own entry). Every
time range is [start, end) in zone-aware times, checked once by ``check_time_range``.

``record_refusal`` is what the API writes when it answers a signed-in user 403 or 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from evidence.audit import (
    AuditVerification,
    CheckpointRecord,
    checkpoint_document,
    export_checkpoints,
)
from evidence.audit_export import export_audit
from evidence.keys import known_certificates
from evidence.report_text import DEFAULT_LANGUAGE, check_language
from search_api.audit import AuditAction, sign_checkpoint_now, verify_installation_audit
from search_api.usecases.context import UseCaseContext
from storage.errors import InvalidInputError
from storage.models.access import AuditEvent
from storage.permissions import Permission
from storage.types import supported_utc

MAX_PAGE = 500
MAX_PATH_CHARS = 200  # of a refused request's path, as recorded
MAX_REASON_CHARS = 300
REFUSALS = {403: AuditAction.ACCESS_DENIED, 404: AuditAction.NOT_FOUND}
"""The answers to a signed-in user that leave an entry, so that probing leaves a trace."""


def check_time_range(start: datetime | None, end: datetime | None) -> None:
    """Raises ``InvalidInputError`` for a time without a zone, one outside the supported
    years (``storage.types.SUPPORTED_YEARS``) or a range that ends first."""
    if (start is not None and start.tzinfo is None) or (end is not None and end.tzinfo is None):
        raise InvalidInputError("Give times with a zone, e.g. 2026-11-25T10:00:00Z.")
    for name, value in (("from", start), ("to", end)):
        if value is not None:
            supported_utc(value, name=name)
    if start is not None and end is not None and end <= start:
        raise InvalidInputError("The 'to' time must be after the 'from' time.")


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list: [start, end), one actor, one action (None: any)."""

    start: datetime | None = None
    end: datetime | None = None
    actor: str | None = None
    action: str | None = None


@dataclass(frozen=True)
class AuditEventPage:
    total: int
    items: list[AuditEvent]


def list_audit_events(ctx: UseCaseContext, *, where: AuditFilter, limit: int = 100,
                      offset: int = 0) -> AuditEventPage:
    """Entries newest first, with the number that match ``where``.

    Raises ``PermissionDeniedError`` unless the actor reads the audit log and
    ``InvalidInputError`` for a bad time range or page.
    """
    ctx.require(Permission.READ_AUDIT)
    check_time_range(where.start, where.end)
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInputError(f"Pages hold 1 to {MAX_PAGE} entries from an offset >= 0.")
    query = select(AuditEvent)
    if where.start is not None:
        query = query.where(col(AuditEvent.occurred_at) >= where.start)
    if where.end is not None:
        query = query.where(col(AuditEvent.occurred_at) < where.end)
    if where.actor is not None:
        query = query.where(col(AuditEvent.actor) == where.actor)
    if where.action is not None:
        query = query.where(col(AuditEvent.action) == where.action)
    total = ctx.session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = list(ctx.session.exec(query.order_by(col(AuditEvent.seq).desc())
                                 .offset(offset).limit(limit)).all())
    ctx.audit(AuditAction.AUDIT_READ, what="events",
              where={"from": where.start, "to": where.end, "actor": where.actor,
                     "action": where.action},
              limit=limit, offset=offset, total=int(total), returned=len(rows))
    ctx.commit()
    return AuditEventPage(total=int(total), items=rows)


def verify_audit_log(ctx: UseCaseContext, *,
                     exported: Sequence[CheckpointRecord] = ()) -> AuditVerification:
    """Recompute the hash chain and checkpoints, also against the copies kept outside the
    database (the ``OKO_AUDIT_CHECKPOINT_LOG`` file when set, and ``exported``), and audit
    the outcome.

    Returns the report whatever it found (``report.raise_for_failure()`` turns a broken
    chain into ``AuditChainBrokenError``); raises ``PermissionDeniedError`` unless the
    actor reads the audit log, ``StorageError`` when the checkpoint log is unreadable.
    """
    ctx.require(Permission.READ_AUDIT)
    report = verify_installation_audit(ctx.session, state=ctx.state, exported=exported)
    ctx.audit(AuditAction.VERIFY, target="audit_log", ok=report.ok,
              first_broken_seq=report.first_broken_seq)
    ctx.commit()
    return report


def export_audit_log(ctx: UseCaseContext, *, start: datetime | None, end: datetime | None,
                     out: Path, lang: str = DEFAULT_LANGUAGE) -> int:
    """Write the entries in [start, end) to ``out`` (.pdf report or .jsonl); returns the count.

    The PDF, in ``lang`` (uk by default, or en), states the chain's verification result.
    Raises ``PermissionDeniedError`` unless the actor reads the audit log,
    ``InvalidInputError`` for a bad range, file type or language, and ``StorageError``
    when ``out`` cannot be written.
    """
    ctx.require(Permission.READ_AUDIT)
    check_time_range(start, end)
    check_language(lang)
    count = export_audit(ctx.session, start=start, end=end, out=out,
                         verification=verify_installation_audit(ctx.session, state=ctx.state),
                         organisation=ctx.settings.organisation, lang=lang)
    ctx.audit(AuditAction.AUDIT_EXPORT, format=out.suffix.lower().lstrip("."), entries=count,
              start=start, end=end, lang=lang)
    ctx.commit()
    return count


def checkpoint_file(ctx: UseCaseContext) -> dict[str, Any]:
    """Every signed checkpoint and the certificates that signed them, as one document to
    keep outside the database. Raises ``PermissionDeniedError`` unless the actor reads
    the audit log."""
    ctx.require(Permission.READ_AUDIT)
    document = checkpoint_document(ctx.session,
                                   certificates=known_certificates(ctx.settings.keys_dir))
    ctx.audit(AuditAction.AUDIT_READ, what="checkpoints",
              checkpoints=len(document["checkpoints"]))
    ctx.commit()
    return document


def export_checkpoint_file(ctx: UseCaseContext, *, out: Path, sign_now: bool = False) -> int:
    """Write ``checkpoint_file`` to ``out``, first signing the current head if ``sign_now``;
    returns the number of checkpoints.

    Raises ``PermissionDeniedError`` unless the actor reads the audit log,
    ``ConfigurationError`` when ``sign_now`` finds no usable signing key, and
    ``StorageError`` when ``out`` (or, for a new checkpoint, the checkpoint log) cannot
    be written.
    """
    ctx.require(Permission.READ_AUDIT)
    if sign_now:
        sign_checkpoint_now(ctx.session, state=ctx.state)
    count = export_checkpoints(ctx.session, out=out,
                               certificates=known_certificates(ctx.settings.keys_dir))
    ctx.commit()
    return count


def record_refusal(ctx: UseCaseContext, *, status: int, method: str, path: str,
                   reason: str) -> None:
    """Record that the actor was answered ``status`` (403 ``access_denied``, 404
    ``not_found``) for ``method path``, with the answer's sentence, and commit.

    Runs in its own transaction: the refused request's was rolled back. Raises
    ``ValueError`` for a status that is not in ``REFUSALS``.
    """
    if status not in REFUSALS:
        raise ValueError(f"HTTP {status} is not a refusal the audit log records.")
    ctx.audit(REFUSALS[status], status=status, method=method[:16],
              path=path[:MAX_PATH_CHARS], reason=reason[:MAX_REASON_CHARS])
    ctx.commit()


__all__ = [
    "REFUSALS",
    "AuditEventPage",
    "AuditFilter",
    "check_time_range",
    "checkpoint_file",
    "export_audit_log",
    "export_checkpoint_file",
    "list_audit_events",
    "record_refusal",
    "verify_audit_log",
]
