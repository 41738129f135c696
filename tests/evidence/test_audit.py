"""The audit chain: every kind of direct-SQL tampering is detected and the first broken
entry is named; checkpoints are signed, exported and catch removal of the newest entries."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from evidence.audit import (
    AuditChainBrokenError,
    CheckpointPolicy,
    append_audit_event,
    create_checkpoint,
    export_checkpoints,
    load_audit_mac_key,
    load_checkpoint_file,
    verify_audit_chain,
)
from evidence.audit_export import export_audit
from evidence.keys import Signer, ensure_signing_identity
from evidence.report_text import UnsupportedLanguageError
from search_api.state import AppState
from storage.errors import InvalidInputError
from storage.models.access import AuditCheckpoint, AuditEvent


def make_signer(tmp_path_factory: pytest.TempPathFactory, organisation: str) -> Signer:
    return ensure_signing_identity(keys_dir=tmp_path_factory.mktemp("keys"),
                                   organisation=organisation, passphrase="test-passphrase")


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return make_signer(tmp_path_factory, "Oko test")


@pytest.fixture
def mac_key(state: AppState) -> bytes:
    return load_audit_mac_key(state.settings.keys_dir)


def _fill(engine: Engine, mac_key: bytes, signer: Signer, count: int,
          every: int = 5) -> None:
    policy = CheckpointPolicy(signer=signer, every_entries=every, every_minutes=60)
    with Session(engine) as session:
        for i in range(count):
            append_audit_event(session, actor=f"user{i % 3}", agency="police",
                               ip="10.0.0.1", action="search",
                               details={"text": f"red car {i}", "purpose": "case 12/2026",
                                        "results": i}, mac_key=mac_key, checkpoints=policy)
        session.commit()


def _verify(engine: Engine, mac_key: bytes, signer: Signer, **kwargs: object):  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return verify_audit_chain(session, mac_key=mac_key,
                                  certificates=[signer.certificate], **kwargs)


def _sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def test_intact_chain_verifies_with_checkpoints(state: AppState, mac_key: bytes,
                                                signer: Signer) -> None:
    _fill(state.engine, mac_key, signer, 12)
    report = _verify(state.engine, mac_key, signer)
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints) == (12, 2)
    report.raise_for_failure()
    with Session(state.engine) as session:
        rows = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [r.seq for r in rows] == list(range(1, 13))
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(rows))


def test_append_does_not_commit(state: AppState, mac_key: bytes) -> None:
    with Session(state.engine) as session:
        append_audit_event(session, actor="a", agency="police", ip="", action="login",
                           details={}, mac_key=mac_key)
        session.rollback()
    with Session(state.engine) as session:
        assert session.exec(select(AuditEvent)).all() == []


@pytest.mark.parametrize(("tamper", "first_broken"), [
    # edit one field without touching the hash
    (["UPDATE auditevent SET actor = 'someone-else' WHERE seq = 7"], 7),
    # edit the details JSON
    (["UPDATE auditevent SET details = '{\"text\": \"blue car\"}' WHERE seq = 3"], 3),
    # delete one entry in the middle
    (["DELETE FROM auditevent WHERE seq = 4"], 4),
    # reorder two entries by swapping their positions
    (["UPDATE auditevent SET seq = -1 WHERE seq = 5",
      "UPDATE auditevent SET seq = 5 WHERE seq = 6",
      "UPDATE auditevent SET seq = 6 WHERE seq = -1"], 5),
    # reorder by swapping timestamps only
    (["UPDATE auditevent SET occurred_at = (SELECT occurred_at FROM auditevent WHERE seq = 2)"
      " WHERE seq = 9"], 9),
    # append a forged entry in the middle, shifting the rest down
    (["UPDATE auditevent SET seq = -seq WHERE seq >= 6",
      "UPDATE auditevent SET seq = -seq + 1 WHERE seq < 0",
      "INSERT INTO auditevent (seq, occurred_at, actor, agency, ip, action, details, "
      "prev_hash, entry_hash, mac) SELECT 6, occurred_at, 'ghost', agency, ip, action, "
      "details, entry_hash, entry_hash, mac FROM auditevent WHERE seq = 5"], 6),
    # append a forged entry at the end, with the head row moved along too
    (["INSERT INTO auditevent (seq, occurred_at, actor, agency, ip, action, details, "
      "prev_hash, entry_hash, mac) SELECT 13, occurred_at, 'ghost', agency, ip, action, "
      "details, entry_hash, entry_hash, mac FROM auditevent WHERE seq = 12",
      "UPDATE audithead SET seq = 13"], 13),
    # remove the newest entries (covered by the checkpoint at #10) and rewind the head row
    (["DELETE FROM auditevent WHERE seq >= 9",
      "UPDATE audithead SET seq = 8, entry_hash = "
      "(SELECT entry_hash FROM auditevent WHERE seq = 8)"], 9),
])
def test_direct_sql_tampering_is_detected(state: AppState, mac_key: bytes, signer: Signer,
                                          tamper: list[str], first_broken: int) -> None:
    _fill(state.engine, mac_key, signer, 12)
    _sql(state.engine, *tamper)
    report = _verify(state.engine, mac_key, signer)
    assert not report.ok
    assert report.first_broken_seq == first_broken, report.problems
    with pytest.raises(AuditChainBrokenError, match=f"first broken entry is #{first_broken}"):
        report.raise_for_failure()


def test_rewritten_entry_with_recomputed_hash_fails_the_mac(
        state: AppState, mac_key: bytes, signer: Signer) -> None:
    from evidence.audit import entry_hash

    _fill(state.engine, mac_key, signer, 6)
    with Session(state.engine) as session:
        row = session.get(AuditEvent, 3)
        assert row is not None
        row.actor = "forger"
        row.entry_hash = entry_hash(row)
        session.add(row)
        session.commit()
    report = _verify(state.engine, mac_key, signer)
    assert report.first_broken_seq == 3
    assert any("not written by this installation" in p.reason for p in report.problems)


def test_removing_newest_entries_and_their_checkpoint_is_caught_by_the_exported_copy(
        state: AppState, mac_key: bytes, signer: Signer, tmp_path: Path) -> None:
    _fill(state.engine, mac_key, signer, 12)
    copy = tmp_path / "outside" / "checkpoints.json"
    with Session(state.engine) as session:
        assert export_checkpoints(session, out=copy,
                                  certificates=[signer.certificate]) == 2
    _sql(state.engine, "DELETE FROM auditevent WHERE seq >= 7",
         "DELETE FROM auditcheckpoint WHERE entry_count = 10",
         "UPDATE audithead SET seq = 6, entry_hash = "
         "(SELECT entry_hash FROM auditevent WHERE seq = 6)")
    assert _verify(state.engine, mac_key, signer).ok  # the database alone looks consistent
    report = _verify(state.engine, mac_key, signer,
                     exported_checkpoints=load_checkpoint_file(copy))
    assert report.first_broken_seq == 7
    assert any("removed from the database" in p.reason for p in report.problems)


def test_checkpoint_signed_by_another_key_is_rejected(
        state: AppState, mac_key: bytes, signer: Signer,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    _fill(state.engine, mac_key, make_signer(tmp_path_factory, "impostor"), 5)
    report = _verify(state.engine, mac_key, signer)
    assert any("invalid signature" in p.reason for p in report.problems)
    assert report.checkpoints == 0


def test_checkpoint_is_due_after_minutes(state: AppState, mac_key: bytes,
                                         signer: Signer) -> None:
    policy = CheckpointPolicy(signer=signer, every_entries=1000, every_minutes=10)
    with Session(state.engine) as session:
        append_audit_event(session, actor="a", agency="p", ip="", action="login", details={},
                           mac_key=mac_key, checkpoints=policy)
        session.commit()
    with state.engine.begin() as conn:  # as if the first entry were written 11 minutes ago
        conn.execute(text("UPDATE auditevent SET occurred_at = :t"),
                     {"t": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=11)).isoformat(" ")})
    with Session(state.engine) as session:
        append_audit_event(session, actor="a", agency="p", ip="", action="login", details={},
                           mac_key=mac_key, checkpoints=policy)
        session.commit()
        assert [c.entry_count for c in session.exec(select(AuditCheckpoint))] == [2]
        assert create_checkpoint(session, signer=signer) is None  # head already signed


def test_export_jsonl_and_pdf(state: AppState, mac_key: bytes, signer: Signer,
                              tmp_path: Path) -> None:
    _fill(state.engine, mac_key, signer, 4)
    with Session(state.engine) as session:
        report = verify_audit_chain(session, mac_key=mac_key,
                                    certificates=[signer.certificate])
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        end = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        assert export_audit(session, start=start, end=end, out=tmp_path / "a.jsonl",
                            verification=report) == 4
        assert export_audit(session, start=start, end=end, out=tmp_path / "a.pdf",
                            verification=report, organisation="Міська рада") == 4
        assert export_audit(session, start=start, end=end, out=tmp_path / "en.pdf",
                            verification=report, organisation="City council", lang="en") == 4
        assert export_audit(session, start=end, end=end + dt.timedelta(hours=1),
                            out=tmp_path / "empty.jsonl", verification=report) == 0
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]
    pdf_text = "".join(p.extract_text() for p in PdfReader(tmp_path / "a.pdf").pages)
    assert "Міська рада: журнал аудиту" in pdf_text and "red car 3" in pdf_text
    assert "Журнал аудиту цілісний: 4 записів" in pdf_text and "Хеш запису" in pdf_text
    assert "intact" not in pdf_text
    en_text = "".join(p.extract_text() for p in PdfReader(tmp_path / "en.pdf").pages)
    assert "City council: audit report" in en_text and "Audit log intact: 4 entries" in en_text


def test_export_refuses_an_unknown_language_and_writes_nothing(
        state: AppState, mac_key: bytes, signer: Signer, tmp_path: Path) -> None:
    with Session(state.engine) as session, pytest.raises(UnsupportedLanguageError):
        report = verify_audit_chain(session, mac_key=mac_key, certificates=None)
        export_audit(session, start=None, end=None, out=tmp_path / "a.pdf",
                     verification=report, lang="fr")
    assert not (tmp_path / "a.pdf").exists()


@pytest.mark.parametrize(("name", "message"), [
    ("audit.csv", "Audit exports are .pdf or .jsonl files, not 'audit.csv'."),
    ("backwards.jsonl", "The export's --to time must be after its --from time."),
])
def test_export_refuses_bad_input_and_writes_nothing(
        state: AppState, mac_key: bytes, signer: Signer, tmp_path: Path, name: str,
        message: str) -> None:
    now = dt.datetime.now(dt.UTC)
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    with Session(state.engine) as session, pytest.raises(InvalidInputError) as err:
        report = verify_audit_chain(session, mac_key=mac_key, certificates=None)
        export_audit(session, start=now, end=now - dt.timedelta(hours=1), out=out_dir / name,
                     verification=report)
    assert str(err.value) == message
    assert list(out_dir.iterdir()) == []


def test_malformed_checkpoint_file(tmp_path: Path) -> None:
    bad = tmp_path / "cp.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="is not an Oko audit checkpoint file"):
        load_checkpoint_file(bad)


def test_checkpoints_signed_before_a_key_rotation_still_verify(
        state: AppState, mac_key: bytes, tmp_path: Path) -> None:
    from evidence.keys import known_certificates, rotate_signing_identity

    keys_dir = tmp_path / "keys"
    old = ensure_signing_identity(keys_dir=keys_dir, organisation="Oko",
                                  passphrase="test-passphrase")
    _fill(state.engine, mac_key, old, 5)
    new = rotate_signing_identity(keys_dir=keys_dir, organisation="Oko",
                                  passphrase="test-passphrase")
    _fill(state.engine, mac_key, new, 5)
    with Session(state.engine) as session:
        report = verify_audit_chain(session, mac_key=mac_key,
                                    certificates=known_certificates(keys_dir))
        only_new = verify_audit_chain(session, mac_key=mac_key, certificates=[new.certificate])
    assert report.ok and report.checkpoints == 2
    assert not only_new.ok and only_new.checkpoints == 1
