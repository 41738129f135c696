"""``PUT /api/cameras/{id}/retention``: admins set a camera's retention period; a bad
period is refused in one sentence and the camera is left as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from indexer.samples import write_cameras_csv
from search_api.state import AppState
from storage.cameras import import_cameras_csv
from storage.db import session_scope
from storage.models.access import AuditEvent, Role
from storage.models.media import Camera

ClientAs = Callable[..., TestClient]


def test_admins_set_a_cameras_retention_and_a_bad_period_changes_nothing(
        state: AppState, client_as: ClientAs, tmp_path: Path) -> None:
    with session_scope(state.engine) as session:
        import_cameras_csv(session, path=write_cameras_csv(tmp_path / "cameras.csv"))
    admin = client_as(Role.ADMIN, agency="police")

    answer = admin.put("/api/cameras/CAM-001/retention", json={"retention_days": 30})
    assert answer.status_code == 200 and answer.json()["retention_days"] == 30
    assert admin.get("/api/cameras/CAM-001").json()["retention_days"] == 30

    for bad in (0, -5, 36_501):
        refused = admin.put("/api/cameras/CAM-001/retention", json={"retention_days": bad})
        assert refused.status_code == 422
        assert refused.json()["detail"] == (
            f"A retention period is 1 to 36500 days, not {bad}.")
    with Session(state.engine) as session:
        assert session.get(Camera, "CAM-001").retention_days == 30  # type: ignore[union-attr]
        changes = [e.details for e in session.exec(
            select(AuditEvent).where(AuditEvent.action == "camera_change")
            .order_by(col(AuditEvent.seq))).all() if e.details["change"] == "retention_days"]
    assert changes == [{"change": "retention_days", "camera_id": "CAM-001",
                        "retention_days": 30}]

    back = admin.put("/api/cameras/CAM-001/retention", json={"retention_days": None})
    assert back.status_code == 200 and back.json()["retention_days"] is None
    denied = client_as(Role.INVESTIGATOR, agency="police").put(
        "/api/cameras/CAM-001/retention", json={"retention_days": 1})
    assert denied.status_code == 403
