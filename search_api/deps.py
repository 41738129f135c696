"""Typed dependencies for route handlers; handlers never touch ``request.app`` directly."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from search_api.policy import require_permission
from search_api.security import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    check_csrf,
    user_for_token,
)
from search_api.state import AppState
from search_api.usecases.context import Actor, UseCaseContext
from storage.errors import AuthenticationError
from storage.models.access import User
from storage.permissions import Permission
from storage.settings import Settings


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.oko
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(state: StateDep) -> Iterator[Session]:
    with Session(state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# auto_error=False: a missing header falls through to the session cookie, and the 401
# is raised below with one sentence like every other error.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


UNKNOWN_ADDRESS = "unknown"
MAX_ADDRESS_CHARS = 64  # an IPv6 address with a zone id fits; anything longer is not one


def client_ip(request: Request) -> str:
    """The client's address, normalised; ``"unknown"`` when it is not an IP address.

    uvicorn sets it from the TCP peer, or from X-Forwarded-For sent by a proxy listed
    in ``OKO_TRUSTED_PROXIES``; whatever a header said, only a valid address gets
    through to the audit log and the per-address limits.
    """
    host = request.client.host if request.client else ""
    if not host:
        return ""
    if len(host) > MAX_ADDRESS_CHARS:
        return UNKNOWN_ADDRESS
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return UNKNOWN_ADDRESS


def get_current_user(
    request: Request, session: SessionDep, state: StateDep,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The signed-in user (bearer token or session cookie).

    Raises ``AuthenticationError`` (401) when no valid credentials are presented, the
    token was revoked or the account is disabled, and ``PermissionDeniedError`` (403)
    when a cookie session sends an unsafe request without its CSRF header.
    Tests of other features override this dependency; one suite keeps it real.
    """
    token = bearer or request.cookies.get(SESSION_COOKIE)
    if not token:
        raise AuthenticationError("Sign in to use Oko.")
    user, claims = user_for_token(session, token=token, secret=state.token_secret())
    # end the read: the request may wait for a worker thread before its handler runs,
    # and must not hold a pooled connection meanwhile (nothing is pending to write)
    session.commit()
    if bearer is None and request.method not in SAFE_METHODS:
        check_csrf(claims=claims, header_value=request.headers.get(CSRF_HEADER))
    request.state.token_claims = claims
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def requires(permission: Permission) -> Callable[[User], User]:
    """A route dependency that admits only users whose role grants ``permission`` (else 403).

    Use cases check the same permission again; declaring it on the route answers a
    refused request before its body (an upload, say) is read.
    """

    def _check(user: CurrentUser) -> User:
        require_permission(user, permission)
        return user

    return _check


def get_usecase_context(request: Request, session: SessionDep, state: StateDep,
                        user: CurrentUser) -> UseCaseContext:
    return UseCaseContext(session=session, state=state,
                          actor=Actor.of_user(user, ip=client_ip(request)))


UseCaseDep = Annotated[UseCaseContext, Depends(get_usecase_context)]
"""The signed-in user's context: route parameter ``ctx: UseCaseDep``."""

MAX_DB_ID = 2**63 - 1  # the largest integer key SQLite and PostgreSQL (bigint) can hold
DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="A database id")]
"""Integer path ids: out-of-range values are refused (422) before they reach the DB."""

