"""Cameras through the API (visibility, permissions) and the ``oko cameras`` CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from indexer.samples import write_cameras_csv
from search_api.cli import main
from search_api.state import AppState
from storage.cameras import import_cameras_csv, list_cameras
from storage.db import session_scope
from storage.models.access import Role

ClientAs = Callable[..., TestClient]


@pytest.fixture
def with_cameras(state: AppState, tmp_path: Path) -> AppState:
    with session_scope(state.engine) as session:
        import_cameras_csv(session, path=write_cameras_csv(tmp_path / "cameras.csv"))
    return state


def test_cameras_are_listed_only_for_agencies_that_may_see_them(
        with_cameras: AppState, client_as: ClientAs) -> None:
    police = client_as(Role.INVESTIGATOR, agency="police")
    assert [c["id"] for c in police.get("/api/cameras").json()] == [
        "CAM-001", "CAM-002", "CAM-003"]
    guard = client_as(Role.INVESTIGATOR, agency="municipal_guard")
    assert [c["id"] for c in guard.get("/api/cameras").json()] == ["CAM-001"]
    assert guard.get("/api/cameras/CAM-001").json()["allowed_agencies"] == ["municipal_guard"]
    hidden = guard.get("/api/cameras/CAM-002")
    missing = guard.get("/api/cameras/CAM-404")
    assert hidden.status_code == missing.status_code == 404
    # another agency's camera answers exactly like a missing one
    assert hidden.json()["detail"] == missing.json()["detail"].replace("CAM-404", "CAM-002")


def test_only_camera_managers_register_cameras(state: AppState, client_as: ClientAs) -> None:
    body = {"id": "CAM-010", "name": "Podil market", "district": "Podilskyi",
            "latitude": 50.466, "longitude": 30.515, "agency": "police"}
    denied = client_as(Role.INVESTIGATOR).post("/api/cameras", json=body)
    assert denied.status_code == 403
    admin = client_as(Role.ADMIN, agency="police")
    created = admin.post("/api/cameras", json=body)
    assert created.status_code == 201
    assert created.json()["timezone"] == "Europe/Kyiv"
    assert admin.post("/api/cameras", json=body).status_code == 409
    bad = admin.post("/api/cameras", json={**body, "id": "CAM-011", "timezone": "Mars/Base"})
    assert bad.status_code == 422
    with Session(state.engine) as session:
        assert [c.id for c in list_cameras(session)] == ["CAM-010"]


def _oko(monkeypatch: pytest.MonkeyPatch, home: Path, *args: str) -> int:
    monkeypatch.setenv("OKO_HOME", str(home))
    monkeypatch.delenv("OKO_DATABASE_URL", raising=False)
    return main(list(args))


def test_cli_add_import_and_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    csv_path = write_cameras_csv(tmp_path / "cameras.csv")
    assert _oko(monkeypatch, home, "cameras", "import", str(csv_path)) == 0
    assert _oko(monkeypatch, home, "cameras", "add", "--id", "CAM-010", "--name", "Podil",
                "--district", "Podilskyi", "--lat", "50.466", "--lon", "30.515",
                "--agency", "police", "--allow", "municipal_guard") == 0
    capsys.readouterr()
    assert _oko(monkeypatch, home, "cameras", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in listed] == ["CAM-001", "CAM-002", "CAM-003", "CAM-010"]
    assert listed[-1]["allowed_agencies"] == ["municipal_guard"]
    assert _oko(monkeypatch, home, "cameras", "list") == 0
    assert "CAM-010" in capsys.readouterr().out


def test_cli_refuses_bad_camera_with_one_sentence(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = _oko(monkeypatch, tmp_path / "home", "cameras", "add", "--id", "CAM-1", "--name",
                "X", "--lat", "50", "--lon", "30", "--agency", "police",
                "--timezone", "Mars/Base")
    assert code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: Invalid camera (timezone: 'Mars/Base' is not an IANA time zone" in err
