"""Celery tasks: ingest one file per job, then embed the new frames."""

from __future__ import annotations

import logging

from celery import current_app, shared_task
from sqlmodel import Session

from indexer.jobs import fail_job
from search_api.state import AppState
from search_api.tasks.app import EMBED_TASK, INGEST_TASK, QUEUE
from search_api.tasks.background import background_task
from search_api.tasks.worker import worker_state
from search_api.usecases.ingest import embed_pending, run_ingest

logger = logging.getLogger(__name__)


@shared_task(name=INGEST_TASK, acks_late=True)  # type: ignore[untyped-decorator]  # celery ships no types
@background_task(mark_failed=fail_job)
def ingest(*, state: AppState, session: Session, job_id: int) -> None:
    """Run ingest job ``job_id``, then queue the embedding of its new frames."""
    if run_ingest(state, job_id=job_id):
        embed.apply_async(queue=QUEUE)


@shared_task(name=EMBED_TASK, acks_late=True)  # type: ignore[untyped-decorator]  # celery ships no types
def embed() -> str:
    """Embed every pending frame and sync the shards; without a model the frames wait."""
    line = embed_pending(worker_state(current_app))
    logger.info("%s", line)
    return line


__all__ = ["embed", "ingest"]
