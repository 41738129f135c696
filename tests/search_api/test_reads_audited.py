"""Reads leave an audit entry in their own transaction: case lists and details (API and
CLI), audit-log pages and checkpoints; and so do 403s and 404s to a signed-in user."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from search_api.state import AppState
from search_api.usecases import audit_log, cases
from search_api.usecases.context import Actor, os_account_name
from storage.models.access import AuditEvent, Role
from storage.settings import Settings
from tests.search_api.access_helpers import Oko, acting, add_user, oko_runner

Client = Callable[..., TestClient]


def _entries(state: AppState, *actions: str) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).where(col(AuditEvent.action).in_(actions))
                                 .order_by(col(AuditEvent.seq))).all())


def _new_case(client: TestClient, number: str = "KV-7") -> int:
    response = client.post("/api/cases", json={"number": number, "title": "Крадіжка",
                                               "legal_basis": "ст. 185 КК України"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_listing_and_reading_cases_are_audited(client_as: Client, state: AppState) -> None:
    investigator = client_as(Role.INVESTIGATOR, agency="police")
    case_id = _new_case(investigator)
    assert len(investigator.get("/api/cases").json()) == 1
    assert investigator.get(f"/api/cases/{case_id}").status_code == 200
    listed, read = _entries(state, "case_read")
    assert (listed.actor, listed.details) == ("investigator-police",
                                              {"what": "list", "count": 1})
    assert (read.actor, read.details) == ("investigator-police",
                                          {"what": "detail", "case_id": case_id,
                                           "number": "KV-7"})


def test_reading_the_audit_log_is_audited(client_as: Client, state: AppState) -> None:
    auditor = client_as(Role.AUDITOR, agency="oversight")
    page = auditor.get("/api/audit/events", params={"action": "case_read", "limit": 5})
    assert page.status_code == 200 and page.json()["total"] == 0  # not its own entry
    assert auditor.get("/api/audit/checkpoints").status_code == 200
    events, checkpoints = _entries(state, "audit_read")
    assert events.actor == checkpoints.actor == "auditor-oversight"
    assert events.details == {"what": "events", "where": {
        "from": None, "to": None, "actor": None, "action": "case_read"},
        "limit": 5, "offset": 0, "total": 0, "returned": 0}
    assert checkpoints.details == {"what": "checkpoints", "checkpoints": 0}
    again = auditor.get("/api/audit/events", params={"action": "audit_read"}).json()
    assert [item["details"]["what"] for item in again["items"]] == ["checkpoints", "events"]


def test_probing_another_agencys_case_leaves_a_not_found_entry(
        client_as: Client, state: AppState) -> None:
    case_id = _new_case(client_as(Role.INVESTIGATOR, agency="police"))
    probe = client_as(Role.INVESTIGATOR, agency="sbu").get(f"/api/cases/{case_id}")
    assert probe.status_code == 404
    [entry] = _entries(state, "not_found")
    assert (entry.actor, entry.agency) == ("investigator-sbu", "sbu")
    assert entry.details == {"status": 404, "method": "GET", "path": f"/api/cases/{case_id}",
                             "reason": f"Case {case_id} does not exist."}
    assert _entries(state, "case_read") == []  # the refused read itself was rolled back


def test_a_role_without_the_permission_leaves_an_access_denied_entry(
        client_as: Client, state: AppState) -> None:
    auditor = client_as(Role.AUDITOR, agency="police")
    assert auditor.get("/api/cases").status_code == 403
    assert auditor.post("/api/cases", json={"number": "X-1", "title": "t",
                                            "legal_basis": "b"}).status_code == 403
    denied = _entries(state, "access_denied")
    assert [(e.actor, e.details["method"], e.details["path"]) for e in denied] == [
        ("auditor-police", "GET", "/api/cases"), ("auditor-police", "POST", "/api/cases")]
    assert all(e.details["status"] == 403 and e.details["reason"] for e in denied)


def test_nobody_signed_in_leaves_no_refusal_entry(app: FastAPI, state: AppState) -> None:
    with TestClient(app) as anonymous:
        assert anonymous.get("/api/cases").status_code == 401
        assert anonymous.get("/api/cases/1").status_code == 401
    assert _entries(state, "access_denied", "not_found") == []


def test_a_refusal_records_at_most_200_characters_of_path(state: AppState) -> None:
    user = add_user(state, "prober", Role.INVESTIGATOR)
    with acting(state, Actor.of_user(user, ip="203.0.113.7")) as ctx:
        audit_log.record_refusal(ctx, status=404, method="GET", path="/api/" + "x" * 500,
                                 reason="Frame 1 does not exist.")
        with pytest.raises(ValueError, match="not a refusal"):
            audit_log.record_refusal(ctx, status=500, method="GET", path="/", reason="")
    [entry] = _entries(state, "not_found")
    assert len(entry.details["path"]) == 200 and entry.ip == "203.0.113.7"


@pytest.fixture
def oko(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Oko:
    return oko_runner(settings, monkeypatch)


def test_cli_case_list_and_show_are_audited_like_the_api(oko: Oko, state: AppState) -> None:
    add_user(state, "o.petrenko", Role.INVESTIGATOR)
    with acting(state, Actor.local_operator()) as ctx:
        cases.create_case(ctx, number="KV-9", title="t", legal_basis="b",
                          investigator="o.petrenko")
    listed = oko("case", "list", "--json")
    assert listed.code == 0, listed.err
    assert [c["number"] for c in json.loads(listed.out)] == ["KV-9"]
    shown = oko("case", "show", "KV-9", "--json")
    assert shown.code == 0, shown.err
    case_id = json.loads(shown.out)["id"]
    as_user = oko("--as", "o.petrenko", "case", "show", "KV-9")
    assert as_user.code == 0, as_user.err
    operator = f"cli:{os_account_name()}"
    assert [(e.actor, e.ip, e.details) for e in _entries(state, "case_read")] == [
        (operator, "cli", {"what": "list", "count": 1}),
        (operator, "cli", {"what": "detail", "case_id": case_id, "number": "KV-9"}),
        ("o.petrenko", "cli", {"what": "detail", "case_id": case_id, "number": "KV-9"})]


def test_the_cli_operator_is_the_real_uid_not_logname(
        oko: Oko, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "evil")
    assert Actor.local_operator().name == f"cli:{os_account_name()}" != "cli:evil"
    assert oko("case", "list").code == 0
    [entry] = _entries(state, "case_read")
    assert entry.actor == f"cli:{os_account_name()}"
