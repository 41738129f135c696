"""The interactive API docs (``/docs``, ``/redoc``): served in development and test only.

FastAPI's pages load Swagger UI and ReDoc from a CDN and start them with an inline
script, so they need a policy with ``'unsafe-inline'`` and the CDN on the API's own
origin, and they cannot load at all on the command post's offline network. Outside
``OKO_ENVIRONMENT=development`` or ``test`` the pages are therefore not served (404, like
any unknown path); the schema stays at ``/openapi.json`` for clients and tools.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

DOCS_ENVIRONMENTS = frozenset({"development", "test"})
DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"


def docs_enabled(environment: str) -> bool:
    return environment.strip().lower() in DOCS_ENVIRONMENTS


def install_docs(app: FastAPI, *, environment: str) -> bool:
    """Serve the docs pages on ``app`` where ``environment`` allows them; True if served.

    Any docs routes FastAPI added itself are removed first, so the result is the same
    whether or not ``FastAPI(docs_url=None, redoc_url=None)`` was used. The pages go
    first in the routing table, ahead of a static mount at ``/``.
    """
    own = {DOCS_URL, OAUTH2_REDIRECT_URL, REDOC_URL, app.docs_url, app.redoc_url,
           app.swagger_ui_oauth2_redirect_url}
    app.router.routes[:] = [route for route in app.router.routes
                            if getattr(route, "path", None) not in own]
    app.docs_url = app.redoc_url = app.swagger_ui_oauth2_redirect_url = None
    if not docs_enabled(environment) or app.openapi_url is None:
        return False
    openapi_url = app.openapi_url
    title = f"{app.title} API"

    async def swagger(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=title,
                                   oauth2_redirect_url=OAUTH2_REDIRECT_URL)

    async def oauth2_redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(_request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=title)

    pages: list[BaseRoute] = [
        Route(DOCS_URL, swagger, methods=["GET", "HEAD"], include_in_schema=False),
        Route(OAUTH2_REDIRECT_URL, oauth2_redirect, methods=["GET", "HEAD"],
              include_in_schema=False),
        Route(REDOC_URL, redoc, methods=["GET", "HEAD"], include_in_schema=False),
    ]
    app.router.routes[:0] = pages
    app.docs_url, app.redoc_url = DOCS_URL, REDOC_URL
    app.swagger_ui_oauth2_redirect_url = OAUTH2_REDIRECT_URL
    return True


__all__ = ["DOCS_ENVIRONMENTS", "docs_enabled", "install_docs"]
