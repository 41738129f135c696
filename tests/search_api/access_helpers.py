"""Helpers shared by the access tests: real users with a known password, and ``oko``
run in this process against a test data dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from search_api.accounts import create_user
from search_api.cli import main
from search_api.state import AppState
from search_api.usecases.context import Actor, UseCaseContext
from storage.models.access import Role, User
from storage.settings import Settings

PASSWORD = "correct horse battery"


@contextmanager
def acting(state: AppState, actor: Actor) -> Iterator[UseCaseContext]:
    with Session(state.engine, expire_on_commit=False) as session:
        yield UseCaseContext(session=session, state=state, actor=actor)


def as_user(state: AppState, user: User) -> AbstractContextManager[UseCaseContext]:
    return acting(state, Actor.of_user(user, ip="203.0.113.7"))


def add_user(state: AppState, username: str, role: Role, agency: str = "police") -> User:
    """A real, committed user whose password is ``PASSWORD``."""
    with Session(state.engine, expire_on_commit=False) as session:
        user = create_user(session, username=username, password=PASSWORD, agency=agency,
                           role=role)
        session.commit()
    return user


@dataclass
class CliResult:
    code: int
    out: str
    err: str


Oko = Callable[..., CliResult]


def oko_runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Oko:
    """``run("users", "list", input=...)`` runs ``oko`` on ``settings``' data dir."""
    monkeypatch.setenv("OKO_HOME", str(settings.home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", settings.key_passphrase or "")
    if settings.database_url:
        monkeypatch.setenv("OKO_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("OKO_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, input: str | None = None) -> CliResult:
        with CliRunner().isolation(input=input) as (out, err, _):
            code = main(list(args))
            return CliResult(code, out.getvalue().decode(), err.getvalue().decode())

    return run
