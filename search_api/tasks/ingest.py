"""Celery tasks: ingest one file per job, and re-enqueue jobs whose worker died."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import psutil
from celery import Celery, shared_task
from kombu.exceptions import OperationalError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from indexer.ingest import IngestOptions
from indexer.jobs import fail_job, requeue_stale_jobs, run_ingest_job, submit_ingest
from search_api.state import AppState
from search_api.tasks import QUEUE, worker_state
from search_api.tasks.background import background_task
from storage.db import session_scope
from storage.errors import OkoError
from storage.settings import Settings


class BrokerUnavailableError(OkoError):
    """The job broker could not take the task; the job row stays queued for recovery."""

    exit_code = 4
    http_status = 503

INGEST_TASK = "oko.ingest"


@shared_task(name=INGEST_TASK, acks_late=True)
@background_task(mark_failed=fail_job)
def ingest(*, state: AppState, session: Session, job_id: int) -> None:
    """Run ingest job ``job_id``; a no-op when it is finished or another worker holds it."""
    run_ingest_job(
        engine=state.engine, originals=state.originals, derived=state.derived, job_id=job_id,
        options=ingest_options(state.settings),
        lease_seconds=state.settings.job_lease_seconds,
    )


def ingest_options(settings: Settings) -> IngestOptions:
    return IngestOptions(
        segment_seconds=settings.segment_seconds,
        sample_interval_seconds=settings.sample_interval_seconds,
        frame_max_side=settings.frame_max_side,
    )


def submit_and_commit(
    engine: Engine, *, paths: Sequence[Path], camera_id: str, start: str | None
) -> list[int]:
    """Validate and commit one queued job per file; nothing is written on a bad input."""
    with session_scope(engine) as session:
        jobs = submit_ingest(session, paths=paths, camera_id=camera_id, start=start)
        return [job.id for job in jobs if job.id is not None]


def enqueue_ingest(app: Celery, job_ids: Iterable[int]) -> None:
    """Send one ingest task per job id (after the job rows are committed).

    Raises ``BrokerUnavailableError`` when the broker cannot be reached; the jobs
    stay queued and a worker enqueues them again when it starts.
    """
    try:
        for job_id in job_ids:
            app.send_task(INGEST_TASK, args=[job_id], queue=QUEUE)
    except OperationalError as exc:
        raise BrokerUnavailableError(
            "The job broker cannot be reached; the jobs stay queued and a worker will"
            " pick them up when it starts.") from exc


def local_worker_alive(worker: str, seen_at: datetime) -> bool:
    """True when ``worker`` (``host:pid``) is a process on this host that ran at ``seen_at``.

    Comparing the start time rules out a recycled pid. Workers on other hosts are
    judged by their lease alone.
    """
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        started = psutil.Process(int(pid_text)).create_time()
    except psutil.Error:
        return False
    return started <= seen_at.timestamp() + 1


def recover_jobs(app: Celery, *, include_queued: bool) -> list[int]:
    """Put jobs whose worker died back in the queue; returns the re-enqueued ids."""
    state = worker_state(app)
    with session_scope(state.engine) as session:
        recovered = requeue_stale_jobs(
            session, lease_seconds=state.settings.job_lease_seconds,
            max_attempts=state.settings.job_max_attempts, include_queued=include_queued,
            worker_alive=local_worker_alive,
        )
    enqueue_ingest(app, recovered.requeued)
    return recovered.requeued


__all__ = [
    "INGEST_TASK",
    "BrokerUnavailableError",
    "enqueue_ingest",
    "ingest",
    "ingest_options",
    "local_worker_alive",
    "recover_jobs",
    "submit_and_commit",
]
