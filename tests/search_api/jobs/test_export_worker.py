"""An evidence export through a REAL worker process over the embedded SQLite broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session

from evidence.export_jobs import request_export
from evidence.verify import verify_bundle
from search_api.jobqueue import CeleryJobQueue
from search_api.state import AppState
from storage.models.evidence import Case, ExportJob
from tests.evidence.conftest import build_world
from tests.search_api.jobs.conftest import WorkerProcess, wait_until


def _job(state: AppState, job_id: int) -> ExportJob:
    with Session(state.engine) as session:
        job = session.get(ExportJob, job_id)
        assert job is not None
        return job


def test_export_runs_in_a_real_worker(state: AppState, tmp_path: Path,
                                      start_worker: Callable[[], WorkerProcess]) -> None:
    world = build_world(state, tmp_path)
    with Session(state.engine, expire_on_commit=False) as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        job = request_export(session, case=case, requested_by=world.investigator,
                             needs_approval=False)
        session.commit()
    assert job.id is not None
    CeleryJobQueue(state.settings).enqueue_export(job.id)
    worker = start_worker()
    wait_until(lambda: _job(state, job.id or 0).status in ("done", "failed"), timeout=120,
               what="the export job to finish", worker=worker)
    done = _job(state, job.id)
    assert done.status == "done", (done.message, worker.log())
    assert done.bundle_path is not None and done.progress == 1.0
    assert verify_bundle(Path(done.bundle_path)).intact
