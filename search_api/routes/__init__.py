"""One router per resource."""

from fastapi import APIRouter

from search_api.routes import audit, auth, cameras, cases, jobs, media, search, users, verify

ROUTERS: list[APIRouter] = [
    auth.router,
    users.router,
    cameras.router,
    jobs.router,
    search.router,
    media.router,
    cases.router,
    verify.router,
    audit.router,
]

__all__ = ["ROUTERS"]
