"""The audit log for auditors: browse entries, verify the chain, export, checkpoints."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from search_api.deps import UseCaseDep, requires
from search_api.usecases.audit_log import (
    AuditFilter,
    checkpoint_file,
    export_audit_log,
    list_audit_events,
    verify_audit_log,
)
from storage.permissions import Permission

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
    warnings: list[str]


class CheckpointFilePublic(BaseModel):
    """Save this document outside the database; ``oko audit verify --checkpoints`` reads it."""

    format: str
    certificates_pem: list[str]
    checkpoints: list[dict[str, Any]]


@router.get("/events", response_model=AuditEventPage)
def list_events(
    ctx: UseCaseDep, start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    actor: str | None = None, action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditEventPage:
    """Newest first, filtered by time range, actor and action."""
    page = list_audit_events(ctx, where=AuditFilter(start=start, end=end, actor=actor,
                                                    action=action), limit=limit, offset=offset)
    return AuditEventPage(total=page.total, items=[AuditEventPublic.model_validate(
        r, from_attributes=True) for r in page.items])


@router.post("/verify", response_model=AuditVerificationPublic)
def verify_chain(ctx: UseCaseDep) -> AuditVerificationPublic:
    """Recompute the chain and checkpoints, against the checkpoint log outside the database
    when one is configured; names the first missing or altered entry."""
    report = verify_audit_log(ctx)
    return AuditVerificationPublic(
        ok=report.ok, summary=report.summary(), entries=report.entries,
        checkpoints=report.checkpoints, first_broken_seq=report.first_broken_seq,
        problems=[AuditProblemPublic(seq=p.seq, reason=p.reason) for p in report.problems],
        warnings=report.warnings)


@router.get("/checkpoints", response_model=CheckpointFilePublic)
def export_checkpoint_file(ctx: UseCaseDep) -> CheckpointFilePublic:
    return CheckpointFilePublic(**checkpoint_file(ctx))


@router.get("/export", response_class=Response, response_model=None, responses={
    200: {"content": {"application/pdf": {}, "application/x-ndjson": {}}}})
def export_events(
    ctx: UseCaseDep,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    report_format: Annotated[Literal["pdf", "jsonl"], Query(alias="format")] = "pdf",
    lang: Annotated[Literal["uk", "en"], Query()] = "uk",
) -> Response:
    """The auditor's report for [from, to) as a PDF (Ukrainian, or English) or JSON Lines."""
    out = ctx.settings.tmp_dir / f"audit-{secrets.token_hex(8)}.{report_format}"
    try:
        export_audit_log(ctx, start=start, end=end, out=out, lang=lang)
        content = out.read_bytes()
    finally:
        out.unlink(missing_ok=True)
    media_type = "application/pdf" if report_format == "pdf" else "application/x-ndjson"
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="oko-audit.{report_format}"'})
