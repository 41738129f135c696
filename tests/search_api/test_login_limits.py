"""Sign-in limits: atomic under parallel tries, per (user, address) before per account,
refusals counted rather than stored, old rows pruned. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from search_api.app import create_app
from search_api.security import RateLimitedError
from search_api.state import AppState, build_state
from search_api.usecases.auth import sign_in
from search_api.usecases.context import Actor
from storage.errors import AuthenticationError
from storage.models.access import AuditEvent, LoginAttempt, LoginRefusal, RevokedToken, Role
from storage.settings import Settings
from storage.types import utcnow
from tests.search_api.access_helpers import PASSWORD, acting, add_user
from tests.services import DATABASE_BACKENDS, database_url_for

PER_USER, PER_ACCOUNT, PER_IP = 5, 8, 20
HOME, AWAY, THIRD = "198.51.100.1", "198.51.100.2", "198.51.100.3"


@pytest.fixture(params=DATABASE_BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppState]:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        database_url=database_url_for(request, tmp_path, migrated=True),
                        login_max_failures_per_user=PER_USER,
                        login_max_failures_per_account=PER_ACCOUNT,
                        login_max_failures_per_ip=PER_IP)
    app_state = build_state(settings)
    yield app_state
    app_state.engine.dispose()


def try_sign_in(state: AppState, *, ip: str, username: str = "ivan",
                password: str = "wrong-password") -> str:  # noqa: S107 (a wrong one)
    """"ok", or the sentence the try was refused with."""
    with acting(state, Actor.unauthenticated(attempted_username=username, ip=ip)) as ctx:
        try:
            sign_in(ctx, username=username, password=password, method="token")
        except (AuthenticationError, RateLimitedError) as exc:
            return exc.message
    return "ok"


def count(state: AppState, table: type[LoginAttempt] | type[AuditEvent]) -> int:
    with Session(state.engine) as session:
        return len(session.exec(select(table)).all())


WRONG = "Wrong username or password."
LOCKED_HERE = "Too many failed sign-ins for this user from this address; try again in 15 minutes."
LOCKED_ACCOUNT = "Too many failed sign-ins for this user; try again in 15 minutes."


def test_parallel_wrong_passwords_let_at_most_the_limit_through(state: AppState) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    start = threading.Barrier(40)
    answers: list[str] = []

    def attempt() -> None:
        start.wait()
        answers.append(try_sign_in(state, ip=HOME))

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert Counter(answers) == {WRONG: PER_USER, LOCKED_HERE: 40 - PER_USER}
    assert count(state, LoginAttempt) == PER_USER
    assert count(state, AuditEvent) == PER_USER + 1  # each failure, the refusals once


def test_refused_tries_are_counted_and_audited_once_a_window(state: AppState) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    for _ in range(PER_USER):
        assert try_sign_in(state, ip=HOME) == WRONG
    before = count(state, AuditEvent)
    for _ in range(100):
        assert try_sign_in(state, ip=HOME) == LOCKED_HERE
    assert count(state, AuditEvent) == before + 1
    assert count(state, LoginAttempt) == PER_USER
    with Session(state.engine) as session:
        [refusal] = session.exec(select(LoginRefusal)).all()
        assert (refusal.scope, refusal.subject, refusal.refused) == (
            "user_address", f"ivan|{HOME}", 100)
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
        assert last is not None and last.details["reason"] == LOCKED_HERE


def test_a_stranger_locks_a_user_out_of_one_address_not_the_account(state: AppState) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    for _ in range(PER_USER):
        assert try_sign_in(state, ip=AWAY) == WRONG
    assert try_sign_in(state, ip=AWAY, password=PASSWORD) == LOCKED_HERE
    assert try_sign_in(state, ip=HOME, password=PASSWORD) == "ok"
    # Failures from enough addresses together lock the account everywhere.
    for _ in range(PER_ACCOUNT - PER_USER):
        assert try_sign_in(state, ip=HOME) == WRONG
    assert try_sign_in(state, ip=THIRD, password=PASSWORD) == LOCKED_ACCOUNT


def test_the_address_limit_stays(state: AppState) -> None:
    for i in range(PER_IP):
        assert try_sign_in(state, ip=HOME, username=f"guess{i}") == WRONG
    for i in range(30):  # new names from a locked address add no audit entry either
        assert try_sign_in(state, ip=HOME, username=f"more{i}") == (
            "Too many failed sign-ins from this address; try again in 15 minutes.")
    assert count(state, AuditEvent) == PER_IP + 1


def test_signing_in_prunes_expired_attempts_refusals_and_revoked_tokens(
        state: AppState) -> None:
    add_user(state, "ivan", Role.INVESTIGATOR)
    old, now = utcnow() - timedelta(days=1), utcnow()
    with Session(state.engine) as session:
        session.add(LoginAttempt(username="ivan", ip=HOME, attempted_at=old))
        session.add(LoginRefusal(scope="address", subject=HOME, first_at=old, last_at=old))
        session.add(RevokedToken(jti="expired", expires_at=old))
        session.add(RevokedToken(jti="live", expires_at=now + timedelta(hours=1)))
        session.commit()
    assert try_sign_in(state, ip=AWAY, password=PASSWORD) == "ok"
    with Session(state.engine) as session:
        attempts = session.exec(select(LoginAttempt)).all()
        assert [(a.ip, a.succeeded) for a in attempts] == [(AWAY, True)]
        assert session.exec(select(LoginRefusal)).all() == []
        assert [t.jti for t in session.exec(select(RevokedToken)).all()] == ["live"]


@pytest.mark.parametrize("username", ["iv%00an", "x" * 10_000, "%C4%B0" * 64, "%ED%A0%80%FF"])
def test_odd_names_get_one_sentence_not_a_500(state: AppState, username: str) -> None:
    """NUL, very long, lengthened by lowercasing, not UTF-8 (form-encoded as sent)."""
    with TestClient(create_app(state.settings, state=state)) as client:
        response = client.post(
            "/api/auth/token", content=f"username={username}&password=wrong-password",
            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == WRONG
    with Session(state.engine) as session:
        event = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
        assert event is not None and len(event.actor) <= 64 and "\x00" not in event.actor
