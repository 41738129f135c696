"""Creating, rotating and revoking the evidence keys is audited; only key managers may;
``oko keys show`` and ``oko keys export-trust`` tell prosecutors what to import."""

from __future__ import annotations

from pathlib import Path

import pytest
from oko_verify import TrustAnchors
from sqlmodel import Session, col, select

from evidence.keys import (
    certificate_fingerprint,
    ensure_signing_identity,
    load_crl,
    load_signer,
    root_certificate,
)
from search_api.state import AppState
from storage.models.access import AuditEvent, Role
from tests.evidence.test_keys import make_legacy_identity
from tests.search_api.access_helpers import add_user, oko_runner


def _key_changes(state: AppState) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == "key_change")
                                 .order_by(col(AuditEvent.seq))).all())


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_init_creates_the_authority_once_and_rotation_records_both_fingerprints(
    state: AppState, monkeypatch: pytest.MonkeyPatch,
) -> None:
    oko = oko_runner(state.settings, monkeypatch)
    init = oko("init")
    assert init.code == 0
    assert oko("init").code == 0  # rerun: the key exists, nothing new to record
    keys_dir = state.settings.keys_dir
    first = load_signer(keys_dir=keys_dir, passphrase=state.settings.key_passphrase)
    root_fp = first.root_fingerprint_sha256
    assert root_fp is not None
    out = " ".join(init.out.split())
    assert f"root SHA-256 fingerprint {root_fp}" in out
    assert f"Signing certificate {first.fingerprint_sha256}" in out
    assert f"Move {keys_dir / 'root-key.pem'} offline" in out
    assert oko("keys", "rotate").code == 0
    second = load_signer(keys_dir=keys_dir, passphrase=state.settings.key_passphrase)
    assert second.root_fingerprint_sha256 == root_fp
    created, rotated = _key_changes(state)
    assert first.report is not None and second.report is not None
    assert first.report.fingerprint_sha256 != second.report.fingerprint_sha256
    assert created.details == {"change": "create",
                               "fingerprint_sha256": first.fingerprint_sha256,
                               "root_fingerprint_sha256": root_fp,
                               "report_fingerprint_sha256": first.report.fingerprint_sha256}
    assert rotated.details == {"change": "rotate",
                               "previous_fingerprint_sha256": first.fingerprint_sha256,
                               "fingerprint_sha256": second.fingerprint_sha256,
                               "report_fingerprint_sha256": second.report.fingerprint_sha256}
    assert rotated.actor.startswith("cli:")
    shown = oko("keys", "show")
    assert shown.code == 0
    lines = shown.out.splitlines()
    assert f"root fingerprint (SHA-256): {root_fp}" in lines
    assert f"fingerprint (SHA-256): {second.fingerprint_sha256}" in lines
    assert "root key: here" in lines
    assert f"report fingerprint (SHA-256): {second.report.fingerprint_sha256}" in lines
    assert any(line.startswith(f"previous report: {first.report.fingerprint_sha256} (")
               for line in lines)
    assert any(line.startswith(f"previous: {first.fingerprint_sha256} (valid from ")
               for line in lines)
    assert "oko keys export-trust DIR" in shown.out


def test_revoke_is_audited_replaces_the_current_certificate_and_publishes_the_crl(
    state: AppState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    oko = oko_runner(state.settings, monkeypatch)
    assert oko("init").code == 0
    keys_dir = state.settings.keys_dir
    current = load_signer(keys_dir=keys_dir, passphrase=state.settings.key_passphrase)
    revoked = oko("keys", "revoke", current.fingerprint_sha256.upper(),
                  "--reason", "key-compromise")
    assert revoked.code == 0, revoked.err
    new = load_signer(keys_dir=keys_dir, passphrase=state.settings.key_passphrase)
    assert new.fingerprint_sha256 != current.fingerprint_sha256
    assert f"Signing certificate now: {new.fingerprint_sha256}" in revoked.out
    *_, change = _key_changes(state)
    assert change.details["change"] == "revoke"
    assert change.details["fingerprint_sha256"] == current.fingerprint_sha256
    assert change.details["reason"] == "key-compromise"
    assert change.details["replaced_by_fingerprint_sha256"] == new.fingerprint_sha256
    crl = load_crl(keys_dir)
    assert crl is not None and [r.serial_number for r in crl] == [
        current.certificate.serial_number]
    shown = oko("keys", "show").out
    assert f"previous: {current.fingerprint_sha256}" in shown and "revoked " in shown
    store = tmp_path / "trust"
    exported = oko("keys", "export-trust", str(store))
    assert exported.code == 0
    anchors = TrustAnchors.from_store(store)
    assert anchors.certificates == (root_certificate(keys_dir),)
    assert [r.serial_number for r in anchors.crls[0]] == [current.certificate.serial_number]


def test_a_role_without_key_rights_cannot_rotate_or_revoke_and_the_keys_stay(
    state: AppState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    signer = ensure_signing_identity(keys_dir=state.settings.keys_dir, organisation="Test",
                                     passphrase=state.settings.key_passphrase)
    before = _files(state.settings.keys_dir)
    add_user(state, "olena", Role.INVESTIGATOR)
    oko = oko_runner(state.settings, monkeypatch)
    for command in (["keys", "rotate"],
                    ["keys", "revoke", signer.fingerprint_sha256, "--reason", "superseded"],
                    ["keys", "export-trust", str(tmp_path / "trust")]):
        result = oko("--as", "olena", *command)
        assert result.code == 1, command
        assert " ".join(result.err.split()) == \
            "error: Your role (investigator) may not manage keys."
    assert _files(state.settings.keys_dir) == before
    assert not (tmp_path / "trust").exists()
    assert _key_changes(state) == []


def test_a_bad_revocation_is_one_sentence_and_changes_nothing(
    state: AppState, monkeypatch: pytest.MonkeyPatch,
) -> None:
    oko = oko_runner(state.settings, monkeypatch)
    assert oko("init").code == 0
    before = _files(state.settings.keys_dir)
    changes = len(_key_changes(state))
    signer = load_signer(keys_dir=state.settings.keys_dir,
                         passphrase=state.settings.key_passphrase)
    result = oko("keys", "revoke", signer.fingerprint_sha256, "--reason", "bored")
    assert result.code == 2
    assert " ".join(result.err.split()).startswith(
        "error: 'bored' is not a revocation reason; use one of unspecified, key-compromise,")
    assert _files(state.settings.keys_dir) == before
    assert len(_key_changes(state)) == changes


def test_an_old_self_signed_installation_rotates_into_an_authority(
    state: AppState, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys_dir = state.settings.keys_dir
    legacy = make_legacy_identity(keys_dir, organisation="Old",
                                  passphrase=state.settings.key_passphrase or "")
    oko = oko_runner(state.settings, monkeypatch)
    init = oko("init")
    assert init.code == 0
    assert "run `oko keys rotate` to create the authority's root" in " ".join(init.out.split())
    assert "evidence authority: none yet" in oko("keys", "show").out
    assert oko("keys", "rotate").code == 0
    (rotated,) = _key_changes(state)
    root = root_certificate(keys_dir)
    assert root is not None
    assert rotated.details["previous_fingerprint_sha256"] == legacy
    assert rotated.details["root_fingerprint_sha256"] == certificate_fingerprint(root)
    shown = oko("keys", "show").out
    assert f"previous: {legacy} (" in shown and "self-signed" in shown
