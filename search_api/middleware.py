"""Security headers on every response, a request-body size limit, and 401 challenges."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search_api.errors import ErrorPublic
from storage.errors import AuthenticationError, OkoError

# The UI is served from this origin only; nothing may frame it or run inline script.
UI_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
          "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
          "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# FastAPI's interactive docs load Swagger UI / ReDoc from a CDN with an inline bootstrap.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
            "worker-src blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")


class RequestTooLargeError(HTTPException):
    """Raised while reading a body past the limit; an HTTPException so FastAPI's body
    parsing passes it through instead of answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=(
            f"The request body is larger than the {limit // (1024 * 1024)} MiB limit "
            f"(OKO_MAX_UPLOAD_BYTES)."))


class SecurityMiddleware:
    """Pure ASGI: adds security headers and enforces ``max_body_bytes`` while streaming."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else UI_CSP
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", csp.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if path.startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, send_with_headers)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise RequestTooLargeError(self.max_body_bytes)
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except RequestTooLargeError:
            if started:
                raise
            await self._refuse(scope, send_with_headers)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = RequestTooLargeError(self.max_body_bytes)
        response = JSONResponse(status_code=413,
                                content=ErrorPublic(detail=str(error.detail),
                                                    code="request_too_large").model_dump())

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


async def _authentication_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OkoError)
    body = ErrorPublic(detail=exc.message, code=exc.code, details=exc.details)
    return JSONResponse(status_code=401, content=body.model_dump(),
                        headers={"WWW-Authenticate": "Bearer"})


def install_security(app: FastAPI, *, max_body_bytes: int) -> None:
    app.add_middleware(SecurityMiddleware, max_body_bytes=max_body_bytes)
    app.add_exception_handler(AuthenticationError, _authentication_error)


__all__ = ["RequestTooLargeError", "SecurityMiddleware", "install_security"]
