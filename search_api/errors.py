"""Maps each ``OkoError`` class to one HTTP status and one JSON shape.

A 403 or 404 answered to a signed-in user also leaves an audit entry (``access_denied``
or ``not_found``: method, path, the answer's sentence), so that probing other agencies'
ids leaves a trace. It is written in its own short transaction, since the refused
request's was rolled back. Every 404 counts, a footage file missing from the store
included; 401s (nobody signed in) and refusals raised before the user is known (a
cookie request without its CSRF header) leave none.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from search_api.deps import CurrentUser, client_ip, get_state
from search_api.usecases.audit_log import REFUSALS, record_refusal
from search_api.usecases.context import Actor, UseCaseContext
from storage.errors import OkoError

log = logging.getLogger(__name__)


class ErrorPublic(BaseModel):
    """The body of every error response."""

    detail: str
    details: list[str] = []


def note_signed_in_user(request: Request, user: CurrentUser) -> None:
    """An app-wide dependency after ``get_current_user``: who a refusal is recorded for."""
    request.state.oko_actor = Actor.of_user(user, ip=client_ip(request))


def _record_refusal(request: Request, actor: Actor, exc: OkoError) -> None:
    state = get_state(request)
    try:
        with Session(state.engine, expire_on_commit=False) as session:
            record_refusal(UseCaseContext(session=session, state=state, actor=actor),
                           status=exc.http_status, method=request.method,
                           path=request.url.path, reason=exc.message)
    except (SQLAlchemyError, OkoError):
        # the refusal served nothing, so it is still answered; the gap is in the log
        log.exception("Could not record a %s refusal of %s %s for %s.", exc.http_status,
                      request.method, request.url.path[:200], actor.name)


async def _oko_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OkoError)
    actor = getattr(request.state, "oko_actor", None)
    if exc.http_status in REFUSALS and isinstance(actor, Actor):
        await run_in_threadpool(_record_refusal, request, actor, exc)
    body = ErrorPublic(detail=exc.message, details=exc.details)
    return JSONResponse(status_code=exc.http_status, content=body.model_dump())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OkoError, _oko_error_handler)
