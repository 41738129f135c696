"""One router per resource.

Deny by default: ``create_app`` mounts every router in ``ROUTERS`` behind the
signed-in-user guard. ``PUBLIC_ROUTERS`` is the one declared exemption (sign-in).
"""

from fastapi import APIRouter

from search_api.routes import (
    audit,
    auth,
    cameras,
    case_exports,
    cases,
    jobs,
    media,
    models,
    plates,
    redaction,
    search,
    users,
    verify,
)

ROUTERS: list[APIRouter] = [
    auth.router,
    users.router,
    cameras.router,
    jobs.router,
    search.router,
    plates.router,
    media.router,
    cases.router,
    case_exports.router,
    redaction.router,
    models.router,
    verify.router,
    audit.router,
]

PUBLIC_ROUTERS: list[APIRouter] = [auth.public_router]

__all__ = ["PUBLIC_ROUTERS", "ROUTERS"]
