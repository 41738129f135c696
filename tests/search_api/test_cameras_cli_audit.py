"""``oko cameras add|import`` record a camera change in the audit log, as the API does;
a refused camera records nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from indexer.samples import write_cameras_csv
from search_api.state import AppState
from storage.models.access import AuditEvent
from tests.search_api.access_helpers import oko_runner


def _camera_entries(state: AppState) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == "camera_change")
                                 .order_by(col(AuditEvent.seq))).all())


def test_cli_camera_registrations_are_audited(state: AppState, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    oko = oko_runner(state.settings, monkeypatch)
    assert oko("cameras", "import", str(write_cameras_csv(tmp_path / "cameras.csv"))).code == 0
    assert oko("cameras", "add", "--id", "CAM-010", "--name", "Podil", "--lat", "50.466",
               "--lon", "30.515", "--agency", "police", "--allow", "municipal_guard").code == 0
    assert oko("cameras", "add", "--id", "CAM-011", "--name", "X", "--lat", "50",
               "--lon", "30", "--agency", "police", "--timezone", "Mars/Base").code == 2
    entries = _camera_entries(state)
    assert [e.details["camera_id"] for e in entries] == ["CAM-001", "CAM-002", "CAM-003",
                                                         "CAM-010"]
    last = entries[-1]
    assert last.actor.startswith("cli:") and last.ip == "cli"
    assert last.details == {"change": "create", "camera_id": "CAM-010", "owner": "police",
                            "allowed_agencies": ["municipal_guard"]}
