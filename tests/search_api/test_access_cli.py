"""``oko users ...`` and ``oko audit ...`` through the real CLI entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader
from sqlalchemy import text
from sqlmodel import Session, col, select

from evidence.keys import ensure_signing_identity
from search_api.cli.access import create_first_admin
from search_api.state import AppState
from storage.models.access import AuditCheckpoint, AuditEvent, Role, User
from storage.settings import Settings
from tests.search_api.access_helpers import PASSWORD, Oko, oko_runner

# the CLI reads hidden passwords from the test's stdin, which is not a terminal
pytestmark = pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")


@pytest.fixture
def oko(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Oko:
    return oko_runner(settings, monkeypatch)


def users(state: AppState) -> dict[str, User]:
    with Session(state.engine) as session:
        return {u.username: u for u in session.exec(select(User))}


def audit_actions(state: AppState) -> list[tuple[str, str]]:
    with Session(state.engine) as session:
        rows = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
        return [(r.action, str(r.details.get("username", r.details.get("target", ""))))
                for r in rows]


def test_users_add_list_set_role_disable(oko: Oko, state: AppState) -> None:
    added = oko("users", "add", "o.petrenko", "--agency", "Police", "--role", "investigator",
                "--full-name", "Олена Петренко", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.code == 0, added.err
    assert "Created investigator 'o.petrenko' (police)." in added.out
    assert PASSWORD not in added.out + added.err
    listed = oko("users", "list", "--json")
    [row] = json.loads(listed.out)
    assert (row["username"], row["agency"], row["role"], row["full_name"]) == (
        "o.petrenko", "police", "investigator", "Олена Петренко")
    assert "password_hash" not in row
    assert oko("users", "set-role", "o.petrenko", "supervisor").code == 0
    assert oko("users", "disable", "o.petrenko").code == 0
    user = users(state)["o.petrenko"]
    assert (user.role, user.disabled) == (Role.SUPERVISOR, True)
    assert "disabled" in oko("users", "list").out
    assert oko("users", "disable", "o.petrenko", "--enable").code == 0
    assert users(state)["o.petrenko"].disabled is False
    assert audit_actions(state) == [("user_change", "o.petrenko")] * 4
    with Session(state.engine) as session:
        assert all(e.actor.startswith("cli:") and e.ip == "cli"
                   for e in session.exec(select(AuditEvent)))


@pytest.mark.parametrize(("args", "input_", "message"), [
    (("users", "add", "x.short", "--agency", "police", "--role", "auditor"), "short\nshort\n",
     "Passwords must be at least 10 characters long."),
    (("users", "add", "Bad Name!", "--agency", "police", "--role", "auditor"),
     f"{PASSWORD}\n{PASSWORD}\n", "Usernames are 2-64 lowercase letters"),
    (("users", "add", "ok.name", "--agency", "no such agency", "--role", "auditor"),
     f"{PASSWORD}\n{PASSWORD}\n", "Agencies are short lowercase names such as 'police'"),
    (("users", "disable", "ghost"), None, "User 'ghost' does not exist."),
    (("users", "set-role", "ghost", "auditor"), None, "User 'ghost' does not exist."),
])
def test_bad_user_input_is_refused_and_writes_nothing(
        oko: Oko, state: AppState, args: tuple[str, ...], input_: str | None,
        message: str) -> None:
    result = oko(*args, input=input_)
    assert result.code != 0
    assert message in " ".join(result.err.split())
    assert users(state) == {}
    assert audit_actions(state) == []


def test_duplicate_user_and_last_admin_are_refused(oko: Oko, state: AppState) -> None:
    assert oko("users", "add", "root", "--agency", "city", "--role", "admin",
               input=f"{PASSWORD}\n{PASSWORD}\n").code == 0
    again = oko("users", "add", "root", "--agency", "city", "--role", "admin",
                input=f"{PASSWORD}\n{PASSWORD}\n")
    assert again.code != 0 and "A user named 'root' already exists." in again.err
    for args in (("users", "disable", "root"), ("users", "set-role", "root", "auditor")):
        refused = oko(*args)
        assert refused.code != 0
        assert "This is the last active admin; create another admin first." in refused.err
    assert users(state)["root"].role == Role.ADMIN and not users(state)["root"].disabled
    assert len(audit_actions(state)) == 1


def test_first_admin_step_asks_on_a_terminal_and_is_idempotent(state: AppState) -> None:
    with CliRunner().isolation(input=f"chief\npolice\n{PASSWORD}\n{PASSWORD}\n"):
        sys.stdin.isatty = lambda: True  # type: ignore[method-assign]
        assert create_first_admin(state) == "Created the first admin, 'chief' (police)."
    assert create_first_admin(state) == "An admin account already exists."
    assert [u.role for u in users(state).values()] == [Role.ADMIN]


def test_first_admin_step_takes_the_password_from_settings_and_never_blocks(
    state: AppState,
) -> None:
    with CliRunner().isolation(input=""):
        assert create_first_admin(state).startswith(
            "No admin account yet: set OKO_FIRST_ADMIN_PASSWORD and rerun `oko init`")
    assert users(state) == {}
    state.settings.first_admin_password = PASSWORD
    assert create_first_admin(state) == "Created the first admin, 'admin' (city)."
    assert [u.role for u in users(state).values()] == [Role.ADMIN]


def test_audit_verify_export_and_checkpoints(oko: Oko, state: AppState, settings: Settings,
                                             tmp_path: Path) -> None:
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Oko test",
                            passphrase=settings.key_passphrase)
    for name in ("a.one", "b.two", "c.three"):
        oko("users", "add", name, "--agency", "police", "--role", "investigator",
            input=f"{PASSWORD}\n{PASSWORD}\n")
    copy = tmp_path / "kept-outside" / "checkpoints.json"
    exported = oko("audit", "checkpoints", "--sign-now", "--out", str(copy))
    assert exported.code == 0 and "Wrote 1 signed checkpoints" in exported.out
    ok = oko("audit", "verify", "--checkpoints", str(copy))
    assert ok.code == 0, ok.err
    assert "Audit log intact: 3 entries, 1 signed checkpoints verified." in ok.out

    jsonl, pdf = tmp_path / "audit.jsonl", tmp_path / "audit.pdf"
    assert oko("audit", "export", "--from", "2020-01-01", "--out", str(jsonl)).code == 0
    assert [json.loads(line)["action"] for line in jsonl.read_text().splitlines()] == [
        "user_change"] * 3 + ["verify"]
    assert oko("audit", "export", "--out", str(pdf)).code == 0
    assert "b.two" in PdfReader(pdf).pages[0].extract_text()
    assert "журнал аудиту" in PdfReader(pdf).pages[0].extract_text()
    english = tmp_path / "audit-en.pdf"
    assert oko("audit", "export", "--lang", "en", "--out", str(english)).code == 0
    assert "audit report" in PdfReader(english).pages[0].extract_text()
    french = oko("audit", "export", "--lang", "fr", "--out", str(tmp_path / "fr.pdf"))
    assert french.code == 2 and not (tmp_path / "fr.pdf").exists()

    bad = oko("audit", "export", "--from", "yesterday", "--out", str(tmp_path / "x.jsonl"))
    assert bad.code != 0
    assert "--from 'yesterday' is not a time like 2026-11-25" in bad.err
    assert not (tmp_path / "x.jsonl").exists()

    with state.engine.begin() as conn:  # remove the newest entries and the checkpoint
        conn.execute(text("DELETE FROM auditevent WHERE seq >= 2"))
        conn.execute(text("DELETE FROM auditcheckpoint"))
        conn.execute(text("UPDATE audithead SET seq = 1, entry_hash = "
                          "(SELECT entry_hash FROM auditevent WHERE seq = 1)"))
    broken = oko("audit", "verify", "--checkpoints", str(copy))
    assert broken.code == 4
    assert "Audit log fails verification: first broken entry is #2." in broken.err
    with Session(state.engine) as session:
        assert session.exec(select(AuditCheckpoint)).all() == []


def test_cli_search_without_purpose_is_refused(oko: Oko, state: AppState) -> None:
    refused = oko("search", "red car at night")
    assert refused.code == 2
    assert "Every search must state its purpose" in " ".join(refused.err.split())
    assert audit_actions(state) == []
