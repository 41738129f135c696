"""The FastAPI app factory: collaborators are built here and put on ``app.state``."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from search_api.deps import get_current_user
from search_api.docs_page import install_docs
from search_api.errors import install_error_handlers, note_signed_in_user
from search_api.jobqueue import CeleryJobQueue
from search_api.middleware import install_security
from search_api.routes import PUBLIC_ROUTERS, ROUTERS
from search_api.state import AppState, build_state
from search_api.web_ui import WEB_DIR, install_web_ui
from storage.settings import Settings


def create_app(settings: Settings, *, state: AppState | None = None) -> FastAPI:
    app = FastAPI(title="Oko", version="0.1.0",
                  description="Forensic video search and evidence management",
                  docs_url=None, redoc_url=None)
    state = state or build_state(settings)
    if state.job_queue is None:
        state.job_queue = CeleryJobQueue(settings)
    app.state.oko = state
    install_error_handlers(app)
    install_security(app, max_body_bytes=settings.max_upload_bytes)
    # Swagger UI loads from a CDN: served only in development and tests (offline sites)
    install_docs(app, environment=settings.environment)
    # Deny by default: every API route needs a signed-in user, except the sign-in routes.
    # Noting the user first lets a 403/404 to them leave an audit entry (search_api.errors).
    for router in ROUTERS:
        app.include_router(router, prefix="/api", dependencies=[
            Depends(get_current_user), Depends(note_signed_in_user)])
    for router in PUBLIC_ROUTERS:
        app.include_router(router, prefix="/api")
    install_web_ui(app)
    return app


__all__ = ["WEB_DIR", "create_app"]
