"""Routes for ingest jobs: list and inspect them, and queue a file already on the server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, Field

from indexer.jobs import (
    JobNotFoundError,
    JobReport,
    get_job,
    list_jobs,
    report_jobs,
    submit_ingest,
)
from search_api.audit import AuditAction
from search_api.deps import AuditDep, DbId, SessionDep, StateDep, requires
from search_api.policy import Permission, get_visible_camera_or_404, visible_camera_ids
from search_api.tasks import celery_for
from search_api.tasks.ingest import enqueue_ingest
from storage.errors import InvalidInputError
from storage.models.access import User

router = APIRouter(tags=["jobs"])
IngestUser = Depends(requires(Permission.INGEST))


class JobPublic(BaseModel):
    """An ingest job and, once finished, what was stored for its file."""

    id: int
    source_path: str
    camera_id: str
    status: str = Field(description="queued, running, done, duplicate or failed")
    stage: str
    progress: float = Field(description="0..1")
    message: str
    sha256: str | None
    original_id: int | None
    attempts: int
    duplicate: bool
    damaged: bool
    decodable_duration_s: float | None
    segments: int
    frames: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, report: JobReport) -> JobPublic:
        return cls.model_validate(report.to_dict())


class IngestRequest(BaseModel):
    """A file or folder on the server's disk to ingest."""

    path: str = Field(description="Absolute path on the server")
    camera_id: str
    start: str | None = Field(default=None, description="Recording start, ISO 8601")


@router.get("/jobs", response_model=list[JobPublic])
def read_jobs(session: SessionDep, user: User = IngestUser,
              limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[JobPublic]:
    jobs = list_jobs(session, camera_ids=visible_camera_ids(session, user), limit=limit)
    return [JobPublic.of(report) for report in report_jobs(session, jobs)]


@router.get("/jobs/{job_id}", response_model=JobPublic)
def read_job(job_id: DbId, session: SessionDep, user: User = IngestUser) -> JobPublic:
    job = get_job(session, job_id)
    if job is None or job.camera_id not in visible_camera_ids(session, user):
        raise JobNotFoundError(f"Ingest job {job_id} does not exist.")
    return JobPublic.of(report_jobs(session, [job])[0])


@router.post("/ingest", response_model=list[JobPublic], status_code=status.HTTP_202_ACCEPTED)
def queue_ingest(body: IngestRequest, state: StateDep, session: SessionDep, audit: AuditDep,
                 user: User = IngestUser) -> list[JobPublic]:
    path = Path(body.path)
    if not path.is_absolute():
        raise InvalidInputError(f"'{body.path}' is not an absolute path on the server.")
    get_visible_camera_or_404(session, user, body.camera_id)
    jobs = submit_ingest(session, paths=[path], camera_id=body.camera_id, start=body.start,
                         requested_by=user.username)
    job_ids = [job.id for job in jobs if job.id is not None]
    audit(AuditAction.INGEST, path=body.path, camera_id=body.camera_id, job_ids=job_ids)
    session.commit()  # the jobs and their audit entry land together
    enqueue_ingest(celery_for(state), job_ids)
    return [JobPublic.of(report)
            for report in report_jobs(session, list_jobs(session, job_ids=job_ids))]
