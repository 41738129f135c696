"""indexer.jobs on SQLite and PostgreSQL: submit, lease, progress, recovery, in-process runs."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from indexer.jobs import (
    DONE,
    DUPLICATE,
    FAILED,
    QUEUED,
    RUNNING,
    WALKED,
    claim_job,
    heartbeat,
    list_jobs,
    record_progress,
    report_jobs,
    requeue_stale_jobs,
    run_ingest_job,
    submit_ingest,
    worker_name,
)
from search_api.state import AppState
from search_api.tasks.worker import local_worker_alive
from search_api.usecases.ingest import ingest_options
from storage.db import session_scope
from storage.errors import InvalidInputError, NotFoundError
from storage.models.evidence import CustodyEntry
from storage.models.media import Frame, IngestJob, Original, Segment
from storage.settings import Settings
from storage.types import utcnow
from tests.search_api.jobs.conftest import LEASE_SECONDS, job_row
from tests.services import DATABASE_BACKENDS, database_url_for


@pytest.fixture(params=DATABASE_BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "oko-home", database_url=database_url_for(request, tmp_path),
                    environment="test", key_passphrase="test-passphrase",
                    job_lease_seconds=LEASE_SECONDS)


def _submit(state: AppState, path: Path, camera: str, start: str | None = None) -> int:
    with session_scope(state.engine) as session:
        jobs = submit_ingest(session, paths=[path], camera_id=camera, start=start)
        assert jobs[0].id is not None
        return jobs[0].id


def _job_count(state: AppState) -> int:
    with Session(state.engine) as session:
        return len(session.exec(select(IngestJob)).all())


@pytest.mark.parametrize(("case", "error", "sentence"), [
    ("missing path", NotFoundError, "Path '{missing}' does not exist."),
    ("unknown camera", NotFoundError, "Camera 'CAM-404' is not registered."),
    ("unparseable start", InvalidInputError, "Cannot parse start time 'tomorrow-ish'"),
])
def test_submit_refuses_bad_input_before_any_job_exists(
    state: AppState, camera: str, short_clip: Path, tmp_path: Path,
    case: str, error: type[Exception], sentence: str,
) -> None:
    missing = tmp_path / "nope.mp4"
    paths = [short_clip, missing] if case == "missing path" else [short_clip]
    camera_id = "CAM-404" if case == "unknown camera" else camera
    start = "tomorrow-ish" if case == "unparseable start" else None
    with pytest.raises(error) as raised, session_scope(state.engine) as session:
        submit_ingest(session, paths=paths, camera_id=camera_id, start=start)
    assert str(raised.value).startswith(sentence.format(missing=missing))
    assert _job_count(state) == 0


def test_a_folder_is_one_job_until_its_worker_walks_it_into_one_job_per_video(
    state: AppState, camera: str, short_clip: Path, tmp_path: Path,
) -> None:
    folder = tmp_path / "incoming"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / short_clip.name).write_bytes(short_clip.read_bytes())
    (folder / "notes.txt").write_text("not footage")
    with session_scope(state.engine) as session:
        [job] = submit_ingest(session, paths=[folder], camera_id=camera,
                              start="2026-01-25T10:00:00", requested_by="officer-1")
    assert Path(job.source_path) == folder.resolve() and job.status == QUEUED
    assert job.id is not None
    walked = run_ingest_job(engine=state.engine, originals=state.originals,
                            derived=state.derived, job_id=job.id,
                            options=ingest_options(state.settings))
    assert walked is not None and (walked.status, walked.stage) == (DONE, WALKED)
    with Session(state.engine) as session:
        [file_job] = list_jobs(session, parent_ids=[job.id])
        [report] = report_jobs(session, [walked])
    assert Path(file_job.source_path) == (folder / "nested" / short_clip.name).resolve()
    assert (file_job.status, file_job.parent_id, file_job.requested_start,
            file_job.requested_by) == (QUEUED, job.id, "2026-01-25T10:00:00", "officer-1")
    assert report.files == 1
    assert report.message == (f"Found 1 video file(s) in '{folder.resolve()}'; queued them as"
                              f" job(s) {file_job.id}.")


def test_claim_is_exclusive_until_the_lease_expires(
    state: AppState, camera: str, short_clip: Path,
) -> None:
    job_id = _submit(state, short_clip, camera)
    with session_scope(state.engine) as session:
        first = claim_job(session, job_id=job_id, worker="w1", lease_seconds=LEASE_SECONDS)
    assert first is not None and first.status == RUNNING and first.attempts == 1
    with session_scope(state.engine) as session:
        assert claim_job(session, job_id=job_id, worker="w2", lease_seconds=LEASE_SECONDS) is None
    later = utcnow() + timedelta(seconds=LEASE_SECONDS + 1)
    with session_scope(state.engine) as session:
        second = claim_job(session, job_id=job_id, worker="w2", lease_seconds=LEASE_SECONDS,
                           now=later)
    assert second is not None and second.worker == "w2" and second.attempts == 2
    # the old holder has lost the job: its progress and heartbeats are refused
    with session_scope(state.engine) as session:
        assert not record_progress(session, job_id=job_id, worker="w1", stage="x", fraction=0.5)
        assert not heartbeat(session, job_id=job_id, worker="w1")
        assert record_progress(session, job_id=job_id, worker="w2", stage="sampling",
                               fraction=1.7)
    row = job_row(state, job_id)
    assert (row.stage, row.progress) == ("sampling", 1.0)


def test_a_finished_job_is_never_claimed_again(
    state: AppState, camera: str, short_clip: Path,
) -> None:
    job_id = _submit(state, short_clip, camera)
    assert run_ingest_job(engine=state.engine, originals=state.originals,
                          derived=state.derived, job_id=job_id,
                          options=ingest_options(state.settings)) is not None
    far_future = utcnow() + timedelta(days=1)
    with session_scope(state.engine) as session:
        assert claim_job(session, job_id=job_id, worker="w9", lease_seconds=1,
                         now=far_future) is None
    assert job_row(state, job_id).status == DONE


def test_requeue_puts_back_dead_workers_jobs_and_gives_up_after_max_attempts(
    state: AppState, camera: str, short_clip: Path,
) -> None:
    stale_id, fresh_id, doomed_id, queued_id = (_submit(state, short_clip, camera)
                                                for _ in range(4))
    with session_scope(state.engine) as session:
        for job_id in (stale_id, fresh_id, doomed_id):
            claim_job(session, job_id=job_id, worker="dead", lease_seconds=LEASE_SECONDS)
        doomed = session.get(IngestJob, doomed_id)
        assert doomed is not None
        doomed.attempts = 3
        session.add(doomed)
        heartbeat(session, job_id=fresh_id, worker="dead")
    # only the lease of stale/doomed has expired by "now"
    now = utcnow() + timedelta(seconds=LEASE_SECONDS + 1)
    with session_scope(state.engine) as session:
        fresh = session.get(IngestJob, fresh_id)
        assert fresh is not None
        fresh.heartbeat_at = now
        session.add(fresh)
    with session_scope(state.engine) as session:
        recovered = requeue_stale_jobs(session, lease_seconds=LEASE_SECONDS, max_attempts=3,
                                       now=now)
    assert recovered.requeued == [stale_id]
    assert recovered.failed == [doomed_id]
    assert job_row(state, stale_id).status == QUEUED
    assert job_row(state, stale_id).worker is None
    assert job_row(state, fresh_id).status == RUNNING
    assert job_row(state, doomed_id).message == (
        "The worker stopped 3 times while ingesting this file, so it was given up.")
    with session_scope(state.engine) as session:
        on_start = requeue_stale_jobs(session, lease_seconds=LEASE_SECONDS,
                                      include_queued=True, now=now)
    assert on_start.requeued == sorted([stale_id, queued_id])


def test_in_process_run_reports_done_duplicate_and_failed(
    state: AppState, camera: str, short_clip: Path, tmp_path: Path,
) -> None:
    options = ingest_options(state.settings)
    first_id, again_id = _submit(state, short_clip, camera), _submit(state, short_clip, camera)
    empty = tmp_path / "CAM-001_20260125T120000.mp4"
    empty.write_bytes(b"")
    empty_id = _submit(state, empty, camera)
    seen: list[tuple[str, float]] = []
    for job_id in (first_id, again_id, empty_id):
        run_ingest_job(engine=state.engine, originals=state.originals, derived=state.derived,
                       job_id=job_id, options=options,
                       on_progress=lambda stage, fraction: seen.append((stage, fraction)))
    with Session(state.engine) as session:
        reports = {r.id: r for r in report_jobs(session, list_jobs(session))}
        segments = len(session.exec(select(Segment)).all())
        frames = len(session.exec(select(Frame)).all())
        originals = session.exec(select(Original)).all()
    first, again, failed = reports[first_id], reports[again_id], reports[empty_id]
    assert (first.status, first.progress, first.duplicate) == (DONE, 1.0, False)
    assert (first.segments, first.frames) == (segments, frames) == (1, 3)
    assert (again.status, again.sha256, again.segments) == (DUPLICATE, first.sha256, 1)
    assert again.duplicate and "already ingested" in again.message
    assert failed.status == FAILED and failed.message.endswith(".")
    assert "empty" in failed.message.lower() or "zero" in failed.message.lower()
    assert len(originals) == 1 and originals[0].sha256 == first.sha256
    assert ("done", 1.0) in seen


class _SimulatedCrash(Exception):
    pass


def test_a_run_cut_short_is_recovered_without_duplicate_or_missing_rows(
    state: AppState, camera: str, short_clip: Path,
) -> None:
    options = ingest_options(state.settings)
    job_id = _submit(state, short_clip, camera)

    def crash_while_sampling(stage: str, _fraction: float) -> None:
        if stage == "sampling":
            raise _SimulatedCrash

    with pytest.raises(_SimulatedCrash):
        run_ingest_job(engine=state.engine, originals=state.originals, derived=state.derived,
                       job_id=job_id, options=options, worker="crashed",
                       on_progress=crash_while_sampling)
    assert job_row(state, job_id).status == RUNNING
    later = utcnow() + timedelta(seconds=LEASE_SECONDS + 1)
    with session_scope(state.engine) as session:
        assert requeue_stale_jobs(session, lease_seconds=LEASE_SECONDS,
                                  now=later).requeued == [job_id]
    finished = run_ingest_job(engine=state.engine, originals=state.originals,
                              derived=state.derived, job_id=job_id, options=options)
    assert finished is not None and finished.status == DONE and finished.attempts == 2
    with Session(state.engine) as session:
        report = report_jobs(session, [finished])[0]
    assert (report.segments, report.frames) == (1, 3)
    assert not any(path.is_file() for path in state.settings.tmp_dir.rglob("*"))


def test_a_job_taken_over_mid_ingest_is_left_to_the_worker_that_took_it(
    state: AppState, camera: str, short_clip: Path,
) -> None:
    job_id = _submit(state, short_clip, camera)

    def taken_over_while_sampling(stage: str, _fraction: float) -> None:
        if stage == "sampling":  # as if the lease had expired and another worker claimed it
            with session_scope(state.engine) as session:
                row = session.get_one(IngestJob, job_id)
                row.worker, row.stage, row.progress = "rescuer", "claimed", 0.0

    outcome = run_ingest_job(engine=state.engine, originals=state.originals,
                             derived=state.derived, job_id=job_id,
                             options=ingest_options(state.settings), worker="slow",
                             on_progress=taken_over_while_sampling)
    assert outcome is None
    row = job_row(state, job_id)
    assert (row.status, row.worker, row.original_id) == (RUNNING, "rescuer", None)
    assert (row.stage, row.progress) == ("claimed", 0.0)  # none of the slow worker's since


def test_finish_records_the_outcome_on_the_job(
    state: AppState, camera: str, short_clip: Path,
) -> None:
    job_id = _submit(state, short_clip, camera)
    run_ingest_job(engine=state.engine, originals=state.originals, derived=state.derived,
                   job_id=job_id, options=ingest_options(state.settings))
    row = job_row(state, job_id)
    assert row.original_id is not None and row.sha256 is not None
    assert row.message.startswith(f"Ingested {short_clip.name} as original {row.original_id}")


def test_requeue_leaves_a_late_but_living_worker_alone(
    state: AppState, camera: str, short_clip: Path,
) -> None:
    job_id = _submit(state, short_clip, camera)
    me = worker_name()
    with session_scope(state.engine) as session:
        claim_job(session, job_id=job_id, worker=me, lease_seconds=LEASE_SECONDS)
    later = utcnow() + timedelta(seconds=LEASE_SECONDS + 1)
    with session_scope(state.engine) as session:
        recovered = requeue_stale_jobs(session, lease_seconds=LEASE_SECONDS, now=later,
                                       worker_alive=local_worker_alive)
    assert recovered.requeued == [] and job_row(state, job_id).status == RUNNING


def test_local_worker_alive_checks_host_pid_and_start_time() -> None:
    now = utcnow()
    assert local_worker_alive(worker_name(), now)
    assert not local_worker_alive(f"{socket.gethostname()}:{os.getpid()}",
                                  now - timedelta(days=3650))  # pid recycled since then
    assert not local_worker_alive(f"elsewhere.example:{os.getpid()}", now)
    assert not local_worker_alive(f"{socket.gethostname()}:999999999", now)


def test_the_acquisition_custody_entry_names_who_asked_for_the_ingest(
    state: AppState, camera: str, short_clip: Path,
) -> None:
    with session_scope(state.engine) as session:
        job = submit_ingest(session, paths=[short_clip], camera_id=camera, start=None,
                            requested_by="cli:olena")[0]
    assert job.id is not None
    finished = run_ingest_job(engine=state.engine, originals=state.originals,
                              derived=state.derived, job_id=job.id,
                              options=ingest_options(state.settings))
    assert finished is not None and finished.status == DONE
    with Session(state.engine) as session:
        entries = session.exec(select(CustodyEntry).where(CustodyEntry.action == "acquisition"))
        assert [entry.actor for entry in entries] == ["cli:olena"]
