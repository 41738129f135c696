"""API fixtures: an app on a fresh data dir and clients signed in as a given role.

``client_as`` overrides the current-user dependency. The access-control suite
(tests/search_api/test_access*.py) keeps the real guard on instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from search_api.app import create_app
from search_api.deps import get_current_user
from search_api.state import AppState
from storage.models.access import Role, User


@pytest.fixture
def app(state: AppState) -> FastAPI:
    return create_app(state.settings, state=state)


@pytest.fixture
def client_as(app: FastAPI, state: AppState) -> Iterator[Callable[..., TestClient]]:
    """``client_as(Role.INVESTIGATOR, agency="police")`` -> a TestClient acting as that user."""
    clients: list[TestClient] = []

    def _make(role: Role = Role.INVESTIGATOR, *, agency: str = "police",
              username: str | None = None) -> TestClient:
        name = username or f"{role.value}-{agency}"
        with Session(state.engine, expire_on_commit=False) as session:
            user = User(username=name, agency=agency, role=role, password_hash="!")
            session.add(user)
            session.commit()
            session.refresh(user)
        app.dependency_overrides[get_current_user] = lambda: user
        client = TestClient(app)
        clients.append(client)
        return client

    yield _make
    app.dependency_overrides.clear()
    for client in clients:
        client.close()
