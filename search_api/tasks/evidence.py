"""Celery tasks: run an export job (a thin adapter over ``usecases.exports.run_export``)
and a redaction's detection (over ``usecases.redaction.run_redaction``).

The worker acts with the data dir's own rights (``WORKER_ACTOR``); the bundle and its
custody entry name the export's requester, as the API recorded them at request time.
"""

from __future__ import annotations

from celery import shared_task
from sqlmodel import Session

from evidence.export_jobs import fail_export_job
from evidence.redaction.jobs import fail_redaction_job
from search_api.state import AppState
from search_api.tasks.app import EXPORT_TASK, REDACTION_TASK
from search_api.tasks.background import background_task
from search_api.usecases.context import UseCaseContext
from search_api.usecases.exports import WORKER_ACTOR, run_export


@shared_task(name=EXPORT_TASK, acks_late=True)  # type: ignore[untyped-decorator]  # celery ships no types
@background_task(mark_failed=fail_export_job)
def export_case_task(*, state: AppState, session: Session, job_id: int) -> None:
    """Run export job ``job_id``; a duplicate message for a claimed or finished job is a no-op."""
    run_export(UseCaseContext(session=session, state=state, actor=WORKER_ACTOR),
               export_id=job_id)


@shared_task(name=REDACTION_TASK, acks_late=True)  # type: ignore[untyped-decorator]  # celery ships no types
@background_task(mark_failed=fail_redaction_job)
def propose_redaction_task(*, state: AppState, session: Session, job_id: int) -> None:
    """Detect on every frame of redaction ``job_id``'s clip; a duplicate message for a
    claimed or finished one is a no-op."""
    from search_api.usecases.redaction import run_redaction

    run_redaction(UseCaseContext(session=session, state=state, actor=WORKER_ACTOR),
                  redaction_id=job_id)


__all__ = ["export_case_task", "propose_redaction_task"]
