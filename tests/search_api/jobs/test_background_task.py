"""``@background_task``: the task's session is rolled back and the job records one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from indexer.jobs import fail_job
from search_api.state import AppState
from search_api.tasks.app import make_celery
from search_api.tasks.background import background_task
from search_api.tasks.worker import sweep_dead_scratch, worker_state
from storage.db import session_scope
from storage.errors import InvalidInputError
from storage.models.media import Camera, IngestJob
from tests.search_api.jobs.conftest import job_row


def _queued_job(state: AppState, path: Path) -> int:
    with session_scope(state.engine) as session:
        job = IngestJob(source_path=str(path), camera_id="CAM-001")
        session.add(job)
        session.flush()
        assert job.id is not None
        return job.id


def _half_written_camera(session: Session) -> None:
    session.add(Camera(id="CAM-HALF", name="half", latitude=0, longitude=0, agency="police"))
    session.flush()


@pytest.mark.parametrize(("error", "sentence"), [
    (InvalidInputError("The file is not a video."), "The file is not a video."),
    (KeyError("boom"), "The task stopped on an unexpected KeyError; see the worker log."),
])
def test_a_failing_task_rolls_back_and_marks_its_job_failed(
    state: AppState, camera: str, short_clip: Path, error: Exception, sentence: str,
) -> None:
    make_celery(state.settings)
    job_id = _queued_job(state, short_clip)

    @background_task(mark_failed=fail_job)
    def body(*, state: AppState, session: Session, job_id: int) -> None:
        _half_written_camera(session)
        raise error

    body(job_id)
    job = job_row(state, job_id)
    assert (job.status, job.message) == ("failed", sentence)
    with Session(state.engine) as session:
        assert session.exec(select(Camera).where(Camera.id == "CAM-HALF")).first() is None


def test_a_succeeding_task_commits_its_session(state: AppState, camera: str,
                                               short_clip: Path) -> None:
    make_celery(state.settings)
    job_id = _queued_job(state, short_clip)

    @background_task(mark_failed=fail_job)
    def body(*, state: AppState, session: Session, job_id: int) -> None:
        _half_written_camera(session)

    body(job_id)
    assert job_row(state, job_id).status == "queued"
    with Session(state.engine) as session:
        assert session.get(Camera, "CAM-HALF") is not None


def test_worker_scratch_dirs_of_dead_processes_are_swept(state: AppState) -> None:
    app = make_celery(state.settings)
    mine = worker_state(app).originals.tmp_dir
    assert mine.parent == state.settings.tmp_dir and mine.is_dir()
    dead = state.settings.tmp_dir / f"{mine.name.rsplit('-', 2)[0]}-999999999-1"
    (dead / "ingest-abc").mkdir(parents=True)
    (dead / "ingest-abc" / "seg-000.mp4").write_bytes(b"half")
    foreign = state.settings.tmp_dir / "worker-otherhost-1-1"
    foreign.mkdir()
    assert sweep_dead_scratch(state.settings.tmp_dir) == [dead]
    assert mine.is_dir() and foreign.is_dir() and not dead.exists()
