"""Use cases: queue footage for ingest, follow ingest jobs, and what the worker runs.

Queuing commits the job rows with their audit entry first and sends the tasks after,
so a worker never looks for a row that is not there yet; if the broker is down the
jobs stay queued and a worker picks them up when it starts.

A path is queued as one job, file or folder; the worker walks a folder's job into one
job per video file (their ``parent_id`` names it) and queues those. The API reads only
paths under ``OKO_INGEST_ROOTS`` and answers a path outside them as if it did not
exist; the CLI is the operator on the server and may name any local path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from sqlmodel import Session

from indexer.ingest import IngestOptions
from indexer.jobs import (
    DONE,
    QUEUED,
    WALKED,
    JobNotFoundError,
    JobReport,
    get_job,
    list_jobs,
    report_jobs,
    run_ingest_job,
    submit_ingest,
)
from search_api.audit import AuditAction
from search_api.state import AppState
from search_api.usecases.context import UseCaseContext
from storage.errors import OkoError, PermissionDeniedError
from storage.models.media import IngestJob
from storage.permissions import Permission
from storage.settings import Settings

ProgressCallback = Callable[[str, float], None]


def ingest_options(settings: Settings) -> IngestOptions:
    return IngestOptions(
        segment_seconds=settings.segment_seconds,
        sample_interval_seconds=settings.sample_interval_seconds,
        frame_max_side=settings.frame_max_side,
    )


def submit_footage(ctx: UseCaseContext, *, paths: Sequence[Path], camera_id: str,
                   start: str | None, within_ingest_roots: bool = False) -> list[int]:
    """One queued job per path, committed with the audit entry; returns the job ids.

    With ``within_ingest_roots`` (the API) only paths under ``OKO_INGEST_ROOTS`` are
    read, and none when it is empty (``PermissionDeniedError``). Raises
    ``NotFoundError`` for an unknown (or invisible) camera or a missing path (one answer
    for outside the roots and missing) and ``InvalidInputError`` for an unparseable
    start; nothing is written then.
    """
    ctx.require(Permission.INGEST)
    ctx.visible_camera(camera_id)
    roots = ctx.state.settings.ingest_roots if within_ingest_roots else None
    if roots is not None and not roots:
        raise PermissionDeniedError("This server ingests no server paths: set"
                                    " OKO_INGEST_ROOTS to the folders it may read.")
    jobs = submit_ingest(ctx.session, paths=paths, camera_id=camera_id, start=start,
                         requested_by=ctx.actor.name, roots=roots)
    job_ids = [job.id for job in jobs if job.id is not None]
    ctx.audit(AuditAction.INGEST, paths=[str(path) for path in paths], camera_id=camera_id,
              job_ids=job_ids)
    ctx.commit()
    return job_ids


def queue_ingest(ctx: UseCaseContext, *, paths: Sequence[Path], camera_id: str,
                 start: str | None, within_ingest_roots: bool = False) -> list[JobReport]:
    """``submit_footage``, then hand the jobs to the worker; returns their reports.

    Raises ``BrokerUnavailableError`` (the jobs stay queued) when the broker is down.
    """
    job_ids = submit_footage(ctx, paths=paths, camera_id=camera_id, start=start,
                             within_ingest_roots=within_ingest_roots)
    ctx.state.jobs().enqueue_ingest(job_ids)
    return job_reports(ctx, job_ids=job_ids)


def job_reports(ctx: UseCaseContext, *, job_ids: Sequence[int] | None = None,
                parent_ids: Sequence[int] | None = None, limit: int = 200) -> list[JobReport]:
    """The actor's view of ingest jobs: those of cameras it may see, newest first.

    ``job_ids`` and ``parent_ids`` (the file jobs of those folder jobs) select all of
    them, unpaged.
    """
    ctx.require(Permission.INGEST)
    jobs = list_jobs(ctx.session, job_ids=job_ids, parent_ids=parent_ids, limit=limit,
                     camera_ids=None if ctx.user is None else ctx.visible_camera_ids())
    return report_jobs(ctx.session, jobs)


def job_report(ctx: UseCaseContext, *, job_id: int) -> JobReport:
    """Raises ``JobNotFoundError`` (404) for a missing job or one of an invisible camera."""
    ctx.require(Permission.INGEST)
    job: IngestJob | None = get_job(ctx.session, job_id)
    if job is None or job.camera_id not in ctx.visible_camera_ids():
        raise JobNotFoundError(f"Ingest job {job_id} does not exist.")
    return report_jobs(ctx.session, [job])[0]


def run_ingest(state: AppState, *, job_id: int,
               on_progress: ProgressCallback | None = None) -> bool:
    """Run one queued ingest job (the worker's task, or ``oko demo`` in-process).

    A folder's job queues its file jobs for the worker instead. Returns True when new
    frames were stored and wait for embedding.
    """
    job = run_ingest_job(
        engine=state.engine, originals=state.originals, derived=state.derived, job_id=job_id,
        options=ingest_options(state.settings), lease_seconds=state.settings.job_lease_seconds,
        on_progress=on_progress)
    if job is not None and job.stage == WALKED:
        with Session(state.engine) as session:
            files = list_jobs(session, parent_ids=[job_id], statuses=[QUEUED])
        state.jobs().enqueue_ingest(sorted(file.id for file in files if file.id is not None))
        return False
    return job is not None and job.status == DONE


def embed_pending(state: AppState) -> str:
    """Embed every pending frame and sync the shards, and read plates in every frame
    waiting for it; one line saying what happened.

    Without installed weights the frames simply keep waiting for embedding, and the
    line says why; plate reading needs no model download and runs first.
    """
    from search_api.usecases.plate_watch import plates_pending_line

    try:
        plates = plates_pending_line(state)
    except OkoError as exc:
        plates = f"Frames wait for plate reading: {exc.message}"
    return f"{_embed_line(state)} {plates}"


def _embed_line(state: AppState) -> str:
    from indexer.model_store import NoModelError  # torch and FAISS: not for ingest alone
    from indexer.reindex import ReindexSettings, reindex

    config = ReindexSettings.from_settings(state.settings)
    try:
        embedder = state.image_embedder().get(engine=state.engine, config=config)
        report, _synced = reindex(engine=state.engine, derived=state.derived, config=config,
                                  embedder=embedder)
    except NoModelError as exc:
        return f"Frames wait for embedding: {exc.message}"
    return (f"Embedded {report.embedded} frames, linked {report.linked} static frames"
            f" ({report.skipped_fraction:.0%} skipped by motion gating); index synced.")


__all__ = [
    "embed_pending",
    "ingest_options",
    "job_report",
    "job_reports",
    "queue_ingest",
    "run_ingest",
    "submit_footage",
]
