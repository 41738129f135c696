"""The ``oko case``, ``oko keys`` and ``oko verify`` commands, end to end."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from sqlmodel import col, select

from search_api.accounts import create_user
from search_api.cli import main
from storage.models.access import AuditEvent, Role
from storage.models.evidence import ExportJob
from storage.settings import Settings
from tests.evidence.conftest import EvidenceWorld


def _audit(world: EvidenceWorld, action: str) -> list[AuditEvent]:
    with world.session() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)
                                 .order_by(col(AuditEvent.seq))).all())


def _prosecutor(oko, world: EvidenceWorld, number: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """``--as`` a prosecutor the case is shared with, who records receipts."""
    with world.session() as session:
        create_user(session, username="prosecutor-kyiv", password="correct horse battery",
                    agency="prosecutor", role=Role.PROSECUTOR)
        session.commit()
    assert oko("case", "share", number, "--user", "prosecutor-kyiv")[0] == 0
    return ("--as", "prosecutor-kyiv")


@pytest.fixture
def oko(world: EvidenceWorld, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OKO_HOME", str(settings.home))
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_case_lifecycle_export_verify_transfer_receive(  # type: ignore[no-untyped-def]
        oko, tmp_path: Path, world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = oko("case", "create", "KV-2", "--title", "Крадіжка велосипеда",
                       "--legal-basis", "ст. 185 КК", "--investigator", "investigator-police")
    assert code == 0 and "Created case KV-2" in out
    code, _, err = oko("case", "create", "KV-2", "--title", "t", "--legal-basis", "b",
                       "--investigator", "investigator-police")
    assert code == 1 and "Case KV-2 already exists." in err
    span = ("--camera", "cam-1", "--start", "2026-11-24T10:00:02Z", "--end",
            "2026-11-24T10:00:04Z")
    code, _, err = oko("case", "add-clip", "KV-2", *span)  # custody names a person
    assert code == 2 and "Adding a clip to a case is recorded in the custody log, which " \
        "names a person: run the command with --as USERNAME or set OKO_OPERATOR=USERNAME." \
        in " ".join(err.split())
    code, out, _ = oko("case", "show", "KV-2", "--json")
    assert json.loads(out)["clips"] == [] and json.loads(out)["custody"] == []
    monkeypatch.setenv("OKO_OPERATOR", "investigator-police")  # the operator is named
    code, out, _ = oko("case", "add-clip", "KV-2", "--camera", "cam-1",
                       "--start", "2026-11-24T12:00:02+02:00", "--end", "2026-11-24T10:00:04Z",
                       "--note", "велосипед")
    assert code == 0 and "Added clip" in out and "(added by hand)" in out
    code, _, err = oko("case", "add-clip", "KV-2", "--camera", "cam-1", "--start", "yesterday",
                       "--end", "2026-11-24T10:00:04Z")
    assert code == 2 and "--start 'yesterday' is not an ISO 8601 time." in err
    code, out, _ = oko("case", "show", "KV-2", "--json")
    shown = json.loads(out)
    assert (shown["clips"][0]["origin"], shown["clips"][0]["provenance"]) == (
        "added by hand", {})
    assert [e["action"] for e in shown["custody"]] == ["clip"]
    code, out, _ = oko("case", "list", "--json")
    assert {c["number"] for c in json.loads(out)} == {"KV-2026-001", "KV-2"}

    bundle = tmp_path / "out" / "KV-2.zip"
    code, out, _ = oko("case", "export", "KV-2", "--out", str(bundle))
    assert code == 0 and bundle.is_file() and "tag manifest SHA-256" in out
    code, out, _ = oko("verify", str(bundle), "--fingerprint", world.signer.fingerprint_sha256)
    assert code == 0 and "VALID" in out
    code, out, _ = oko("verify", str(bundle), "--json")
    report = json.loads(out)
    assert code == 3 and report["verdict"] == "INTACT_SIGNER_NOT_TRUSTED" and not report["ok"]
    code, out, _ = oko("verify", str(bundle), "--fingerprint", "11" * 32)
    assert code == 1 and "has the pinned fingerprint" in out and "INVALID" in out

    with world.session() as session:
        [job] = session.exec(select(ExportJob)).all()
    case_id = shown["id"]
    assert (job.case_id, job.status, job.requested_by_id) == (case_id, "done",
                                                              world.investigator.id)
    exported = [(e.actor, e.details) for e in _audit(world, "export")]
    assert exported == [(exported[0][0], {"change": "request", "case_id": case_id,
                                          "export_id": job.id, "needs_approval": False,
                                          "no_timestamp": False, "lang": "uk"})]
    assert exported[0][0] == "investigator-police"
    [download] = _audit(world, "download")
    assert download.details == {"case_id": case_id, "export_id": job.id,
                                "bundle_sha256": job.bundle_sha256}

    code, out, _ = oko("case", "transfer", "KV-2", "--to", "Прокурор Іваненко", "--bundle",
                       str(bundle))
    assert code == 0 and "Recorded transfer" in out
    transfer = _audit(world, "case_change")[-1]
    assert transfer.details == {"change": "transfer", "case_id": case_id, "export_id": job.id,
                                "recipient": "Прокурор Іваненко"}
    code, out, _ = oko(*_prosecutor(oko, world, "KV-2"), "case", "receive", "KV-2",
                       "--bundle", str(bundle))
    assert code == 0 and "Recorded receipt" in out and "VALID" in out
    code, out, _ = oko("case", "show", "KV-2", "--json")
    actions = [e["action"] for e in json.loads(out)["custody"]]
    assert actions == ["clip", "export", "transfer", "receipt"]
    assert [e["actor"] for e in json.loads(out)["custody"]] == [
        "investigator-police", "investigator-police", "investigator-police",
        "prosecutor-kyiv"]
    receipt = json.loads(out)["custody"][-1]["details"]
    assert receipt["verification_ok"] is True


def test_verify_exit_codes_for_tampered_and_unusable(oko, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                     bundle_zip: Path) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        archive.extractall(tmp_path / "x")
    bag = tmp_path / "x" / "oko-KV-2026-001"
    report_pdf = bag / "data" / "report.pdf"
    data = bytearray(report_pdf.read_bytes())
    data[100] ^= 0xFF
    report_pdf.write_bytes(bytes(data))
    code, out, _ = oko("verify", str(bag))
    assert code == 1 and "FAIL payload hash: data/report.pdf: SHA-256 mismatch" in out
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as archive:
        archive.writestr("../evil", b"x")
    code, _, err = oko("verify", str(slip))
    assert code == 2 and "escapes the bag" in err
    code, _, err = oko("verify", str(bag), "--fingerprint", "nope")
    assert code == 2 and "is not a SHA-256 certificate fingerprint" in err
    code, _, err = oko("verify", str(bag), "--fingerprint", "ab" * 32, "--trusted-cert", "x.pem")
    assert code == 2 and "x.pem is not a readable PEM certificate" in err


def test_keys_show_and_rotate_keep_old_bundles_verifiable(oko, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                          world: EvidenceWorld,
                                                          settings: Settings) -> None:
    old = world.export(tmp_path / "old.zip").bundle_path
    old_cert = tmp_path / "old.pem"
    old_cert.write_bytes(world.signer.certificate_pem)
    code, out, _ = oko("keys", "show")
    assert code == 0 and world.signer.fingerprint_sha256 in out
    code, out, _ = oko("keys", "rotate")
    assert code == 0 and "New signing key" in out
    code, out, _ = oko("keys", "show")
    assert f"previous: {world.signer.fingerprint_sha256}" in out
    code, out, _ = oko("verify", str(old), "--trusted-cert", str(old_cert))
    assert code == 0
    code, _, _ = oko("--as", "investigator-police", "case", "transfer", "KV-2026-001",
                     "--to", "Прокуратура", "--bundle", str(old))
    assert code == 0  # a receipt is recorded only for a bundle the case transferred
    code, out, _ = oko(*_prosecutor(oko, world, "KV-2026-001"), "case", "receive",
                       "KV-2026-001", "--bundle", str(old))
    assert code == 0 and "chains to your trusted" in out


def test_verify_exits_2_for_symlinks_and_zip_bombs(oko, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import stat

    link_zip = tmp_path / "link.zip"
    with zipfile.ZipFile(link_zip, "w") as archive:
        archive.writestr("bag/bagit.txt", b"BagIt-Version: 1.0\n")
        link = zipfile.ZipInfo("bag/data/passwd")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    code, _, err = oko("verify", str(link_zip))
    assert code == 2 and "a symlink or special file; refused" in err
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bag/bagit.txt", b"BagIt-Version: 1.0\n")
        archive.writestr("bag/data/zeros.bin", bytes(20 * 1024 * 1024))
    code, _, err = oko("verify", str(bomb), "--json")
    assert code == 2 and "likely zip bomb" in err


def test_case_export_needs_a_supervisors_approval_like_the_api(  # type: ignore[no-untyped-def]
        oko, tmp_path: Path, world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKO_EXPORTS_NEED_APPROVAL", "true")
    with world.session() as session:
        for name in ("supervisor-a", "supervisor-b"):
            create_user(session, username=name, password="correct horse battery",
                        agency="police", role=Role.SUPERVISOR)
        session.commit()
    number, investigator = "KV-2026-001", ("--as", "investigator-police")
    for name in ("supervisor-a", "supervisor-b"):
        assert oko(*investigator, "case", "share", number, "--user", name)[0] == 0
    bundle = tmp_path / "out" / "approved.zip"

    code, out, _ = oko(*investigator, "case", "export", number, "--out", str(bundle))
    assert code == 0 and "awaits a supervisor's approval" in out, out
    assert "no bundle was written" in out and not bundle.exists()
    with world.session() as session:
        [job] = session.exec(select(ExportJob)).all()
    assert (job.status, job.requested_by_id) == ("awaiting_approval", world.investigator.id)
    assert f"case approve {number} {job.id}" in out
    export_id = str(job.id)
    code, _, err = oko(*investigator, "case", "approve", number, export_id)
    assert code == 1 and "may not approve export" in err
    code, _, err = oko("case", "approve", number, export_id)
    assert code == 1 and "needs a named Oko user" in err
    code, _, err = oko("case", "export", number, "--export", export_id, "--out", str(bundle))
    assert code == 1 and "has no bundle yet (status awaiting_approval)" in err
    assert not bundle.exists()

    code, out, _ = oko("--as", "supervisor-a", "case", "export", number, "--out", str(bundle))
    assert code == 0 and not bundle.exists()
    own = out.split("case approve ")[1].split()[1]
    code, _, err = oko("--as", "supervisor-a", "case", "approve", number, own)
    assert code == 1 and "approved by someone other than the person who requested it" in \
        " ".join(err.split())  # the error console wraps long sentences

    code, out, _ = oko("--as", "supervisor-b", "case", "approve", number, export_id)
    assert code == 0 and f"Approved export {export_id}" in out
    code, out, err = oko("case", "export", number, "--export", export_id, "--out", str(bundle))
    assert code == 0 and bundle.is_file(), err
    code, out, _ = oko("verify", str(bundle), "--fingerprint", world.signer.fingerprint_sha256)
    assert code == 0 and "VALID" in out
    with world.session() as session:
        done = session.get(ExportJob, job.id)
    assert done is not None and done.status == "done"

    entries = [(e.actor, e.details.get("change"), e.details.get("export_id"))
               for e in _audit(world, "export") + _audit(world, "download")]
    assert ("investigator-police", "request", job.id) in entries
    assert ("supervisor-b", "approve", job.id) in entries
    assert any(a.startswith("cli:") and c is None and x == job.id for a, c, x in entries)
    assert all(e.details["case_id"] == world.case.id
               for e in _audit(world, "export") + _audit(world, "download"))
    code, out, _ = oko("case", "show", number, "--json")
    [export_entry] = [e for e in json.loads(out)["custody"] if e["action"] == "export"]
    assert export_entry["actor"] == "investigator-police"  # the requester, not the runner


def test_case_list_and_show_show_what_the_actor_may_see(  # type: ignore[no-untyped-def]
        oko, world: EvidenceWorld) -> None:
    with world.session() as session:
        create_user(session, username="other-investigator", password="correct horse battery",
                    agency="police", role=Role.INVESTIGATOR)
        session.commit()
    code, out, _ = oko("case", "list", "--json")  # the operator sees every case
    assert code == 0 and [c["number"] for c in json.loads(out)] == ["KV-2026-001"]
    code, out, _ = oko("--as", "investigator-police", "case", "list", "--json")
    assert [c["number"] for c in json.loads(out)] == ["KV-2026-001"]
    code, out, _ = oko("--as", "other-investigator", "case", "list", "--json")
    assert code == 0 and json.loads(out) == []
    code, _, err = oko("--as", "other-investigator", "case", "show", "KV-2026-001")
    assert code == 1 and "Case KV-2026-001 does not exist." in err
    code, _, err = oko("--as", "other-investigator", "case", "add-clip", "KV-2026-001",
                       "--camera", "cam-1", "--start", "2026-11-24T10:00:01Z",
                       "--end", "2026-11-24T10:00:02Z")
    assert code == 1 and "Case KV-2026-001 does not exist." in err
