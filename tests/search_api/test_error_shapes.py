"""Every error answer has one shape: a sentence, a stable code for the web app, details.

Also: when every database connection stays busy, a request is shed with 503 "busy" and
Retry-After instead of waiting forever or failing with a 500 (issue 10, load check).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from search_api.app import create_app
from search_api.state import build_state
from storage.errors import ConflictError, InvalidInputError, NotFoundError, OkoError
from storage.models.access import AuditEvent, Role
from storage.settings import Settings


def test_error_classes_carry_stable_codes() -> None:
    assert NotFoundError("x").code == "not_found"
    assert InvalidInputError("x").code == "invalid_input"
    assert ConflictError("x", code="receipt_case_mismatch").code == "receipt_case_mismatch"
    assert OkoError("x").code == "oko"


def test_not_found_answer_has_a_code(client_as: Callable[..., TestClient]) -> None:
    client = client_as(Role.INVESTIGATOR)
    response = client.get("/api/cases/999999")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not_found"
    assert isinstance(body["detail"], str) and body["detail"]


def test_validation_errors_are_one_sentence_with_field_details(
        client_as: Callable[..., TestClient]) -> None:
    client = client_as(Role.INVESTIGATOR)
    response = client.post("/api/search", json={"k": "many"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["detail"] == "The request has invalid or missing fields."
    assert any(line.startswith("k:") for line in body["details"])


def test_unknown_route_has_a_code(client_as: Callable[..., TestClient]) -> None:
    response = client_as(Role.INVESTIGATOR).get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_exhausted_connection_pool_sheds_with_503(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", db_pool_size=1,
                        db_pool_timeout_seconds=0.2)
    state = build_state(settings)
    try:
        app = create_app(settings, state=state)
        with state.engine.connect() as held, TestClient(app) as client:
            held.exec_driver_sql("SELECT 1")  # the pool's only connection stays checked out
            response = client.post("/api/auth/token",
                                   data={"username": "nobody", "password": "wrong"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json() == {"detail": "The service is busy; try again in a few "
                                   "seconds.", "code": "busy", "details": []}
        with Session(state.engine) as session:  # nothing half-written by the shed request
            assert session.exec(select(AuditEvent)).all() == []
    finally:
        state.engine.dispose()


def test_the_signed_in_user_is_loaded_without_holding_a_connection(tmp_path: Path) -> None:
    """Between its dependencies and its handler a request may wait for a worker thread;
    it must not keep a pooled connection then, or a burst exhausts the pool."""
    from starlette.requests import Request

    from search_api.deps import get_current_user
    from search_api.security import issue_token
    from storage.models.access import User

    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase")
    state = build_state(settings)
    try:
        with Session(state.engine, expire_on_commit=False) as session:
            user = User(username="ivan", agency="police", role=Role.INVESTIGATOR,
                        password_hash="!")
            session.add(user)
            session.commit()
        token = issue_token(user=user, secret=state.token_secret(), minutes=5).token
        request = Request({"type": "http", "method": "GET", "path": "/api/cases",
                           "headers": [], "query_string": b""})
        with Session(state.engine, expire_on_commit=False) as session:
            found = get_current_user(request, session, state, token)
            assert found.username == "ivan"
            assert not session.in_transaction()
            assert state.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        state.engine.dispose()
