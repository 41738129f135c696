"""Typed dependencies for route handlers; handlers never touch ``request.app`` directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from indexer.search.engine import QueryEmbedder
from indexer.shard_files import ShardStore
from search_api.search_support import query_embedder, shard_store
from search_api.security import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    check_csrf,
    load_token_secret,
    user_for_token,
)
from search_api.state import AppState
from storage.errors import AuthenticationError
from storage.models.access import User
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


def get_token_secret(state: StateDep) -> bytes:
    secret = state.extras.get("token_secret")
    if secret is None:
        secret = state.extras["token_secret"] = load_token_secret(state.settings.keys_dir)
    assert isinstance(secret, bytes)
    return secret


def get_current_user(
    request: Request, session: SessionDep, secret: Annotated[bytes, Depends(get_token_secret)],
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
    user, claims = user_for_token(session, token=token, secret=secret)
    if bearer is None and request.method not in SAFE_METHODS:
        check_csrf(claims=claims, header_value=request.headers.get(CSRF_HEADER))
    request.state.token_claims = claims
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]

MAX_DB_ID = 2**63 - 1  # the largest integer key SQLite and PostgreSQL (bigint) can hold
DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="A database id")]
"""Integer path ids: out-of-range values are refused (422) before they reach the DB."""


def get_embedder(state: StateDep) -> Callable[[], QueryEmbedder]:
    """A getter for the process-wide query embedder, loaded on first call.

    The getter raises ``NoModelError`` (503) when no weights are installed; search calls
    it only after validating the request.
    """
    return partial(query_embedder, state)


EmbedderDep = Annotated[Callable[[], QueryEmbedder], Depends(get_embedder)]


def get_shard_store(state: StateDep) -> ShardStore:
    return shard_store(state)


ShardStoreDep = Annotated[ShardStore, Depends(get_shard_store)]
