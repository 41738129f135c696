"""Export jobs: the DB row is the source of truth for an export's progress and result.

``run_export_job`` is what the worker's task and the CLI's in-process run both call:

1. claim the job with one conditional UPDATE (queued -> running) in its own committed
   transaction, so a worker and a CLI can never run the same job twice at once;
2. build, sign and zip the bundle (``evidence.exports.export_case``), writing progress
   through their own short transactions so readers see it while the export runs. The
   export writes nothing in the caller's session until its bundle is complete: only
   then does it append the custody entry (see ``evidence.exports`` for why and how);
3. record the result on the row; the caller commits it with the custody entry at once,
   which ends the short write transaction (on SQLite, the database's write lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from evidence.exports import export_case
from evidence.keys import Signer
from storage.blobstore import BlobStore
from storage.db import session_scope
from storage.errors import ConflictError, NotFoundError, PermissionDeniedError
from storage.models.access import User
from storage.models.evidence import Case, ExportJob
from storage.types import utcnow

AWAITING_APPROVAL = "awaiting_approval"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STALE_RUNNING_AFTER = timedelta(hours=1)
"""A running export with no progress for this long is presumed to have lost its process
(a killed worker or CLI) and may be claimed again."""


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


def request_export(session: Session, *, case: Case, requested_by: User | None,
                   needs_approval: bool) -> ExportJob:
    """A queued (or awaiting-approval) export job; flushed, not committed.

    ``requested_by`` is None for the CLI's local operator, who is no Oko user.
    """
    assert case.id is not None
    job = ExportJob(case_id=case.id, requested_by_id=requested_by.id if requested_by else None,
                    status=AWAITING_APPROVAL if needs_approval else QUEUED,
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
    job.status, job.stage, job.updated_at = QUEUED, f"approved by {approver.username}", utcnow()
    session.add(job)
    session.flush()
    return job


def get_export_job(session: Session, *, case: Case, job_id: int) -> ExportJob:
    """The job as it is now in the DB (another process may run it); raises
    ``NotFoundError`` for a missing job and for one of another case."""
    job = session.get(ExportJob, job_id, populate_existing=True)
    if job is None or job.case_id != case.id:
        raise NotFoundError(f"Export {job_id} of case {case.number} does not exist.")
    return job


def done_export_with_bundle(session: Session, *, case: Case,
                            bundle_sha256: str) -> ExportJob | None:
    """The newest finished export of ``case`` whose bundle has this SHA-256, if any."""
    return session.exec(select(ExportJob).where(
        ExportJob.case_id == case.id, ExportJob.status == DONE,
        ExportJob.bundle_sha256 == bundle_sha256).order_by(col(ExportJob.id).desc())).first()


def claim_export_job(engine: Engine, *, job_id: int) -> bool:
    """Mark a queued job (or a stale running one) running; False if someone else has it.

    One conditional UPDATE in its own committed transaction, so of two processes that
    try at once exactly one wins; done, failed and unapproved jobs are never claimed.
    """
    now = utcnow()
    claimable = or_(col(ExportJob.status) == QUEUED,
                    and_(col(ExportJob.status) == RUNNING,
                         col(ExportJob.updated_at) < now - STALE_RUNNING_AFTER))
    with session_scope(engine) as session:
        result = session.execute(
            update(ExportJob).where(and_(col(ExportJob.id) == job_id, claimable))
            .values(status=RUNNING, stage="starting", progress=0.0, message="",
                    updated_at=now)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _record_progress(engine: Engine, job_id: int, stage: str, fraction: float) -> None:
    with session_scope(engine) as session:
        job = session.get(ExportJob, job_id)
        if job is not None:
            job.status, job.stage, job.progress = RUNNING, stage, round(fraction, 3)
            job.updated_at = utcnow()
            session.add(job)


def run_export_job(session: Session, *, engine: Engine, job_id: int, env: ExportEnvironment,
                   exporter_if_no_requester: str = "system") -> ExportJob | None:
    """Claim and run a queued export; the caller commits the result with the custody entry.

    The bundle names the requester as its exporter (``exporter_if_no_requester`` for an
    export the CLI's operator requested). Returns None, doing nothing, for a job that is
    missing, done, failed, not yet approved or running in another process. Raises what
    ``export_case`` raises; the caller then marks the job failed (``fail_export_job``).
    """
    if not claim_export_job(engine, job_id=job_id):
        return None
    job = session.get(ExportJob, job_id, populate_existing=True)
    assert job is not None
    case = session.get(Case, job.case_id)
    if case is None:
        raise NotFoundError(f"Case {job.case_id} of export {job_id} does not exist.")
    requester = session.get(User, job.requested_by_id) if job.requested_by_id else None
    out = env.exports_dir / f"{case.number}-export-{job_id}.zip"
    result = export_case(
        session, case=case,
        exporter=requester.username if requester else exporter_if_no_requester,
        signer=env.signer, originals=env.originals, derived=env.derived,
        tmp_dir=env.tmp_dir, out_path=out, organisation=env.organisation,
        full_original_max_bytes=env.full_original_max_bytes,
        progress=lambda stage, fraction: _record_progress(engine, job_id, stage, fraction),
    )
    session.refresh(job)
    job.status, job.stage, job.progress, job.message = DONE, "done", 1.0, ""
    job.bundle_path, job.bundle_sha256 = str(result.bundle_path), result.bundle_sha256
    job.tag_manifest_sha256, job.size_bytes = result.tag_manifest_sha256, result.size_bytes
    job.updated_at = utcnow()
    session.add(job)
    session.flush()
    return job


def fail_export_job(session: Session, *, job_id: int, message: str) -> None:
    job = session.get(ExportJob, job_id)
    if job is not None:
        job.status, job.message, job.updated_at = FAILED, message, utcnow()
        session.add(job)


__all__ = [
    "AWAITING_APPROVAL",
    "DONE",
    "FAILED",
    "QUEUED",
    "RUNNING",
    "STALE_RUNNING_AFTER",
    "ExportEnvironment",
    "approve_export",
    "claim_export_job",
    "done_export_with_bundle",
    "fail_export_job",
    "get_export_job",
    "request_export",
    "run_export_job",
]
