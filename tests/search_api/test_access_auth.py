"""Sign-in, tokens, cookie sessions, CSRF, rate limits, headers, body limits: the real guard.

These tests never override ``get_current_user``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from evidence.keys import ensure_signing_identity
from search_api.app import create_app
from search_api.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from search_api.state import AppState, build_state
from storage.models.access import AuditEvent, LoginAttempt, Role, User
from storage.settings import Settings
from tests.search_api.access_helpers import PASSWORD, add_user

CLIENT_ADDRESS = "203.0.113.5"


@pytest.fixture
def make_client(app: FastAPI) -> Iterator[Callable[[], TestClient]]:
    clients: list[TestClient] = []

    def _make() -> TestClient:
        client = TestClient(app, base_url="https://testserver",  # Secure cookies need https
                            client=(CLIENT_ADDRESS, 50000))
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close()


def bearer(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/api/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def audit_rows(state: AppState) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def test_token_flow_and_me(state: AppState, make_client: Callable[[], TestClient]) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    client = make_client()
    me = client.get("/api/auth/me", headers=bearer(client, "Ivan"))
    assert me.status_code == 200
    assert me.json()["username"] == "ivan" and "search" in me.json()["permissions"]
    assert "password_hash" not in me.json()
    login = audit_rows(state)[-1]
    assert (login.action, login.actor, login.agency, login.ip) == (
        "login", "ivan", "police", CLIENT_ADDRESS)


def test_401_versus_403(state: AppState, make_client: Callable[[], TestClient]) -> None:
    add_user(state, "audrey", Role.AUDITOR)
    client = make_client()
    missing = client.get("/api/users")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["detail"] == "Sign in to use Oko."
    forged = client.get("/api/users", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401
    assert forged.json()["detail"] == "Your session has expired or is invalid; sign in again."
    denied = client.get("/api/users", headers=bearer(client, "audrey"))
    assert denied.status_code == 403
    assert denied.json()["detail"] == "Your role (auditor) may not manage users."


def test_expired_token_is_refused(state: AppState, settings: Settings,
                                  make_client: Callable[[], TestClient]) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    settings.token_minutes = -1
    client = make_client()
    response = client.get("/api/auth/me", headers=bearer(client, "ivan"))
    assert response.status_code == 401


def test_failed_logins_are_audited_without_the_password(
        state: AppState, make_client: Callable[[], TestClient]) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    client = make_client()
    for username in ("ivan", "nobody"):
        response = client.post("/api/auth/token",
                               data={"username": username, "password": "wrong-password-1"})
        assert response.status_code == 401
        assert response.json()["detail"] == "Wrong username or password."
    rows = audit_rows(state)
    assert [(r.action, r.actor) for r in rows] == [("login_failed", "ivan"),
                                                   ("login_failed", "nobody")]
    assert all("wrong-password-1" not in str(r.details) for r in rows)


def test_disabled_user_is_refused_at_once_with_an_unexpired_token(
        state: AppState, make_client: Callable[[], TestClient]) -> None:
    add_user(state, "root", Role.ADMIN, agency="city")
    ivan = add_user(state, "ivan", Role.INVESTIGATOR)
    admin, victim = make_client(), make_client()
    ivan_auth = bearer(victim, "ivan")
    assert victim.get("/api/auth/me", headers=ivan_auth).status_code == 200
    disabled = admin.patch(f"/api/users/{ivan.id}", json={"disabled": True},
                           headers=bearer(admin, "root"))
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    refused = victim.get("/api/auth/me", headers=ivan_auth)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "This account is disabled."
    relogin = victim.post("/api/auth/token", data={"username": "ivan", "password": PASSWORD})
    assert relogin.status_code == 401
    change = audit_rows(state)[-2]
    assert (change.action, change.actor, change.details["username"]) == (
        "user_change", "root", "ivan")


ENDED = ("This session ended when the account's password was reset or it was disabled;"
         " sign in again.")


def test_a_password_reset_ends_the_users_tokens(
        state: AppState, make_client: Callable[[], TestClient]) -> None:
    add_user(state, "root", Role.ADMIN, agency="city")
    ivan = add_user(state, "ivan", Role.INVESTIGATOR)
    admin, victim = make_client(), make_client()
    old_auth = bearer(victim, "ivan")
    reset = admin.patch(f"/api/users/{ivan.id}", json={"password": "a new long password"},
                        headers=bearer(admin, "root"))
    assert reset.status_code == 200, reset.text
    refused = victim.get("/api/auth/me", headers=old_auth)
    assert refused.status_code == 401
    assert refused.json()["detail"] == ENDED
    new_auth = bearer(victim, "ivan", "a new long password")
    assert victim.get("/api/auth/me", headers=new_auth).status_code == 200


def test_re_enabling_a_user_does_not_bring_old_tokens_back(
        state: AppState, make_client: Callable[[], TestClient]) -> None:
    add_user(state, "root", Role.ADMIN, agency="city")
    ivan = add_user(state, "ivan", Role.INVESTIGATOR)
    admin, victim = make_client(), make_client()
    admin_auth, old_auth = bearer(admin, "root"), bearer(victim, "ivan")
    for disabled in (True, False):
        response = admin.patch(f"/api/users/{ivan.id}", json={"disabled": disabled},
                               headers=admin_auth)
        assert response.status_code == 200, response.text
    refused = victim.get("/api/auth/me", headers=old_auth)
    assert refused.status_code == 401
    assert refused.json()["detail"] == ENDED
    assert victim.get("/api/auth/me", headers=bearer(victim, "ivan")).status_code == 200


def test_logout_revokes_the_token(state: AppState, make_client: Callable[[], TestClient]) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    client = make_client()
    auth = bearer(client, "ivan")
    assert client.post("/api/auth/logout", headers=auth).json() == {"signed_out": True}
    response = client.get("/api/auth/me", headers=auth)
    assert response.status_code == 401
    assert response.json()["detail"] == "This session was signed out; sign in again."


def test_cookie_session_attributes_and_csrf(state: AppState,
                                            make_client: Callable[[], TestClient]) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    client = make_client()
    login = client.post("/api/auth/login", json={"username": "ivan", "password": PASSWORD})
    assert login.status_code == 200
    cookies = {c.split("=", 1)[0]: c.lower() for c in login.headers.get_list("set-cookie")}
    session_cookie, csrf_cookie = cookies[SESSION_COOKIE], cookies[CSRF_COOKIE]
    for cookie in (session_cookie, csrf_cookie):
        assert "secure" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "httponly" in session_cookie and "httponly" not in csrf_cookie
    csrf = login.json()["csrf_token"]
    assert client.cookies[CSRF_COOKIE] == csrf

    assert client.get("/api/auth/me").status_code == 200  # safe method: no header needed
    for headers in ({}, {CSRF_HEADER: "guessed"}):
        refused = client.post("/api/auth/logout", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "Missing or wrong X-CSRF-Token header; reload the page and try again.")
    assert client.get("/api/auth/me").status_code == 200  # the refused logout did nothing
    assert client.post("/api/auth/logout", headers={CSRF_HEADER: csrf}).status_code == 200
    assert client.get("/api/auth/me").status_code == 401


def test_csrf_token_of_another_session_is_refused(
        state: AppState, make_client: Callable[[], TestClient]) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    add_user(state, "mallory", Role.INVESTIGATOR)
    ivan, mallory = make_client(), make_client()
    ivan.post("/api/auth/login", json={"username": "ivan", "password": PASSWORD})
    other = mallory.post("/api/auth/login", json={"username": "mallory", "password": PASSWORD})
    response = ivan.post("/api/auth/logout", headers={CSRF_HEADER: other.json()["csrf_token"]})
    assert response.status_code == 403


@pytest.fixture
def strict_app(tmp_path: Path) -> Iterator[tuple[FastAPI, AppState]]:
    settings = Settings(home=tmp_path / "strict", environment="test",
                        login_max_failures_per_user=3, login_max_failures_per_ip=5,
                        max_upload_bytes=4096)
    state = build_state(settings)
    yield create_app(settings, state=state), state
    state.engine.dispose()


def test_login_rate_limited_per_user(strict_app: tuple[FastAPI, AppState]) -> None:
    app, state = strict_app
    add_user(state, "ivan", Role.INVESTIGATOR)
    client = TestClient(app, base_url="https://testserver")
    for _ in range(3):
        wrong = client.post("/api/auth/token", data={"username": "ivan", "password": "nope"})
        assert wrong.status_code == 401
    limited = client.post("/api/auth/token", data={"username": "ivan", "password": PASSWORD})
    assert limited.status_code == 429
    assert limited.json()["detail"] == (
        "Too many failed sign-ins for this user from this address; try again in 15 minutes.")
    assert audit_rows(state)[-1].details["reason"] == limited.json()["detail"]


def test_login_rate_limited_per_ip(strict_app: tuple[FastAPI, AppState]) -> None:
    app, state = strict_app
    add_user(state, "olena", Role.INVESTIGATOR)
    client = TestClient(app, base_url="https://testserver")
    for i in range(5):
        response = client.post("/api/auth/login",
                               json={"username": f"guess{i}", "password": "nope"})
        assert response.status_code == 401
    limited = client.post("/api/auth/login", json={"username": "olena", "password": PASSWORD})
    assert limited.status_code == 429
    assert "from this address" in limited.json()["detail"]
    assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")
    with Session(state.engine) as session:  # the refused try is counted, not stored
        assert len(session.exec(select(LoginAttempt)).all()) == 5


def test_request_body_limit(strict_app: tuple[FastAPI, AppState]) -> None:
    app, state = strict_app
    add_user(state, "root", Role.ADMIN, agency="city")
    client = TestClient(app, base_url="https://testserver")
    auth = bearer(client, "root")
    big = {"username": "huge", "password": PASSWORD, "agency": "police",
           "role": "investigator", "full_name": "x" * 10_000}
    declared = client.post("/api/users", json=big, headers=auth)
    assert declared.status_code == 413
    assert declared.json()["detail"] == (
        "The request body is larger than the 0 MiB limit (OKO_MAX_UPLOAD_BYTES).")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"username": "huge2", "password": "correct horse battery", "agency": "police",'
        yield b' "role": "investigator", "full_name": "' + b"y" * 8192 + b'"}'

    streamed = client.post("/api/users", content=chunks(),
                           headers={**auth, "Content-Type": "application/json"})
    assert streamed.status_code == 413
    with Session(state.engine) as session:
        huge = select(User).where(col(User.username).in_(["huge", "huge2"]))
        assert session.exec(huge).all() == []
        assert [e.action for e in session.exec(select(AuditEvent))] == ["login"]


def test_security_headers_on_ui_and_api(make_client: Callable[[], TestClient]) -> None:
    client = make_client()
    for path in ("/", "/index.html", "/api/auth/me"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/").status_code == 200
    assert "text/html" in client.get("/").headers["content-type"]


def test_no_passwords_tokens_or_passphrases_in_logs(
        state: AppState, settings: Settings, make_client: Callable[[], TestClient],
        caplog: pytest.LogCaptureFixture) -> None:
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Oko test",
                            passphrase=settings.key_passphrase)
    settings.audit_checkpoint_entries = 1  # every entry signs a checkpoint with the key
    add_user(state, "ivan", Role.INVESTIGATOR)
    caplog.set_level(logging.DEBUG)
    client = make_client()
    client.post("/api/auth/token", data={"username": "ivan", "password": "bad-password-42"})
    token = bearer(client, "ivan")["Authorization"].removeprefix("Bearer ")
    client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    login = client.post("/api/auth/login", json={"username": "ivan", "password": PASSWORD})
    csrf = login.json()["csrf_token"]
    client.post("/api/auth/logout", headers={CSRF_HEADER: csrf})
    assert caplog.records, "the run should have logged something (httpx, sqlalchemy)"
    for secret in (PASSWORD, "bad-password-42", token, csrf, settings.key_passphrase):
        assert secret is not None and secret not in caplog.text
    for row in audit_rows(state):
        assert PASSWORD not in str(row.details) and token not in str(row.details)


def test_every_api_route_denies_anonymous_requests(app: FastAPI) -> None:
    """Deny by default: only the declared public sign-in routes answer without a user."""
    public = {("POST", "/api/auth/token"), ("POST", "/api/auth/login")}
    client = TestClient(app, base_url="https://testserver")
    seen = set()
    for route in iter_route_contexts(app.routes):
        if not (route.path or "").startswith("/api/"):
            continue
        for method in route.methods or ():
            seen.add((method, route.path))
            if (method, route.path) in public:
                continue
            path = (route.path or "").replace("{", "").replace("}", "")  # placeholder values
            response = client.request(method, path)
            assert response.status_code == 401, (method, route.path, response.text)
    assert public <= seen
