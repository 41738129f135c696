"""Routes for ingest jobs: list and inspect them, and queue a file or folder under an
ingest root (``OKO_INGEST_ROOTS``); the worker walks a folder, never the request."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, Field

from indexer.jobs import JobReport
from search_api.deps import DbId, UseCaseDep, requires
from search_api.policy import Permission
from search_api.usecases.ingest import job_report, job_reports, queue_ingest
from storage.errors import InvalidInputError

router = APIRouter(tags=["jobs"], dependencies=[Depends(requires(Permission.INGEST))])


class JobPublic(BaseModel):
    """An ingest job and, once finished, what was stored for its file.

    A folder's job ends ``done`` at stage ``walked`` once it has queued one job per
    video file (``files`` of them, each with ``parent_id`` naming it).
    """

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
    parent_id: int | None = Field(description="The folder job that queued this file")
    files: int = Field(description="File jobs this folder job queued")
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

    path: str = Field(description="Absolute path under one of OKO_INGEST_ROOTS")
    camera_id: str
    start: str | None = Field(default=None, description="Recording start, ISO 8601")


@router.get("/jobs", response_model=list[JobPublic])
def read_jobs(ctx: UseCaseDep,
              limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[JobPublic]:
    return [JobPublic.of(report) for report in job_reports(ctx, limit=limit)]


@router.get("/jobs/{job_id}", response_model=JobPublic)
def read_job(job_id: DbId, ctx: UseCaseDep) -> JobPublic:
    return JobPublic.of(job_report(ctx, job_id=job_id))


@router.post("/ingest", response_model=list[JobPublic], status_code=status.HTTP_202_ACCEPTED)
def post_ingest(body: IngestRequest, ctx: UseCaseDep) -> list[JobPublic]:
    path = Path(body.path)
    if not path.is_absolute():
        raise InvalidInputError(f"'{body.path}' is not an absolute path on the server.")
    reports = queue_ingest(ctx, paths=[path], camera_id=body.camera_id, start=body.start,
                           within_ingest_roots=True)
    return [JobPublic.of(report) for report in reports]
