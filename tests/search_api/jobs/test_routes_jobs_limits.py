"""Queueing a folder answers every job it queued (API and CLI), though a job listing
is paged; /api/jobs bounds its page size."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from indexer.jobs import list_jobs
from search_api.state import AppState
from storage.models.access import Role
from tests.search_api.jobs.conftest import CliResult, all_jobs

FILES = 205  # more than list_jobs' default page of 200


@pytest.fixture
def many_files(short_clip: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(FILES):
        (folder / f"clip-{number:03d}.mp4").symlink_to(short_clip)
    return folder


def test_a_folder_of_many_files_answers_every_queued_job(
    state: AppState, camera: str, many_files: Path, client_as: Callable[..., TestClient],
) -> None:
    admin = client_as(Role.ADMIN, agency="police")
    response = admin.post("/api/ingest", json={"path": str(many_files), "camera_id": camera})
    assert response.status_code == 202, response.text
    assert len(response.json()) == FILES == len(all_jobs(state))
    with Session(state.engine) as session:
        assert len(list_jobs(session)) == 200  # a plain listing stays paged
        assert len(list_jobs(session, limit=10)) == 10


def test_cli_ingest_of_many_files_reports_every_job(
    state: AppState, camera: str, many_files: Path, run_oko: Callable[..., CliResult],
) -> None:
    result = run_oko("ingest", str(many_files), "--camera", camera, "--json")
    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == FILES == len(all_jobs(state))


def test_job_list_page_size_is_bounded(
    state: AppState, camera: str, client_as: Callable[..., TestClient],
) -> None:
    admin = client_as(Role.ADMIN, agency="police")
    for limit in ("0", "-1", "501"):
        assert admin.get("/api/jobs", params={"limit": limit}).status_code == 422
    assert admin.get("/api/jobs", params={"limit": "500"}).json() == []
