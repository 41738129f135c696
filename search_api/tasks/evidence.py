"""Celery task: run an export job (a thin adapter over ``usecases.exports.run_export``).

The worker acts with the data dir's own rights (``WORKER_ACTOR``); the bundle and its
custody entry name the export's requester, as the API recorded them at request time.
"""

from __future__ import annotations

from celery import Celery, shared_task
from kombu.exceptions import OperationalError
from sqlmodel import Session

from evidence.export_jobs import fail_export_job
from search_api.state import AppState
from search_api.tasks import QUEUE
from search_api.tasks.background import background_task
from search_api.tasks.ingest import BrokerUnavailableError
from search_api.usecases.context import UseCaseContext
from search_api.usecases.exports import WORKER_ACTOR, export_environment, run_export

EXPORT_TASK = "oko.export_case"


@shared_task(name=EXPORT_TASK, acks_late=True)
@background_task(mark_failed=fail_export_job)
def export_case_task(*, state: AppState, session: Session, job_id: int) -> None:
    """Run export job ``job_id``; a duplicate message for a claimed or finished job is a no-op."""
    run_export(UseCaseContext(session=session, state=state, actor=WORKER_ACTOR),
               export_id=job_id)


def enqueue_export(app: Celery, job_id: int) -> None:
    """Send the export task after its job row is committed."""
    try:
        app.send_task(EXPORT_TASK, args=[job_id], queue=QUEUE)
    except OperationalError as exc:
        raise BrokerUnavailableError(
            "The job broker cannot be reached; the export stays queued.") from exc


__all__ = ["EXPORT_TASK", "enqueue_export", "export_case_task", "export_environment"]
