"""An export writes nothing while it builds its bundle, so it never holds SQLite's write
lock through the slow part; the bundle still carries the export's own custody entry."""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, col, select

import evidence.exports as exports
from evidence.verify import verify_bundle
from indexer.transcode import viewing_copy
from storage.custody import append_custody_entry, chain_entries
from storage.errors import ConflictError
from storage.models.access import LoginAttempt
from storage.models.evidence import Case, CustodyEntry
from tests.evidence.conftest import EvidenceWorld

BAG = "oko-KV-2026-001"


class PausedReport:
    """Stands in for ``build_report``: the first call waits until released."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.calls = 0
        self.real = exports.build_report

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            self.started.set()
            assert self.release.wait(60), "the test never released the export"
        self.real(*args, **kwargs)


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[PausedReport]:
    report = PausedReport()
    monkeypatch.setattr(exports, "build_report", report)
    yield report
    report.release.set()


def _custody_lines(bundle: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(bundle) as archive:
        text = archive.read(f"{BAG}/data/custody.jsonl").decode()
    return [json.loads(line) for line in text.splitlines()]


def test_another_connection_writes_at_once_while_the_export_renders_its_report(
        world: EvidenceWorld, paused: PausedReport, tmp_path: Path) -> None:
    url = world.state.settings.resolved_database_url
    impatient = create_engine(url, connect_args={"timeout": 0.5})  # 0.5 s busy timeout
    out = tmp_path / "bundle.zip"
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(world.export, out)
        assert paused.started.wait(60)
        try:
            with Session(impatient) as session:  # what a sign-in writes first
                session.add(LoginAttempt(username="someone", ip="127.0.0.1"))
                session.commit()
        finally:
            paused.release.set()
        result = running.result(timeout=120)
    impatient.dispose()
    assert verify_bundle(result.bundle_path).intact
    with world.session() as session:
        export = session.exec(select(CustodyEntry).where(
            CustodyEntry.action == "export")).one()
        assert session.exec(select(LoginAttempt)).one().username == "someone"
    assert _custody_lines(out)[-1]["entry_hash"] == export.entry_hash


def test_an_entry_added_during_the_export_is_in_the_bundle_before_the_export_entry(
        world: EvidenceWorld, paused: PausedReport, tmp_path: Path) -> None:
    out = tmp_path / "bundle.zip"
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(world.export, out)
        assert paused.started.wait(60)
        try:
            with world.session() as session:
                append_custody_entry(session, action="transfer", actor="clerk",
                                     case_id=world.case.id, details={"to": "court"})
                session.commit()
        finally:
            paused.release.set()
        result = running.result(timeout=120)
    assert paused.calls == 2  # the custody-dependent files were written again
    assert verify_bundle(result.bundle_path).intact
    lines = _custody_lines(out)
    assert [r["action"] for r in lines][-2:] == ["transfer", "export"]
    with world.session() as session:
        chain = chain_entries(session, f"case:{world.case.id}")
    assert [e.entry_hash for e in chain] == [r["entry_hash"] for r in lines
                                            if r["chain"] == f"case:{world.case.id}"]


def test_a_chain_that_moves_at_the_last_instant_fails_the_export_cleanly(
        world: EvidenceWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_append = exports.append_custody_entry

    def append_after_a_rival(session: Session, **kwargs: Any) -> CustodyEntry:
        with world.session() as rival:
            append_custody_entry(rival, action="transfer", actor="clerk",
                                 case_id=world.case.id, details={"to": "court"})
            rival.commit()
        return real_append(session, **kwargs)

    monkeypatch.setattr(exports, "append_custody_entry", append_after_a_rival)
    out = tmp_path / "exports" / "bundle.zip"
    out.parent.mkdir()
    with world.session() as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        with pytest.raises(ConflictError, match=r"^The custody chain of case KV-2026-001 "
                                                r"changed while its bundle was being "
                                                r"written; run the export again\.$"):
            exports.export_case(session, case=case, exporter="x", signer=world.signer,
                                originals=world.state.originals,
                                derived=world.state.derived,
                                tmp_dir=world.state.settings.tmp_dir, out_path=out,
                                transcoder=viewing_copy,
                                organisation="o", full_original_max_bytes=10**9)
        session.rollback()
        actions = session.exec(select(CustodyEntry.action).order_by(
            col(CustodyEntry.id))).all()
    assert "export" not in actions and actions[-1] == "transfer"
    assert list(out.parent.iterdir()) == []  # neither the bundle nor its staged zip
    assert list(world.state.settings.tmp_dir.glob("bundle-*")) == []
