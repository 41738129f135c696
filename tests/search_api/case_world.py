"""A small multi-agency world for the sharing and export-visibility tests.

Two police cameras with real footage: ``cam-1`` (the ``guard`` agency is also allowed on
it) and ``cam-2`` (police only). Users of several agencies and roles; ``as_(name)`` makes
the one TestClient act as that user (the API's real error handler, audit included).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from evidence.keys import ensure_signing_identity
from search_api.app import create_app
from search_api.deps import get_current_user
from search_api.state import AppState
from storage.models.access import AuditEvent, Role, User
from storage.models.evidence import CaseClip, CaseShare, CustodyEntry, ExportJob
from storage.models.media import Camera
from tests.evidence.conftest import make_footage, store_original

CLIP_1 = {"camera_id": "cam-1", "start_utc": "2026-11-24T10:00:01Z",
          "end_utc": "2026-11-24T10:00:03Z"}
CLIP_2 = {**CLIP_1, "camera_id": "cam-2"}
USERS = {  # name: (role, agency)
    "owner": (Role.INVESTIGATOR, "police"), "colleague": (Role.INVESTIGATOR, "police"),
    "chief": (Role.SUPERVISOR, "police"), "sbu-chief": (Role.SUPERVISOR, "sbu"),
    "guard": (Role.INVESTIGATOR, "guard"), "guard-chief": (Role.SUPERVISOR, "guard"),
    "sbu": (Role.INVESTIGATOR, "sbu"), "prosecutor": (Role.PROSECUTOR, "prosecution"),
    "auditor": (Role.AUDITOR, "police"), "admin": (Role.ADMIN, "police"),
    "retired": (Role.INVESTIGATOR, "police"),
}


@dataclass
class Snapshot:
    """What the database holds: rows that an action may write, and audit actions."""

    shares: int
    clips: int
    exports: list[tuple[int, str]]
    custody: int
    audit: Counter[str]


@dataclass
class CaseWorld:
    app: FastAPI
    state: AppState
    client: TestClient
    users: dict[str, User]

    def as_(self, name: str) -> TestClient:
        user = self.users[name]
        self.app.dependency_overrides[get_current_user] = lambda: user
        return self.client

    def new_case(self, number: str, *clips: dict[str, str]) -> int:
        owner = self.as_("owner")
        response = owner.post("/api/cases", json={"number": number, "title": "Крадіжка",
                                                  "legal_basis": "ст. 185 КК України"})
        assert response.status_code == 201, response.text
        case_id = int(response.json()["id"])
        for clip in clips:
            added = owner.post(f"/api/cases/{case_id}/clips", json=clip)
            assert added.status_code == 201, added.text
        return case_id

    def share(self, case_id: int, *, by: str, to: str) -> tuple[int, dict[str, object]]:
        response = self.as_(by).post(f"/api/cases/{case_id}/shares", json={"username": to})
        return response.status_code, response.json()

    def set_allowed(self, camera_id: str, agencies: list[str]) -> None:
        with Session(self.state.engine) as session:
            camera = session.get(Camera, camera_id)
            assert camera is not None
            camera.allowed_agencies = agencies
            session.add(camera)
            session.commit()

    def snapshot(self) -> Snapshot:
        with Session(self.state.engine) as session:
            def count(table: type) -> int:
                return int(session.exec(select(func.count()).select_from(table)).one())

            exports = [(j.id or 0, j.status) for j in session.exec(
                select(ExportJob).order_by(col(ExportJob.id))).all()]
            audit = Counter(session.exec(select(AuditEvent.action)).all())
            return Snapshot(count(CaseShare), count(CaseClip), exports, count(CustodyEntry),
                            audit)


def build_case_world(state: AppState, tmp_path: Path) -> CaseWorld:
    settings = state.settings
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation=settings.organisation,
                            passphrase=settings.key_passphrase)
    with Session(state.engine, expire_on_commit=False) as session:
        session.add(Camera(id="cam-1", name="Майдан", latitude=50.45, longitude=30.52,
                           agency="police", allowed_agencies=["guard"]))
        session.add(Camera(id="cam-2", name="Поділ", latitude=50.46, longitude=30.51,
                           agency="police"))
        session.flush()
        store_original(session, state, make_footage(tmp_path / "cam1.mp4"), camera_id="cam-1")
        store_original(session, state, make_footage(tmp_path / "cam2.mp4", source="mandelbrot"),
                       camera_id="cam-2")
        users = {name: User(username=name, agency=agency, role=role, password_hash="!",
                            disabled=name == "retired")
                 for name, (role, agency) in USERS.items()}
        session.add_all(users.values())
        session.commit()
        for user in users.values():
            session.refresh(user)
    app = create_app(settings, state=state)
    return CaseWorld(app=app, state=state, client=TestClient(app), users=users)


__all__ = ["CLIP_1", "CLIP_2", "CaseWorld", "Snapshot", "build_case_world"]
