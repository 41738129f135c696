"""POST /api/verify: the same report as ``oko verify``, upload limits, hostile input."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from search_api.deps import get_current_user
from search_api.state import AppState
from storage.custody import chain_entries
from storage.models.access import Role, User
from storage.models.evidence import Case
from tests.evidence.conftest import build_world

Client = Callable[..., TestClient]


@pytest.fixture
def bundle(state: AppState, tmp_path: Path) -> bytes:
    world = build_world(state, tmp_path, investigator_username="case-owner")
    return world.export(tmp_path / "bundle.zip").bundle_path.read_bytes()


def _post(client: TestClient, data: bytes, **form: str) -> dict[str, object]:
    response = client.post("/api/verify", files={"bundle": ("b.zip", data, "application/zip")},
                           data=form)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _tamper(data: bytes, member_suffix: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info)
            if info.filename.endswith(member_suffix):
                content = content[:-1] + bytes([content[-1] ^ 1])
            dst.writestr(info, content)
    return out.getvalue()


def test_valid_bundle_report(client_as: Client, bundle: bytes) -> None:
    body = _post(client_as(Role.AUDITOR), bundle)
    assert body["ok"] is True and body["case_number"] == "KV-2026-001"
    checks = body["checks"]
    assert isinstance(checks, list)
    # the API checks against the installation's own root: its bundles are VALID
    assert body["verdict"] == "VALID" and body["exit_code"] == 0
    assert any("chains to your trusted" in c["detail"] for c in checks)


def test_pinned_and_tampered(client_as: Client, bundle: bytes) -> None:
    client = client_as(Role.PROSECUTOR)
    pinned = _post(client, bundle, fingerprint="00" * 32)
    assert pinned["ok"] is False
    report = _post(client, _tamper(bundle, "data/report.pdf"))
    failed = [f"{c['name']}: {c['detail']}" for c in report["checks"] if not c["passed"]]  # type: ignore[union-attr]
    assert len(failed) == 1 and failed[0].startswith("payload hash: data/report.pdf")


def test_hostile_and_oversized_uploads(client_as: Client, state: AppState) -> None:
    client = client_as(Role.AUDITOR)
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as archive:
        archive.writestr("../../evil", b"x")
    response = client.post("/api/verify", files={"bundle": ("s.zip", slip.getvalue())})
    assert response.status_code == 422
    assert response.json()["detail"] == "The bundle holds a path '../../evil' that escapes the bag."
    state.settings.max_upload_bytes = 1000
    big = client.post("/api/verify", files={"bundle": ("b.zip", b"x" * 5000)})
    assert big.status_code == 413
    assert big.json()["detail"] == "The upload is larger than the 1000 bytes allowed."
    assert list(state.settings.tmp_dir.glob("upload-*")) == []
    assert list(state.settings.tmp_dir.glob("verify-*")) == []


def test_roles_without_verify_are_refused(client_as: Client, bundle: bytes) -> None:
    response = client_as(Role.ADMIN).post("/api/verify", files={"bundle": ("b.zip", bundle)})
    assert response.status_code == 403


def test_verifying_a_local_visible_case_is_logged(client_as: Client, bundle: bytes,
                                                  state: AppState, app: FastAPI) -> None:
    with Session(state.engine) as session:
        case = session.exec(select(Case)).one()
        before = len(chain_entries(session, f"case:{case.id}"))
    _post(client_as(Role.AUDITOR), bundle)  # auditors cannot see cases: nothing logged
    with Session(state.engine) as session:
        assert len(chain_entries(session, f"case:{case.id}")) == before
    owner = client_as(Role.INVESTIGATOR, username="someone-else")
    _post(owner, bundle)
    with Session(state.engine) as session:
        assert len(chain_entries(session, f"case:{case.id}")) == before
    with Session(state.engine, expire_on_commit=False) as session:
        case_owner = session.exec(select(User).where(User.username == "case-owner")).one()
    app.dependency_overrides[get_current_user] = lambda: case_owner
    with TestClient(app) as client:
        _post(client, bundle)
    with Session(state.engine) as session:
        entries = chain_entries(session, f"case:{case.id}")
    assert len(entries) == before + 1
    assert entries[-1].action == "verification" and entries[-1].details["ok"] is True
    assert entries[-1].actor == "case-owner"
