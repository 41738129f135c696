"""Maps each ``OkoError`` class to one HTTP status and one JSON shape."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from storage.errors import OkoError


class ErrorPublic(BaseModel):
    """The body of every error response."""

    detail: str
    details: list[str] = []


async def _oko_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OkoError)
    body = ErrorPublic(detail=exc.message, details=exc.details)
    return JSONResponse(status_code=exc.http_status, content=body.model_dump())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OkoError, _oko_error_handler)
