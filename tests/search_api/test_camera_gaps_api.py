"""``GET /api/cameras/{id}/gaps``: a camera's recording gaps in a time window, for the
moment page's timeline; only for cameras the user may see, the window checked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from search_api.state import AppState
from storage.cameras import add_camera, validate_camera
from storage.db import session_scope
from storage.gaps import open_gap, record_gap
from storage.models.access import AuditEvent, Role
from storage.models.recording import CameraGap

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
def home(state: AppState) -> AppState:
    with session_scope(state.engine) as session:
        add_camera(session, camera=validate_camera(
            id="CAM-001", name="Maidan", latitude=50.45, longitude=30.52, agency="police"))
        record_gap(session, camera_id="CAM-001", start=T0 - timedelta(hours=3),
                   end=T0 - timedelta(hours=2), reason="long ago")
        record_gap(session, camera_id="CAM-001", start=T0 + timedelta(minutes=5),
                   end=T0 + timedelta(minutes=6, seconds=30), reason="The stream ended.")
        open_gap(session, camera_id="CAM-001", start=T0 + timedelta(minutes=50),
                 reason="The camera does not answer.")
    return state


@pytest.fixture
def client_for(home: AppState, client_as: Callable[..., TestClient]
               ) -> Callable[[Role, str], TestClient]:
    return lambda role, agency: client_as(role, agency=agency)


def _window(start: datetime, end: datetime) -> dict[str, str]:
    return {"start": start.isoformat(), "end": end.isoformat()}


def test_the_gaps_overlapping_a_window_oldest_first_an_open_one_without_end(
        client_for: Callable[[Role, str], TestClient]) -> None:
    investigator = client_for(Role.INVESTIGATOR, "police")
    answer = investigator.get("/api/cameras/CAM-001/gaps",
                              params=_window(T0, T0 + timedelta(hours=1)))
    assert answer.status_code == 200, answer.text
    gaps = answer.json()
    assert [(g["reason"], g["seconds"]) for g in gaps] == [
        ("The stream ended.", 90.0), ("The camera does not answer.", None)]
    assert datetime.fromisoformat(gaps[0]["start_utc"]) == T0 + timedelta(minutes=5)
    assert gaps[1]["end_utc"] is None
    before = investigator.get("/api/cameras/CAM-001/gaps",
                              params=_window(T0 - timedelta(minutes=30), T0)).json()
    assert before == []


def test_another_agencys_camera_is_not_found_and_the_refusal_is_audited(
        home: AppState, client_for: Callable[[Role, str], TestClient]) -> None:
    outsider = client_for(Role.INVESTIGATOR, "border-guard")
    answer = outsider.get("/api/cameras/CAM-001/gaps",
                          params=_window(T0, T0 + timedelta(hours=1)))
    assert answer.status_code == 404
    assert "The stream ended." not in answer.text
    with Session(home.engine) as session:
        refusals = session.exec(select(AuditEvent).where(
            col(AuditEvent.action) == "not_found")).all()
    assert [r.details["path"] for r in refusals] == ["/api/cameras/CAM-001/gaps"]
    prosecutor = client_for(Role.PROSECUTOR, "police")
    assert prosecutor.get("/api/cameras/CAM-001/gaps",
                          params=_window(T0, T0 + timedelta(hours=1))).status_code == 403


@pytest.mark.parametrize(("start", "end", "sentence"), [
    ("2026-11-24T10:00:00Z", "2026-11-24T09:00:00Z", "The window ends before it starts."),
    ("2026-10-01T00:00:00Z", "2026-11-24T00:00:00Z", "The window is longer than 31 days"),
    ("2026-11-24T10:00:00", "2026-11-24T11:00:00", "need a time zone"),
])
def test_a_bad_window_is_refused_in_one_sentence_and_changes_nothing(
        home: AppState, client_for: Callable[[Role, str], TestClient],
        start: str, end: str, sentence: str) -> None:
    investigator = client_for(Role.INVESTIGATOR, "police")
    answer = investigator.get("/api/cameras/CAM-001/gaps", params={"start": start, "end": end})
    assert answer.status_code == 422
    assert sentence in answer.json()["detail"]
    with Session(home.engine) as session:
        assert session.exec(select(func.count()).select_from(CameraGap)).one() == 3
    garbage = investigator.get("/api/cameras/CAM-001/gaps",
                               params={"start": "yesterday", "end": end})
    assert garbage.status_code == 422
