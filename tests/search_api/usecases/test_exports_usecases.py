"""Export use cases called directly: the claim runs a job once, approval, refusals, transfer."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from evidence.export_jobs import claim_export_job
from evidence.report_text import UnsupportedLanguageError
from search_api.state import AppState
from search_api.usecases import cases, exports
from search_api.usecases.context import Actor, OperatorNotNamedError
from storage.custody import chain_entries
from storage.errors import InvalidInputError, PermissionDeniedError
from storage.models.access import AuditEvent, Role
from storage.models.evidence import ExportJob
from storage.types import utcnow
from tests.evidence.conftest import EvidenceWorld, build_world
from tests.search_api.access_helpers import acting, add_user, as_user


class RecordingQueue:
    """A JobQueue that only remembers what was handed to the worker."""

    def __init__(self) -> None:
        self.exports: list[int] = []

    def enqueue_ingest(self, job_ids: Sequence[int]) -> None:
        raise AssertionError("no ingest expected")

    def enqueue_export(self, job_id: int) -> None:
        self.exports.append(job_id)


@pytest.fixture
def queue(state: AppState) -> RecordingQueue:
    state.job_queue = recording = RecordingQueue()
    return recording


@pytest.fixture
def world(state: AppState, tmp_path: Path, queue: RecordingQueue) -> EvidenceWorld:
    return build_world(state, tmp_path)


def job_row(state: AppState, job_id: int) -> ExportJob:
    with Session(state.engine) as session:
        job = session.get(ExportJob, job_id)
        assert job is not None
        return job


def audit_actions(state: AppState) -> list[str]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent.action).order_by(col(AuditEvent.seq))).all())


def test_a_job_is_claimed_once_and_a_second_run_is_a_no_op(
        world: EvidenceWorld, state: AppState, queue: RecordingQueue) -> None:
    case_id = world.case.id or 0
    with as_user(state, world.investigator) as ctx:
        job = exports.request_export(ctx, case_id=case_id)
    assert job.status == "queued" and queue.exports == [job.id]
    with acting(state, exports.WORKER_ACTOR) as ctx:
        done = exports.run_export(ctx, export_id=job.id)
    assert done is not None and done.status == "done" and done.bundle_sha256
    for actor in (exports.WORKER_ACTOR, Actor.local_operator()):  # a duplicate message, a CLI
        with acting(state, actor) as ctx:
            assert exports.run_export(ctx, export_id=job.id) is None
    with Session(state.engine) as session:
        actions = [e.action for e in chain_entries(session, f"case:{case_id}")]
        exporter = chain_entries(session, f"case:{case_id}")[-1].actor
    assert actions.count("export") == 1 and exporter == "investigator-police"
    assert job_row(state, job.id).bundle_sha256 == done.bundle_sha256


def test_a_job_held_by_another_process_is_left_alone_until_it_goes_stale(
        world: EvidenceWorld, state: AppState) -> None:
    with as_user(state, world.investigator) as ctx:
        job = exports.request_export(ctx, case_id=world.case.id or 0)
    assert claim_export_job(state.engine, job_id=job.id)  # say, the worker
    assert not claim_export_job(state.engine, job_id=job.id)
    with acting(state, Actor.local_operator()) as ctx:
        assert exports.run_export(ctx, export_id=job.id) is None
    held = job_row(state, job.id)
    assert (held.status, held.bundle_path) == ("running", None)
    with Session(state.engine) as session:  # that process died an hour and more ago
        stale = session.get(ExportJob, job.id)
        assert stale is not None
        stale.updated_at = utcnow() - timedelta(hours=2)
        session.add(stale)
        session.commit()
    with acting(state, Actor.local_operator()) as ctx:
        rerun = exports.run_export(ctx, export_id=job.id)
    assert rerun is not None and rerun.status == "done"


def test_a_failed_run_is_recorded_on_the_job(world: EvidenceWorld, state: AppState,
                                             queue: RecordingQueue) -> None:
    with as_user(state, world.investigator) as ctx:
        empty = cases.create_case(ctx, number="KV-EMPTY", title="t", legal_basis="b")
        job = exports.request_export(ctx, case_id=empty.id)
    with acting(state, Actor.local_operator()) as ctx, pytest.raises(
            InvalidInputError, match="Case KV-EMPTY has no clips to export"):
        exports.run_export(ctx, export_id=job.id)
    failed = job_row(state, job.id)
    assert (failed.status, failed.message) == ("failed", "Case KV-EMPTY has no clips to export.")
    with acting(state, Actor.local_operator()) as ctx:
        assert exports.run_export(ctx, export_id=job.id) is None


def test_approval_needs_another_supervisor_and_then_queues_the_job(
        world: EvidenceWorld, state: AppState, queue: RecordingQueue) -> None:
    state.settings.exports_need_approval = True
    first, second = (add_user(state, n, Role.SUPERVISOR) for n in ("sup-a", "sup-b"))
    case_id = world.case.id or 0
    with acting(state, Actor.local_operator()) as ctx:
        for user in (first, second):
            cases.share_case(ctx, case_id=case_id, username=user.username)
    with as_user(state, first) as ctx:
        job = exports.request_export(ctx, case_id=case_id)
        assert job.status == "awaiting_approval" and queue.exports == []
        with pytest.raises(PermissionDeniedError, match="someone other than"):
            exports.approve_export(ctx, case_id=case_id, export_id=job.id)
    with acting(state, Actor.local_operator()) as ctx, pytest.raises(
            PermissionDeniedError, match="needs a named Oko user"):
        exports.approve_export(ctx, case_id=case_id, export_id=job.id)
    with acting(state, exports.WORKER_ACTOR) as ctx:  # a stray message runs nothing
        assert exports.run_export(ctx, export_id=job.id) is None
    with as_user(state, second) as ctx:
        approved = exports.approve_export(ctx, case_id=case_id, export_id=job.id)
    assert approved.status == "queued" and queue.exports == [job.id]


def test_refusals_write_nothing(world: EvidenceWorld, state: AppState,
                               queue: RecordingQueue) -> None:
    prosecutor = add_user(state, "prosecutor-police", Role.PROSECUTOR)
    before = audit_actions(state)
    with as_user(state, prosecutor) as ctx:
        with pytest.raises(PermissionDeniedError):
            exports.request_export(ctx, case_id=world.case.id or 0)
        with pytest.raises(PermissionDeniedError):
            exports.transfer_case(ctx, case_id=world.case.id or 0, recipient="x", export_id=1)
    with Session(state.engine) as session:
        assert session.exec(select(ExportJob)).all() == []
    assert audit_actions(state) == before and queue.exports == []


def test_a_transferred_file_names_its_export_when_it_is_one(
        world: EvidenceWorld, state: AppState, tmp_path: Path) -> None:
    case_id = world.case.id or 0
    other = world.export(tmp_path / "made-elsewhere.zip").bundle_path  # no export job
    with as_user(state, world.investigator) as ctx:
        job = exports.request_export(ctx, case_id=case_id, run_in_worker=False)
        exports.run_export(ctx, export_id=job.id)
        path = exports.download_export(ctx, case_id=case_id, export_id=job.id).path
        exports.transfer_case(ctx, case_id=case_id, recipient="A", bundle=path)
        exports.transfer_case(ctx, case_id=case_id, recipient="B", bundle=other)
    with Session(state.engine) as session:
        entries = session.exec(select(AuditEvent).where(AuditEvent.action == "case_change")
                               .order_by(col(AuditEvent.seq))).all()
    transfers = [e.details for e in entries if e.details.get("change") == "transfer"]
    assert transfers == [
        {"change": "transfer", "case_id": case_id, "export_id": job.id, "recipient": "A"},
        {"change": "transfer", "case_id": case_id, "export_id": None, "recipient": "B"}]


def test_an_unnamed_operator_or_an_unknown_language_is_refused_with_nothing_written(
        world: EvidenceWorld, state: AppState, queue: RecordingQueue) -> None:
    case_id = world.case.id or 0
    before = audit_actions(state)
    with acting(state, Actor.local_operator()) as ctx, pytest.raises(
            OperatorNotNamedError, match=r"^Exporting a case is recorded in the custody log, "
            r"which names a person: run the command with --as USERNAME or set "
            r"OKO_OPERATOR=USERNAME\.$"):
        exports.request_export(ctx, case_id=case_id)
    with acting(state, Actor.local_operator()) as ctx, pytest.raises(
            OperatorNotNamedError, match=r"^Handing over a bundle is recorded"):
        exports.transfer_case(ctx, case_id=case_id, recipient="x", bundle=Path("x.zip"))
    with as_user(state, world.investigator) as ctx, pytest.raises(
            UnsupportedLanguageError, match=r"^The report language 'de' is not available"):
        exports.request_export(ctx, case_id=case_id, lang="de")
    with Session(state.engine) as session:
        assert session.exec(select(ExportJob)).all() == []
        assert [e.action for e in chain_entries(session, f"case:{case_id}")] == ["clip", "clip"]
    assert audit_actions(state) == before and queue.exports == []
    with as_user(state, world.investigator) as ctx:
        job = exports.request_export(ctx, case_id=case_id, lang="en")
    assert job.lang == "en" and job_row(state, job.id).lang == "en"


def test_of_runners_claiming_at_once_exactly_one_wins(world: EvidenceWorld,
                                                      state: AppState) -> None:
    with as_user(state, world.investigator) as ctx:
        job = exports.request_export(ctx, case_id=world.case.id or 0)
    start = threading.Barrier(6)

    def claim(_: int) -> bool:
        start.wait()
        return claim_export_job(state.engine, job_id=job.id)

    with ThreadPoolExecutor(max_workers=6) as pool:
        won = list(pool.map(claim, range(6)))
    assert won.count(True) == 1 and job_row(state, job.id).status == "running"
