"""The hash-chained custody log: linking, scoping, bad input, concurrent writers."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from sqlmodel import Session, select

from search_api.state import AppState
from storage.custody import (
    GENESIS_HASH,
    append_custody_entry,
    chain_entries,
    compute_entry_hash,
    entry_record,
)
from storage.errors import InvalidInputError
from storage.models.evidence import CustodyEntry
from tests.evidence.conftest import EvidenceWorld


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


def test_concurrent_writers_never_fork_the_chain(world: EvidenceWorld, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        for i in range(5):
            for _attempt in range(20):
                try:
                    with world.session() as session:
                        append_custody_entry(session, action="verification", actor=f"w{n}",
                                             case_id=world.case.id, details={"i": i})
                        session.commit()
                    break
                except Exception as exc:  # SQLite may answer "database is locked"; retry
                    if "locked" not in str(exc) and "UNIQUE" not in str(exc):
                        errors.append(exc)
                        return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with world.session() as session:
        entries = chain_entries(session, f"case:{world.case.id}")
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert len(entries) == 2 + 4 * 5
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.entry_hash
