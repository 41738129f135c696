"""Adding a case clip and the retention sweep's marking step lock the original's row, so
footage put under evidence lock is never expired and a clip never takes footage the sweep
has marked. On PostgreSQL, with two sessions: one holds its transaction open on the lock,
the other is shown waiting on it (``pg_stat_activity``), then the first commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, func, select

from evidence.cases import FootageExpiringError, add_clip, create_case
from indexer.retention import RetentionReport
from search_api.state import AppState, build_state
from search_api.usecases.retention import build_sweep
from storage.models.access import Role, User
from storage.models.evidence import Case, CaseClip, CustodyEntry
from storage.models.media import Camera, Original
from storage.settings import Settings
from tests.evidence.conftest import store_original
from tests.services import PostgresServer

pytestmark = pytest.mark.postgres

START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
WAIT_S = 60.0


@pytest.fixture
def pg_state(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[AppState]:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", retention_days=30,
                        database_url=postgres_server.create_database(migrated=True))
    state = build_state(settings)
    yield state
    state.engine.dispose()


@pytest.fixture
def expired(pg_state: AppState, footage_file: Path) -> Original:
    """A 6 s original recorded 40 days ago (30-day retention), and an empty case."""
    with Session(pg_state.engine, expire_on_commit=False) as session:
        session.add(Camera(id="cam-1", name="Хрещатик, 22", latitude=50.4474,
                           longitude=30.5222, agency="police"))
        investigator = User(username="investigator-police", full_name="Олена Коваль",
                            agency="police", role=Role.INVESTIGATOR, password_hash="!")
        session.add(investigator)
        session.flush()
        original = store_original(session, pg_state, footage_file, camera_id="cam-1",
                                  start=START)
        create_case(session, number="KV-2026-001", title="Крадіжка",
                    legal_basis="Ухвала № 757/1234/26", investigator=investigator)
        session.commit()
    return original


def _clip(session: Session) -> CaseClip:
    case = session.exec(select(Case)).one()
    investigator = session.exec(select(User)).one()
    return add_clip(session, case=case, camera_id="cam-1",
                    start_utc=START + timedelta(seconds=1), end_utc=START + timedelta(seconds=3),
                    note="Підозрюваний", actor=investigator.username,
                    added_by_id=investigator.id)


def _wait_until_blocked(state: AppState) -> None:
    """Until another backend of this database waits on a row lock (the lock itself is
    the synchronisation; this only watches for it)."""
    deadline = time.monotonic() + WAIT_S
    with state.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one()
            conn.commit()  # a fresh snapshot of pg_stat_activity each time
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("no session waited on the original's row lock")


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = target()
        except Exception as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _count(state: AppState, model: type, **where: object) -> int:
    with Session(state.engine) as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(session.exec(query).one())


def test_a_clip_waits_for_the_marking_sweep_and_is_refused(pg_state: AppState,
                                                            expired: Original) -> None:
    sweep = build_sweep(pg_state)
    real_locked_ids = sweep.locked_ids
    calls: list[int] = []
    inside_mark, release = threading.Event(), threading.Event()

    def holding_the_mark_open(session: Session) -> set[int]:
        calls.append(1)
        if len(calls) == 2:  # the second read is in step 1, with the row locked
            inside_mark.set()
            assert release.wait(WAIT_S)
        return real_locked_ids(session)

    sweep.locked_ids = holding_the_mark_open
    sweeping, swept = _in_thread(lambda: sweep.run(default_days=30))
    assert inside_mark.wait(WAIT_S)

    def clip_then_commit() -> CaseClip:
        with Session(pg_state.engine, expire_on_commit=False) as session:
            clip = _clip(session)
            session.commit()
            return clip

    clipping, clipped = _in_thread(clip_then_commit)
    _wait_until_blocked(pg_state)  # add_clip waits on the sweep's row lock
    assert clipping.is_alive()
    release.set()
    sweeping.join(WAIT_S)
    clipping.join(WAIT_S)

    assert isinstance(clipped.get("error"), FootageExpiringError), clipped
    assert "is being deleted by its retention period" in str(clipped["error"])
    report: RetentionReport = swept["value"]
    assert [o.sha256 for o in report.deleted] == [expired.sha256]
    assert _count(pg_state, CaseClip) == 0  # nothing of the refused clip was written
    assert _count(pg_state, CustodyEntry, action="clip") == 0
    assert _count(pg_state, CustodyEntry, action="retention_deletion") == 1


def test_the_sweep_waits_for_a_clip_being_added_and_keeps_the_footage(
        pg_state: AppState, expired: Original) -> None:
    with Session(pg_state.engine, expire_on_commit=False) as session:
        _clip(session)  # the clip's transaction holds the original's row lock, uncommitted
        sweeping, swept = _in_thread(lambda: build_sweep(pg_state).run(default_days=30))
        _wait_until_blocked(pg_state)  # the sweep's marking step waits on it
        assert sweeping.is_alive()
        session.commit()
    sweeping.join(WAIT_S)

    report: RetentionReport = swept["value"]
    assert report.deleted == []
    assert [o.sha256 for o in report.kept_locked] == [expired.sha256]
    with Session(pg_state.engine) as session:
        original = session.get(Original, expired.id)
        assert original is not None and original.status == "ready"
    assert pg_state.originals.verify(expired.sha256)
    assert _count(pg_state, CaseClip) == 1
    assert _count(pg_state, CustodyEntry, action="retention_deletion") == 0
