"""The installation's own verification and receipts bound to facts (issue 9, items 1 and 3).

- ``POST /api/verify`` checks against the installation's anchors; only a bundle signed
  here reaches custody, bounded and escaped, and a stranger's re-signed copy is intact but
  not trusted, and INVALID when pinned to our root;
- ``POST /api/cases/{id}/receipts`` records a receipt only for a bundle of that case whose
  tag manifest a transfer of that case recorded; anything else is one sentence, 409, and
  nothing written.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from evidence.cases import create_case, share_case, transfer_case
from evidence.keys import ensure_signing_identity
from search_api.deps import get_current_user
from search_api.state import AppState
from search_api.usecases.verify import MAX_CHECK_CHARS, MAX_RECORDED_CHECKS
from storage.blobstore import sha256_file
from storage.custody import chain_entries
from storage.models.access import AuditEvent, Role, User
from storage.models.evidence import Case, CustodyEntry, ExportJob
from tests.evidence.conftest import EvidenceWorld, build_world
from tests.evidence.resign import extract, resign, zip_dir

Client = Callable[..., TestClient]


@dataclass
class Receipts:
    world: EvidenceWorld
    bundle: Path
    case_a: Case
    case_b: Case
    prosecutor: TestClient


@pytest.fixture
def receipts(state: AppState, tmp_path: Path, client_as: Client) -> Receipts:
    world = build_world(state, tmp_path, investigator_username="case-owner")
    bundle = world.export(tmp_path / "KV-2026-001.zip").bundle_path
    prosecutor = client_as(Role.PROSECUTOR, username="prosecutor-1")
    with Session(state.engine, expire_on_commit=False) as session:
        case_a = session.get(Case, world.case.id)
        owner = session.exec(select(User).where(User.username == "case-owner")).one()
        user = session.exec(select(User).where(User.username == "prosecutor-1")).one()
        assert case_a is not None
        case_b = create_case(session, number="KV-2026-002", title="Інша справа",
                             legal_basis="Ухвала № 2", investigator=owner)
        for case in (case_a, case_b):
            share_case(session, case=case, user=user)
        session.commit()
    return Receipts(world, bundle, case_a, case_b, prosecutor)


def _record_transfer(state: AppState, case: Case, bundle: Path) -> None:
    with Session(state.engine) as session:
        case_row = session.get(Case, case.id)
        assert case_row is not None
        transfer_case(session, case=case_row, actor="case-owner", recipient="prosecutor-1",
                      bundle_sha256=sha256_file(bundle))
        session.commit()


def _written(state: AppState) -> tuple[list[tuple[str, int]], int]:
    """Every custody entry (chain, seq) and the number of audit entries."""
    with Session(state.engine) as session:
        custody = [(e.chain, e.seq) for e in session.exec(select(CustodyEntry)).all()]
        audit = len(session.exec(select(AuditEvent)).all())
    return custody, audit


def _receive(client: TestClient, case: Case, bundle: bytes) -> dict[str, object]:
    response = client.post(f"/api/cases/{case.id}/receipts",
                           files={"bundle": ("b.zip", bundle, "application/zip")})
    body: dict[str, object] = response.json()
    body["status"] = response.status_code
    return body


def test_a_receipt_for_another_case_is_refused_and_writes_nothing(
    receipts: Receipts, state: AppState,
) -> None:
    _record_transfer(state, receipts.case_a, receipts.bundle)
    before = _written(state)
    answer = _receive(receipts.prosecutor, receipts.case_b, receipts.bundle.read_bytes())
    assert answer["status"] == 409
    assert answer["code"] == "receipt_wrong_case"
    assert answer["detail"] == ("The bundle is not one of case KV-2026-002 (bag-info names "
                                "another case or none); no receipt was recorded.")
    assert _written(state) == before
    assert list(state.settings.tmp_dir.glob("upload-*")) == []


def test_a_receipt_for_a_bundle_never_transferred_is_refused_and_writes_nothing(
    receipts: Receipts, state: AppState,
) -> None:
    before = _written(state)
    answer = _receive(receipts.prosecutor, receipts.case_a, receipts.bundle.read_bytes())
    assert answer["status"] == 409 and answer["code"] == "receipt_not_transferred"
    tag = zipfile.ZipFile(receipts.bundle).read("oko-KV-2026-001/tagmanifest-sha256.txt")
    assert answer["detail"] == (
        f"No transfer of case KV-2026-001 records this bundle (tag manifest "
        f"{hashlib.sha256(tag).hexdigest()}); no receipt was recorded.")
    assert _written(state) == before


def test_a_receipt_of_the_transferred_bundle_is_recorded(receipts: Receipts,
                                                         state: AppState) -> None:
    _record_transfer(state, receipts.case_a, receipts.bundle)
    answer = _receive(receipts.prosecutor, receipts.case_a, receipts.bundle.read_bytes())
    assert answer["status"] == 201, answer
    assert answer["verdict"] == "VALID" and answer["exit_code"] == 0
    assert answer["recorded_in_custody"] is True and answer["signed_here"] is True
    with Session(state.engine) as session:
        entries = chain_entries(session, f"case:{receipts.case_a.id}")
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "verify")
                             .order_by(col(AuditEvent.seq).desc())).first()
    assert [e.action for e in entries][-2:] == ["transfer", "receipt"]
    receipt = entries[-1]
    assert receipt.actor == "prosecutor-1"
    assert receipt.details["tag_manifest_sha256"] == answer["tag_manifest_sha256"]
    assert receipt.details["verification_ok"] is True
    assert audit is not None and audit.details["change"] == "receipt"
    assert audit.details["verdict"] == "VALID"


def test_a_rezipped_copy_is_bound_by_its_tag_manifest_through_the_export(
    receipts: Receipts, state: AppState, tmp_path: Path,
) -> None:
    """The transfer names the zip's hash; the export job knows its tag manifest, so the
    same bag zipped again (other bytes) is still the transferred bundle."""
    export = receipts.world.export(tmp_path / "again.zip")
    with Session(state.engine) as session:
        session.add(ExportJob(case_id=receipts.case_a.id or 0, status="done",
                              bundle_path=str(export.bundle_path),
                              bundle_sha256=export.bundle_sha256,
                              tag_manifest_sha256=export.tag_manifest_sha256))
        session.commit()
    _record_transfer(state, receipts.case_a, export.bundle_path)
    copy = zip_dir(extract(export.bundle_path, tmp_path / "x"), tmp_path / "copy.zip")
    assert sha256_file(copy) != export.bundle_sha256
    answer = _receive(receipts.prosecutor, receipts.case_a, copy.read_bytes())
    assert answer["status"] == 201, answer
    assert answer["tag_manifest_sha256"] == export.tag_manifest_sha256


def _verify(client: TestClient, data: bytes, **form: str) -> dict[str, object]:
    response = client.post("/api/verify", files={"bundle": ("b.zip", data, "application/zip")},
                           data=form)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _as_owner(app: FastAPI, state: AppState) -> TestClient:
    with Session(state.engine, expire_on_commit=False) as session:
        owner = session.exec(select(User).where(User.username == "case-owner")).one()
    app.dependency_overrides[get_current_user] = lambda: owner
    return TestClient(app)


def test_a_strangers_copy_is_not_trusted_and_stays_out_of_custody(
    receipts: Receipts, state: AppState, app: FastAPI, tmp_path: Path,
) -> None:
    stranger = ensure_signing_identity(keys_dir=tmp_path / "mallory",
                                       organisation=state.settings.organisation,
                                       passphrase="p")
    forged_bag = extract(receipts.bundle, tmp_path / "forged")
    resign(forged_bag, stranger)
    forged = zip_dir(forged_bag, tmp_path / "forged.zip").read_bytes()
    _record_transfer(state, receipts.case_a, receipts.bundle)
    refused = _receive(receipts.prosecutor, receipts.case_a, forged)
    assert refused["status"] == 409 and refused["code"] == "receipt_not_transferred"
    before = _written(state)
    with _as_owner(app, state) as owner:
        body = _verify(owner, forged)
        assert body["verdict"] == "INTACT_SIGNER_NOT_TRUSTED" and body["exit_code"] == 3
        assert body["ok"] is False and body["intact"] is True
        assert body["signed_here"] is False and body["recorded_in_custody"] is False
        assert body["root_fingerprint"] == stranger.root_fingerprint_sha256
        pinned = _verify(owner, forged,
                         fingerprint=str(receipts.world.signer.root_fingerprint_sha256))
        assert pinned["verdict"] == "INVALID" and pinned["exit_code"] == 1
        own = _verify(owner, receipts.bundle.read_bytes())
        assert own["verdict"] == "VALID" and own["recorded_in_custody"] is True
    custody, _ = _written(state)
    assert len(custody) == len(before[0]) + 1  # only our own bundle's verification


def test_custody_records_a_tampered_bundle_bounded_and_escaped(
    receipts: Receipts, state: AppState, app: FastAPI, tmp_path: Path,
) -> None:
    bag = extract(receipts.bundle, tmp_path / "tampered")
    hostile = "\x1b[2J\u202e" + "x" * 230
    for number in range(MAX_RECORDED_CHECKS + 5):
        (bag / "data" / f"{number:02d}{hostile}").write_bytes(b"planted")
    tampered = zip_dir(bag, tmp_path / "tampered.zip").read_bytes()
    with _as_owner(app, state) as owner:
        body = _verify(owner, tampered)
    assert body["verdict"] == "INVALID" and body["recorded_in_custody"] is True
    with Session(state.engine) as session:
        entry = chain_entries(session, f"case:{receipts.case_a.id}")[-1]
    assert entry.action == "verification" and entry.details["ok"] is False
    lines = entry.details["failed_checks"]
    assert len(lines) == MAX_RECORDED_CHECKS + 1
    assert lines[-1].startswith("… and ") and lines[-1].endswith(" more failed check(s)")
    for line in lines:
        assert len(line) <= MAX_CHECK_CHARS + 1  # the cut is marked with one "…"
        assert "\x1b" not in line and "\u202e" not in line and "\n" not in line
