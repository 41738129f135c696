"""The hash-chained custody log: linking, scoping, bad input, concurrent writers."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from search_api.state import AppState
from storage.custody import (
    GENESIS_HASH,
    append_custody_entry,
    chain_entries,
    compute_entry_hash,
    entry_record,
)
from storage.db import make_engine, migrate
from storage.errors import InvalidInputError
from storage.models.evidence import Case, CustodyEntry
from storage.models.media import Camera, Original
from tests.evidence.conftest import EvidenceWorld
from tests.services import DATABASE_BACKENDS, database_url_for


def test_entries_link_and_rehash(world: EvidenceWorld) -> None:
    with world.session() as session:
        entries = chain_entries(session, f"case:{world.case.id}")
        assert [e.action for e in entries] == ["clip", "clip"]
        assert entries[0].prev_hash == GENESIS_HASH
        assert entries[1].prev_hash == entries[0].entry_hash
        for entry in entries:
            assert compute_entry_hash(entry_record(entry)) == entry.entry_hash
        acquisition = chain_entries(session, f"original:{world.original.id}")
        assert [e.action for e in acquisition] == ["acquisition"]
        assert entries[0].details["acquisition_entry_hash"] == acquisition[0].entry_hash


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"action": "shred", "actor": "a", "case_id": 1}, "'shred' is not a custody action"),
    ({"action": "clip", "actor": "  ", "case_id": 1}, "needs the name of who acted"),
    ({"action": "clip", "actor": "a"}, "needs a case or an original"),
])
def test_bad_entries_are_refused_and_nothing_written(state: AppState, kwargs: dict[str, object],
                                                     message: str) -> None:
    with Session(state.engine) as session:
        with pytest.raises(InvalidInputError, match=message):
            append_custody_entry(session, details={}, **kwargs)  # type: ignore[arg-type]
        assert session.exec(select(CustodyEntry)).all() == []


def test_rolled_back_action_leaves_no_entry_and_chain_continues(world: EvidenceWorld) -> None:
    with world.session() as session:
        append_custody_entry(session, action="transfer", actor="a", case_id=world.case.id,
                             details={"recipient": "nobody"})
        session.rollback()
    with world.session() as session:
        entry = append_custody_entry(session, action="transfer", actor="a",
                                     case_id=world.case.id, details={"recipient": "Прокурор"})
        session.commit()
        entries = chain_entries(session, f"case:{world.case.id}")
        assert [e.seq for e in entries] == [0, 1, 2]
        assert entry.prev_hash == entries[1].entry_hash


@pytest.fixture(params=DATABASE_BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    built = make_engine(database_url_for(request, tmp_path))
    migrate(built)
    yield built
    built.dispose()


def test_concurrent_writers_never_fork_a_chain(engine: Engine) -> None:
    """Four writers append to one existing and one brand-new chain at the same time."""
    with Session(engine) as session:
        session.add(Camera(id="c", name="n", latitude=0, longitude=0, agency="a"))
        session.add(Case(number="C-1", title="t", legal_basis="b", investigator_id=1,
                         agency="a"))
        session.flush()
        original = Original(sha256="a" * 64, camera_id="c", filename="f", size_bytes=1,
                            recording_start_utc=datetime.now(UTC), start_source="cli")
        session.add(original)
        session.commit()
        case_id, original_id = 1, original.id
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def writer(n: int) -> None:
        barrier.wait()
        for i in range(6):
            for _attempt in range(50):
                try:
                    with Session(engine) as session:
                        if i % 2:
                            append_custody_entry(session, action="verification", actor=f"w{n}",
                                                 case_id=case_id, details={"i": i})
                        else:
                            append_custody_entry(session, action="acquisition", actor=f"w{n}",
                                                 original_id=original_id, details={"i": i})
                        session.commit()
                    break
                except OperationalError as exc:  # SQLite: "database is locked"; retry
                    if "locked" not in str(exc):
                        errors.append(exc)
                        return
                    time.sleep(0.01)
            else:
                errors.append(RuntimeError("gave up"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as session:
        for chain in (f"case:{case_id}", f"original:{original_id}"):
            entries = chain_entries(session, chain)
            assert [e.seq for e in entries] == list(range(12))
            assert entries[0].prev_hash == GENESIS_HASH
            for previous, entry in itertools.pairwise(entries):
                assert entry.prev_hash == previous.entry_hash
                assert compute_entry_hash(entry_record(entry)) == entry.entry_hash
