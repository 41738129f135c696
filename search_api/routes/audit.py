"""The audit log for auditors: browse entries, verify the chain, export, checkpoints."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import col, select

from evidence.audit import checkpoint_document, export_audit
from evidence.keys import known_certificates
from search_api.audit import AuditAction, record, verify_installation_audit
from search_api.deps import CurrentUser, SessionDep, StateDep, requires
from search_api.policy import Permission
from storage.errors import InvalidInputError
from storage.models.access import AuditEvent

router = APIRouter(prefix="/audit", tags=["audit"],
                   dependencies=[Depends(requires(Permission.READ_AUDIT))])


class AuditEventPublic(BaseModel):
    seq: int
    occurred_at: datetime
    actor: str
    agency: str
    ip: str
    action: str
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str


class AuditEventPage(BaseModel):
    total: int
    items: list[AuditEventPublic]


class AuditProblemPublic(BaseModel):
    seq: int | None
    reason: str


class AuditVerificationPublic(BaseModel):
    ok: bool
    summary: str
    entries: int
    checkpoints: int
    first_broken_seq: int | None
    problems: list[AuditProblemPublic]


class CheckpointFilePublic(BaseModel):
    """Save this document outside the database; ``oko audit verify --checkpoints`` reads it."""

    format: str
    certificates_pem: list[str]
    checkpoints: list[dict[str, Any]]


def _check_range(start: datetime | None, end: datetime | None) -> None:
    if (start is not None and start.tzinfo is None) or (end is not None and end.tzinfo is None):
        raise InvalidInputError("Give times with a zone, e.g. 2026-11-25T10:00:00Z.")
    if start is not None and end is not None and end <= start:
        raise InvalidInputError("The 'to' time must be after the 'from' time.")


@router.get("/events", response_model=AuditEventPage)
def list_events(
    session: SessionDep, start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    actor: str | None = None, action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditEventPage:
    """Newest first, filtered by time range, actor and action."""
    _check_range(start, end)
    query = select(AuditEvent)
    if start is not None:
        query = query.where(col(AuditEvent.occurred_at) >= start)
    if end is not None:
        query = query.where(col(AuditEvent.occurred_at) < end)
    if actor is not None:
        query = query.where(col(AuditEvent.actor) == actor)
    if action is not None:
        query = query.where(col(AuditEvent.action) == action)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(AuditEvent.seq).desc())
                        .offset(offset).limit(limit)).all()
    return AuditEventPage(total=total, items=[AuditEventPublic.model_validate(
        r, from_attributes=True) for r in rows])


@router.post("/verify", response_model=AuditVerificationPublic)
def verify_chain(user: CurrentUser, request: Request, session: SessionDep,
                 state: StateDep) -> AuditVerificationPublic:
    """Recompute the chain and checkpoints; names the first broken entry."""
    report = verify_installation_audit(session, state=state)
    record(session, request, user, AuditAction.VERIFY, target="audit_log", ok=report.ok,
           first_broken_seq=report.first_broken_seq)
    session.commit()
    return AuditVerificationPublic(
        ok=report.ok, summary=report.summary(), entries=report.entries,
        checkpoints=report.checkpoints, first_broken_seq=report.first_broken_seq,
        problems=[AuditProblemPublic(seq=p.seq, reason=p.reason) for p in report.problems])


@router.get("/checkpoints", response_model=CheckpointFilePublic)
def export_checkpoint_file(session: SessionDep, state: StateDep) -> CheckpointFilePublic:
    return CheckpointFilePublic(**checkpoint_document(
        session, certificates=known_certificates(state.settings.keys_dir)))


@router.get("/export", response_class=Response, response_model=None, responses={
    200: {"content": {"application/pdf": {}, "application/x-ndjson": {}}}})
def export_events(
    user: CurrentUser, request: Request, session: SessionDep, state: StateDep,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    report_format: Annotated[Literal["pdf", "jsonl"], Query(alias="format")] = "pdf",
) -> Response:
    """The auditor's report for [from, to) as a PDF or JSON Lines download."""
    _check_range(start, end)
    out = state.settings.tmp_dir / f"audit-{secrets.token_hex(8)}.{report_format}"
    try:
        count = export_audit(session, start=start, end=end, out=out,
                             verification=verify_installation_audit(session, state=state),
                             title=f"{state.settings.organisation}: audit report")
        content = out.read_bytes()
    finally:
        out.unlink(missing_ok=True)
    record(session, request, user, AuditAction.AUDIT_EXPORT, format=report_format, entries=count,
           start=start, end=end)
    session.commit()
    media_type = "application/pdf" if report_format == "pdf" else "application/x-ndjson"
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="oko-audit.{report_format}"'})
