"""Typed dependencies for route handlers; handlers never touch ``request.app`` directly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

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


def get_current_user() -> User:
    """The signed-in user (bearer token or session cookie).

    Raises ``AuthenticationError`` (401) when no valid credentials are presented.
    Tests of other features override this dependency; one suite keeps it real.
    """
    raise AuthenticationError("Sign in to use Oko.")


CurrentUser = Annotated[User, Depends(get_current_user)]
