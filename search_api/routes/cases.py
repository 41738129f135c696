"""Routes for cases: the user's own and shared cases, clips, shares, exports, custody."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from evidence.cases import (
    add_clip,
    case_clips,
    cases_visible_to,
    create_case,
    receive_case,
    share_case,
    shared_user_ids,
    transfer_case,
    visible_case_ids,
)
from evidence.export_jobs import approve_export, get_export_job, request_export
from evidence.keys import known_certificates
from evidence.verify import TrustedCertificates, verify_bundle
from search_api.accounts import get_user_or_raise
from search_api.audit import AuditAction
from search_api.deps import MAX_DB_ID, AuditDep, CurrentUser, DbId, SessionDep, StateDep, requires
from search_api.policy import Permission, get_visible_camera_or_404
from search_api.routes.verify import VerificationPublic, receive_upload
from search_api.tasks import celery_for
from search_api.tasks.evidence import enqueue_export
from storage.custody import chain_entries
from storage.errors import ConflictError, NotFoundError
from storage.models.access import User
from storage.models.evidence import Case, ExportJob

router = APIRouter(tags=["cases"])


def load_case_for_user(case_id: DbId, session: SessionDep, user: CurrentUser) -> Case:
    """The case, if this user may see it; otherwise 404 exactly like a missing case."""
    case = session.get(Case, case_id)
    if case is None or case.id not in visible_case_ids(session, user=user):
        raise NotFoundError(f"Case {case_id} does not exist.")
    return case


CaseDep = Annotated[Case, Depends(load_case_for_user)]


class CaseCreate(BaseModel):
    number: str = Field(max_length=64)
    title: str
    legal_basis: str


class CasePublic(BaseModel):
    id: int
    number: str
    title: str
    legal_basis: str
    investigator_id: int
    agency: str
    status: str
    created_at: datetime
    shared_with: list[int]


class ClipCreate(BaseModel):
    camera_id: str
    start_utc: datetime
    end_utc: datetime
    note: str = ""
    search_provenance: dict[str, Any] | None = Field(
        default=None, description="The search moment's query, model, weights_sha256, score")


class ClipPublic(BaseModel):
    id: int
    camera_id: str
    original_id: int
    start_utc: datetime
    end_utc: datetime
    note: str
    source: str
    provenance: dict[str, Any]


class CustodyPublic(BaseModel):
    seq: int
    action: str
    actor: str
    recorded_at: datetime
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str


class CaseDetailPublic(CasePublic):
    clips: list[ClipPublic]
    custody: list[CustodyPublic]


class ShareCreate(BaseModel):
    username: str


class ExportJobPublic(BaseModel):
    id: int
    case_id: int
    status: str = Field(description="awaiting_approval, queued, running, done or failed")
    stage: str
    progress: float
    message: str
    bundle_sha256: str | None
    tag_manifest_sha256: str | None
    size_bytes: int | None
    created_at: datetime
    updated_at: datetime


class TransferCreate(BaseModel):
    recipient: str
    export_id: int = Field(ge=1, le=MAX_DB_ID)
    note: str = ""


def _case_public(session: Session, case: Case) -> CasePublic:
    return CasePublic(**case.model_dump(), shared_with=shared_user_ids(session, case=case))


def _custody(session: Session, case: Case) -> list[CustodyPublic]:
    return [CustodyPublic.model_validate(e, from_attributes=True)
            for e in chain_entries(session, f"case:{case.id}")]


@router.get("/cases", response_model=list[CasePublic],
            dependencies=[Depends(requires(Permission.READ_CASES))])
def read_cases(session: SessionDep, user: CurrentUser) -> list[CasePublic]:
    return [_case_public(session, c) for c in cases_visible_to(session, user=user)]


@router.post("/cases", response_model=CasePublic, status_code=status.HTTP_201_CREATED)
def create_case_route(body: CaseCreate, session: SessionDep, audit: AuditDep,
                      user: Annotated[User, Depends(requires(Permission.MANAGE_CASES))],
                      ) -> CasePublic:
    case = create_case(session, number=body.number, title=body.title,
                       legal_basis=body.legal_basis, investigator=user)
    audit(AuditAction.CASE_CHANGE, change="create", case_id=case.id, number=case.number)
    session.commit()
    return _case_public(session, case)


@router.get("/cases/{case_id}", response_model=CaseDetailPublic)
def read_case(case: CaseDep, session: SessionDep) -> CaseDetailPublic:
    clips = [ClipPublic.model_validate(c, from_attributes=True)
             for c in case_clips(session, case=case)]
    return CaseDetailPublic(**_case_public(session, case).model_dump(), clips=clips,
                            custody=_custody(session, case))


@router.post("/cases/{case_id}/clips", response_model=ClipPublic,
             status_code=status.HTTP_201_CREATED)
def add_clip_route(body: ClipCreate, case: CaseDep, session: SessionDep, audit: AuditDep,
                   user: Annotated[User, Depends(requires(Permission.MANAGE_CASES))],
                   ) -> ClipPublic:
    get_visible_camera_or_404(session, user, body.camera_id)
    clip = add_clip(session, case=case, camera_id=body.camera_id, start_utc=body.start_utc,
                    end_utc=body.end_utc, note=body.note, actor=user.username,
                    added_by_id=user.id, provenance=body.search_provenance)
    audit(AuditAction.CASE_CHANGE, change="add_clip", case_id=case.id, clip_id=clip.id,
          camera_id=body.camera_id, start_utc=body.start_utc, end_utc=body.end_utc)
    session.commit()
    return ClipPublic.model_validate(clip, from_attributes=True)


@router.post("/cases/{case_id}/shares", response_model=CasePublic)
def share_case_route(body: ShareCreate, case: CaseDep, session: SessionDep, audit: AuditDep,
                     _user: Annotated[User, Depends(requires(Permission.MANAGE_CASES))],
                     ) -> CasePublic:
    target = get_user_or_raise(session, username=body.username)
    share_case(session, case=case, user=target)
    audit(AuditAction.CASE_CHANGE, change="share", case_id=case.id, shared_with=target.username)
    session.commit()
    return _case_public(session, case)


@router.post("/cases/{case_id}/exports", response_model=ExportJobPublic,
             status_code=status.HTTP_202_ACCEPTED)
def start_export(case: CaseDep, session: SessionDep, state: StateDep, audit: AuditDep,
                 user: Annotated[User, Depends(requires(Permission.EXPORT))],
                 ) -> ExportJobPublic:
    needs_approval = state.settings.exports_need_approval
    job = request_export(session, case=case, requested_by=user, needs_approval=needs_approval)
    audit(AuditAction.EXPORT, change="request", case_id=case.id, export_id=job.id,
          needs_approval=needs_approval)
    session.commit()
    if not needs_approval:
        enqueue_export(celery_for(state), job.id or 0)
    return ExportJobPublic.model_validate(job, from_attributes=True)


@router.post("/cases/{case_id}/exports/{export_id}/approve", response_model=ExportJobPublic)
def approve_export_route(export_id: DbId, case: CaseDep, session: SessionDep, state: StateDep,
                         audit: AuditDep,
                         user: Annotated[User, Depends(requires(Permission.APPROVE_EXPORT))],
                         ) -> ExportJobPublic:
    job = approve_export(session, job=get_export_job(session, case=case, job_id=export_id),
                         approver=user)
    audit(AuditAction.EXPORT, change="approve", case_id=case.id, export_id=export_id)
    session.commit()
    enqueue_export(celery_for(state), export_id)
    return ExportJobPublic.model_validate(job, from_attributes=True)


@router.get("/cases/{case_id}/exports/{export_id}", response_model=ExportJobPublic)
def read_export(export_id: DbId, case: CaseDep, session: SessionDep) -> ExportJobPublic:
    job = get_export_job(session, case=case, job_id=export_id)
    return ExportJobPublic.model_validate(job, from_attributes=True)


def _finished_bundle(job: ExportJob) -> Path:
    if job.status != "done" or not job.bundle_path or not Path(job.bundle_path).is_file():
        raise ConflictError(f"Export {job.id} has no bundle yet (status {job.status}).")
    return Path(job.bundle_path)


@router.get("/cases/{case_id}/exports/{export_id}/download", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}})
def download_export(export_id: DbId, case: CaseDep, session: SessionDep,
                    audit: AuditDep) -> FileResponse:
    job = get_export_job(session, case=case, job_id=export_id)
    path = _finished_bundle(job)
    audit(AuditAction.DOWNLOAD, case_id=case.id, export_id=export_id,
          bundle_sha256=job.bundle_sha256)
    session.commit()
    return FileResponse(path, media_type="application/zip", filename=path.name)


@router.post("/cases/{case_id}/transfers", response_model=CustodyPublic,
             status_code=status.HTTP_201_CREATED)
def transfer_route(body: TransferCreate, case: CaseDep, session: SessionDep, audit: AuditDep,
                   user: Annotated[User, Depends(requires(Permission.EXPORT))],
                   ) -> CustodyPublic:
    job = get_export_job(session, case=case, job_id=body.export_id)
    _finished_bundle(job)
    entry = transfer_case(session, case=case, actor=user.username, recipient=body.recipient,
                          bundle_sha256=job.bundle_sha256 or "", note=body.note)
    audit(AuditAction.CASE_CHANGE, change="transfer", case_id=case.id, export_id=job.id,
          recipient=body.recipient)
    session.commit()
    return CustodyPublic.model_validate(entry, from_attributes=True)


@router.post("/cases/{case_id}/receipts", response_model=VerificationPublic,
             status_code=status.HTTP_201_CREATED)
def receipt_route(case: CaseDep, session: SessionDep, state: StateDep, audit: AuditDep,
                  user: Annotated[User, Depends(requires(Permission.RECEIVE_BUNDLE))],
                  bundle: Annotated[UploadFile, File()]) -> VerificationPublic:
    """Verify the received bundle against this installation's certificates; log receipt."""
    settings = state.settings
    with receive_upload(bundle, settings=settings) as (path, sha256):
        report = verify_bundle(path, TrustedCertificates(tuple(known_certificates(
            settings.keys_dir))), work_dir=settings.tmp_dir)
    receive_case(session, case=case, actor=user.username, bundle_sha256=sha256,
                 tag_manifest_sha256=report.tag_manifest_sha256 or "",
                 verification_ok=report.ok)
    audit(AuditAction.VERIFY, change="receipt", case_id=case.id, bundle_sha256=sha256,
          ok=report.ok)
    session.commit()
    return VerificationPublic.from_report(report, bundle_sha256=sha256)


__all__ = ["CaseDep", "load_case_for_user", "router"]
