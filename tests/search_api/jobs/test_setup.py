"""``oko init``, ``oko serve`` (API + supervised worker) and ``oko demo`` end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import Session, select

from evidence.keys import load_signer
from search_api.state import AppState
from storage.db import alembic_config
from storage.models.access import Role, User
from storage.models.media import Camera, Original
from storage.settings import Settings
from tests.search_api.jobs.conftest import (
    CliResult,
    all_jobs,
    job_row,
    settings_env,
    wait_until,
)
from tests.services import free_port


def test_init_creates_the_data_dir_and_migrates_and_can_be_rerun(
    settings: Settings, state: AppState, run_oko: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OKO_FIRST_ADMIN_PASSWORD", "a long first admin password")
    outputs = []
    for _ in range(2):
        result = run_oko("init")
        assert result.code == 0, result.err
        outputs.append(" ".join(result.out.split()))
        assert f"Data dir {settings.home} is ready" in outputs[-1]
    signer = load_signer(keys_dir=settings.keys_dir, passphrase="test-passphrase")
    assert all(signer.fingerprint_sha256 in out for out in outputs)
    assert "Created the first admin, 'admin' (city)" in outputs[0]
    assert "An admin account already exists" in outputs[1]
    for path in (settings.blobs_dir, settings.derived_dir, settings.tmp_dir):
        assert path.is_dir()
    head = ScriptDirectory.from_config(alembic_config(state.engine)).get_current_head()
    with state.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head


def test_serve_refuses_a_port_in_use_before_starting_anything(
    state: AppState, run_oko: Callable[..., CliResult],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_oko("serve", "--port", str(port))
    assert result.code == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in result.err
    assert "choose another with --port" in " ".join(result.err.split())


def _worker_children(pid: int) -> list[psutil.Process]:
    """Live worker processes under ``pid`` (a killed one is a zombie until reaped)."""
    workers = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "worker" in child.cmdline():
                workers.append(child)
        except psutil.Error:
            continue
    return workers


@pytest.mark.slow
def test_serve_runs_the_api_and_a_supervised_worker_and_ctrl_c_stops_both(
    settings: Settings, state: AppState, camera: str, short_clip: Path, tmp_path: Path,
    run_oko: Callable[..., CliResult],
) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "search_api.cli", "serve", "--port", str(port)],
            env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=tmp_path,
        )
    try:
        def api_up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/jobs", timeout=2).status_code == 401
            except httpx.HTTPError:
                return False

        wait_until(api_up, timeout=60, what="the API to answer")
        workers = _worker_children(serve.pid)
        assert len(workers) == 1
        queued = run_oko("ingest", str(short_clip), "--camera", camera, "--json")
        assert queued.code == 0
        wait_until(lambda: all_jobs(state)[0].status == "done", timeout=90,
                   what="the served worker to ingest")
        assert job_row(state, all_jobs(state)[0].id or 0).worker == (
            f"{socket.gethostname()}:{workers[0].pid}")

        workers[0].kill()  # a crashed worker is replaced

        def replaced() -> list[psutil.Process]:
            return [child for child in _worker_children(serve.pid)
                    if child.pid != workers[0].pid]

        wait_until(lambda: bool(replaced()), timeout=60, what="a new worker")
        workers = replaced()

        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert serve.wait(timeout=60) == 130  # the conventional exit status after Ctrl-C
        _gone, alive = psutil.wait_procs(workers, timeout=30)
        assert alive == []
        assert f"Oko is serving on http://127.0.0.1:{port}" in log_path.read_text()
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=30)


@pytest.mark.slow
def test_demo_ingests_the_sample_footage(
    state: AppState, run_oko: Callable[..., CliResult],
) -> None:
    result = run_oko("demo", "--profile", "test", "--no-serve")
    assert result.code == 0, result.err + result.out
    jobs = all_jobs(state)
    assert len(jobs) == 7 and {job.status for job in jobs} == {"done"}
    with Session(state.engine) as session:
        assert len(session.exec(select(Camera)).all()) == 3
        assert len(session.exec(select(Original)).all()) == 7
    summary = " ".join(result.out.split())
    assert summary.count("DONE") == 7 and "segments" in summary
    # No CLIP weights here: the frames wait for a model, and the demo says so.
    assert "Frames wait for embedding" in summary and "oko models import" in summary
    with Session(state.engine) as session:
        users = {user.username: user.role for user in session.exec(select(User)).all()}
    assert users == {"admin": Role.ADMIN, "investigator": Role.INVESTIGATOR}
    secrets_file = state.settings.home / "demo-secrets.json"
    assert secrets_file.stat().st_mode & 0o077 == 0
    assert json.loads(secrets_file.read_text())["investigator_password"] in summary
