"""The audit log's copies outside the data dir: every signed checkpoint is appended to
OKO_AUDIT_CHECKPOINT_LOG after its commit, and verification (use case, CLI, API) names
the first missing or altered entry when the database alone has been truncated, its
checkpoints deleted and its head rewound. The HMAC key can live in OKO_AUDIT_KEY_FILE."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, col, select

from evidence.audit import AuditVerification, load_checkpoint_file
from evidence.keys import ensure_signing_identity
from search_api.app import create_app
from search_api.audit import AuditAction
from search_api.cli import main
from search_api.cli.common import operator_usecase
from search_api.deps import get_current_user
from search_api.state import AppState, build_state
from search_api.usecases.audit_log import verify_audit_log
from storage.errors import ConfigurationError, StorageError
from storage.models.access import AuditCheckpoint, AuditEvent, Role, User
from storage.settings import Settings

REWIND_TO_6 = ("DELETE FROM auditevent WHERE seq >= 7",
               "DELETE FROM auditcheckpoint WHERE entry_count >= 7",
               "UPDATE audithead SET seq = 6, entry_hash = "
               "(SELECT entry_hash FROM auditevent WHERE seq = 6)")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the data dir, as a separate mount or another account's would be."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path, outside: Path) -> Settings:
    return Settings(home=tmp_path / "oko-home", environment="test",
                    key_passphrase="test-passphrase", audit_checkpoint_entries=5,
                    audit_checkpoint_minutes=600,
                    audit_checkpoint_log=outside / "checkpoints.log")


@pytest.fixture
def state(settings: Settings) -> Iterator[AppState]:
    app_state = build_state(settings)
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Oko test",
                            passphrase="test-passphrase")
    yield app_state
    app_state.engine.dispose()


def _write(state: AppState, count: int) -> None:
    """``count`` audited actions, each in its own transaction, as the use cases write them."""
    for i in range(count):
        with operator_usecase(state) as ctx:
            ctx.audit(AuditAction.SEARCH, text=f"red car {i}", purpose="case 12/2026")
            ctx.commit()


def _sql(state: AppState, *statements: str) -> None:
    with state.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _verify(state: AppState) -> AuditVerification:
    with operator_usecase(state) as ctx:
        return verify_audit_log(ctx)


def _log_lines(settings: Settings) -> list[dict[str, object]]:
    assert settings.audit_checkpoint_log is not None
    return [json.loads(line) for line in settings.audit_checkpoint_log.read_text().splitlines()]


def test_each_checkpoint_is_appended_outside_once_committed(state: AppState,
                                                            settings: Settings) -> None:
    _write(state, 12)
    assert settings.audit_checkpoint_log is not None
    assert stat.S_IMODE(settings.audit_checkpoint_log.stat().st_mode) == 0o600
    lines = _log_lines(settings)
    with Session(state.engine) as session:
        rows = session.exec(select(AuditCheckpoint)
                            .order_by(col(AuditCheckpoint.entry_count))).all()
    assert [line["entry_count"] for line in lines] == [r.entry_count for r in rows] == [5, 10]
    assert [line["head_hash"] for line in lines] == [r.head_hash for r in rows]
    # an action rolled back with its checkpoint (#15) leaves no line
    _write(state, 2)
    with operator_usecase(state) as ctx:
        ctx.audit(AuditAction.SEARCH, text="rolled back")
        ctx.session.rollback()
    _write(state, 1)  # takes #15 for real
    assert [line["entry_count"] for line in _log_lines(settings)] == [5, 10, 15]
    report = _verify(state)
    assert report.ok and report.warnings == [], (report.problems, report.warnings)


def test_a_checkpoint_rolled_back_with_its_savepoint_is_not_appended(
        state: AppState, settings: Settings) -> None:
    _write(state, 4)
    with operator_usecase(state) as ctx:
        with ctx.session.begin_nested() as savepoint:
            ctx.audit(AuditAction.SEARCH, text="inside a savepoint")  # #5, signed
            savepoint.rollback()
        ctx.audit(AuditAction.SEARCH, text="after it")  # #5 again, signed anew
        ctx.commit()
    lines = _log_lines(settings)
    with Session(state.engine) as session:
        fifth = session.exec(select(AuditEvent).where(AuditEvent.seq == 5)).one()
    assert [(line["entry_count"], line["head_hash"]) for line in lines] == [
        (5, fifth.entry_hash)]
    assert _verify(state).ok


def test_truncated_database_with_checkpoints_deleted_and_head_rewound_names_the_first_missing(
        state: AppState) -> None:
    _write(state, 12)
    _sql(state, *REWIND_TO_6)
    report = _verify(state)
    assert not report.ok
    assert report.first_broken_seq == 7, report.problems
    reasons = [p.reason for p in report.problems]
    assert "entries #7-#10 were removed; a signed checkpoint covers them" in reasons
    assert any("checkpoint at entry #10 (in the checkpoint log" in r
               and "was removed from the database" in r for r in reasons), reasons


def test_truncated_then_written_anew_is_named(state: AppState) -> None:
    _write(state, 12)
    _sql(state, *REWIND_TO_6)
    _write(state, 6)  # #7-#12 again, each with a valid MAC, #10 signed anew
    report = _verify(state)
    assert not report.ok
    assert report.first_broken_seq == 10, report.problems
    assert any("holds two different checkpoints at entry #10" in p.reason
               for p in report.problems)


def test_only_the_checkpoint_rows_deleted_is_named(state: AppState) -> None:
    _write(state, 12)
    _sql(state, "DELETE FROM auditcheckpoint")
    report = _verify(state)
    assert not report.ok
    assert report.summary().startswith(
        "Audit log fails verification: checkpoint at entry #5 (in the checkpoint log")


def test_an_altered_row_is_named(state: AppState) -> None:
    _write(state, 12)
    _sql(state, "UPDATE auditevent SET actor = 'someone-else' WHERE seq = 3")
    report = _verify(state)
    assert report.first_broken_seq == 3, report.problems


def test_a_log_behind_the_database_is_a_warning(state: AppState, settings: Settings) -> None:
    _write(state, 12)
    assert settings.audit_checkpoint_log is not None
    first, _second = settings.audit_checkpoint_log.read_text().splitlines()
    # as if the process died after #10's commit, halfway through appending its line
    settings.audit_checkpoint_log.write_text(first + "\n" + '{"entry_count":10,"he')
    report = _verify(state)
    assert report.ok, report.problems
    assert any("1 checkpoint(s) are in the database only" in w
               and "the first at entry #10" in w for w in report.warnings), report.warnings
    assert any("incomplete" in w for w in report.warnings)


def test_a_line_that_is_no_checkpoint_fails(state: AppState, settings: Settings) -> None:
    _write(state, 12)
    assert settings.audit_checkpoint_log is not None
    first, second = settings.audit_checkpoint_log.read_text().splitlines()
    settings.audit_checkpoint_log.write_text(f"{first}\nnot a checkpoint\n{second}\n")
    report = _verify(state)
    assert not report.ok
    assert report.summary() == (f"Audit log fails verification: line 2 of the checkpoint log"
                                f" {settings.audit_checkpoint_log} is not a checkpoint.")


def test_without_a_log_verify_warns(tmp_path: Path) -> None:
    from search_api.audit import NO_CHECKPOINT_LOG

    plain = build_state(Settings(home=tmp_path / "plain", environment="test"))
    _write(plain, 2)
    report = _verify(plain)
    assert report.ok and report.warnings == [NO_CHECKPOINT_LOG]
    plain.engine.dispose()


def test_a_deleted_log_fails(state: AppState, settings: Settings) -> None:
    _write(state, 6)
    assert settings.audit_checkpoint_log is not None
    settings.audit_checkpoint_log.unlink()
    report = _verify(state)
    assert not report.ok
    assert "does not exist, but the database holds 1 checkpoints" in report.summary()


def test_a_new_log_first_receives_the_checkpoints_already_signed(
        tmp_path: Path, outside: Path) -> None:
    plain = Settings(home=tmp_path / "later", environment="test",
                     key_passphrase="test-passphrase", audit_checkpoint_entries=5)
    first = build_state(plain)
    ensure_signing_identity(keys_dir=plain.keys_dir, organisation="Oko test",
                            passphrase="test-passphrase")
    _write(first, 7)
    first.engine.dispose()
    logged = build_state(plain.model_copy(update={"audit_checkpoint_log": outside / "new.log"}))
    assert _verify(logged).ok is False  # the database has #5, the configured log is missing
    _write(logged, 3)
    assert [line["entry_count"] for line in _log_lines(logged.settings)] == [5, 10]
    assert _verify(logged).ok
    logged.engine.dispose()


def test_a_log_that_cannot_be_appended_to_fails_the_action(tmp_path: Path,
                                                           settings: Settings) -> None:
    broken = build_state(settings.model_copy(update={
        "audit_checkpoint_log": tmp_path / "no-such-folder" / "checkpoints.log"}))
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Oko test",
                            passphrase="test-passphrase")
    _write(broken, 4)  # no checkpoint due yet
    with pytest.raises(StorageError, match="Cannot append to the audit checkpoint log"):
        _write(broken, 1)
    with Session(broken.engine) as session:
        assert len(session.exec(select(AuditEvent)).all()) == 4  # the fifth was rolled back
    broken.engine.dispose()


@pytest.fixture
def oko(settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OKO_HOME", str(settings.home))
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("OKO_AUDIT_CHECKPOINT_ENTRIES", "5")
    monkeypatch.setenv("OKO_AUDIT_CHECKPOINT_LOG", str(settings.audit_checkpoint_log))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_verify_uses_the_configured_log_and_a_copy_of_it(  # type: ignore[no-untyped-def]
        oko, state: AppState, settings: Settings, tmp_path: Path) -> None:
    _write(state, 12)
    code, out, _ = oko("audit", "verify")
    assert code == 0 and "Audit log intact" in out
    assert settings.audit_checkpoint_log is not None
    copy = tmp_path / "copy.log"
    copy.write_bytes(settings.audit_checkpoint_log.read_bytes())
    assert [c.entry_count for c in load_checkpoint_file(copy)] == [5, 10]
    _sql(state, *REWIND_TO_6)
    code, out, err = oko("audit", "verify")
    assert code == 4 and "first broken entry is #7" in out + err
    settings.audit_checkpoint_log.unlink()  # the attacker removed the configured one too
    code, out, err = oko("audit", "verify", "--checkpoints", str(copy))
    # the verification just before wrote its own entry as #7, after the truncation
    assert code == 4 and "first broken entry is #8" in out + err
    assert "entries #8-#10 were removed; a signed checkpoint covers them" in out + err


def test_api_verify_compares_the_configured_log(state: AppState) -> None:
    _write(state, 12)
    app = create_app(state.settings, state=state)
    with Session(state.engine, expire_on_commit=False) as session:
        auditor = User(username="auditor", agency="city", role=Role.AUDITOR, password_hash="!")
        session.add(auditor)
        session.commit()
    app.dependency_overrides[get_current_user] = lambda: auditor
    with TestClient(app) as client:
        body = client.post("/api/audit/verify").json()
        assert body["ok"] is True and body["warnings"] == []
        _sql(state, *REWIND_TO_6)
        body = client.post("/api/audit/verify").json()
    assert body["ok"] is False and body["first_broken_seq"] == 7


def test_the_key_file_outside_the_data_dir_is_used(tmp_path: Path, outside: Path) -> None:
    key_file = outside / "audit-mac.key"
    settings = Settings(home=tmp_path / "home", environment="test",
                        key_passphrase="test-passphrase", audit_key_file=key_file)
    external = build_state(settings)
    _write(external, 3)
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (settings.keys_dir / "audit-mac.key").exists()
    assert external.audit_mac_key() == bytes.fromhex(key_file.read_text())
    assert _verify(external).ok
    external.engine.dispose()
    # the data dir alone (a backup of it) has no key: entries checked with another fail
    without = build_state(settings.model_copy(update={"audit_key_file": None}))
    report = _verify(without)
    assert report.first_broken_seq == 1
    assert any("not written by this installation" in p.reason for p in report.problems)
    without.engine.dispose()


def test_an_empty_key_file_is_refused_with_one_sentence(tmp_path: Path, outside: Path) -> None:
    key_file = outside / "audit-mac.key"
    key_file.write_text("")
    state = build_state(Settings(home=tmp_path / "home", environment="test",
                                 audit_key_file=key_file))
    with pytest.raises(ConfigurationError) as refused:
        state.audit_mac_key()
    assert str(refused.value) == (
        f"The audit key file {key_file} is empty or holds no key: restore it from its"
        " backup (a new key would make every entry written so far fail).")
    assert key_file.read_text() == ""  # never replaced by a fresh key
    state.engine.dispose()


def test_empty_settings_mean_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OKO_AUDIT_CHECKPOINT_LOG", "")
    monkeypatch.setenv("OKO_AUDIT_KEY_FILE", " ")
    settings = Settings(home=tmp_path / "home")
    assert settings.audit_checkpoint_log is None and settings.audit_key_file is None
