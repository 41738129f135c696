"""Cases API: the access rule (404, no leaks), clips, shares, export jobs, custody."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from evidence.keys import ensure_signing_identity
from evidence.verify import verify_bundle
from search_api.deps import get_current_user
from search_api.state import AppState
from search_api.tasks.evidence import export_case_task
from storage.models.access import Role, User
from storage.models.evidence import CaseClip, ExportJob
from storage.models.media import Camera
from tests.evidence.conftest import make_footage, store_original

Client = Callable[..., TestClient]
CLIP = {"camera_id": "cam-1", "start_utc": "2026-11-24T10:00:01Z",
        "end_utc": "2026-11-24T10:00:03Z", "note": "велосипед"}
SEARCH = {"query": "red bicycle", "model": "ViT-B-32", "weights_sha256": "ab" * 32,
          "score": 0.31}  # what a client may no longer send (test_clip_provenance.py)


@pytest.fixture
def act_as(client_as: Client, app: FastAPI, state: AppState) -> Client:
    """Switch the signed-in user (``client_as`` overrides one user for the whole app)."""
    made: dict[str, TestClient] = {}

    def _act(role: Role, *, username: str | None = None) -> TestClient:
        name = username or f"{role.value}-police"
        if name not in made:
            made[name] = client_as(role, username=name)
        with Session(state.engine, expire_on_commit=False) as session:
            user = session.exec(select(User).where(User.username == name)).one()
        app.dependency_overrides[get_current_user] = lambda: user
        return made[name]

    return _act


@pytest.fixture
def footage(state: AppState, tmp_path: Path) -> None:
    ensure_signing_identity(keys_dir=state.settings.keys_dir,
                            organisation=state.settings.organisation,
                            passphrase=state.settings.key_passphrase)
    with Session(state.engine) as session:
        session.add(Camera(id="cam-1", name="Майдан", latitude=50.45, longitude=30.52,
                           agency="police"))
        session.add(Camera(id="cam-sbu", name="Elsewhere", latitude=50.4, longitude=30.5,
                           agency="sbu"))
        session.flush()
        store_original(session, state, make_footage(tmp_path / "cam1.mp4"), camera_id="cam-1")
        session.commit()


def _new_case(client: TestClient, number: str = "KV-7") -> int:
    response = client.post("/api/cases", json={"number": number, "title": "Крадіжка велосипеда",
                                               "legal_basis": "ст. 185 КК України"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_create_add_clips_and_read(act_as: Client, footage: None) -> None:
    investigator = act_as(Role.INVESTIGATOR)
    case_id = _new_case(investigator)
    by_hand = investigator.post(f"/api/cases/{case_id}/clips", json=CLIP)
    assert by_hand.status_code == 201
    assert (by_hand.json()["source"], by_hand.json()["origin"]) == ("manual", "added by hand")
    claimed = investigator.post(f"/api/cases/{case_id}/clips",
                                json={**CLIP, "search_provenance": SEARCH})
    assert claimed.status_code == 422
    detail = investigator.get(f"/api/cases/{case_id}").json()
    assert detail["title"] == "Крадіжка велосипеда" and len(detail["clips"]) == 1
    assert [e["action"] for e in detail["custody"]] == ["clip"]
    assert detail["custody"][0]["details"]["origin"] == "added by hand"
    assert [c["number"] for c in investigator.get("/api/cases").json()] == ["KV-7"]
    duplicate = investigator.post("/api/cases", json={"number": "KV-7", "title": "t",
                                                      "legal_basis": "b"})
    assert duplicate.status_code == 409 and duplicate.json()["detail"] == \
        "Case KV-7 already exists."


def test_access_rule_hides_cases_as_404(act_as: Client, footage: None,
                                        state: AppState) -> None:
    roles = {"other-investigator": Role.INVESTIGATOR, "prosecutor-police": Role.PROSECUTOR,
             "auditor-police": Role.AUDITOR}
    for name, role in roles.items():
        act_as(role, username=name)
    case_id = _new_case(act_as(Role.INVESTIGATOR))
    for name, role in roles.items():
        client = act_as(role, username=name)
        response = client.get(f"/api/cases/{case_id}")
        assert response.status_code == 404
        assert (response.json()["detail"], response.json()["details"]) == (
            f"Case {case_id} does not exist.", [])
        listed = client.get("/api/cases")  # auditors may not list cases at all (403)
        assert (listed.status_code == 403) if role == Role.AUDITOR else (listed.json() == [])
        assert client.get("/api/cases/9999").status_code == 404
    other = act_as(Role.INVESTIGATOR, username="other-investigator")
    assert other.post(f"/api/cases/{case_id}/clips", json=CLIP).status_code == 404
    assert act_as(Role.ADMIN).post("/api/cases", json={"number": "A-1", "title": "t",
                                                       "legal_basis": "b"}).status_code == 403
    shared = act_as(Role.INVESTIGATOR).post(f"/api/cases/{case_id}/shares",
                                            json={"username": "prosecutor-police"})
    assert shared.status_code == 200
    refused = act_as(Role.INVESTIGATOR).post(f"/api/cases/{case_id}/shares",
                                             json={"username": "auditor-police"})
    assert refused.status_code == 403  # auditors read no cases: no recipients
    prosecutor = act_as(Role.PROSECUTOR)
    assert prosecutor.get(f"/api/cases/{case_id}").status_code == 200
    assert prosecutor.post(f"/api/cases/{case_id}/clips", json=CLIP).status_code == 403
    assert act_as(Role.AUDITOR).get(f"/api/cases/{case_id}").status_code == 404
    with Session(state.engine) as session:
        assert session.exec(select(CaseClip)).all() == []


def test_clip_on_another_agencys_camera_is_404_and_not_written(act_as: Client,
                                                               footage: None,
                                                               state: AppState) -> None:
    investigator = act_as(Role.INVESTIGATOR)
    case_id = _new_case(investigator)
    response = investigator.post(f"/api/cases/{case_id}/clips",
                                 json={**CLIP, "camera_id": "cam-sbu"})
    assert response.status_code == 404
    assert response.json()["detail"] == "Camera 'cam-sbu' does not exist."
    bad = investigator.post(f"/api/cases/{case_id}/clips",
                            json={**CLIP, "end_utc": "2026-11-24T09:00:00Z"})
    assert bad.status_code == 422 and bad.json()["detail"] == "A clip must end after it starts."
    with Session(state.engine) as session:
        assert session.exec(select(CaseClip)).all() == []


def test_export_job_progress_download_transfer_receipt(act_as: Client, footage: None,
                                                       state: AppState) -> None:
    investigator = act_as(Role.INVESTIGATOR)
    case_id = _new_case(investigator)
    investigator.post(f"/api/cases/{case_id}/clips", json=CLIP)
    started = investigator.post(f"/api/cases/{case_id}/exports")
    assert started.status_code == 202 and started.json()["status"] == "queued"
    export_id = started.json()["id"]
    early = investigator.get(f"/api/cases/{case_id}/exports/{export_id}/download")
    assert early.status_code == 409
    export_case_task(export_id)  # what the worker runs for this message
    job = investigator.get(f"/api/cases/{case_id}/exports/{export_id}").json()
    assert job["status"] == "done" and job["progress"] == 1.0 and job["bundle_sha256"]
    download = investigator.get(f"/api/cases/{case_id}/exports/{export_id}/download")
    assert download.status_code == 200
    bundle = state.settings.tmp_dir / "downloaded.zip"
    bundle.write_bytes(download.content)
    assert verify_bundle(bundle).intact
    transfer = investigator.post(f"/api/cases/{case_id}/transfers",
                                 json={"recipient": "Прокурор Іваненко", "export_id": export_id})
    assert transfer.status_code == 201
    assert transfer.json()["details"]["bundle_sha256"] == job["bundle_sha256"]
    act_as(Role.PROSECUTOR)
    investigator = act_as(Role.INVESTIGATOR)
    shared = investigator.post(f"/api/cases/{case_id}/shares",
                               json={"username": "prosecutor-police"})
    assert shared.status_code == 200, shared.text
    prosecutor = act_as(Role.PROSECUTOR)
    receipt = prosecutor.post(f"/api/cases/{case_id}/receipts",
                              files={"bundle": ("b.zip", download.content, "application/zip")})
    assert receipt.status_code == 201 and receipt.json()["ok"] is True, receipt.text
    actions = [e["action"] for e in prosecutor.get(f"/api/cases/{case_id}").json()["custody"]]
    assert actions == ["clip", "export", "transfer", "receipt"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert any(n.endswith("data/report.pdf") for n in archive.namelist())


def test_export_needing_approval(act_as: Client, footage: None, state: AppState) -> None:
    state.settings.exports_need_approval = True
    investigator = act_as(Role.INVESTIGATOR)
    case_id = _new_case(investigator)
    investigator.post(f"/api/cases/{case_id}/clips", json=CLIP)
    job = investigator.post(f"/api/cases/{case_id}/exports").json()
    assert job["status"] == "awaiting_approval"
    export_case_task(job["id"])  # a stray message must not run an unapproved export
    assert investigator.get(f"/api/cases/{case_id}/exports/{job['id']}").json()["status"] == \
        "awaiting_approval"
    denied = investigator.post(f"/api/cases/{case_id}/exports/{job['id']}/approve")
    assert denied.status_code == 403
    act_as(Role.SUPERVISOR)
    act_as(Role.INVESTIGATOR).post(f"/api/cases/{case_id}/shares",
                                   json={"username": "supervisor-police"})
    approved = act_as(Role.SUPERVISOR).post(f"/api/cases/{case_id}/exports/{job['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "queued"
    export_case_task(job["id"])
    assert act_as(Role.INVESTIGATOR).get(
        f"/api/cases/{case_id}/exports/{job['id']}").json()["status"] == "done"


def test_failed_export_is_recorded_on_the_job(act_as: Client, footage: None,
                                              state: AppState) -> None:
    investigator = act_as(Role.INVESTIGATOR)
    case_id = _new_case(investigator)
    job = investigator.post(f"/api/cases/{case_id}/exports").json()
    export_case_task(job["id"])
    failed = investigator.get(f"/api/cases/{case_id}/exports/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["message"] == "Case KV-7 has no clips to export."
    with Session(state.engine) as session:
        assert session.get(ExportJob, job["id"]).bundle_path is None  # type: ignore[union-attr]
    assert list(state.settings.exports_dir.glob("*")) == []
    assert list(state.settings.tmp_dir.glob("bundle-*")) == []
