"""Export jobs: the DB row is the source of truth for an export's progress and result.

``run_export_job`` is what the Celery task calls. Progress is written through its own
short transactions so readers see it while the export (and its custody entry) is still
uncommitted in the task's session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from evidence.exports import export_case
from evidence.keys import Signer
from storage.blobstore import BlobStore
from storage.db import session_scope
from storage.errors import ConflictError, NotFoundError, PermissionDeniedError
from storage.models.access import User
from storage.models.evidence import Case, ExportJob
from storage.types import utcnow

AWAITING_APPROVAL = "awaiting_approval"


@dataclass(frozen=True)
class ExportEnvironment:
    """What an export needs besides the DB: stores, key, paths and policy."""

    signer: Signer
    originals: BlobStore
    derived: BlobStore
    tmp_dir: Path
    exports_dir: Path
    organisation: str
    full_original_max_bytes: int


def request_export(session: Session, *, case: Case, requested_by: User,
                   needs_approval: bool) -> ExportJob:
    """A queued (or awaiting-approval) export job; flushed, not committed."""
    assert case.id is not None
    job = ExportJob(case_id=case.id, requested_by_id=requested_by.id,
                    status=AWAITING_APPROVAL if needs_approval else "queued",
                    stage="waiting for a supervisor's approval" if needs_approval else "")
    session.add(job)
    session.flush()
    return job


def approve_export(session: Session, *, job: ExportJob, approver: User) -> ExportJob:
    """Release an export for running; the requester cannot approve their own export."""
    if job.status != AWAITING_APPROVAL:
        raise ConflictError(f"Export {job.id} is not waiting for approval.")
    if job.requested_by_id == approver.id:
        raise PermissionDeniedError("An export must be approved by someone other than "
                                    "the person who requested it.")
    job.status, job.stage, job.updated_at = "queued", f"approved by {approver.username}", utcnow()
    session.add(job)
    session.flush()
    return job


def get_export_job(session: Session, *, case: Case, job_id: int) -> ExportJob:
    job = session.get(ExportJob, job_id)
    if job is None or job.case_id != case.id:
        raise NotFoundError(f"Export {job_id} of case {case.number} does not exist.")
    return job


def _record_progress(engine: Engine, job_id: int, stage: str, fraction: float) -> None:
    with session_scope(engine) as session:
        job = session.get(ExportJob, job_id)
        if job is not None:
            job.status, job.stage, job.progress = "running", stage, round(fraction, 3)
            job.updated_at = utcnow()
            session.add(job)


def run_export_job(session: Session, *, engine: Engine, job_id: int,
                   env: ExportEnvironment) -> ExportJob | None:
    """Run a queued export; the caller commits the result with the custody entry.

    Returns None (doing nothing) for a job that is done, failed or not yet approved.
    """
    job = session.get(ExportJob, job_id)
    if job is None or job.status not in ("queued", "running"):
        return None
    case = session.get(Case, job.case_id)
    if case is None:
        raise NotFoundError(f"Case {job.case_id} of export {job_id} does not exist.")
    requester = session.get(User, job.requested_by_id) if job.requested_by_id else None
    out = env.exports_dir / f"{case.number}-export-{job_id}.zip"
    result = export_case(
        session, case=case, exporter=requester.username if requester else "system",
        signer=env.signer, originals=env.originals, derived=env.derived,
        tmp_dir=env.tmp_dir, out_path=out, organisation=env.organisation,
        full_original_max_bytes=env.full_original_max_bytes,
        progress=lambda stage, fraction: _record_progress(engine, job_id, stage, fraction),
    )
    session.refresh(job)
    job.status, job.stage, job.progress, job.message = "done", "done", 1.0, ""
    job.bundle_path, job.bundle_sha256 = str(result.bundle_path), result.bundle_sha256
    job.tag_manifest_sha256, job.size_bytes = result.tag_manifest_sha256, result.size_bytes
    job.updated_at = utcnow()
    session.add(job)
    session.flush()
    return job


def fail_export_job(session: Session, *, job_id: int, message: str) -> None:
    job = session.get(ExportJob, job_id)
    if job is not None:
        job.status, job.message, job.updated_at = "failed", message, utcnow()
        session.add(job)


__all__ = [
    "AWAITING_APPROVAL",
    "ExportEnvironment",
    "approve_export",
    "fail_export_job",
    "get_export_job",
    "request_export",
    "run_export_job",
]
