"""Celery tasks: ingest one file per job, and re-enqueue jobs whose worker died."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from datetime import datetime

import psutil
from celery import Celery, current_app, shared_task
from kombu.exceptions import OperationalError
from sqlmodel import Session

from indexer.jobs import fail_job, requeue_stale_jobs
from search_api.state import AppState
from search_api.tasks import QUEUE, worker_state
from search_api.tasks.background import background_task
from search_api.usecases.ingest import embed_pending, run_ingest
from storage.db import session_scope
from storage.errors import OkoError


class BrokerUnavailableError(OkoError):
    """The job broker could not take the task; the job row stays queued for recovery."""

    exit_code = 4
    http_status = 503

INGEST_TASK = "oko.ingest"
EMBED_TASK = "oko.embed"
logger = logging.getLogger(__name__)


@shared_task(name=INGEST_TASK, acks_late=True)
@background_task(mark_failed=fail_job)
def ingest(*, state: AppState, session: Session, job_id: int) -> None:
    """Run ingest job ``job_id``, then queue the embedding of its new frames."""
    if run_ingest(state, job_id=job_id):
        embed.apply_async(queue=QUEUE)


@shared_task(name=EMBED_TASK, acks_late=True)
def embed() -> str:
    """Embed every pending frame and sync the shards; without a model the frames wait."""
    line = embed_pending(worker_state(current_app))
    logger.info("%s", line)
    return line


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
    "EMBED_TASK",
    "INGEST_TASK",
    "BrokerUnavailableError",
    "embed",
    "enqueue_ingest",
    "ingest",
    "local_worker_alive",
    "recover_jobs",
]
