"""Concurrent writers never fork the audit chain (the head row lock serialises them)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlmodel import Session, select

from evidence.audit import append_audit_event, verify_audit_chain
from storage.db import make_engine, migrate
from storage.models.access import AuditEvent
from tests.services import DATABASE_BACKENDS, database_url_for

WRITERS, EVENTS_EACH = 4, 15
MAC_KEY = b"k" * 32


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url_for(request, tmp_path)


def test_concurrent_appends_form_one_unbroken_chain(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            barrier.wait()
            for i in range(EVENTS_EACH):
                with Session(engine) as session:
                    session.exec(select(AuditEvent.seq).limit(1)).all()  # a read first
                    append_audit_event(session, actor=name, agency="police", ip="10.0.0.9",
                                       action="search", details={"i": i}, mac_key=MAC_KEY)
                    session.commit()
        except BaseException as exc:  # surfaced below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as session:
        report = verify_audit_chain(session, mac_key=MAC_KEY, certificates=None)
        seqs = [e.seq for e in session.exec(select(AuditEvent).order_by(AuditEvent.seq))]
    engine.dispose()
    assert report.ok, report.problems
    assert seqs == list(range(1, WRITERS * EVENTS_EACH + 1))
