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
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from search_api.deps import CurrentUser, client_ip, get_state
from search_api.usecases.audit_log import REFUSALS, record_refusal
from search_api.usecases.context import Actor, UseCaseContext
from storage.errors import OkoError

log = logging.getLogger(__name__)


class ErrorPublic(BaseModel):
    """The body of every error response."""

    detail: str
    code: str  # stable, for the web app's message catalog
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
    body = ErrorPublic(detail=exc.message, code=exc.code, details=exc.details)
    return JSONResponse(status_code=exc.http_status, content=body.model_dump())


def _field_problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where or 'request'}: {error.get('msg', 'invalid')}"[:300]


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_field_problem(e) for e in exc.errors()[:20]]
    body = ErrorPublic(detail="The request has invalid or missing fields.",
                       code="invalid_request", details=problems)
    return JSONResponse(status_code=422, content=body.model_dump())


async def _http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    body = ErrorPublic(detail=str(exc.detail), code=codes.get(exc.status_code, "http_error"))
    return JSONResponse(status_code=exc.status_code, content=body.model_dump(),
                        headers=getattr(exc, "headers", None))


async def _pool_timeout_handler(_request: Request, _exc: Exception) -> JSONResponse:
    # every database connection stayed busy for the pool's timeout: shed the request
    body = ErrorPublic(detail="The service is busy; try again in a few seconds.",
                       code="busy")
    return JSONResponse(status_code=503, content=body.model_dump(),
                        headers={"Retry-After": "5"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OkoError, _oko_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(PoolTimeoutError, _pool_timeout_handler)
