"""``oko ingest`` refuses bad input at submit time; ``oko jobs --json`` shows progress."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from indexer.jobs import list_jobs, report_jobs, run_ingest_job
from indexer.samples import truncated_copy
from search_api.cli.ingest import print_summary
from search_api.state import AppState
from search_api.usecases.ingest import ingest_options
from storage.models.access import AuditEvent
from storage.settings import Settings
from tests.search_api.jobs.conftest import (
    CliResult,
    all_jobs,
    make_clip,
    settings_env,
    wait_until,
)


def _ingest_audit_entries(state: AppState) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == "ingest")
                                 .order_by(col(AuditEvent.seq))).all())


def _broker_messages(state: AppState) -> int:
    broker_db = state.settings.home / "broker.db"
    if not broker_db.exists():
        return 0
    with sqlite3.connect(broker_db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "kombu_message" not in tables:
            return 0
        return int(conn.execute("SELECT count(*) FROM kombu_message").fetchone()[0])


@pytest.mark.parametrize(("case", "code", "sentence"), [
    ("missing path", 1, "error: Path '{missing}' does not exist."),
    ("unknown camera", 1, "error: Camera 'CAM-404' does not exist."),
    ("unparseable start", 2, "error: Cannot parse start time 'last tuesday': use ISO 8601"),
])
def test_bad_input_is_one_sentence_and_nothing_is_queued(
    state: AppState, camera: str, short_clip: Path, tmp_path: Path,
    run_oko: Callable[..., CliResult], case: str, code: int, sentence: str,
) -> None:
    missing = tmp_path / "missing.mp4"
    args = {
        "missing path": [str(short_clip), str(missing), "--camera", camera],
        "unknown camera": [str(short_clip), "--camera", "CAM-404"],
        "unparseable start": [str(short_clip), "--camera", camera, "--start", "last tuesday"],
    }[case]
    result = run_oko("ingest", *args, "--wait")
    assert result.code == code
    assert " ".join(result.err.split()).startswith(sentence.format(missing=missing))
    assert result.out == ""
    assert all_jobs(state) == []
    assert _broker_messages(state) == 0
    assert list(state.originals.iter_hashes()) == []
    assert _ingest_audit_entries(state) == []


def test_queued_jobs_show_in_oko_jobs_json(
    state: AppState, camera: str, short_clip: Path, run_oko: Callable[..., CliResult],
) -> None:
    queued = run_oko("ingest", str(short_clip), "--camera", camera,
                     "--start", "2026-01-25T10:00:00+02:00", "--json")
    assert queued.code == 0, queued.err
    [job] = json.loads(queued.out)
    assert (job["status"], job["progress"], job["camera_id"]) == ("queued", 0.0, camera)
    assert job["source_path"] == str(short_clip.resolve())
    assert _broker_messages(state) == 1

    listed = run_oko("jobs", "--json")
    assert [entry["id"] for entry in json.loads(listed.out)] == [job["id"]]
    table = run_oko("jobs")
    assert "queued" in table.out and short_clip.name[:20] in table.out

    plain = run_oko("ingest", str(short_clip), "--camera", camera)
    assert plain.code == 0 and "Queued 1 job(s)" in plain.out

    audited = _ingest_audit_entries(state)
    assert audited[0].details["job_ids"] == [job["id"]]
    assert {entry.details["camera_id"] for entry in audited} == {camera}
    assert all(entry.actor.startswith("cli:") for entry in audited) and len(audited) == 2


def test_a_truncated_recording_is_reported_damaged_with_its_decodable_duration(
    state: AppState, camera: str, tmp_path: Path, run_oko: Callable[..., CliResult],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the index up front (faststart) still promises 8 s after the tail is cut off
    whole = make_clip(tmp_path / "whole.mp4", seconds=8, mux=("-movflags", "+faststart"))
    cut = truncated_copy(whole, tmp_path / "CAM-001_20260125T130000.mp4", keep_fraction=0.5)
    [queued] = json.loads(run_oko("ingest", str(cut), "--camera", camera, "--json").out)
    run_ingest_job(engine=state.engine, originals=state.originals, derived=state.derived,
                   job_id=queued["id"], options=ingest_options(state.settings))
    [job] = json.loads(run_oko("jobs", "--json").out)
    assert (job["status"], job["damaged"]) == ("done", True)
    assert 0 < job["decodable_duration_s"] < 8 and job["frames"] >= 1
    with Session(state.engine) as session:
        reports = report_jobs(session, list_jobs(session))
    capsys.readouterr()
    print_summary(reports)
    line = " ".join(capsys.readouterr().out.split())
    assert f"DAMAGED (decodable {job['decodable_duration_s']:.1f} s)" in line
    assert job["sha256"] in line


@pytest.mark.slow
def test_waiting_without_a_worker_says_how_to_start_one(
    settings: Settings, state: AppState, camera: str, short_clip: Path, tmp_path: Path,
) -> None:
    err_path = tmp_path / "ingest.err"
    with err_path.open("wb") as err:
        waiting = subprocess.Popen(
            [sys.executable, "-m", "search_api.cli", "ingest", str(short_clip),
             "--camera", camera, "--wait"],
            env=settings_env(settings), stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "Waiting for a worker" in err_path.read_text(), timeout=60,
                   what="the no-worker hint")
        assert "oko serve" in err_path.read_text()
        assert [job.status for job in all_jobs(state)] == ["queued"]
    finally:
        os.killpg(waiting.pid, signal.SIGKILL)
        waiting.wait(timeout=20)
