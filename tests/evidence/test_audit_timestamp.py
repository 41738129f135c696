"""Signed audit checkpoints get an RFC 3161 token from the real test TSA after the commit,
and the audit verification reports the TSA's time (or what is wrong with a token)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from evidence.audit_timestamp import signature_bytes, token_path
from evidence.keys import ensure_signing_identity
from evidence.timestamp import TimestampAuthority, fetch_timestamp
from search_api.audit import (
    AuditAction,
    checkpoint_timestamps_dir,
    record_event,
    sign_checkpoint_now,
    verify_installation_audit,
)
from search_api.state import AppState, build_state
from storage.models.access import AuditCheckpoint
from storage.settings import Settings
from tests.tsa_service import TsaService


def make_state(tmp_path: Path, tsa: TsaService, ca: TsaService | None = None) -> AppState:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", tsa_url=tsa.url,
                        tsa_ca_cert=(ca or tsa).ca_cert_path, tsa_timeout_seconds=5)
    state = build_state(settings)
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation=settings.organisation,
                            passphrase=settings.key_passphrase)
    return state


@pytest.fixture
def stamped_state(tmp_path: Path, running_tsa: TsaService) -> Iterator[AppState]:
    state = make_state(tmp_path, running_tsa)
    yield state
    state.engine.dispose()


def checkpoint(state: AppState) -> AuditCheckpoint:
    """One audited action and a signed checkpoint over it, committed."""
    with Session(state.engine, expire_on_commit=False) as session:
        record_event(session, state=state, actor="investigator", agency="police",
                     ip="127.0.0.1", action=AuditAction.SEARCH, details={"q": "bicycle"})
        made = sign_checkpoint_now(session, state=state)
        assert made is not None
        session.commit()
    return made


def test_a_checkpoint_is_timestamped_after_commit_and_verified(
        stamped_state: AppState, running_tsa: TsaService, tmp_path: Path) -> None:
    made = checkpoint(stamped_state)
    path = token_path(checkpoint_timestamps_dir(stamped_state), made.entry_count)
    assert path.is_file()
    (tmp_path / "signature.bin").write_bytes(signature_bytes(made.signature))
    ok = subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp_path / "signature.bin"),
                         "-in", str(path), "-CAfile", str(running_tsa.ca_cert_path)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout
    with Session(stamped_state.engine) as session:
        report = verify_installation_audit(session, state=stamped_state)
    assert report.ok, report.problems
    assert list(report.trusted_times) == [made.entry_count]
    when = report.trusted_times[made.entry_count]
    assert (f"1 timestamped by a trusted TSA; checkpoint #{made.entry_count} at "
            f"{when:%Y-%m-%dT%H:%M:%SZ}.") in report.summary()


def test_a_checkpoint_token_for_other_data_fails_the_verification(
        stamped_state: AppState, running_tsa: TsaService) -> None:
    made = checkpoint(stamped_state)
    path = token_path(checkpoint_timestamps_dir(stamped_state), made.entry_count)
    other = fetch_timestamp(b"some other signature", TimestampAuthority(
        url=running_tsa.url, ca_cert_pem=running_tsa.ca_cert_path.read_bytes()))
    path.write_bytes(other.response)
    with Session(stamped_state.engine) as session:
        report = verify_installation_audit(session, state=stamped_state)
    assert not report.ok and report.trusted_times == {}
    assert [p.reason for p in report.problems] == [
        f"checkpoint #{made.entry_count}: its timestamp does not hold (its message imprint "
        "is not the digest of this data: the token is for different data)"]


def test_a_tsa_that_is_down_never_blocks_the_audit_log(
        tmp_path: Path, down_tsa: TsaService, caplog: pytest.LogCaptureFixture) -> None:
    state = make_state(tmp_path, down_tsa)
    try:
        with caplog.at_level(logging.WARNING, logger="evidence.audit_timestamp"):
            made = checkpoint(state)
        assert f"Audit checkpoint #{made.entry_count} has no trusted timestamp: The " \
               f"time-stamping authority at {down_tsa.url} cannot be reached" in caplog.text
        assert not checkpoint_timestamps_dir(state).exists()
        with Session(state.engine) as session:
            assert session.exec(select(AuditCheckpoint)).one().entry_count == made.entry_count
            report = verify_installation_audit(session, state=state)
        assert report.ok and report.trusted_times == {}
    finally:
        state.engine.dispose()
