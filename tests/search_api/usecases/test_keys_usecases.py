"""Creating and rotating the evidence-signing key is audited; only key managers may."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from evidence.keys import ensure_signing_identity, load_signer
from search_api.state import AppState
from storage.models.access import AuditEvent, Role
from tests.search_api.access_helpers import add_user, oko_runner


def _key_changes(state: AppState) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == "key_change")
                                 .order_by(col(AuditEvent.seq))).all())


def test_init_creates_the_key_once_and_rotation_records_both_fingerprints(
    state: AppState, monkeypatch: pytest.MonkeyPatch,
) -> None:
    oko = oko_runner(state.settings, monkeypatch)
    assert oko("init").code == 0
    assert oko("init").code == 0  # rerun: the key exists, nothing new to record
    first = load_signer(keys_dir=state.settings.keys_dir,
                        passphrase=state.settings.key_passphrase)
    assert oko("keys", "rotate").code == 0
    second = load_signer(keys_dir=state.settings.keys_dir,
                         passphrase=state.settings.key_passphrase)
    created, rotated = _key_changes(state)
    assert created.details == {"change": "create",
                               "fingerprint_sha256": first.fingerprint_sha256}
    assert rotated.details == {"change": "rotate",
                               "previous_fingerprint_sha256": first.fingerprint_sha256,
                               "fingerprint_sha256": second.fingerprint_sha256}
    assert rotated.actor.startswith("cli:")
    shown = oko("keys", "show")
    assert f"previous: {first.fingerprint_sha256}" in shown.out


def test_a_role_without_key_rights_cannot_rotate_and_the_key_stays(
    state: AppState, monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = ensure_signing_identity(keys_dir=state.settings.keys_dir, organisation="Test",
                                     passphrase=state.settings.key_passphrase)
    add_user(state, "olena", Role.INVESTIGATOR)
    result = oko_runner(state.settings, monkeypatch)("--as", "olena", "keys", "rotate")
    assert result.code == 1
    assert " ".join(result.err.split()) == \
        "error: Your role (investigator) may not manage keys."
    assert load_signer(keys_dir=state.settings.keys_dir,
                       passphrase=state.settings.key_passphrase).fingerprint_sha256 \
        == signer.fingerprint_sha256
    assert _key_changes(state) == []
