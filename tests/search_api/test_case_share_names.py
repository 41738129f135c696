"""Cases name users the way sign-in does: usernames are case-insensitive in the API's
share route and in ``oko case create|share`` (one lookup, ``accounts.get_user_or_raise``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from search_api.accounts import create_user
from search_api.cli import main
from search_api.state import AppState
from storage.models.access import AuditEvent, Role, User
from storage.models.evidence import Case, CaseShare


def _add_user(state: AppState, username: str, role: Role) -> User:
    with Session(state.engine, expire_on_commit=False) as session:
        user = create_user(session, username=username, password="correct horse battery",
                           agency="police", role=role)
        session.commit()
    return user


def _shares(state: AppState) -> int:
    with Session(state.engine) as session:
        return int(session.exec(select(func.count()).select_from(CaseShare)).one())


def test_share_route_accepts_any_letter_case(client_as: Callable[..., TestClient],
                                             state: AppState) -> None:
    prosecutor = _add_user(state, "o.koval", Role.PROSECUTOR)
    investigator = client_as(Role.INVESTIGATOR, agency="police")
    case = investigator.post("/api/cases", json={"number": "KV-9", "title": "t",
                                                 "legal_basis": "b"})
    assert case.status_code == 201, case.text
    case_id = case.json()["id"]
    missing = investigator.post(f"/api/cases/{case_id}/shares", json={"username": "ghost"})
    assert missing.status_code == 403  # the answer a forbidden recipient gets too
    assert missing.json()["detail"].startswith("Case KV-9 cannot be shared with 'ghost':")
    assert _shares(state) == 0
    shared = investigator.post(f"/api/cases/{case_id}/shares", json={"username": " O.Koval"})
    assert shared.status_code == 200, shared.text
    assert shared.json()["shared_with"] == [prosecutor.id]


def test_cli_case_create_and_share_accept_any_letter_case(
        state: AppState, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    investigator = _add_user(state, "i.petrenko", Role.INVESTIGATOR)
    prosecutor = _add_user(state, "o.koval", Role.PROSECUTOR)
    monkeypatch.setenv("OKO_HOME", str(state.settings.home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    assert main(["case", "create", "KV-10", "--title", "t", "--legal-basis", "b",
                 "--investigator", "I.Petrenko"]) == 0
    assert main(["case", "share", "KV-10", "--user", "ghost"]) != 0
    assert "Case KV-10 cannot be shared with 'ghost':" in capsys.readouterr().err
    assert _shares(state) == 0
    assert main(["case", "share", "KV-10", "--user", "O.KOVAL"]) == 0
    assert "Shared case KV-10 with o.koval." in capsys.readouterr().out
    with Session(state.engine) as session:
        case = session.exec(select(Case).where(Case.number == "KV-10")).one()
        assert case.investigator_id == investigator.id
        share = session.exec(select(CaseShare)).one()
        assert (share.case_id, share.user_id) == (case.id, prosecutor.id)
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
        assert last is not None and last.details["shared_with"] == "o.koval"
