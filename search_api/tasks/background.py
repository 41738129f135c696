"""``@background_task``: what every Oko task needs around its domain call.

The decorator builds (once per process) the worker's state, opens the session
the task works in, commits on success and rolls back on any error. A failure is
then recorded on the job row with one sentence (the ``OkoError`` message, or a
generic one for a bug), so the user sees why in ``oko jobs`` instead of only in a
worker log. Tasks take ids, never ORM objects.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from celery import current_app
from sqlmodel import Session

from search_api.state import AppState
from search_api.tasks.worker import worker_state
from storage.db import session_scope
from storage.errors import OkoError

logger = logging.getLogger(__name__)


class MarkFailed(Protocol):
    def __call__(self, session: Session, *, job_id: int, message: str) -> Any: ...


class TaskBody(Protocol):
    def __call__(self, *, state: AppState, session: Session, job_id: int) -> None: ...


def failure_sentence(exc: BaseException) -> str:
    if isinstance(exc, OkoError):
        return exc.message
    return f"The task stopped on an unexpected {type(exc).__name__}; see the worker log."


def background_task(*, mark_failed: MarkFailed) -> Callable[[TaskBody], Callable[[int], None]]:
    """Wrap ``body(state=, session=, job_id=)`` into a task function taking a job id."""

    def decorate(body: TaskBody) -> Callable[[int], None]:
        @functools.wraps(body)
        def run(job_id: int) -> None:
            state = worker_state(current_app)
            with Session(state.engine, expire_on_commit=False) as session:
                try:
                    body(state=state, session=session, job_id=job_id)
                    session.commit()
                    return
                except Exception as exc:
                    session.rollback()
                    logger.exception("task %s failed for job %s",
                                     getattr(body, "__name__", body), job_id)
                    message = failure_sentence(exc)
            with session_scope(state.engine) as failure_session:
                mark_failed(failure_session, job_id=job_id, message=message)

        return run

    return decorate


__all__ = ["background_task", "failure_sentence"]
