"""A redaction's detection as a worker job: queued by the use case, run by a REAL worker
process, its status visible while it runs; one killed mid-way is failed with a reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from evidence.redaction.jobs import (
    INTERRUPTED,
    claim_redaction_job,
    recover_redaction_jobs,
)
from search_api.jobqueue import CeleryJobQueue
from search_api.state import AppState
from search_api.usecases import redaction as uc
from storage.models.redaction import Redaction
from storage.types import utcnow
from tests.evidence.redaction.world import build_redaction_world
from tests.search_api.jobs.conftest import WorkerProcess, wait_until


def _row(state: AppState, redaction_id: int) -> Redaction:
    with Session(state.engine) as session:
        row = session.get(Redaction, redaction_id)
        assert row is not None
        return row


def test_a_proposal_is_queued_then_detected_by_a_real_worker(
        state: AppState, tmp_path: Path,
        start_worker: Callable[[], WorkerProcess]) -> None:
    world = build_redaction_world(state, tmp_path)
    state.job_queue = CeleryJobQueue(state.settings)
    with world.ctx() as ctx:
        queued = uc.propose_redaction(ctx, case_id=world.case_id, clip_number=1)
    assert queued.status == "queued" and queued.tracks == [] and queued.frame_count == 0
    with world.ctx() as ctx, pytest.raises(uc.ConflictError, match="is queued"):
        uc.exclude_track(ctx, case_id=world.case_id, redaction_id=queued.id,
                         track_id="face-1", reason="suspect")
    worker = start_worker()
    wait_until(lambda: _row(state, queued.id).status not in ("queued", "running"),
               timeout=180, what="the detection to finish", worker=worker)
    with world.ctx() as ctx:
        done = uc.read_redaction(ctx, case_id=world.case_id, redaction_id=queued.id)
    assert done.status == "proposed", (done.message, worker.log())
    assert done.frame_count == 10 and done.progress_frames == 10
    assert sorted(t.kind for t in done.tracks) == ["face", "face", "plate"]
    assert {d["kind"] for d in done.detectors} == {"face", "plate"}


def _dead(_worker: str, _seen: datetime) -> bool:
    return False


def _alive(_worker: str, _seen: datetime) -> bool:
    return True


def test_a_detection_whose_process_died_is_queued_again_once_then_failed_with_a_reason(
        state: AppState, tmp_path: Path) -> None:
    world = build_redaction_world(state, tmp_path)
    with Session(state.engine, expire_on_commit=False) as session:
        row = Redaction(case_id=world.case_id, clip_id=1, targets="faces", status="running",
                        source_clip_sha256="0" * 64, width=0, height=0, fps="0",
                        frame_count=0, created_by="investigator-police",
                        worker="host:123", progress_frames=50,
                        updated_at=utcnow() - timedelta(minutes=1))
        session.add(row)
        session.commit()
    assert row.id is not None
    with Session(state.engine) as session:
        recovered = recover_redaction_jobs(session, worker_alive=_alive)
        assert (recovered.requeued, recovered.failed) == ([], [])
        session.commit()
    assert _row(state, row.id).status == "running"
    # the first time its process dies, it is queued again, the attempt on the record
    with Session(state.engine) as session:
        recovered = recover_redaction_jobs(session, worker_alive=_dead)
        assert (recovered.requeued, recovered.failed) == ([row.id], [])
        session.commit()
    again = _row(state, row.id)
    assert again.status == "queued" and again.worker is None
    assert again.message.endswith("it is queued again (attempt 2 of 2).")
    [attempt] = again.parameters["interrupted"]
    assert (attempt["attempt"], attempt["worker"], attempt["progress_frames"]) == (
        1, "host:123", 50)
    # the second time, it is failed
    assert claim_redaction_job(state.engine, redaction_id=row.id)
    with Session(state.engine) as session:
        recovered = recover_redaction_jobs(session, worker_alive=_dead)
        assert (recovered.requeued, recovered.failed) == ([], [row.id])
        session.commit()
    failed = _row(state, row.id)
    assert (failed.status, failed.message) == ("failed", INTERRUPTED)
    assert [a["attempt"] for a in failed.parameters["interrupted"]] == [1, 2]
    assert failed.tracks == [] and failed.frame_count == 0  # nothing half-proposed
    with world.ctx() as ctx, pytest.raises(uc.ConflictError, match="is failed"):
        uc.preview_redaction(ctx, case_id=world.case_id, redaction_id=row.id)
